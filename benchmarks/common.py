"""What every benchmark section shares: the run's plan, the command lines it runs, and the
synthetic cohorts, feature tables and bundle they run on.

Every `rnclassifier` (and `pyradiomics`) command a section runs is built here, by the
`*_command` functions, so a change of the command line is made once. Synthetic cohorts, their
feature tables and the default bundle are made on first use in the data folder and reused
while the generator revision is unchanged.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmarks.measure import measure

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RNC = str(BIN / "rnclassifier")
PYRADIOMICS = str(BIN / "pyradiomics")
LIGHT = ROOT / "configs" / "extraction" / "light.yaml"
EXPERIMENT = ROOT / "experiments" / "seed-synthetic" / "experiment.yaml"

#: The light profile's pyradiomics block, used as a plain parameter file by both tools.
#: correctMask lets pyradiomics resample the T1c mask onto FLAIR's own grid where they differ.
PLAIN_PARAMS = {
    "setting": {
        "binWidth": 25,
        "label": 1,
        "correctMask": True,
        "geometryTolerance": 0.001,
        "resampledPixelSpacing": [1.0, 1.0, 1.0],
        "interpolator": "sitkBSpline",
        "padDistance": 10,
        "preCrop": True,
    },
    "imageType": {"Original": {}},
    "featureClass": {"shape": None, "firstorder": None, "glcm": None, "glszm": None},
}

#: The primary model and its feature set.
PRIMARY = ("xgboost", "combined")


def _budget() -> dict[str, int]:
    """The nested-CV budget of the larger cohorts (sections 4 and 7)."""
    return {"outer_folds": 5, "repeats": 1, "inner_folds": 3, "trials": 20}


@dataclass(frozen=True)
class Plan:
    """Sizes and budgets of one run: the full run's defaults, or the quick smoke test's."""

    quick: bool
    data: Path
    jobs: int = 2
    repeats: int = 3
    #: The seed cohort of sections 1-3 and 6, and the first size of section 4.
    lesions: int = 82
    scoring_cases: int = 5
    #: Overrides of the default experiment's `cv` block, models and feature sets (None: the
    #: experiment's own).
    training_cv: dict[str, int] | None = None
    training_models: tuple[str, ...] | None = None
    training_sets: tuple[str, ...] | None = None
    #: Larger cohorts on which the whole default experiment (all models x sets) runs.
    quality_sizes: tuple[int, ...] = (400,)
    quality_cv: dict[str, int] | None = field(default_factory=_budget)
    #: Larger still: the primary (and the elastic net) on the combined feature set only. None
    #: by default: rendering and extracting 800 lesions alone takes ~30 min on 2 shared cores.
    primary_sizes: tuple[int, ...] = ()
    primary_cv: dict[str, int] | None = field(default_factory=_budget)
    #: Section 5: prefixes of this cohort's manifest, extracted cold.
    scaling_cohort: int = 400
    scaling_sizes: tuple[int, ...] = (50, 100, 200, 400)
    scaling_repeats: int = 1
    jobs_size: int = 100
    large_shape: tuple[int, int, int] = (512, 512, 200)
    large_spacing: tuple[float, float, float] = (0.5, 0.5, 1.0)
    #: Section 6: a running Dask scheduler's address; None starts a LocalCluster.
    scheduler: str | None = None
    #: Section 6's cohort: the first lesions of section 1's (None: all of them).
    dask_lesions: int | None = None
    #: Section 7 (named, not in the default run): the primary trained on a seed-like cohort of
    #: this size, frozen, validated on an external-preset cohort of that size.
    transport_lesions: int = 400
    external_lesions: int = 400
    transport_cv: dict[str, int] | None = field(default_factory=_budget)


#: The quick run's tiny nested-CV budget.
QUICK_CV = {"outer_folds": 2, "repeats": 1, "inner_folds": 2, "trials": 2}

FULL = Plan(quick=False, data=ROOT / "benchmarks" / ".data")
QUICK = Plan(
    quick=True,
    data=ROOT / "benchmarks" / ".data" / "quick",
    repeats=1,
    lesions=20,
    scoring_cases=1,
    training_cv=dict(QUICK_CV),
    training_models=("xgboost", "elastic_net"),
    training_sets=("clinical", "combined"),
    quality_sizes=(),
    primary_sizes=(24,),
    primary_cv=dict(QUICK_CV),
    scaling_cohort=20,
    scaling_sizes=(5, 10, 20),
    jobs_size=10,
    large_shape=(128, 128, 48),
    large_spacing=(2.0, 2.0, 4.0),
    dask_lesions=10,
    transport_lesions=20,
    external_lesions=20,
    transport_cv=dict(QUICK_CV),
)


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def quiet(command: list[str]) -> None:
    """Run an unmeasured set-up command; fail loudly."""
    measure(command)


def workdir(prefix: str) -> Path:
    """A scratch folder for one section's outputs."""
    return Path(tempfile.mkdtemp(prefix=f"rnc-bench-{prefix}-"))


