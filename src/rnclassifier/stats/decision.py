"""Decision curves: net benefit of re-irradiating by a rule, over threshold probabilities.

Net benefit = TP/n - FP/n · pt / (1 - pt) (Vickers & Elkin 2006, Med Decis Making 26:565).
"Treat all" re-irradiates every lesion, "treat none" none (net benefit 0). A radiologist's read
is one fixed rule, so its net benefit varies only through the weight pt / (1 - pt); unread
lesions are treated as the clinic would (`unread_as`).
"""

from __future__ import annotations

import numpy as np


def net_benefit(y: np.ndarray, treat: np.ndarray, threshold: float) -> float:
    y, treat = np.asarray(y, bool), np.asarray(treat, bool)
    n = len(y)
    tp = np.sum(treat & y) / n
    fp = np.sum(treat & ~y) / n
    return float(tp - fp * threshold / (1 - threshold))


def decision_curve(
    y: np.ndarray,
    p: np.ndarray,
    thresholds: np.ndarray,
    reads: np.ndarray | None = None,
    unread_as: int = 1,
) -> dict[str, list[float]]:
    """Net benefit of the model (treat when p >= pt), treat-all, treat-none and the reads."""
    y, p = np.asarray(y, bool), np.asarray(p, float)
    curves: dict[str, list[float]] = {
        "threshold": [float(t) for t in thresholds],
        "model": [net_benefit(y, p >= t, t) for t in thresholds],
        "treat_all": [net_benefit(y, np.ones_like(y), t) for t in thresholds],
        "treat_none": [0.0 for _ in thresholds],
    }
    if reads is not None:
        reads = np.asarray(reads, float)
        treat = np.where(np.isnan(reads), unread_as, reads).astype(bool)
        curves["radiologists"] = [net_benefit(y, treat, t) for t in thresholds]
    return curves
