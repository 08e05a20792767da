"""Calibration: intercept (calibration-in-the-large), slope, Brier score, and a calibration curve
(binned and LOWESS-smoothed). Van Calster et al. 2019 (BMC Med 17:230) for the definitions."""

from __future__ import annotations

import math

import numpy as np
import statsmodels.api as sm
from scipy.special import logit
from statsmodels.nonparametric.smoothers_lowess import lowess

EPSILON = 1e-6


def calibration_summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Intercept with the slope fixed at 1 (logit(p) as offset), slope, and Brier score."""
    y = np.asarray(y, float)
    lp = logit(np.clip(np.asarray(p, float), EPSILON, 1 - EPSILON))
    intercept = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit()
    if np.ptp(lp) > 1e-9:
        fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
        slope, slope_ci = float(fit.params[1]), [float(v) for v in fit.conf_int()[1]]
    else:  # one probability for every lesion: no slope to estimate
        slope, slope_ci = math.nan, [math.nan, math.nan]
    return {
        "intercept": float(intercept.params[0]),
        "intercept_ci_wald_lesion_level": [float(v) for v in intercept.conf_int()[0]],
        "slope": slope,
        "slope_ci_wald_lesion_level": slope_ci,
        "brier": float(np.mean((np.asarray(p, float) - y) ** 2)),
        "mean_predicted": float(np.mean(p)),
        "observed_rate": float(np.mean(y)),
    }


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Observed rate per quantile bin of the prediction, and a LOWESS curve."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if np.ptp(p) <= 1e-12:  # one probability for every lesion: one bin, no curve
        return {
            "bin_predicted": [float(p[0])],
            "bin_observed": [float(y.mean())],
            "bin_count": [len(y)],
            "smooth_predicted": [],
            "smooth_observed": [],
        }
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    binned_p, binned_y, counts = [], [], []
    for k in range(len(edges) - 1):
        members = index == k
        if members.any():
            binned_p.append(float(p[members].mean()))
            binned_y.append(float(y[members].mean()))
            counts.append(int(members.sum()))
    smooth = lowess(y, p, frac=2 / 3, it=0, return_sorted=True)
    return {
        "bin_predicted": binned_p,
        "bin_observed": binned_y,
        "bin_count": counts,
        "smooth_predicted": smooth[:, 0].tolist(),
        "smooth_observed": smooth[:, 1].tolist(),
    }
