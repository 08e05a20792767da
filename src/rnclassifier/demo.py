"""The end-to-end demo on SYNTHETIC data, the whole story in order: a seed-like cohort,
extraction, training with its bundle, evaluation against the radiologists, an external cohort
validated with the frozen bundle, and one new case scored. Each stage is the same function the
CLI calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rnclassifier.cohort import Cohort, load_cohort
from rnclassifier.config import LIGHT_EXTRACTION_CONFIG, load_extraction_config
from rnclassifier.errors import InputError
from rnclassifier.evaluation import evaluate_predictions, read_predictions
from rnclassifier.features.api import run_extraction
from rnclassifier.report.html import write_evaluation_report
from rnclassifier.spec import TrainingSpec
from rnclassifier.synthetic import write_synthetic_cohort
from rnclassifier.synthetic.write import SETTINGS_FILE, synthesis_settings
from rnclassifier.training import read_feature_table, train_on
from rnclassifier.validation import validate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoPlan:
    """Sizes and the training run of one demo."""

    lesions: int
    external_lesions: int
    spec: TrainingSpec


#: Every demo's training: synthetic, its own bundle name and MLflow experiment.
_DEMO = {
    "name": "demo-synthetic",
    "synthetic": True,
    "tracking": {"experiment": "rnclassifier-demo"},
}
#: The seed study's size (82 lesions) and an external cohort; a lighter search than the
#: default, so that the whole story stays within about 10 minutes on 2 cores.
FULL = DemoPlan(
    82,
    60,
    TrainingSpec.model_validate(
        {**_DEMO, "cv": {"outer_folds": 5, "repeats": 1, "inner_folds": 3, "trials": 10}}
    ),
)
#: Every stage on a small scale, for tests (a couple of minutes).
QUICK = DemoPlan(
    40,
    20,
    TrainingSpec.model_validate(
        {
            **_DEMO,
            "cv": {"outer_folds": 3, "repeats": 1, "inner_folds": 3, "trials": 4},
            "models": ("xgboost", "elastic_net"),
            "feature_sets": ("clinical", "combined"),
        }
    ),
)
BUNDLE_NAME = "demo-synthetic"
EXTERNAL_SEED = 2026


def run_demo(
    out: Path,
    *,
    force: bool = False,
    jobs: int | None = None,
    progress: bool = False,
    quick: bool = False,
    models_dir: Path = Path("models"),
) -> Iterator[str]:
    """Run the demo into the folder `out` (the bundle into `models_dir`), yielding one line per
    stage as it finishes."""
    plan = QUICK if quick else FULL
    config = load_extraction_config(LIGHT_EXTRACTION_CONFIG)
    yield f"config: {config.source.name} valid (fingerprint {config.fingerprint()[:12]})"
    cohort_dir = out / "cohort"
    yield _synthesise(cohort_dir, "seed", plan.lesions, 0, force=force, jobs=jobs)
    cohort = load_cohort(cohort_dir / "cohort.csv", require_pathology=True)
    yield f"check: manifest valid; sequences {', '.join(cohort.sequences)}; prior scans present"
    extracted = run_extraction(
        cohort_dir / "cohort.csv",
        out / "features.parquet",
        params=LIGHT_EXTRACTION_CONFIG,
        jobs=jobs or 2,
        cache_dir=out / "feature-cache",
        progress=progress,
    )
    yield f"extract: {extracted}"
    bundle = models_dir / BUNDLE_NAME
    spec = plan.spec.with_changes(
        tracking=_tracking(out), bundle={"path": str(bundle), "overwrite": True}
    )
    metrics = train_on(
        read_feature_table(out / "features.parquet"),
        spec,
        out / "experiment",
        jobs=jobs or 2,
        progress=progress,
    )
    yield from _training_lines(metrics, out / "experiment")
    yield _evaluate_against_readers(out, cohort, metrics)
    yield (
        f"bundle: {metrics['bundle']} (the primary's final model, model card inside; "
        f"threshold {metrics['final_model']['threshold']:.2f})"
    )
    external_dir = out / "external"
    yield _synthesise(
        external_dir, "external", plan.external_lesions, EXTERNAL_SEED, force=force, jobs=jobs
    )
    yield _validate_externally(out, external_dir, bundle, metrics, jobs)
    yield from _score_a_new_case(out, external_dir, bundle)
    yield f"mlflow: runs and the registered model in {out / 'mlflow.db'}"


def _tracking(out: Path) -> dict[str, str]:
    return {
        "uri": f"sqlite:///{(out / 'mlflow.db').resolve()}",
        "artifact_location": (out / "mlartifacts").resolve().as_uri(),
    }


def _training_lines(metrics: dict[str, Any], experiment: Path) -> Iterator[str]:
    for name, entry in metrics["models"].items():
        a = entry["auc"]
        role = "primary" if entry["primary"] else "secondary"
        yield (
            f"train: {name} ({role}) nested-CV AUC {a['estimate']:.2f} "
            f"(95% CI {a['low']:.2f}-{a['high']:.2f}, patient bootstrap)"
        )
    yield f"train: experiment report {experiment / 'report.html'}"


def _evaluate_against_readers(out: Path, cohort: Cohort, metrics: dict[str, Any]) -> str:
    """The primary model's out-of-fold predictions against pathology and the radiologists."""
    experiment = out / "experiment"
    predictions = pd.read_csv(experiment / "predictions.csv")
    reads = cohort.lesions[["lesion_id", "radiologist_read", "radiologist_score"]]
    merged = predictions.merge(reads, on="lesion_id", how="left", validate="one_to_one")
    merged["probability"] = merged[f"probability_{metrics['primary']['key']}"]
    merged.to_csv(experiment / "predictions_with_reads.csv", index=False)
    with_reads = read_predictions(experiment / "predictions_with_reads.csv")
    evaluation = evaluate_predictions(with_reads)
    report = write_evaluation_report(
        out / "evaluation",
        evaluation,
        with_reads,
        title="SYNTHETIC demo: the primary model's out-of-fold predictions vs the radiologists",
        synthetic=True,
    )
    matched = metrics["models"][metrics["primary"]["key"]]["radiologist_matched"]["sensitivity"]
    model, readers = matched["model_on_read_lesions"], matched["radiologists_on_read_lesions"]

    def figure(entry: dict) -> str:
        return f"{entry['estimate']:.2f} (95% CI {entry['ci'][0]:.2f}-{entry['ci'][1]:.2f})"

    return (
        f"evaluate: {report}; at thresholds fixed in each training fold to reach the "
        f"radiologists' sensitivity, on the lesions they read, the model's specificity is "
        f"{figure(model['specificity'])} with sensitivity {figure(model['sensitivity'])}; the "
        f"radiologists' {figure(readers['specificity'])} and {figure(readers['sensitivity'])}"
    )


