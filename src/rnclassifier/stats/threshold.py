"""Operating points: sensitivity, specificity, PPV, NPV and accuracy at a threshold, with
lesion-level Wilson intervals and patient-cluster bootstrap intervals; McNemar's paired test;
an indeterminate zone between two thresholds.

Positive class: tumour. In the necrosis view, specificity is the sensitivity for necrosis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from rnclassifier.stats.bootstrap import DEFAULT_RESAMPLES, Interval, cluster_bootstrap

METRICS = ("sensitivity", "specificity", "ppv", "npv", "accuracy")


def calls_at(score: np.ndarray, low: float, high: float | None = None) -> np.ndarray:
    """1 = tumour, 0 = necrosis, NaN = indeterminate (score between `low` and `high`).

    With one threshold, score >= low calls tumour.
    """
    score = np.asarray(score, float)
    high = low if high is None else high
    calls = np.full(score.shape, np.nan)
    calls[score >= high] = 1.0
    calls[score < low] = 0.0
    calls[np.isnan(score)] = np.nan
    return calls


def proportions(y: np.ndarray, calls: np.ndarray) -> dict[str, tuple[int, int]]:
    """(successes, trials) of each metric over the lesions with a call."""
    y = np.asarray(y, bool)
    made = ~np.isnan(calls)
    call = calls == 1
    tp = int((made & y & call).sum())
    fn = int((made & y & ~call).sum())
    tn = int((made & ~y & ~call).sum())
    fp = int((made & ~y & call).sum())
    return {
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "ppv": (tp, tp + fp),
        "npv": (tn, tn + fn),
        "accuracy": (tp + tn, tp + tn + fp + fn),
    }


def wilson(successes: int, trials: int, level: float = 0.95) -> Interval:
    """Wilson score interval (lesion level), via statsmodels."""
    if trials == 0:
        return Interval(np.nan, np.nan, np.nan, "Wilson (lesion level): no lesions")
    low, high = proportion_confint(successes, trials, alpha=1 - level, method="wilson")
    return Interval(successes / trials, float(low), float(high), "Wilson (lesion level)")


@dataclass(frozen=True)
class OperatingPoint:
    counts: dict[str, tuple[int, int]]
    intervals: dict[str, Interval]  # patient-cluster bootstrap
    lesion_level: dict[str, Interval]  # Wilson
    indeterminate: float  # share of lesions without a call

    def as_dict(self) -> dict[str, object]:
        return {
            name: {
                "estimate": self.intervals[name].estimate,
                "ci": [self.intervals[name].low, self.intervals[name].high],
                "ci_method": self.intervals[name].method,
                "wilson_ci": [self.lesion_level[name].low, self.lesion_level[name].high],
                "count": list(self.counts[name]),
            }
            for name in METRICS
        } | {"indeterminate_fraction": self.indeterminate}


def operating_point(
    y: np.ndarray,
    calls: np.ndarray,
    groups: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> OperatingPoint:
    """Every metric of `calls` against `y`, on the lesions with a call."""
    y, calls = np.asarray(y, bool), np.asarray(calls, float)
    counts = proportions(y, calls)
    intervals = {}
    for name in METRICS:

        def metric(rows: np.ndarray, name: str = name) -> float:
            k, n = proportions(y[rows], calls[rows])[name]
            return k / n if n else np.nan

        intervals[name] = cluster_bootstrap(metric, groups, n_resamples=n_resamples, seed=seed)
    lesion_level = {name: wilson(*counts[name]) for name in METRICS}
    return OperatingPoint(counts, intervals, lesion_level, float(np.isnan(calls).mean()))


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """McNemar's test of two paired binary outcomes (lesion level; exact when discordant
    pairs are few, < 25). `chi2` is the chi-squared statistic of the asymptotic test, None for
    the exact one (whose statsmodels `statistic` is min(b, c), not a chi-squared)."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    discordant = int(table[0, 1] + table[1, 0])
    exact = discordant < 25
    result = mcnemar(table, exact=exact, correction=False)
    return {
        "test": "exact binomial" if exact else "chi-squared, no continuity correction",
        "chi2": None if exact else float(result.statistic),
        "p_value": float(result.pvalue),
        "a_only": int(table[0, 1]),
        "b_only": int(table[1, 0]),
        "exact": exact,
    }
