"""SHAP explanations of a fitted pipeline, computed without any background rows.

Trees (xgboost, random forest) use TreeSHAP's path-dependent algorithm, which needs only the
cover statistics stored in the trees; the elastic net uses the linear explanation against the
training means, which are the scaler's own (aggregates, not rows). So a model bundle never has to
carry patients' feature values to explain a new case.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.modeling.pipeline import used_features

#: How each model is explained; stored in the bundle so scoring does exactly the same.
SHAP_METHODS = {
    "xgboost": {
        "explainer": "shap.TreeExplainer",
        "feature_perturbation": "tree_path_dependent",
        "output": "log-odds of the uncalibrated model",
        "background_rows": 0,
    },
    "random_forest": {
        "explainer": "shap.TreeExplainer",
        "feature_perturbation": "tree_path_dependent",
        "output": "probability of the uncalibrated model",
        "background_rows": 0,
    },
    "elastic_net": {
        "explainer": "shap.LinearExplainer",
        "feature_perturbation": "interventional, against the training means (held by the scaler)",
        "output": "log-odds of the uncalibrated model",
        "background_rows": 0,
    },
}


#: The plain L2 baseline is explained as the elastic net is (both linear in standardised features).
SHAP_METHODS["logistic"] = SHAP_METHODS["elastic_net"]


def shap_values(pipeline: Any, X: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per case, one column per feature the model uses (input names), plus `base`."""
    import shap

    names = used_features(pipeline)
    transformed = pipeline[:-1].transform(X)
    estimator = pipeline[-1]
    if model in ("xgboost", "random_forest"):
        explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
        values = explainer.shap_values(transformed)
        base = explainer.expected_value
        if model == "random_forest":
            # Probability output per class: explain the tumour class.
            values = values[..., 1] if np.ndim(values) == 3 else values[1]
            base = np.ravel(base)[-1]
    elif model in ("elastic_net", "logistic"):
        # Features are standardised by the pipeline, so the training mean of each is 0.
        explainer = shap.LinearExplainer(
            estimator,
            (np.zeros(transformed.shape[1]), np.eye(transformed.shape[1])),
            feature_perturbation=None,
        )
        values = explainer.shap_values(transformed)
        base = explainer.expected_value
    else:
        raise ValueError(f"no SHAP method for model {model!r}")
    frame = pd.DataFrame(np.asarray(values, float), columns=names, index=X.index)
    frame["base"] = float(np.ravel(base)[0])
    return frame


def shap_summary(values: pd.DataFrame) -> pd.DataFrame:
    """Mean |SHAP| and the mean signed SHAP per feature, largest first (aggregates only)."""
    contributions = values.drop(columns="base")
    return (
        pd.DataFrame(
            {
                "feature": contributions.columns,
                "mean_abs_shap": contributions.abs().mean().to_numpy(),
                "mean_shap": contributions.mean().to_numpy(),
            }
        )
        .sort_values("mean_abs_shap", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
