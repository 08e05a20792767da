"""Discrimination: AUC with DeLong's variance (lesion level) and the patient-cluster bootstrap,
and paired comparisons of two scores on the same lesions.

DeLong, DeLong & Clarke-Pearson 1988 (Biometrics 44:837), in Sun & Xu's fast form
(IEEE Signal Process Lett 2014). Checked against Hanley & McNeil 1982's CT ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from rnclassifier.stats.bootstrap import (
    DEFAULT_RESAMPLES,
    Interval,
    bootstrap_values,
    cluster_bootstrap,
    percentile_interval,
)

#: Below this many lesions of either class a subgroup reports counts, not an AUC.
MIN_PER_CLASS = 5


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half; NaN when a class is absent."""
    y = np.asarray(y, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(score)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong's structural components for each score row: AUCs, V10 (positives), V01."""
    y = np.asarray(y, bool)
    scores = np.atleast_2d(np.asarray(scores, float))
    positives, negatives = scores[:, y], scores[:, ~y]
    m, n = positives.shape[1], negatives.shape[1]
    aucs, v10, v01 = [], [], []
    for pos, neg in zip(positives, negatives, strict=True):
        all_ranks = stats.rankdata(np.concatenate([pos, neg]))
        pos_ranks, neg_ranks = stats.rankdata(pos), stats.rankdata(neg)
        tx, ty = all_ranks[:m], all_ranks[m:]
        aucs.append((tx.sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tx - pos_ranks) / n)
        v01.append(1 - (ty - neg_ranks) / m)
    return np.array(aucs), np.array(v10), np.array(v01)


def delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of each score row and their DeLong covariance matrix (lesions independent)."""
    aucs, v10, v01 = _placements(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, covariance


def delong_interval(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> Interval:
    """AUC with a lesion-level DeLong interval (valid when each patient has one lesion)."""
    aucs, covariance = delong_covariance(y, score)
    se = float(np.sqrt(covariance[0, 0]))
    z = stats.norm.ppf(0.5 + level / 2)
    estimate = float(aucs[0])
    return Interval(
        estimate,
        float(max(0.0, estimate - z * se)),
        float(min(1.0, estimate + z * se)),
        f"DeLong (lesion level), SE {se:.4f}",
    )


@dataclass(frozen=True)
class PairedComparison:
    """AUC(a) - AUC(b) on the same lesions."""

    auc_a: float
    auc_b: float
    difference: Interval
    p_value: float

    def as_dict(self) -> dict[str, object]:
        return {
            "auc_a": self.auc_a,
            "auc_b": self.auc_b,
            "difference": self.difference.as_dict(),
            "p_value": self.p_value,
        }


def delong_paired(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, level: float = 0.95
) -> PairedComparison:
    """DeLong's test of two correlated AUCs (lesion level)."""
    aucs, covariance = delong_covariance(y, np.vstack([a, b]))
    difference = float(aucs[0] - aucs[1])
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    se = float(np.sqrt(max(variance, 0.0)))
    z = stats.norm.ppf(0.5 + level / 2)
    if se > 0:
        p = float(2 * stats.norm.sf(abs(difference) / se))
    else:
        p = 1.0 if difference == 0 else 0.0
    interval = Interval(
        difference,
        difference - z * se,
        difference + z * se,
        f"DeLong paired (lesion level), SE {se:.4f}",
    )
    return PairedComparison(float(aucs[0]), float(aucs[1]), interval, p)


def auc_interval(
    y: np.ndarray,
    score: np.ndarray,
    groups: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """AUC with a patient-cluster bootstrap interval: the headline interval."""
    y, score = np.asarray(y, bool), np.asarray(score, float)
    return cluster_bootstrap(
        lambda rows: auc(y[rows], score[rows]), groups, n_resamples=n_resamples, seed=seed
    )


def paired_auc_bootstrap(
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    groups: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedComparison:
    """AUC(a) - AUC(b) with a patient-cluster bootstrap interval and a two-sided p-value
    (twice the share of resampled differences on the far side of zero)."""
    y, a, b = np.asarray(y, bool), np.asarray(a, float), np.asarray(b, float)

    def difference(rows: np.ndarray) -> float:
        return auc(y[rows], a[rows]) - auc(y[rows], b[rows])

    values = bootstrap_values(difference, groups, n_resamples=n_resamples, seed=seed)
    interval = percentile_interval(difference(np.arange(len(y))), values)
    finite = values[np.isfinite(values)]
    tail = min((finite <= 0).mean(), (finite >= 0).mean()) if finite.size else np.nan
    # No resample on the far side of zero: the p-value is below the resolution, 1 / resamples.
    p = float(min(1.0, max(2 * tail, 1 / max(finite.size, 1))))
    return PairedComparison(auc(y, a), auc(y, b), interval, p)
