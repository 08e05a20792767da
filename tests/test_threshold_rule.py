"""Calibration and threshold rules, fitted on out-of-fold probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from rnclassifier.modeling.threshold import Calibrator, ThresholdRule, choose_threshold
from rnclassifier.stats.calibration import calibration_summary


def test_sensitivity_rule_picks_the_kth_smallest_tumour_probability():
    tumour = np.linspace(0.1, 1.0, 10)
    necrosis = np.array([0.05, 0.3, 0.6])
    p = np.r_[tumour, necrosis]
    y = np.r_[np.ones(10), np.zeros(3)]
    # k = floor((1 - s)(n + 1)): s = 0.9 -> k = 1; s = 0.8 -> k = 2; s = 0.95 -> k = 0 (all).
    assert choose_threshold(p, y, ThresholdRule("sensitivity", 0.9)) == pytest.approx(0.1)
    assert choose_threshold(p, y, ThresholdRule("sensitivity", 0.8)) == pytest.approx(0.2)
    assert choose_threshold(p, y, ThresholdRule("sensitivity", 0.95)) == 0.0


def test_sensitivity_rule_reaches_its_target_on_new_lesions():
    rng = np.random.default_rng(3)
    train_y = rng.random(400) < 0.67
    train_p = np.clip(0.35 * train_y + rng.normal(0.4, 0.2, 400), 0, 1)
    threshold = choose_threshold(train_p, train_y, ThresholdRule("sensitivity", 0.9))
    test_y = rng.random(20_000) < 0.67
    test_p = np.clip(0.35 * test_y + rng.normal(0.4, 0.2, 20_000), 0, 1)
    assert (test_p[test_y] >= threshold).mean() == pytest.approx(0.9, abs=0.03)


def test_youden_rule_on_separable_scores():
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    assert choose_threshold(p, y, ThresholdRule("youden")) == pytest.approx(0.7)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrator_repairs_overconfident_probabilities(method):
    rng = np.random.default_rng(4)
    truth = rng.uniform(0.05, 0.95, 40_000)
    y = rng.random(40_000) < truth
    overconfident = 1 / (1 + np.exp(-2 * np.log(truth / (1 - truth))))
    calibrator = Calibrator(method).fit(overconfident[:20_000], y[:20_000])
    repaired = calibrator.transform(overconfident[20_000:])
    assert calibration_summary(y[20_000:], overconfident[20_000:])["slope"] < 0.6
    assert calibration_summary(y[20_000:], repaired)["slope"] == pytest.approx(1.0, abs=0.1)


def test_bad_rules():
    with pytest.raises(ValueError, match="unknown threshold rule"):
        ThresholdRule("f1")
    with pytest.raises(ValueError, match="between 0 and 1"):
        ThresholdRule("sensitivity", 1.0)
    with pytest.raises(ValueError, match="unknown calibration"):
        Calibrator("beta")


def test_platt_never_inverts_a_model():
    rng = np.random.default_rng(5)
    y = rng.random(500) < 0.6
    backwards = np.clip(0.7 - 0.3 * y + rng.normal(0, 0.1, 500), 0.01, 0.99)
    calibrated = Calibrator("platt").fit(backwards, y).transform(np.array([0.2, 0.5, 0.8]))
    assert np.allclose(calibrated, y.mean())
