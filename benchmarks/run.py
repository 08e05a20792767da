"""Benchmarks in one command, each against a named baseline measured in the same run.

    .venv/bin/python benchmarks/run.py [--jobs 2] [--repeats 3] [--lesions 82] [--only ...]

extraction (issue #4), on the synthetic seed cohort (made on first use in benchmarks/.data):
- cold: `rnclassifier extract` with a plain pyradiomics parameter file and an empty cache,
  against pyradiomics' own batch CLI (`pyradiomics batch.csv --param ... -j N`) with the same
  parameters, cases (T1c and FLAIR of each lesion) and jobs. Goal: ratio <= 1.0.
- warm: the same `rnclassifier extract` again with the cache filled, against the cold run.
  Goal: ratio <= 0.05.
Times are wall-clock medians of `--repeats` runs of the whole command (start-up included).

training (issue #6), on the same cohort's light-profile features (extracted on first use):
- the default experiment (experiments/seed-synthetic: 3 models x 5 feature sets, outer 5 x 2,
  inner 3, 30 xgboost trials, final model and bundle), once, against the 600 s it must fit in.
  Goal: ratio <= 1.0. Prints each model's nested-CV AUC beside the generator's oracle AUC.
- the primary alone (xgboost / combined) with `--jobs 2` against `--jobs 1`. Goal: <= 0.6.

    .venv/bin/python benchmarks/run.py --only training

scoring (issue #7), with the default experiment's bundle (kept by the training benchmark):
- one case end to end in one process against full extraction of the same case. Goal: <= 0.25,
  and under 3 s; plus the whole `rnclassifier score` command with its start-up.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA = ROOT / "benchmarks" / ".data"

#: The light profile's pyradiomics block, used as a plain parameter file by both tools.
#: correctMask lets pyradiomics resample the T1c mask onto FLAIR's own grid where they differ.
PLAIN_PARAMS = {
    "setting": {
        "binWidth": 25, "label": 1, "correctMask": True, "geometryTolerance": 0.001,
        "resampledPixelSpacing": [1.0, 1.0, 1.0], "interpolator": "sitkBSpline",
        "padDistance": 10, "preCrop": True,
    },
    "imageType": {"Original": {}},
    "featureClass": {"shape": None, "firstorder": None, "glcm": None, "glszm": None},
}


def cohort(lesions: int) -> Path:
    """The synthetic seed cohort, re-rendered (with everything derived from it) when it was
    written by another generator revision."""
    import json

    from rnclassifier.synthetic.write import SETTINGS_FILE, synthesis_settings

    folder = DATA / f"seed-{lesions}"
    settings = folder / SETTINGS_FILE
    current = synthesis_settings("seed", lesions, 0, None, False)
    if not settings.exists() or json.loads(settings.read_text()) != current:
        run([str(BIN / "rnclassifier"), "synth", "--out", str(folder), "--n", str(lesions),
             "--force"])
        (DATA / f"seed-{lesions}-light.parquet").unlink(missing_ok=True)
        (DATA / f"seed-{lesions}-light.parquet.json").unlink(missing_ok=True)
        shutil.rmtree(DATA / f"bundle-seed-{lesions}", ignore_errors=True)
    return folder / "cohort.csv"


def run(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def pyradiomics_batch(manifest: Path, work: Path) -> Path:
    """pyradiomics' batch CSV: one case per lesion and sequence, as rnclassifier extracts."""
    rows = list(csv.DictReader(manifest.open()))
    batch = work / "batch.csv"
    with batch.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image", "Mask"])
        for row in rows:
            for sequence in ("t1c", "flair"):
                writer.writerow([manifest.parent / row[sequence], manifest.parent / row["mask"]])
    return batch


