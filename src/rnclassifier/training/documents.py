"""The run's documents: the primary's evaluation against pathology and the radiologists (at
each outer fold's own threshold), `metrics.json`, Table 1, the TRIPOD items and the report."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.columns import ColumnKind, columns_of_kind
from rnclassifier.evaluation import EvaluationInputs, evaluate_predictions
from rnclassifier.report.html import render_evaluation_html
from rnclassifier.report.training import training_sections, tripod_items
from rnclassifier.stats.descriptive import table_one
from rnclassifier.training.comparison import Comparison
from rnclassifier.training.final import FinalModel
from rnclassifier.training.plan import RunPlan
from rnclassifier.training.table import FeatureData


def evaluate_primary(
    data: FeatureData, plan: RunPlan, comparison: Comparison
) -> tuple[dict[str, Any], EvaluationInputs]:
    """The primary's out-of-fold evaluation; its calls are each lesion's call in the first
    repeat, at the threshold its outer fold fixed on its training part (never a threshold
    chosen on the lesions judged)."""
    inputs = EvaluationInputs(
        y=plan.y,
        score=comparison.predictions[f"probability_{plan.primary_key}"].to_numpy(),
        groups=data.groups,
        reads=data.reads,
        radiologist_score=data.radiologist_score,
        is_probability=True,
    )
    first = first_repeat(comparison)
    fold_calls = np.full(len(plan.y), np.nan)
    fold_calls[first["row"].to_numpy()] = first["call"].to_numpy(float)
    evaluation = evaluate_predictions(
        inputs,
        seed=plan.budget.seed,
        calls=fold_calls,
        calls_from="each outer fold's own threshold (the rule, fixed on its training part), "
        "first repeat",
    )
    primary = comparison.models[plan.primary_key]
    if "radiologist_matched" in primary:
        evaluation["radiologists"]["prespecified"] = {
            "source": "each outer fold's training part, applied to its test fold",
            **primary["radiologist_matched"],
        }
    # Lesions whose extraction failed (`extract --allow-failures`) have no out-of-fold
    # prediction: the STARD flow counts them, the figures are on the lesions that have one.
    evaluation["flow"]["lesions"] += data.technical_failures
    evaluation["flow"]["technical_failures"] += data.technical_failures
    return evaluation, inputs


def first_repeat(comparison: Comparison) -> pd.DataFrame:
    """The primary's outer test predictions of its first repeat: each lesion once."""
    return comparison.primary.predictions.query("repeat == 0")


def metrics_document(
    data: FeatureData,
    plan: RunPlan,
    comparison: Comparison,
    evaluation: dict[str, Any],
    final: FinalModel | None,
) -> dict[str, Any]:
    """metrics.json, without the bundle's folder and the MLflow run (added once known)."""
    storage = plan.spec.optuna_storage
    metrics: dict[str, Any] = {
        "primary": {
            "model": plan.primary,
            "feature_set": plan.primary_set,
            "key": plan.primary_key,
        },
        "feature_sets": {name: plan.available[name] for name in plan.sets},
        "config_sha256": plan.spec.config_sha256,
        "data_sha256": data.digest(),
        "synthetic": plan.spec.synthetic,
        "permuted_labels": plan.permuted,
        "budget": dataclasses.asdict(plan.budget),
        "harmonisation": "combat by site" if plan.harmonise else None,
        "table_cleaning": dataclasses.asdict(data.cleaning),
        # The backend only: a database URL can hold a password.
        "optuna_storage": storage.split(":", 1)[0] if storage else "in-memory",
        "models": comparison.models,
        "leakage_alarms": comparison.alarms,
        "primary_evaluation": evaluation,
    }
    if final is not None:
        metrics["final_model"] = final.document
    # Growth between the scans is an image measurement: not a clinical fact of Table 1.
    clinical = columns_of_kind(data.X.columns, ColumnKind.CLINICAL, ColumnKind.OTHER)
    metrics["table_one"] = table_one(data.X, plan.y, data.groups, clinical)
    metrics["tripod"] = dict(_tripod(data, plan, metrics))
    return metrics


def _tripod(data: FeatureData, plan: RunPlan, metrics: dict[str, Any]) -> Any:
    y = plan.y
    candidates = plan.available[plan.primary_set]
    missing = data.X[candidates].isna()
    return tripod_items(
        metrics,
        technical_failures=data.technical_failures,
        cleaning=data.cleaning.lines(),
        n_lesions=len(y),
        n_patients=len(np.unique(data.groups)),
        n_tumour=int(y.sum()),
        n_candidates=len(candidates),
        missing={
            "n_features": missing.shape[1],
            "n_features_with_missing": int(missing.any().sum()),
            "max_fraction": float(missing.mean().max()) if missing.shape[1] else 0.0,
        },
        sample_size=_sample_size(
            len(candidates), float(y.mean()), metrics["models"][plan.primary_key]["auc"]["estimate"]
        ),
        synthetic=plan.spec.synthetic,
    )


def training_report(
    plan: RunPlan,
    metrics: dict[str, Any],
    evaluation: dict[str, Any],
    inputs: EvaluationInputs,
    final: FinalModel | None,
) -> str:
    """The experiment report (HTML): the primary's evaluation and the training sections."""
    return render_evaluation_html(
        evaluation,
        inputs,
        title=f"Training experiment: {plan.primary_key} (primary; nested CV, out-of-fold)",
        synthetic=plan.spec.synthetic,
        extra_sections=training_sections(
            metrics,
            shap_summary=None if final is None else final.shap_summary,
            shap_method=None if final is None else final.shap_method,
            table_one=metrics["table_one"],
            tripod=list(metrics["tripod"].items()),
        ),
    )


def _sample_size(parameters: int, prevalence: float, c_statistic: float) -> dict[str, Any] | None:
    """Riley's minimum sample size at the AUC this run achieved (None when undefined)."""
    from rnclassifier.stats.sample_size import minimum_sample_size

    if not (0.5 < c_statistic < 1 and 0 < prevalence < 1 and parameters > 0):
        return None
    result = minimum_sample_size(parameters, prevalence, c_statistic=c_statistic).as_dict()
    return {
        **result,
        "parameters": parameters,
        "prevalence": prevalence,
        "c_statistic": c_statistic,
    }
