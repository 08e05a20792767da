"""The pipeline fitted inside every fold: drop features that are not robust to the mask (ICC),
harmonise sites (ComBat, optional), impute, drop near-constant and redundant features, scale,
select (mRMR), classify. A scikit-learn `Pipeline`, so `clone` and CV cannot leak."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from rnclassifier.modeling.harmonise import ComBatHarmoniser
from rnclassifier.modeling.selection import ICCFilter, MRMRSelector
from rnclassifier.spec import MODELS


class CorrelationFilter(TransformerMixin, BaseEstimator):
    """Drop a feature when its |Pearson r| with an earlier kept feature exceeds `threshold`.

    Written here (about 20 lines) rather than taken from a library: scikit-learn has no such
    transformer, and the packages that do (feature-engine) would add a dependency for one step.
    """

    def __init__(self, threshold: float = 0.95) -> None:
        self.threshold = threshold

    def fit(self, X: np.ndarray, y: Any = None) -> CorrelationFilter:
        X = np.asarray(X, float)
        if X.shape[1] < 2:
            self.keep_ = np.arange(X.shape[1])
            return self
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.abs(np.corrcoef(X, rowvar=False))
        r = np.nan_to_num(r, nan=0.0)
        keep: list[int] = []
        for j in range(X.shape[1]):
            if all(r[j, k] <= self.threshold for k in keep):
                keep.append(j)
        self.keep_ = np.array(keep)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, float)[:, self.keep_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return _names_out(self, input_features)


def _names_out(step: Any, input_features: Any) -> np.ndarray:
    names = input_features
    if names is None:
        names = getattr(step, "feature_names_in_", None)
    if names is None:
        raise ValueError("input feature names are needed")
    return np.asarray(names, dtype=object)[step.keep_]


def make_estimator(name: str, params: dict[str, Any], seed: int) -> Any:
    """A fresh, unfitted classifier: always built from parameters, never reused."""
    if name == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            **params, n_jobs=1, random_state=seed, tree_method="hist", eval_metric="logloss"
        )
    if name == "elastic_net":
        return LogisticRegression(
            solver="saga", max_iter=5000, class_weight="balanced", random_state=seed, **params
        )
    if name == "logistic":
        # The plain baseline a hand-rolled script would fit: L2, every feature, no weighting.
        return LogisticRegression(max_iter=5000, random_state=seed, **params)
    if name == "random_forest":
        return RandomForestClassifier(
            class_weight="balanced_subsample", n_jobs=1, random_state=seed, **params
        )
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


@dataclass(frozen=True)
class SideTables:
    """Per-lesion data that steps look up by lesion ID (X's index), never predictors:
    extraction's mask perturbations (ICC filter) and each lesion's site (ComBat)."""

    perturbed: pd.DataFrame | None = None
    sites: pd.Series | None = None


def make_pipeline(
    name: str,
    params: dict[str, Any],
    seed: int = 0,
    side: SideTables | None = None,
) -> Pipeline:
    """`params` holds the model's parameters plus `select_k` and `correlation_threshold`.

    With `side.perturbed`, the first step drops features whose ICC on the training lesions is
    below 0.75; with `side.sites`, ComBat harmonises radiomics features by site, estimated on the
    training lesions. X must then be indexed by lesion ID. Before saving a fitted pipeline,
    `detach_side_tables` removes those tables from it."""
    side = side or SideTables()
    params = dict(params)
    k = params.pop("select_k", "all")
    threshold = params.pop("correlation_threshold", 0.95)
    return Pipeline(
        [
            ("icc", ICCFilter(side.perturbed)),
            ("combat", ComBatHarmoniser(side.sites)),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("constant", VarianceThreshold(1e-10)),
            ("decorrelate", CorrelationFilter(threshold)),
            ("scale", StandardScaler()),
            ("select", MRMRSelector(k)),
            ("model", make_estimator(name, params, seed)),
        ]
    )


def used_features(pipeline: Pipeline) -> list[str]:
    """The input columns a fitted pipeline's model actually reads, in the model's order."""
    return [str(name) for name in pipeline[:-1].get_feature_names_out()]


def detach_side_tables(pipeline: Pipeline) -> Pipeline:
    """The fitted pipeline minus its per-lesion side tables (transform of a new lesion needs
    only that lesion's site): what a bundle saves, so that no lesion's data travel with a
    model."""
    pipeline.set_params(icc__perturbed=None, combat__sites=None)
    return pipeline