def _validate_externally(
    out: Path, external_dir: Path, bundle: Path, metrics: dict[str, Any], jobs: int | None
) -> str:
    document = validate(
        bundle,
        [external_dir / "cohort.csv"],
        out / "validation",
        recalibrate=True,
        cache_dir=out / "feature-cache",
        jobs=jobs or 2,
        tracking_uri=f"sqlite:///{(out / 'mlflow.db').resolve()}",
        experiment="rnclassifier-demo",
    )
    external = document["cohorts"]["external"]
    auc, calibration = external["discrimination"]["auc"], external["calibration"]
    # The drop from the nested-CV AUC: the cohorts share no patients, so the two patient-
    # bootstrap standard errors (interval width / 3.92) add in quadrature.
    internal = metrics["models"][metrics["primary"]["key"]]["auc"]
    drop = internal["estimate"] - auc["estimate"]
    se = sum(((a["high"] - a["low"]) / 3.92) ** 2 for a in (internal, auc)) ** 0.5
    return (
        f"validate: frozen model on the SYNTHETIC external cohort: AUC {auc['estimate']:.2f} "
        f"(95% CI {auc['low']:.2f}-{auc['high']:.2f}), a drop of {drop:.2f} (95% CI "
        f"{drop - 1.96 * se:.2f} to {drop + 1.96 * se:.2f}) from the nested-CV "
        f"{internal['estimate']:.2f}; calibration slope "
        f"{calibration['slope']:.2f}, intercept {calibration['intercept']:.2f}; "
        f"{out / 'validation' / 'report.html'}"
    )


def _synthesise(
    folder: Path, preset: str, n_lesions: int, seed: int, *, force: bool, jobs: int | None
) -> str:
    if not force and _is_demo_cohort(folder, preset=preset, n_lesions=n_lesions, seed=seed):
        return f"synth: reusing the SYNTHETIC {preset} cohort in {folder} (--force remakes it)"
    if folder.exists() and not force:
        raise InputError(
            f"{folder}: exists and is not this version's demo cohort; choose another --out "
            "or pass --force to replace it"
        )
    summary = write_synthetic_cohort(
        folder, preset=preset, n_lesions=n_lesions, seed=seed, force=True, jobs=jobs
    )
    return (
        f"synth: SYNTHETIC {preset} cohort in {summary.out}: {summary.n_lesions} lesions of"
        f" {summary.n_patients} patients ({summary.n_tumour} tumour, {summary.n_necrosis} "
        "necrosis)"
    )


def _score_a_new_case(out: Path, cohort_dir: Path, bundle: Path) -> Iterator[str]:
    """A new SYNTHETIC patient's follow-up MRI (from the external cohort), scored as a
    clinician would from the command line: images, mask, clinical facts, the bundle."""
    from rnclassifier.atomic import write_json
    from rnclassifier.cohort import CLINICAL_COLUMNS
    from rnclassifier.report.case import write_case_report
    from rnclassifier.scoring import CaseInputs, score_case

    row = pd.read_csv(cohort_dir / "cohort.csv", dtype=str).iloc[0]
    case = CaseInputs(
        images={"t1c": str(cohort_dir / row["t1c"]), "flair": str(cohort_dir / row["flair"])},
        mask=str(cohort_dir / row["mask"]),
        brain_mask=str(cohort_dir / row["brain_mask"]),
        site=row["site"],
        clinical={k: row[k] for k in CLINICAL_COLUMNS if isinstance(row.get(k), str)},
    )
    result = score_case(bundle, case)
    write_case_report(out / "score" / "case.html", result, case)
    write_json(out / "score" / "result.json", result)
    yield (
        f"score: a new SYNTHETIC case: probability of tumour {result['probability']:.2f}, call "
        f"{result['call']} (pathology in the generator: {row['pathology']}); "
        f"{out / 'score' / 'case.html'}"
    )


def _is_demo_cohort(folder: Path, *, preset: str, n_lesions: int, seed: int) -> bool:
    """A complete cohort from an earlier demo run (folders appear only when complete)."""
    settings = folder / SETTINGS_FILE
    if not settings.is_file():
        return False
    expected = synthesis_settings(preset, n_lesions, seed, None, False)
    return json.loads(settings.read_text(encoding="utf-8")) == expected
