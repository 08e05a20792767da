"""The end-to-end demo on a SYNTHETIC cohort: every stage that exists, in order.

Stages are added here as they are built; each is the same function the CLI calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from rnclassifier.cohort import load_cohort
from rnclassifier.config import LIGHT_EXTRACTION_CONFIG, load_extraction_config
from rnclassifier.errors import InputError
from rnclassifier.evaluate import evaluate_predictions, read_predictions
from rnclassifier.features.api import run_extraction
from rnclassifier.modeling.nested import Budget
from rnclassifier.report.html import write_evaluation_report
from rnclassifier.synthetic import write_synthetic_cohort
from rnclassifier.synthetic.write import SETTINGS_FILE, synthesis_settings
from rnclassifier.train import read_feature_table, train_from_features

logger = logging.getLogger(__name__)

#: The seed study's size.
DEMO_LESIONS = 82
#: The new patients whose follow-up MRI the demo scores (not in the training cohort).
NEW_CASES, NEW_CASE_SEED = 4, 2026
#: A lighter search than the default so that the demo stays a few minutes on 2 cores.
DEMO_BUDGET = Budget(outer_folds=5, repeats=1, inner_folds=3, trials=10, seed=0)


def run_demo(
    out: Path, *, force: bool = False, jobs: int | None = None, progress: bool = False
) -> Iterator[str]:
    """Run the demo into the folder `out`, yielding one line per stage as it finishes."""
    config = load_extraction_config(LIGHT_EXTRACTION_CONFIG)
    yield f"config: {config.source.name} valid (fingerprint {config.fingerprint()[:12]})"

    cohort_dir = out / "cohort"
    if not force and _is_demo_cohort(cohort_dir):
        yield f"synth: reusing the SYNTHETIC cohort in {cohort_dir} (--force remakes it)"
    elif cohort_dir.exists() and not force:
        raise InputError(
            f"{cohort_dir}: exists and is not this version's demo cohort; choose another --out "
            "or pass --force to replace it"
        )
    else:
        summary = write_synthetic_cohort(
            cohort_dir, preset="seed", n_lesions=DEMO_LESIONS, seed=0, force=True, jobs=jobs
        )
        yield (
            f"synth: SYNTHETIC seed-like cohort in {summary.out}: {summary.n_lesions} lesions of"
            f" {summary.n_patients} patients ({summary.n_tumour} tumour, {summary.n_necrosis} "
            "necrosis)"
        )
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

    data = read_feature_table(out / "features.parquet")
    experiment = out / "experiment"
    metrics = train_from_features(
        data,
        experiment,
        budget=DEMO_BUDGET,
        jobs=jobs or 2,
        synthetic=True,
        tracking_uri=f"sqlite:///{(out / 'mlflow.db').resolve()}",
        experiment="rnclassifier-demo",
        artifact_location=(out / "mlartifacts").resolve().as_uri(),
        bundle=out / "models" / "demo-synthetic",
        bundle_name="demo-synthetic",
        overwrite_bundle=True,
        progress=progress,
    )
    for name, entry in metrics["models"].items():
        a = entry["auc"]
        role = "primary" if entry["primary"] else "secondary"
        yield (
            f"train: {name} ({role}) nested-CV AUC {a['estimate']:.2f} "
            f"(95% CI {a['low']:.2f}-{a['high']:.2f}, patient bootstrap)"
        )

    # The primary model's out-of-fold predictions against pathology and the radiologists.
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
    readers = evaluation["radiologists"]["model_specificity_at_radiologists_sensitivity"]
    yield (
        f"evaluate: {report}; at the radiologists' sensitivity "
        f"({readers['radiologists_sensitivity']:.2f}) the model's specificity is "
        f"{readers['estimate']:.2f} (95% CI {readers['low']:.2f}-{readers['high']:.2f}), "
        f"the radiologists' "
        f"{evaluation['radiologists']['on_read_lesions']['specificity']['estimate']:.2f}"
    )
    yield (
        f"bundle: {metrics['bundle']} (the primary's final model, model card inside; "
        f"threshold {metrics['final_model']['threshold']:.2f})"
    )
    yield from _score_a_new_case(out, Path(metrics["bundle"]), jobs=jobs)
    yield (
        f"mlflow: runs and the registered model in {out / 'mlflow.db'}; not built yet: "
        "validate (#8)"
    )


def _score_a_new_case(out: Path, bundle: Path, *, jobs: int | None) -> Iterator[str]:
    """A new SYNTHETIC patient's follow-up MRI, scored as a clinician would from the command
    line: images, mask, clinical facts, the bundle."""
    from rnclassifier.atomic import write_json
    from rnclassifier.cohort import CLINICAL_COLUMNS
    from rnclassifier.report.case import write_case_report
    from rnclassifier.score import CaseInputs, score_case

    new = out / "new-case"
    if not _is_demo_cohort(new, n_lesions=NEW_CASES, seed=NEW_CASE_SEED):
        write_synthetic_cohort(
            new, preset="seed", n_lesions=NEW_CASES, seed=NEW_CASE_SEED, force=True, jobs=jobs
        )
    row = pd.read_csv(new / "cohort.csv", dtype=str).iloc[0]
    case = CaseInputs(
        images={"t1c": str(new / row["t1c"]), "flair": str(new / row["flair"])},
        mask=str(new / row["mask"]),
        brain_mask=str(new / row["brain_mask"]),
        site=row["site"],
        clinical={k: row[k] for k in CLINICAL_COLUMNS if isinstance(row.get(k), str)},
    )
    result = score_case(bundle, case)
    write_case_report(out / "score" / "case.html", result, case)
    write_json(out / "score" / "result.json", result)
    truth = row["pathology"]
    yield (
        f"score: a new SYNTHETIC case: probability of tumour {result['probability']:.2f}, call "
        f"{result['call']} (pathology in the generator: {truth}); "
        f"{out / 'score' / 'case.html'}"
    )


def _is_demo_cohort(folder: Path, *, n_lesions: int = DEMO_LESIONS, seed: int = 0) -> bool:
    """A complete cohort from an earlier demo run (folders appear only when complete)."""
    settings = folder / SETTINGS_FILE
    if not settings.is_file():
        return False
    expected = synthesis_settings("seed", n_lesions, seed, None, False)
    return json.loads(settings.read_text(encoding="utf-8")) == expected