# --- the command lines -----------------------------------------------------------------------


def _options(**options: object) -> list[str]:
    """`--name value` for each option given (None: left out; True: a bare flag; False: left
    out), in the order given; underscores become hyphens."""
    out: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        out.append(f"--{name.replace('_', '-')}")
        if value is not True:
            out.append(str(value))
    return out


def cv_options(cv: Mapping[str, int] | None) -> list[str]:
    """A nested-CV budget (`outer_folds`, `repeats`, `inner_folds`, `trials`) as `train`'s
    options."""
    return _options(**(cv or {}))


def synth_command(preset: str, out: Path, lesions: int, seed: int, jobs: int) -> list[str]:
    """`rnclassifier synth`: a synthetic cohort of a preset, replacing any in `out`."""
    options = _options(preset=preset, out=out, n=lesions, seed=seed, force=True, jobs=jobs)
    return [RNC, "synth", *options]


def extract_command(
    manifest: Path,
    params: Path,
    out: Path,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    cache_dir: Path | None = None,
    no_cache: bool = False,
) -> list[str]:
    """`rnclassifier extract` of a manifest with a parameter file: on `jobs` local processes
    or a Dask scheduler, with a feature cache or none."""
    return [
        RNC,
        "extract",
        *_options(cohort=manifest, params=params, out=out, jobs=jobs, scheduler=scheduler),
        *_options(cache_dir=cache_dir, no_cache=no_cache),
    ]


def train_command(
    out: Path,
    jobs: int,
    *,
    config: Path | None = None,
    features: Path | None = None,
    models: Sequence[str] = (),
    feature_set: str | None = None,
    bundle: Path | None = None,
    force: bool = False,
    cv: Mapping[str, int] | None = None,
    synthetic: bool = False,
) -> list[str]:
    """`rnclassifier train`, MLflow off: an experiment config, or a feature table with the
    models and feature set named; the final model's bundle written to `bundle` (None: no
    bundle); an optional nested-CV budget."""
    return [
        RNC,
        "train",
        *_options(no_mlflow=True, synthetic=synthetic, config=config, features=features),
        *(option for model in models for option in ("--model", model)),
        *_options(feature_set=feature_set, out=out, bundle=bundle, no_bundle=bundle is None),
        *_options(force=force, jobs=jobs),
        *cv_options(cv),
    ]


def score_command(
    bundle: Path,
    images: Mapping[str, Path],
    mask: Path,
    brain_mask: Path,
    out: Path,
    clinical: Mapping[str, str],
) -> list[str]:
    """`rnclassifier score` of one case (its images by sequence) with its clinical values."""
    return [
        RNC,
        "score",
        *_options(model=bundle, **images, mask=mask, brain_mask=brain_mask, out=out),
        *(option for k, v in clinical.items() for option in ("--clinical", f"{k}={v}")),
    ]


def validate_command(
    bundle: Path, manifest: Path, out: Path, jobs: int, cache_dir: Path
) -> list[str]:
    """`rnclassifier validate` of a frozen bundle on a cohort, MLflow off."""
    return [
        RNC,
        "validate",
        *_options(no_mlflow=True, model=bundle, cohort=manifest, out=out, jobs=jobs),
        *_options(cache_dir=cache_dir),
    ]


def pyradiomics_command(batch: Path, params: Path, out: Path, jobs: int | None = None) -> list[str]:
    """pyradiomics' own batch CLI (the baseline), writing CSV."""
    return [
        PYRADIOMICS,
        str(batch),
        "--param",
        str(params),
        *(["-j", str(jobs)] if jobs is not None else []),
        "-o",
        str(out),
        "-f",
        "csv",
    ]


# --- the inputs ------------------------------------------------------------------------------


