"""The patient-cluster bootstrap: lesions of a patient are resampled together.

Lesions cluster in patients (82 lesions in 76 patients in the seed study, more in other series),
so resampling lesions as if independent understates the uncertainty. Percentile intervals over
resampled patients (Davison & Hinkley 1997, ch. 3.8 for clustered data). Resampling out-of-fold
predictions leaves out the variability of training itself (Bates, Hastie & Tibshirani 2023).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    method: str

    def as_dict(self) -> dict[str, float | str]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "method": self.method,
        }


def cluster_indices(groups: Sequence[object] | np.ndarray) -> list[np.ndarray]:
    """Row indices of each cluster (patient), in order of first appearance."""
    groups = np.asarray(groups, dtype=object)
    _, first, inverse = np.unique(groups.astype(str), return_index=True, return_inverse=True)
    order = np.argsort(first)
    return [np.flatnonzero(inverse == k) for k in order]


def bootstrap_samples(
    groups: Sequence[object] | np.ndarray, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> list[np.ndarray]:
    """Row indices of each resample: patients drawn with replacement, all their lesions kept."""
    clusters = cluster_indices(groups)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(clusters), size=(n_resamples, len(clusters)))
    return [np.concatenate([clusters[k] for k in draw]) for draw in draws]


def bootstrap_values(
    statistic: Callable[[np.ndarray], float],
    groups: Sequence[object] | np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """`statistic(rows)` on each patient-cluster resample (NaN where it is undefined)."""
    return np.array([statistic(rows) for rows in bootstrap_samples(groups, n_resamples, seed)])


def percentile_interval(estimate: float, values: np.ndarray, level: float = 0.95) -> Interval:
    """Percentile interval of bootstrap values; resamples where the statistic is undefined
    (e.g. no necrosis drawn) are left out, and too many of them give no interval."""
    finite = values[np.isfinite(values)]
    if finite.size < 0.9 * values.size:
        return Interval(
            estimate,
            np.nan,
            np.nan,
            f"patient-cluster bootstrap: too few defined resamples ({finite.size})",
        )
    alpha = (1 - level) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return Interval(
        estimate,
        float(low),
        float(high),
        f"patient-cluster bootstrap, {finite.size} resamples, percentile",
    )


def cluster_bootstrap(
    statistic: Callable[[np.ndarray], float],
    groups: Sequence[object] | np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile interval of `statistic(rows)` over patient-cluster resamples; `statistic` takes
    row indices (with repeats) and returns a number."""
    estimate = float(statistic(np.arange(len(np.asarray(groups)))))
    values = bootstrap_values(statistic, groups, n_resamples=n_resamples, seed=seed)
    return percentile_interval(estimate, values, level)
