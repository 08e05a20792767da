"""The primary's final model: the same inner procedure as every outer fold (tuning, calibration
on grouped inner out-of-fold probabilities, the thresholds), on all lesions; its SHAP summary;
and the check that this procedure does not over-state confidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.modeling.nested import (
    FittedModel,
    final_seed,
    fit_tuned,
    fold_settings,
    settings_digest,
)
from rnclassifier.modeling.pipeline import used_features
from rnclassifier.training.plan import RunPlan
from rnclassifier.training.table import FeatureData


@dataclass(frozen=True)
class FinalModel:
    fitted: FittedModel
    shap_method: dict[str, Any]
    shap_summary: list[dict[str, Any]]
    #: metrics.json's `final_model` block.
    document: dict[str, Any]


def fit_final(data: FeatureData, plan: RunPlan, first_repeat: pd.DataFrame) -> FinalModel:
    """Tune and fit the primary on all lesions. `first_repeat` holds the primary's outer test
    predictions of its first repeat, for the over-confidence check."""
    from rnclassifier.explain import SHAP_METHODS, shap_summary, shap_values

    X = data.X[plan.available[plan.primary_set]]
    extra = {**plan.extra_settings, "final": True}
    settings = fold_settings(
        X, plan.y, data.groups, plan.primary, plan.budget, side=plan.side, reads=data.reads,
        extra=extra,
    )  # fmt: skip
    final = fit_tuned(
        X,
        plan.y,
        data.groups,
        plan.primary,
        plan.budget,
        final_seed(plan.budget),
        plan.side,
        plan.spec.optuna_storage,
        f"{plan.study_prefix}/{plan.primary_key}/{settings_digest(settings)}/final",
        reads=data.reads,
        settings=settings,
    )
    summary = shap_summary(shap_values(final.pipeline, X, plan.primary)).to_dict("records")
    method = SHAP_METHODS[plan.primary]
    document = {
        "params": final.params,
        "threshold": final.threshold,
        "over_confidence_check": _over_confidence_check(first_repeat, plan.y),
        "used_features": used_features(final.pipeline),
        "shap_method": method,
        "shap_summary": summary,
    }
    return FinalModel(final, method, summary, document)


def _over_confidence_check(first_repeat: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    """The final model is refit on all lesions and keeps a Platt calibration fitted to inner
    out-of-fold models that saw a part of them. Each outer fold does exactly that on its
    training part, so the calibration slope of the outer test predictions (first repeat, each
    lesion once) shows whether the procedure over-states confidence (slope < 1)."""
    from rnclassifier.stats.calibration import calibration_summary

    rows = first_repeat["row"].to_numpy()
    summary = calibration_summary(y[rows], first_repeat["probability"].to_numpy(float))
    low, high = summary["slope_ci_wald_lesion_level"]
    return {
        "slope": summary["slope"],
        "slope_ci_wald_lesion_level": [low, high],
        "intercept": summary["intercept"],
        "reading": "over-confident (slope below 1)"
        if high < 1
        else "under-confident (slope above 1)"
        if low > 1
        else "no evidence of over- or under-confidence (the slope's interval holds 1)",
        "how": "outer test predictions of models refit on their whole training part and "
        "calibrated on its inner out-of-fold predictions, as the final model is",
    }
