"""Calibration and threshold rules, fitted on out-of-fold probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from rnclassifier.modeling.threshold import (
    Calibrator,
    ThresholdRule,
    choose_threshold,
    indeterminate_zone,
    radiologist_matched,
    threshold_for_sensitivity,
    threshold_for_specificity,
)
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


def test_specificity_threshold_and_zone_known_answers():
    necrosis = np.linspace(0.1, 0.9, 9)
    tumour = np.linspace(0.5, 1.0, 6)
    p, y = np.r_[necrosis, tumour], np.r_[np.zeros(9), np.ones(6)]
    # j = ceil(p (n + 1)): 0.8 -> j = 8 (0.8); 0.95 -> j = 10 > 9: just above every necrosis.
    assert threshold_for_specificity(p, y, 0.8) == pytest.approx(0.8)
    assert threshold_for_specificity(p, y, 0.95) == np.nextafter(0.9, 1)
    assert threshold_for_sensitivity(p, y, 1.0) == 0.0  # k = 0: every tumour at or above
    # Zone: low = the rule's threshold (s = 0.85 -> k = 1: 0.5), high at 0.85 specificity.
    low, high = indeterminate_zone(p, y, ThresholdRule("sensitivity", 0.85))
    assert (low, high) == (pytest.approx(0.5), pytest.approx(0.9))
    assert indeterminate_zone(p, y, ThresholdRule("youden")) == (0.5, 0.5)


def test_radiologist_matched_thresholds_use_the_read_lesions():
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.05, 0.95])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    reads = np.array([0, 0, 1, 0, 1, 1, 0, 1, np.nan, np.nan])  # last two unread
    matched = radiologist_matched(p, y, reads)
    assert matched["sensitivity"]["radiologist_sensitivity"] == 0.75
    assert matched["specificity"]["radiologist_specificity"] == 0.75
    # Read tumours 0.6-0.9, s = 0.75: k = floor(0.25 * 5) = 1 -> 0.6. Read necroses 0.1-0.4,
    # p = 0.75: j = ceil(0.75 * 5) = 4 -> 0.4.
    assert matched["sensitivity"]["threshold"] == pytest.approx(0.6)
    assert matched["specificity"]["threshold"] == pytest.approx(0.4)
    assert radiologist_matched(p, y, None) is None
    assert radiologist_matched(p, y, np.where(y == 1, reads, np.nan)) is None  # one class read


def test_training_fixed_matched_threshold_is_unbiased_on_new_lesions():
    """The issue's simulation: 40 tumours and 20 necroses per training part, AUC 0.80
    (binormal), radiologists' sensitivity 0.97. A threshold fixed on the training part and
    applied to new lesions reports, on average, the specificity it really has (and the
    sensitivity it really reaches); the same threshold chosen on the judged lesions flatters
    the specificity."""
    from scipy.stats import norm

    from rnclassifier.evaluation import _at_matched

    rng = np.random.default_rng(11)
    shift = np.sqrt(2) * norm.ppf(0.80)  # binormal AUC 0.80
    y = np.r_[np.ones(40), np.zeros(20)].astype(int)
    reported, true, reached, true_sens, post_hoc = [], [], [], [], []
    for _ in range(400):
        train = rng.normal(shift * y, 1)
        threshold = threshold_for_sensitivity(train, y, 0.97)
        test = rng.normal(shift * y, 1)
        reported.append((test[y == 0] < threshold).mean())
        reached.append((test[y == 1] >= threshold).mean())
        true.append(norm.cdf(threshold))  # necrosis ~ N(0, 1)
        true_sens.append(norm.sf(threshold - shift))
        post_hoc.append(_at_matched(y, test, sensitivity=0.97))
    assert np.mean(reported) == pytest.approx(np.mean(true), abs=0.02)
    assert np.mean(reached) == pytest.approx(np.mean(true_sens), abs=0.02)
    assert np.mean(true_sens) == pytest.approx(1 - 1 / 41, abs=0.01)  # the rule's promise
    assert np.mean(post_hoc) > np.mean(true) + 0.03  # the in-sample figure flatters


def test_zone_specificity_moves_only_the_upper_end():
    rng = np.random.default_rng(5)
    y = rng.random(300) < 0.6
    p = np.clip(0.3 * y + rng.normal(0.4, 0.15, 300), 0, 1)
    wide = indeterminate_zone(p, y, ThresholdRule("sensitivity", 0.95))
    narrow = indeterminate_zone(p, y, ThresholdRule("sensitivity", 0.95, zone_specificity=0.7))
    assert wide[0] == narrow[0] == choose_threshold(p, y, ThresholdRule("sensitivity", 0.95))
    assert narrow[1] < wide[1]
    assert narrow[1] == threshold_for_specificity(p, y, 0.7)
    with pytest.raises(ValueError, match="indeterminate zone"):
        ThresholdRule("sensitivity", 0.95, zone_specificity=1.0)
