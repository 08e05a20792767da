"""Benchmarks in one command, each against a named baseline measured in the same run.

    .venv/bin/python benchmarks/run.py [--jobs 2] [--repeats 3] [--lesions 82]

extraction (issue #4), on the synthetic seed cohort (made on first use in benchmarks/.data):
- cold: `rnclassifier extract` with a plain pyradiomics parameter file and an empty cache,
  against pyradiomics' own batch CLI (`pyradiomics batch.csv --param ... -j N`) with the same
  parameters, cases (T1c and FLAIR of each lesion) and jobs. Goal: ratio <= 1.0.
- warm: the same `rnclassifier extract` again with the cache filled, against the cold run.
  Goal: ratio <= 0.05.
Times are wall-clock medians of `--repeats` runs of the whole command (start-up included).
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
    folder = DATA / f"seed-{lesions}"
    if not (folder / "cohort.csv").exists():
        run([str(BIN / "rnclassifier"), "synth", "--out", str(folder), "--n", str(lesions),
             "--force"])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lesions", type=int, default=82)
    args = parser.parse_args()
    results = extraction(args)
    print("\nratio                                   value   goal")
    for name, value, base, goal in results:
        print(f"{name:<38} {value / base:6.3f}   {goal}")


if __name__ == "__main__":
    main()