def median_time(label: str, command: list[str], repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before:
            before()
        times.append(run(command))
    value = statistics.median(times)
    print(f"  {label:<38} median {value:7.2f} s   runs: {', '.join(f'{t:.2f}' for t in times)}")
    return value


def extraction(args: argparse.Namespace) -> list[tuple[str, float, float, str]]:
    manifest = cohort(args.lesions)
    work = Path(tempfile.mkdtemp(prefix="rnc-bench-"))
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(PLAIN_PARAMS))
    cache = work / "cache"
    batch = pyradiomics_batch(manifest, work)
    ours = [str(BIN / "rnclassifier"), "extract", "--cohort", str(manifest), "--params",
            str(params), "--out", str(work / "features.parquet"), "--jobs", str(args.jobs),
            "--cache-dir", str(cache)]
    theirs = [str(BIN / "pyradiomics"), str(batch), "--param", str(params), "-j",
              str(args.jobs), "-o", str(work / "pyradiomics.csv"), "-f", "csv"]

    def clear() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        (work / "pyradiomics.csv").unlink(missing_ok=True)

    print(f"extraction: {args.lesions} lesions x 2 sequences, jobs {args.jobs}, "
          f"repeats {args.repeats}")
    baseline = median_time("pyradiomics batch CLI (baseline)", theirs, args.repeats, clear)
    cold = median_time("rnclassifier extract, cold cache", ours, args.repeats, clear)
    warm = median_time("rnclassifier extract, warm cache", ours, args.repeats)
    shutil.rmtree(work, ignore_errors=True)
    return [
        ("extract cold / pyradiomics CLI", cold, baseline, "<= 1.0"),
        ("extract warm / extract cold", warm, cold, "<= 0.05"),
    ]


def features(lesions: int, jobs: int) -> Path:
    manifest = cohort(lesions)  # first: a re-rendered cohort drops the old features
    out = DATA / f"seed-{lesions}-light.parquet"
    if not out.exists():
        run([str(BIN / "rnclassifier"), "extract", "--cohort", str(manifest), "--params",
             str(ROOT / "configs" / "extraction" / "light.yaml"), "--out", str(out), "--jobs",
             str(jobs)])
    return out


def oracle_auc(lesions: int) -> dict[str, float]:
    import pandas as pd

    from rnclassifier.stats.discrimination import auc

    oracle = pd.read_csv(cohort(lesions).parent / "oracle.csv")
    y = (oracle["pathology"] == "tumor").to_numpy(int)
    return {column: auc(y, oracle[column].to_numpy()) for column in
            ("oracle_p_tumor", "oracle_p_tumor_clinical", "oracle_p_tumor_image")}


def default_bundle(lesions: int) -> Path:
    """The default experiment's bundle, kept for the scoring benchmark."""
    return DATA / f"bundle-seed-{lesions}"


def scoring(args: argparse.Namespace) -> list[tuple[str, float, float, str]]:
    """One case end to end (load, extract the needed features, predict, explain, write JSON)
    against full extraction of the same case with the bundle's own config, in one process with
    imports done (what a tumour-board session pays per case); plus the whole command."""
    import json

    import pandas as pd

    from rnclassifier.bundle import load_bundle
    from rnclassifier.cohort import cohort_from_rows
    from rnclassifier.features.extract import extract_features
    from rnclassifier.features.restrict import config_from_record
    from rnclassifier.score import CaseInputs, score_case

    bundle_path = default_bundle(args.lesions)
    if not (bundle_path / "bundle.json").exists():
        print("scoring: no default bundle yet; run the training benchmark first")
        return []
    manifest = cohort(args.lesions)
    rows = pd.read_csv(manifest, dtype=str)
    bundle = load_bundle(bundle_path)
    config = config_from_record(bundle.meta["extraction"])
    clinical = ("age_years", "sex", "histology", "location", "prior_wbrt", "srs_dose_gy",
                "srs_fractions", "months_since_srs", "ptv_cc", "steroids", "immunotherapy",
                "her2_tdm1")
    work = Path(tempfile.mkdtemp(prefix="rnc-bench-score-"))
    full_times, score_times = [], []
    cases = list(range(min(args.repeats, len(rows))))
    for i in cases:
        row = rows.iloc[i]
        base = manifest.parent
        case = CaseInputs(
            images={"t1c": str(base / row["t1c"]), "flair": str(base / row["flair"])},
            mask=str(base / row["mask"]), brain_mask=str(base / row["brain_mask"]),
            site=row["site"], clinical={k: row[k] for k in clinical if isinstance(row[k], str)})
        header = ["patient_id", "lesion_id", "t1c", "flair", "mask", "brain_mask",
                  "t1c_prior", "flair_prior", "mask_prior", "months_between_scans"]
        cells = ["p", "l", *(str(base / row[c]) for c in header[2:9]), row[header[9]]]
        one = cohort_from_rows(header, [(1, cells)], source=manifest, base=base)
        start = time.perf_counter()
        extract_features(one, config)
        full_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = score_case(bundle_path, case)
        (work / "result.json").write_text(json.dumps(result))
        score_times.append(time.perf_counter() - start)
    full, scored = statistics.median(full_times), statistics.median(score_times)
    used = bundle.used_features
    print(f"scoring: {len(cases)} cases, default bundle ({bundle.meta['model']}, "
          f"{len(used)} features used of {len(bundle.input_features)})")
    print(f"  {'full extraction of the case (baseline)':<38} median {full:7.2f} s   runs: "
          f"{', '.join(f'{t:.2f}' for t in full_times)}")
    print(f"  {'score one case end to end':<38} median {scored:7.2f} s   runs: "
          f"{', '.join(f'{t:.2f}' for t in score_times)}")
    row = rows.iloc[0]
    base = manifest.parent
    command = [str(BIN / "rnclassifier"), "score", "--model", str(bundle_path),
               "--t1c", str(base / row["t1c"]), "--flair", str(base / row["flair"]),
               "--mask", str(base / row["mask"]), "--brain-mask", str(base / row["brain_mask"]),
               "--out", str(work / "cli.json"),
               *[a for k in clinical if isinstance(row[k], str)
                 for a in ("--clinical", f"{k}={row[k]}")]]
    whole = median_time("whole `rnclassifier score` command", command, args.repeats)
    families = sorted({c.split("__")[-1].split("_")[0] for c in used if "__" in c})
    print(f"  the model's image filters: {', '.join(families) or 'none'}")
    shutil.rmtree(work, ignore_errors=True)
    return [
        ("score one case / full extraction", scored, full, "<= 0.25"),
        ("score one case / 3 s", scored, 3.0, "<= 1.0"),
        ("whole score command / 3 s", whole, 3.0, "(start-up included)"),
    ]


