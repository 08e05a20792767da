"""Out-of-distribution check for scoring: how far a new lesion's model features lie from the
training cohort's, as a Mahalanobis distance under a Ledoit-Wolf shrinkage covariance.

A few dozen lesions cannot estimate a full covariance of tens of features, hence the shrinkage
(Ledoit & Wolf 2004). The distance uses the model's continuous features only: a 0/1 covariate
(a rare histology, say) is not Gaussian, and one rare category would set the cut-off for
everything. The cut-off is the 97.5th percentile of the training lesions' distances computed
out-of-fold (reference fitted without the lesion's patient), so a new training-like lesion is
flagged about once in forty; in-sample distances would make the cut-off too tight.
Only aggregates are kept: means, SDs, quantiles and the covariance, never a row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf
from sklearn.model_selection import GroupKFold

#: Per-feature quantiles kept; scoring flags a feature outside the 0.5-99.5% range (issue #7).
QUANTILES = (0.005, 0.05, 0.25, 0.5, 0.75, 0.95, 0.995)
CUTOFF_QUANTILE = 0.975


def continuous_columns(X: pd.DataFrame) -> list[str]:
    """Columns with more than two distinct values (0/1 indicators are left out)."""
    return [c for c in X.columns if X[c].dropna().nunique() > 2]


def fit_reference(X: pd.DataFrame) -> dict[str, Any]:
    """Per-feature statistics and the shrinkage precision of standardised features."""
    values = X.to_numpy(float)
    mean = np.nanmean(values, axis=0)
    sd = np.nanstd(values, axis=0, ddof=1)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    z = np.nan_to_num((values - mean) / sd, nan=0.0)
    shrinkage = LedoitWolf().fit(z)
    return {
        "features": list(X.columns),
        "mean": mean.tolist(),
        "sd": sd.tolist(),
        "quantiles": {
            f"q{q * 100:g}": np.nanquantile(values, q, axis=0).tolist() for q in QUANTILES
        },
        "n_missing": np.isnan(values).sum(axis=0).astype(int).tolist(),
        "covariance": shrinkage.covariance_.tolist(),
        "precision": shrinkage.precision_.tolist(),
        "shrinkage": float(shrinkage.shrinkage_),
    }


def distance(reference: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    """Mahalanobis distance of each row; a missing value counts as the training mean."""
    if not reference["features"]:
        return np.zeros(len(X))
    values = X[reference["features"]].to_numpy(float)
    z = np.nan_to_num((values - np.asarray(reference["mean"])) / np.asarray(reference["sd"]))
    precision = np.asarray(reference["precision"])
    return np.sqrt(np.einsum("ij,jk,ik->i", z, precision, z))


def fit_reference_with_cutoff(
    X: pd.DataFrame, groups: np.ndarray, *, folds: int = 5
) -> dict[str, Any]:
    """`fit_reference` on the continuous columns of all rows, plus the cut-off from
    patient-grouped out-of-fold distances."""
    groups = np.asarray(groups)
    folds = max(2, min(folds, len(np.unique(groups))))
    indicators = {c: float(X[c].mean()) for c in X.columns if c not in continuous_columns(X)}
    X = X[continuous_columns(X)]
    if X.shape[1] == 0:  # a model of 0/1 covariates only: nothing to measure a distance on
        return {
            "features": [],
            "indicator_rates": indicators,
            "cutoff": None,
            "cutoff_rule": "no continuous model features",
        }
    oof = np.empty(len(X))
    for train, test in GroupKFold(folds).split(X, groups=groups):
        oof[test] = distance(fit_reference(X.iloc[train]), X.iloc[test])
    reference = fit_reference(X)
    reference["indicator_rates"] = indicators  # share of 1s of each 0/1 model feature
    reference["cutoff"] = float(np.quantile(oof, CUTOFF_QUANTILE))
    reference["cutoff_rule"] = (
        f"{CUTOFF_QUANTILE:.0%} quantile of patient-grouped {folds}-fold out-of-fold distances"
    )
    return reference
