"""Training experiments from a feature table: nested patient-grouped CV of each model and
feature set, out-of-fold predictions, metrics with patient-cluster intervals, the experiment
report, and the primary's final model (tuned by the same inner procedure on all lesions) as a
model bundle.

`train` is the orchestrator; each stage is a function over plain data that returns a
dataclass: `plan` (the spec checked against the table), `comparison` (the nested CV),
`final` (the final model), `documents` (evaluation, metrics.json, the report), `contents`
(what the bundle holds). Each output is written once, at the end.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rnclassifier.atomic import atomic_file, write_json, write_text
from rnclassifier.errors import InputError
from rnclassifier.spec import TrainingSpec
from rnclassifier.training.comparison import compare
from rnclassifier.training.documents import (
    evaluate_primary,
    first_repeat,
    metrics_document,
    training_report,
)
from rnclassifier.training.plan import CHECKPOINT_FOLDER, plan_run
from rnclassifier.training.table import FeatureData, read_feature_table

__all__ = ["CHECKPOINT_FOLDER", "FeatureData", "read_feature_table", "train", "train_on"]


def train(
    spec: TrainingSpec, out: str | Path, *, jobs: int = 1, progress: bool = False
) -> dict[str, Any]:
    """Run the study `spec` declares on its data (a feature table, or a cohort extracted
    first into `out/features.parquet`); return metrics.json's contents."""
    data = spec.data
    if data is None:
        raise InputError("the training spec names no data (data.features or data.cohort)")
    out = Path(out)
    if data.cohort is not None:
        from rnclassifier.features.api import run_extraction

        table = out / "features.parquet"
        run_extraction(Path(data.cohort), table, params=data.extraction, jobs=jobs)
    else:
        table = Path(data.features)
    features = read_feature_table(
        table,
        label=data.label,
        group=data.group,
        id_column=data.id,
        site=data.site,
        positive_label=data.positive_label,
    )
    return train_on(features, spec, out, jobs=jobs, progress=progress, table=table)


def train_on(
    data: FeatureData,
    spec: TrainingSpec,
    out: str | Path,
    *,
    jobs: int = 1,
    progress: bool = False,
    table: Path | None = None,
) -> dict[str, Any]:
    """`train` on a table already read. Writes `metrics.json`, `predictions.csv` and
    `report.html` to `out`, the primary's bundle where the spec says (not for a
    permuted-label run, whose model means nothing), and logs the run to MLflow unless told
    not to. `table` (the table's file) names the run when the spec does not."""
    from rnclassifier.training.final import fit_final

    out = Path(out)
    plan = plan_run(data, spec, out, table)
    comparison = compare(data, plan, jobs=jobs, progress=progress)
    evaluation, inputs = evaluate_primary(data, plan, comparison)
    final = None if plan.permuted else fit_final(data, plan, first_repeat(comparison))
    metrics = metrics_document(data, plan, comparison, evaluation, final)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "predictions.csv") as tmp:
        comparison.predictions.to_csv(tmp, index=False)
    write_text(out / "report.html", training_report(plan, metrics, evaluation, inputs, final))
    bundle = None
    if plan.bundle is not None and final is not None:
        from rnclassifier.bundle import write_bundle
        from rnclassifier.training.contents import bundle_contents

        bundle = plan.bundle
        contents = bundle_contents(data, plan, final, comparison.primary, metrics)
        write_bundle(bundle, **contents, overwrite=spec.bundle.overwrite)
        metrics["bundle"] = str(bundle)
    if spec.tracking.enabled:
        from rnclassifier.tracking import log_experiment

        metrics["mlflow_run_id"] = log_experiment(
            out,
            metrics,
            comparison.predictions,
            tracking_uri=spec.tracking.uri,
            data_hash=metrics["data_sha256"],
            synthetic=spec.synthetic,
            experiment=plan.experiment,
            artifact_location=spec.tracking.artifact_location,
            bundle=bundle,
        )
    write_json(out / "metrics.json", metrics)
    shutil.rmtree(plan.checkpoints, ignore_errors=True)
    return metrics
