"""Fitting the simulated radiologist's noise and cuts to the published operating point.

Run once, offline; its result is `synthetic.reader.SEED_READER`. Kept apart from the reader so
that the sampler (which reads lesions with the reader) and this fit (which samples lesions)
do not import each other.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from rnclassifier.cohort import POSITIVE_CLASS
from rnclassifier.synthetic.presets import SEED, Preset
from rnclassifier.synthetic.reader import (
    SIGN_WEIGHTS,
    TARGET_SENSITIVITY,
    TARGET_SPECIFICITY,
    TARGET_UNREAD,
    Reader,
)
from rnclassifier.synthetic.sampler import sample_lesions


def calibrate_reader(preset: Preset = SEED, n: int = 400_000, seed: int = 0) -> Reader:
    """Find noise and cuts that give the target operating point on `preset`'s case mix."""
    frame = sample_lesions(preset, n_lesions=n, seed=seed)
    noise = np.random.default_rng(seed).standard_normal(n)
    tumour = (frame["pathology"] == POSITIVE_CLASS).to_numpy()
    base = Reader(SIGN_WEIGHTS, 0.0, 0.0, 0.0)
    signal = base.evidence(frame, preset, np.random.default_rng(0))

    def smooth_fraction(x: np.ndarray, cut: float) -> float:
        return float(np.mean(1 / (1 + np.exp(-(x - cut) / 0.02))))

    def residuals(params: np.ndarray) -> np.ndarray:
        noise_sd, low, gap = params
        high = low + abs(gap)
        e = signal + abs(noise_sd) * noise
        below_t = 1 - smooth_fraction(e[tumour], low)
        above_t = smooth_fraction(e[tumour], high)
        below_n = 1 - smooth_fraction(e[~tumour], low)
        above_n = smooth_fraction(e[~tumour], high)
        unread = 1 - (below_t + above_t) * tumour.mean() - (below_n + above_n) * (~tumour).mean()
        return np.array(
            [
                above_t / (above_t + below_t) - TARGET_SENSITIVITY,
                below_n / (above_n + below_n) - TARGET_SPECIFICITY,
                unread - TARGET_UNREAD,
            ]
        )

    fit = least_squares(residuals, x0=np.array([1.0, -1.5, 0.8]))
    noise_sd, low, gap = fit.x
    return Reader(SIGN_WEIGHTS, float(abs(noise_sd)), float(low), float(low + abs(gap)))
