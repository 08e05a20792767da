"""What the primary's bundle holds, assembled from the run's typed stages (DESIGN.md's bundle
contract): aggregates only, no rows, no identifiers."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.bundle import ModelDescription
from rnclassifier.modeling.nested import FittedModel, NestedResult
from rnclassifier.modeling.pipeline import detach_side_tables, used_features
from rnclassifier.modeling.threshold import ThresholdRule, choose_threshold
from rnclassifier.training.final import FinalModel
from rnclassifier.training.plan import RunPlan
from rnclassifier.training.table import FeatureData


def bundle_contents(
    data: FeatureData,
    plan: RunPlan,
    final: FinalModel,
    ensemble: NestedResult,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The keyword arguments of `write_bundle`: the description, the final pipeline and its
    calibrator, the CV ensemble and the model card."""
    from rnclassifier.report.model_card import model_card

    description = describe(data, plan, final, metrics)
    fitted = final.fitted
    return {
        "description": description,
        "pipeline": detach_side_tables(fitted.pipeline),
        "calibrator": fitted.calibrator,
        "ensemble": [
            (detach_side_tables(member.pipeline), member.calibrator) for member in ensemble.fitted
        ],
        "model_card": model_card(description),
    }


def describe(
    data: FeatureData, plan: RunPlan, final: FinalModel, metrics: dict[str, Any]
) -> ModelDescription:
    """Everything scoring, validation and the model card read about the model."""
    from rnclassifier.modeling.ood import fit_reference_with_cutoff

    X = data.X[plan.available[plan.primary_set]]
    fitted = final.fitted
    used = used_features(fitted.pipeline)
    provenance = data.provenance or {}
    primary = metrics["models"][plan.primary_key]
    return ModelDescription.model_validate(
        {
            "name": plan.name,
            "synthetic": plan.spec.synthetic,
            "model": plan.primary,
            "feature_set": plan.primary_set,
            "features": {"input": list(X.columns), "used": used},
            "params": fitted.params,
            "thresholds": _thresholds(plan, fitted),
            "training": {
                "n_lesions": len(plan.y),
                "n_patients": len(np.unique(data.groups)),
                "prevalence": float(np.mean(plan.y)),
                "data_sha256": metrics["data_sha256"],
                "config_sha256": plan.spec.config_sha256,
                "budget": metrics["budget"],
            },
            "reference": fit_reference_with_cutoff(X[used], data.groups),
            "table_one": metrics["table_one"],
            "sites": (
                pd.Series(data.sites).dropna().value_counts().sort_index().to_dict()
                if data.sites is not None
                else provenance.get("sites")
            ),
            "harmonisation": metrics["harmonisation"],
            "sequences": provenance.get("sequences"),
            "extraction": provenance.get("config"),
            "feature_table_versions": provenance.get("versions"),
            "shap": final.shap_method,
            "shap_summary": final.shap_summary,
            "metrics": {
                "nested_cv_auc": primary["auc"],
                "at_threshold_rule": primary["at_threshold_rule"],
                "calibration": {
                    k: v
                    for k, v in metrics["primary_evaluation"].get("calibration", {}).items()
                    if k != "curve"
                },
            },
            "tripod": metrics["tripod"],
        }
    )


def _thresholds(plan: RunPlan, fitted: FittedModel) -> dict[str, Any]:
    """Every threshold fixed in training, at full precision, and what it was fixed on."""
    calibrated_inner = fitted.calibrator.transform(fitted.inner_probability)
    return {
        "rule": {**dataclasses.asdict(plan.budget.threshold_rule), "value": fitted.threshold},
        "youden": {
            "kind": "youden",
            "value": choose_threshold(calibrated_inner, plan.y, ThresholdRule("youden")),
        },
        "indeterminate": {
            "low": fitted.zone[0],
            "high": fitted.zone[1],
            "meaning": "necrosis below low (the rule's threshold), tumour at or above high "
            "(the rule's target as specificity), indeterminate between",
        },
        **({"radiologist_matched": fitted.matched} if fitted.matched is not None else {}),
        "chosen_on": "grouped inner-CV out-of-fold probabilities of the final tuning run",
    }
