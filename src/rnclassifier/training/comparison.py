"""The comparison: nested, patient-grouped CV of each model on each feature set, out-of-fold
predictions, and the leakage alarms. The primary (model, feature set) was declared before the
run and is reported whatever its rank."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS
from rnclassifier.modeling.nested import NestedResult, fold_settings, nested_cv, settings_digest
from rnclassifier.stats.discrimination import auc_interval
from rnclassifier.stats.threshold import operating_point
from rnclassifier.training.plan import RunPlan
from rnclassifier.training.table import FeatureData


@dataclass(frozen=True)
class Comparison:
    predictions: pd.DataFrame  # lesion, patient, pathology, one probability column per run
    models: dict[str, dict[str, Any]]  # "model/set" -> its figures (metrics.json `models`)
    primary: NestedResult  # the primary's folds: its calls, thresholds and CV ensemble
    alarms: dict[str, Any]  # the pure-noise alarm, when asked for


def compare(
    data: FeatureData, plan: RunPlan, *, jobs: int = 1, progress: bool = False
) -> Comparison:
    """Every (model, feature set) of the plan through the same nested CV."""
    y = plan.y
    predictions = pd.DataFrame(
        {
            "lesion_id": data.ids,
            "patient_id": data.groups,
            "pathology": np.where(y == 1, POSITIVE_CLASS, NEGATIVE_CLASS),
        }
    )
    summary: dict[str, dict[str, Any]] = {}
    primary = None
    for feature_set in plan.sets:
        for model in plan.models:
            key = f"{model}/{feature_set}"
            result = _nested(data, plan, model, feature_set, jobs=jobs, progress=progress)
            if key == plan.primary_key:
                primary = result
            probability = result.mean_probability(len(y))
            predictions[f"probability_{key}"] = probability
            summary[key] = _figures(data, plan, result, model, feature_set, probability)
    assert primary is not None  # plan_run puts the primary set among the sets
    alarms = (
        {"pure_noise_features": _noise_alarm(data, plan, jobs)} if plan.spec.alarms.noise else {}
    )
    return Comparison(predictions, summary, primary, alarms)


def _nested(
    data: FeatureData, plan: RunPlan, model: str, feature_set: str, *, jobs: int, progress: bool
) -> NestedResult:
    key = f"{model}/{feature_set}"
    X = data.X[plan.available[feature_set]]
    extra = plan.extra_settings
    settings = fold_settings(
        X, plan.y, data.groups, model, plan.budget, side=plan.side, reads=data.reads, extra=extra
    )
    # Finished outer folds are kept here until the run completes, so a rerun resumes.
    return nested_cv(
        X,
        plan.y,
        data.groups,
        model,
        plan.budget,
        jobs=jobs,
        side=plan.side,
        storage=plan.spec.optuna_storage,
        study_prefix=f"{plan.study_prefix}/{key}",
        progress=key if progress else None,
        checkpoint=plan.checkpoints / settings_digest(settings),
        reads=data.reads,
        extra_settings=extra,
    )


def _figures(
    data: FeatureData,
    plan: RunPlan,
    result: NestedResult,
    model: str,
    feature_set: str,
    probability: np.ndarray,
) -> dict[str, Any]:
    """One run's entry of metrics.json: AUC with its patient-bootstrap interval, the pooled
    calls at each fold's own threshold, and the operating points its folds fixed."""
    y, seed = plan.y, plan.budget.seed
    calls = result.pooled_calls()
    rows = calls["row"].to_numpy()
    primary = model == plan.primary and feature_set == plan.primary_set
    entry = {
        "model": model,
        "feature_set": feature_set,
        "n_features": len(plan.available[feature_set]),
        "primary": primary,
        "auc": auc_interval(y, probability, data.groups, seed=seed).as_dict(),
        # Each outer fold's own calibrated threshold, from its inner out-of-fold
        # predictions; every repeat's calls pooled, resampled by patient.
        "at_threshold_rule": operating_point(
            y[rows], calls["call"].to_numpy(float), data.groups[rows], seed=seed
        ).as_dict(),
        "outer_folds": result.folds,
    }
    return entry | _fold_fixed_points(result, y, data.groups, data.reads, full=primary, seed=seed)


def _noise_alarm(data: FeatureData, plan: RunPlan, jobs: int) -> dict[str, Any]:
    """Leakage alarm: as many pure-noise columns as the primary set (at most 100), the true
    labels, the primary model and the whole pipeline. Must come out near AUC 0.5."""
    y, seed = plan.y, plan.budget.seed
    rng = np.random.default_rng(seed + 31)
    width = min(100, len(plan.available[plan.primary_set]))
    noise = pd.DataFrame(
        rng.normal(size=(len(y), width)),
        index=data.X.index,
        columns=[f"noise_{j:03d}" for j in range(width)],
    )
    result = nested_cv(noise, y, data.groups, plan.primary, plan.budget, jobs=jobs)
    probability = result.mean_probability(len(y))
    return {
        "n_features": width,
        "auc": auc_interval(y, probability, data.groups, seed=seed).as_dict(),
        "expected": "0.5 (its interval should contain 0.5)",
    }


def _fold_fixed_points(
    result: Any,
    y: np.ndarray,
    groups: np.ndarray,
    reads: np.ndarray | None,
    *,
    full: bool,
    seed: int,
) -> dict[str, Any]:
    """Operating points whose thresholds each outer fold fixed on its training part and applied
    to its test fold (calls pooled over repeats): the indeterminate zone, and the thresholds
    matched to the radiologists' sensitivity and specificity. With `full` (the primary),
    patient-bootstrap intervals and the paired comparison; otherwise counts and estimates."""
    from rnclassifier.evaluation import matched_comparison
    from rnclassifier.stats.threshold import proportions

    frame = result.predictions
    rows = frame["row"].to_numpy()
    yr, gr = y[rows], groups[rows]

    def point(calls: np.ndarray) -> dict[str, Any]:
        if full:
            return operating_point(yr, calls, gr, seed=seed).as_dict()
        return {
            name: {"estimate": k / n if n else None, "count": [k, n]}
            for name, (k, n) in proportions(yr, calls).items()
        } | {"indeterminate_fraction": float(np.isnan(calls).mean())}

    out: dict[str, Any] = {
        "indeterminate_zone": {
            "fold_zones": [f["indeterminate_zone"] for f in result.folds],
            **point(frame["zone_call"].to_numpy(float)),
        }
    }
    if reads is None or not any(f.get("radiologist_matched") for f in result.folds):
        return out
    matched: dict[str, Any] = {}
    for name in ("sensitivity", "specificity"):
        calls = frame.get(f"matched_{name}_call", pd.Series(np.nan, index=frame.index))
        calls = calls.to_numpy(float)
        entry = {
            "matched_to": f"radiologist_{name}",
            "folds": [
                {"repeat": f["repeat"], "fold": f["fold"], **f["radiologist_matched"][name]}
                for f in result.folds
                if f.get("radiologist_matched")
            ],
        }
        if full:
            entry |= matched_comparison(
                yr, calls, gr, reads[rows],
                threshold_source="each outer fold's training part (inner out-of-fold "
                "probabilities of its read lesions)",
                once=(frame["repeat"] == 0).to_numpy(), seed=seed,
            )  # fmt: skip
        else:
            read = np.isfinite(reads[rows])
            entry["model_on_read_lesions"] = point(np.where(read, calls, np.nan))
        matched[name] = entry
    out["radiologist_matched"] = matched
    return out