def cohort(plan: Plan, lesions: int, preset: str = "seed", seed: int = 0) -> Path:
    """The synthetic cohort of `lesions` lesions of a preset (the seed preset by default),
    re-rendered (with everything derived from it) when it was written by another generator
    revision."""
    from rnclassifier.synthetic.write import SETTINGS_FILE, synthesis_settings

    folder = plan.data / (f"{preset}-{lesions}" + (f"-seed{seed}" if seed else ""))
    settings = folder / SETTINGS_FILE
    current = synthesis_settings(preset, lesions, seed, None, False)
    if not settings.exists() or json.loads(settings.read_text()) != current:
        log(f"synthesising the {preset} cohort with {lesions} lesions")
        quiet(synth_command(preset, folder, lesions, seed, plan.jobs))
        for derived in (
            f"{folder.name}-light.parquet",
            f"{folder.name}-light.parquet.json",
            f"metrics-{folder.name}.json",
        ):
            (plan.data / derived).unlink(missing_ok=True)
        shutil.rmtree(plan.data / f"bundle-{folder.name}", ignore_errors=True)
    return folder / "cohort.csv"


def feature_cache(plan: Plan) -> Path:
    """The feature cache shared by the set-up extractions of every section."""
    return plan.data / "feature-cache"


def light_features(plan: Plan, lesions: int) -> Path:
    """The cohort's light-profile feature table (what the default experiment trains on)."""
    manifest = cohort(plan, lesions)  # first: a re-rendered cohort drops the old features
    out = plan.data / f"seed-{lesions}-light.parquet"
    if not out.exists():
        log(f"extracting light-profile features of {lesions} lesions")
        quiet(extract_command(manifest, LIGHT, out, jobs=plan.jobs, cache_dir=feature_cache(plan)))
    return out


def prefix(manifest: Path, lesions: int) -> Path:
    """The manifest's first `lesions` rows, beside it (paths stay relative to the folder)."""
    out = manifest.with_name(f"cohort-first-{lesions}.csv")
    with manifest.open(newline="") as handle:
        lines = handle.readlines()
    out.write_text("".join(lines[: lesions + 1]))
    return out


def plain_params(work: Path) -> Path:
    """The plain pyradiomics parameter file both tools read."""
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(PLAIN_PARAMS))
    return path


def pyradiomics_batch(manifest: Path, work: Path, sequences: tuple[str, ...]) -> Path:
    """pyradiomics' batch CSV: one case per lesion and sequence, as rnclassifier extracts."""
    rows = list(csv.DictReader(manifest.open()))
    batch = work / "batch.csv"
    with batch.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image", "Mask"])
        for row in rows:
            for sequence in sequences:
                writer.writerow([manifest.parent / row[sequence], manifest.parent / row["mask"]])
    return batch


def experiment_config(
    table: Path,
    cv: dict[str, int] | None,
    work: Path,
    models: tuple[str, ...] | None = None,
    sets: tuple[str, ...] | None = None,
) -> Path:
    """The default experiment's config pointed at a feature table, with an optional budget
    (and, for the quick run, fewer models and feature sets)."""
    config = yaml.safe_load(EXPERIMENT.read_text())
    config["data"]["features"] = str(table)
    if cv:
        config["cv"].update(cv)
    if models:
        config["models"] = list(models)
    if sets:
        config["feature_sets"] = list(sets)
    path = work / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def default_bundle(plan: Plan) -> Path:
    """The default experiment's bundle on the seed cohort, kept for the scoring benchmark."""
    return plan.data / f"bundle-seed-{plan.lesions}"


def ensure_bundle(plan: Plan) -> Path:
    """The default bundle; when the training section has not left one, the primary alone is
    trained with the experiment's budget (the same final model the experiment would build)."""
    path = default_bundle(plan)
    if not (path / "bundle.json").exists():
        log("no default bundle yet: training the primary for the scoring benchmark")
        table = light_features(plan, plan.lesions)
        work = workdir("bundle")
        cv = plan.training_cv or yaml.safe_load(EXPERIMENT.read_text())["cv"]
        command = train_command(
            work,
            plan.jobs,
            features=table,
            models=[PRIMARY[0]],
            feature_set=PRIMARY[1],
            bundle=path,
            force=True,
            cv=cv,
            synthetic=True,
        )
        quiet(command)
        shutil.rmtree(work, ignore_errors=True)
    return path
