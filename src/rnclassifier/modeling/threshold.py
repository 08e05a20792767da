"""Calibration and the decision threshold, both fitted on grouped inner-CV out-of-fold
probabilities of the training part only, never on in-sample predictions.

Platt scaling by default (a logistic fit on the logit of the raw probability); isotonic only on
request. Threshold rules: a tumour-sensitivity target s (radiologist-level, e.g. 0.95) puts the
threshold at the k-th smallest calibrated tumour probability, k = floor((1 - s)(n_tumour + 1)),
so that about a fraction s of future tumours lies at or above it; or Youden's J.

The same order-statistic rule fixes, on the training part only, the thresholds matched to the
radiologists (their sensitivity, their specificity, on the lesions they read) and the
indeterminate zone (below it necrosis at the rule's tumour sensitivity, above it tumour at the
same specificity). For a new lesion of the class, the k-th of n order statistics is exceeded
with probability 1 - k / (n + 1), so each threshold meets its target on average on new lesions
instead of flattering it on the lesions that chose it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from rnclassifier.spec import Threshold

#: The spec's defaults (declared there once).
_DEFAULT = Threshold()

EPSILON = 1e-6


@dataclass(frozen=True)
class ThresholdRule:
    kind: str = _DEFAULT.rule  # "sensitivity" or "youden"
    target: float = _DEFAULT.target
    #: Necrosis specificity the indeterminate zone's upper end aims at; None: `target`.
    zone_specificity: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("sensitivity", "youden"):
            raise ValueError(f"unknown threshold rule {self.kind!r}")
        if self.kind == "sensitivity" and not 0 < self.target < 1:
            raise ValueError("the sensitivity target must be between 0 and 1")
        if self.zone_specificity is not None and not 0 < self.zone_specificity < 1:
            raise ValueError("the indeterminate zone's specificity must be between 0 and 1")


class Calibrator:
    """Platt (default) or isotonic, fitted on out-of-fold probabilities."""

    def __init__(self, method: str = "platt") -> None:
        if method not in ("platt", "isotonic"):
            raise ValueError(f"unknown calibration method {method!r}")
        self.method = method

    def fit(self, probability: np.ndarray, y: np.ndarray) -> Calibrator:
        p = np.clip(np.asarray(probability, float), EPSILON, 1 - EPSILON)
        if self.method == "platt":
            self.model_ = LogisticRegression(C=1e6).fit(logit(p)[:, None], y)
            if self.model_.coef_[0, 0] < 0:
                # Inner predictions ranked backwards: never invert a model on that evidence;
                # predict the training prevalence instead (no ranking at all).
                self.model_.coef_[0, 0] = 0.0
                rate = float(np.clip(np.mean(y), EPSILON, 1 - EPSILON))
                self.model_.intercept_[0] = float(np.log(rate / (1 - rate)))
        else:
            self.model_ = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(p, y)
        return self

    def transform(self, probability: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(probability, float), EPSILON, 1 - EPSILON)
        if self.method == "platt":
            return self.model_.predict_proba(logit(p)[:, None])[:, 1]
        return self.model_.predict(p)

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers, so a model bundle stores the calibrator as JSON."""
        if self.method == "platt":
            return {
                "method": "platt",
                "slope": float(self.model_.coef_[0, 0]),
                "intercept": float(self.model_.intercept_[0]),
            }
        return {
            "method": "isotonic",
            "x": [float(v) for v in self.model_.X_thresholds_],
            "y": [float(v) for v in self.model_.y_thresholds_],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Calibrator:
        """The inverse of `to_dict`: refits nothing, reproduces `transform` exactly."""
        calibrator = cls(document["method"])
        if calibrator.method == "platt":
            model = LogisticRegression()
            model.classes_ = np.array([0, 1])
            model.coef_ = np.array([[float(document["slope"])]])
            model.intercept_ = np.array([float(document["intercept"])])
            model.n_features_in_ = 1
            calibrator.model_ = model
        else:
            x, y = np.asarray(document["x"], float), np.asarray(document["y"], float)
            calibrator.model_ = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(x, y)
        return calibrator


def threshold_for_sensitivity(probability: np.ndarray, y: np.ndarray, target: float) -> float:
    """The highest threshold at which, on average, a fraction `target` of new tumours lies at or
    above it: the k-th smallest tumour probability, k = floor((1 - target)(n + 1)); 0 if k = 0."""
    tumour = np.sort(np.asarray(probability, float)[np.asarray(y, bool)])
    k = math.floor((1 - target) * (len(tumour) + 1) + 1e-9)
    return 0.0 if k == 0 else float(tumour[k - 1])


def threshold_for_specificity(probability: np.ndarray, y: np.ndarray, target: float) -> float:
    """The lowest threshold below which, on average, a fraction `target` of new necroses lies:
    the j-th smallest necrosis probability, j = ceil(target (n + 1)); above every necrosis
    probability (never a tumour call from the training necroses' range) if j > n."""
    necrosis = np.sort(np.asarray(probability, float)[~np.asarray(y, bool)])
    j = math.ceil(target * (len(necrosis) + 1) - 1e-9)
    if j > len(necrosis):
        return float(np.nextafter(necrosis[-1], np.inf)) if len(necrosis) else 1.0
    return float(necrosis[max(j, 1) - 1])


def indeterminate_zone(
    probability: np.ndarray, y: np.ndarray, rule: ThresholdRule
) -> tuple[float, float]:
    """(low, high): necrosis below `low` (the rule's threshold), tumour at or above `high`
    (the rule's `zone_specificity`, by default its target, as necrosis specificity), no call
    between. Empty (low == high) for Youden's rule or when the two thresholds cross."""
    low = choose_threshold(probability, y, rule)
    if rule.kind != "sensitivity":
        return low, low
    specificity = rule.target if rule.zone_specificity is None else rule.zone_specificity
    return low, max(low, threshold_for_specificity(probability, y, specificity))


def radiologist_matched(
    probability: np.ndarray, y: np.ndarray, reads: np.ndarray | None
) -> dict[str, dict[str, float]] | None:
    """Thresholds at which the model reaches the radiologists' sensitivity (and specificity) on
    the lesions they read, from these (training) lesions only; None without reads of both
    classes. The bundle's `thresholds.radiologist_matched` has this shape."""
    if reads is None:
        return None
    reads = np.asarray(reads, float)
    read = np.isfinite(reads)
    p, y = np.asarray(probability, float)[read], np.asarray(y, int)[read]
    if y.min(initial=1) == 1 or y.max(initial=0) == 0:
        return None
    sensitivity = float((reads[read][y == 1] == 1).mean())
    specificity = float((reads[read][y == 0] == 0).mean())
    return {
        "sensitivity": {
            "threshold": threshold_for_sensitivity(p, y, sensitivity),
            "radiologist_sensitivity": sensitivity,
        },
        "specificity": {
            "threshold": threshold_for_specificity(p, y, specificity),
            "radiologist_specificity": specificity,
        },
    }


def choose_threshold(probability: np.ndarray, y: np.ndarray, rule: ThresholdRule) -> float:
    """The threshold (call tumour when probability >= threshold) chosen by `rule`."""
    p, y = np.asarray(probability, float), np.asarray(y, bool)
    if rule.kind == "sensitivity":
        return threshold_for_sensitivity(p, y, rule.target)
    candidates = np.unique(p)
    sensitivity = np.array([(p[y] >= t).mean() for t in candidates])
    specificity = np.array([(p[~y] < t).mean() for t in candidates])
    return float(candidates[np.argmax(sensitivity + specificity - 1)])