def training(args: argparse.Namespace) -> list[tuple[str, float, float, str]]:
    import json

    table = features(args.lesions, args.jobs)
    work = Path(tempfile.mkdtemp(prefix="rnc-bench-train-"))
    config = yaml.safe_load((ROOT / "experiments" / "seed-synthetic" / "experiment.yaml")
                            .read_text())
    config["data"]["features"] = str(table)
    (work / "experiment.yaml").write_text(yaml.safe_dump(config))
    train = [str(BIN / "rnclassifier"), "train", "--no-mlflow"]
    print(f"training: default experiment on {args.lesions} lesions, jobs {args.jobs}")
    full = median_time("default experiment (15 models + bundle)",
                       [*train, "--config", str(work / "experiment.yaml"), "--out",
                        str(work / "full"), "--bundle", str(default_bundle(args.lesions)),
                        "--force", "--jobs", str(args.jobs)], 1)
    primary = [*train, "--features", str(table), "--model", "xgboost", "--feature-set",
               "combined", "--no-bundle"]
    one = median_time("primary only, --jobs 1 (baseline)",
                      [*primary, "--out", str(work / "p1"), "--jobs", "1"], 1)
    two = median_time(f"primary only, --jobs {args.jobs}",
                      [*primary, "--out", str(work / "p2"), "--jobs", str(args.jobs)], 1)
    metrics = json.loads((work / "full" / "metrics.json").read_text())
    print("\n  nested-CV AUC (95% CI, patient bootstrap)")
    for key, entry in metrics["models"].items():
        a = entry["auc"]
        rule = entry["at_threshold_rule"]["sensitivity"]
        print(f"  {key:<30} {a['estimate']:.3f} ({a['low']:.3f}-{a['high']:.3f})"
              f"   sensitivity at rule {rule['estimate']:.2f} "
              f"({rule['ci'][0]:.2f}-{rule['ci'][1]:.2f})"
              + ("   PRIMARY" if entry["primary"] else ""))
    for name, value in oracle_auc(args.lesions).items():
        print(f"  generator {name:<28} {value:.3f}")
    shutil.rmtree(work, ignore_errors=True)
    return [
        ("default experiment / 600 s budget", full, 600.0, "<= 1.0"),
        (f"primary jobs {args.jobs} / jobs 1", two, one, "<= 0.6"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lesions", type=int, default=82)
    parser.add_argument("--only", choices=["extraction", "training", "scoring"], default=None)
    args = parser.parse_args()
    results = []
    if args.only in (None, "extraction"):
        results += extraction(args)
    if args.only in (None, "training"):
        results += training(args)
    if args.only in (None, "scoring"):
        results += scoring(args)
    print("\nratio                                   value   goal")
    for name, value, base, goal in results:
        print(f"{name:<38} {value / base:6.3f}   {goal}")


if __name__ == "__main__":
    main()
