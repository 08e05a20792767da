"""Statistics against reference values: Hanley & McNeil 1982, Newcombe 1998, hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from rnclassifier.stats.bootstrap import bootstrap_samples, cluster_indices
from rnclassifier.stats.calibration import calibration_curve, calibration_summary
from rnclassifier.stats.decision import decision_curve, net_benefit
from rnclassifier.stats.discrimination import (
    auc,
    auc_interval,
    delong_interval,
    delong_paired,
    paired_auc_bootstrap,
)
from rnclassifier.stats.threshold import (
    calls_at,
    mcnemar_test,
    operating_point,
    proportions,
    wilson,
)


def hanley_mcneil() -> tuple[np.ndarray, np.ndarray]:
    """CT ratings 1-5 of 58 normal and 51 abnormal cases (Hanley & McNeil 1982, Table 1)."""
    normal, abnormal = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    y = np.r_[np.zeros(sum(normal)), np.ones(sum(abnormal))]
    ratings = np.r_[np.repeat(np.arange(1, 6), normal), np.repeat(np.arange(1, 6), abnormal)]
    return y, ratings


def test_delong_on_hanley_mcneil():
    y, ratings = hanley_mcneil()
    interval = delong_interval(y, ratings)
    assert interval.estimate == pytest.approx(0.8932, abs=5e-5)
    se = (interval.high - interval.low) / (2 * 1.959964)
    assert se == pytest.approx(0.0307, abs=5e-5)


def brute_force_delong(y, a, b):
    """DeLong 1988 from its definition: pairwise placement values, O(m·n)."""
    y = np.asarray(y, bool)
    components = []
    for s in (a, b):
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        components.append((psi.mean(axis=1), psi.mean(axis=0), psi.mean()))
    m, n = y.sum(), (~y).sum()
    s10 = np.cov(np.vstack([components[0][0], components[1][0]]))
    s01 = np.cov(np.vstack([components[0][1], components[1][1]]))
    covariance = s10 / m + s01 / n
    return components[0][2] - components[1][2], covariance


def test_paired_delong_matches_the_definition():
    rng = np.random.default_rng(1)
    y = rng.random(120) < 0.6
    a = y + rng.normal(0, 1, 120)
    b = 0.5 * y + rng.normal(0, 1, 120) + 0.3 * a
    result = delong_paired(y, a, b)
    difference, covariance = brute_force_delong(y, a, b)
    se = np.sqrt(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    assert result.difference.estimate == pytest.approx(difference, abs=1e-12)
    assert result.difference.high - result.difference.estimate == pytest.approx(
        1.959964 * se, rel=1e-5
    )
    assert 0 < result.p_value < 1


def test_auc_with_ties_and_missing_class():
    assert auc(np.array([0, 1, 0, 1]), np.array([1, 1, 0, 2])) == pytest.approx(0.875)
    assert np.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_cluster_bootstrap_keeps_patients_whole():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    clusters = cluster_indices(groups)
    assert [list(c) for c in clusters] == [[0, 1], [2], [3, 4, 5]]
    for rows in bootstrap_samples(groups, n_resamples=50, seed=3):
        counts = np.bincount(rows, minlength=6)
        assert counts[0] == counts[1]
        assert counts[3] == counts[4] == counts[5]


def test_bootstrap_interval_is_reproducible_and_covers_estimate():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(60), 2)
    y = np.repeat(rng.random(60) < 0.5, 2)
    score = y + rng.normal(0, 1, 120)
    first = auc_interval(y, score, groups, n_resamples=500, seed=4)
    second = auc_interval(y, score, groups, n_resamples=500, seed=4)
    assert first == second
    assert first.low < first.estimate < first.high
    assert "patient-cluster bootstrap" in first.method


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombe_1998(successes, trials, low, high):
    interval = wilson(successes, trials)
    assert interval.low == pytest.approx(low, abs=1e-4)
    assert interval.high == pytest.approx(high, abs=1e-4)


def test_mcnemar_matches_hand_computation():
    # Agresti's approval ratings: 794 agree-agree, 150 / 86 discordant, 570 both wrong.
    a = np.r_[np.ones(794 + 150), np.zeros(86 + 570)].astype(bool)
    b = np.r_[np.ones(794), np.zeros(150), np.ones(86), np.zeros(570)].astype(bool)
    result = mcnemar_test(a, b)
    assert result["chi2"] == pytest.approx((150 - 86) ** 2 / (150 + 86))
    assert not result["exact"]
    assert result["p_value"] == pytest.approx(3.1e-5, rel=0.05)
    assert (result["a_only"], result["b_only"]) == (150, 86)


def test_mcnemar_is_exact_for_few_discordant_pairs():
    a = np.array([1, 1, 1, 1, 0, 1], bool)
    b = np.array([1, 0, 0, 0, 0, 1], bool)
    result = mcnemar_test(a, b)
    assert result["exact"]
    assert result["chi2"] is None  # statsmodels' exact `statistic` is min(b, c), not a chi2
    assert result["p_value"] == pytest.approx(0.25)  # 3 vs 0 discordant: 2 * 0.5**3


def test_operating_point_counts_and_indeterminate_zone():
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    score = np.array([0.9, 0.6, 0.2, 0.1, 0.7, 0.45, 0.5, 0.55])
    calls = calls_at(score, 0.4, 0.6)
    assert np.isnan(calls).sum() == 3  # 0.45, 0.5, 0.55 fall between the thresholds
    counts = proportions(y, calls)
    assert counts["sensitivity"] == (2, 3)
    assert counts["specificity"] == (1, 2)
    point = operating_point(y, calls, np.arange(8), n_resamples=200)
    assert point.indeterminate == pytest.approx(3 / 8)
    assert point.intervals["sensitivity"].estimate == pytest.approx(2 / 3)


def test_net_benefit_by_hand():
    y = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 1])
    treat = np.array([1, 1, 0, 1, 0, 1, 0, 0, 1, 0], bool)
    # TP = 3, FP = 2, n = 10; at pt = 0.2 the weight is 0.25.
    assert net_benefit(y, treat, 0.2) == pytest.approx(0.3 - 0.2 * 0.25)
    curves = decision_curve(
        y,
        treat.astype(float),
        np.array([0.2, 0.5]),
        reads=np.array([1, 1, np.nan, 1, 0, 1, 1, 0, 0, 1]),
    )
    assert curves["treat_all"][0] == pytest.approx(0.5 - 0.5 * 0.25)
    assert curves["treat_none"] == [0.0, 0.0]
    # Reads, the unread lesion counted as tumour (treated): TP 5, FP 2; weight 1 at pt = 0.5.
    assert curves["radiologists"][1] == pytest.approx(5 / 10 - 2 / 10 * 1.0)


def test_calibration_of_a_calibrated_and_a_miscalibrated_model():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, 20_000)
    y = rng.random(20_000) < p
    calibrated = calibration_summary(y, p)
    assert calibrated["intercept"] == pytest.approx(0.0, abs=0.05)
    assert calibrated["slope"] == pytest.approx(1.0, abs=0.05)
    # Overconfident predictions: logit doubled -> slope 0.5.
    logit = np.log(p / (1 - p))
    overconfident = 1 / (1 + np.exp(-2 * logit))
    assert calibration_summary(y, overconfident)["slope"] == pytest.approx(0.5, abs=0.03)
    brier = calibrated["brier"]
    assert brier == pytest.approx(np.mean((p - y) ** 2))
    curve = calibration_curve(y, p)
    assert np.allclose(curve["bin_predicted"], curve["bin_observed"], atol=0.03)


@pytest.mark.slow
def test_cluster_bootstrap_covers_where_lesion_level_delong_does_not():
    """Patients with 3 correlated lesions each: DeLong (lesions independent) under-covers."""
    from scipy.stats import norm

    rng = np.random.default_rng(11)
    shift, patient_sd, lesion_sd = 1.0, 1.0, 0.5
    true_auc = norm.cdf(shift / np.sqrt(2 * (patient_sd**2 + lesion_sd**2)))
    hits_delong = hits_bootstrap = 0
    simulations = 300
    for _ in range(simulations):
        n_patients = 60
        y = np.repeat(rng.random(n_patients) < 0.5, 3)
        score = (
            shift * y
            + np.repeat(rng.normal(0, patient_sd, n_patients), 3)
            + rng.normal(0, lesion_sd, 3 * n_patients)
        )
        groups = np.repeat(np.arange(n_patients), 3)
        d = delong_interval(y, score)
        b = auc_interval(y, score, groups, n_resamples=1000, seed=int(rng.integers(1 << 30)))
        hits_delong += d.low <= true_auc <= d.high
        hits_bootstrap += b.low <= true_auc <= b.high
    assert hits_delong / simulations < 0.90
    assert 0.93 <= hits_bootstrap / simulations <= 0.97


def test_paired_bootstrap_p_value():
    rng = np.random.default_rng(6)
    groups = np.arange(150)
    y = rng.random(150) < 0.5
    strong = y + rng.normal(0, 0.5, 150)
    weak = y + rng.normal(0, 3, 150)
    result = paired_auc_bootstrap(y, strong, weak, groups, n_resamples=500)
    assert result.auc_a > result.auc_b
    assert result.p_value < 0.01
    assert result.difference.low > 0


def test_calibration_of_a_constant_prediction_has_no_slope_and_one_bin():
    """A model that learned nothing predicts one probability; calibration still reports."""
    from rnclassifier.stats.calibration import calibration_curve, calibration_summary

    y = np.array([0, 1, 1, 0, 1])
    summary = calibration_summary(y, np.full(5, 0.6))
    assert np.isnan(summary["slope"])
    assert summary["intercept"] == pytest.approx(0.0, abs=1e-9)  # 60% predicted, 60% observed
    curve = calibration_curve(y, np.full(5, 0.6))
    assert curve["bin_count"] == [5]
    assert curve["smooth_predicted"] == []
