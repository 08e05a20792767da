"""The synthetic cohort's make-up: the seed's structure and tables, the oracle, the reader.

Large-n tests sample covariates and latents only (no images), which takes well under a second.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from rnclassifier.clinical import bed_fractionated
from rnclassifier.errors import InputError
from rnclassifier.modeling.feature_sets import FEATURE_SETS
from rnclassifier.synthetic.presets import EXTERNAL, SEED
from rnclassifier.synthetic.reader import operating_point
from rnclassifier.synthetic.sampler import (
    ORACLE_COLUMNS,
    latent_column,
    oracle_column,
    oracle_log_likelihood_ratios,
    oracle_posteriors,
    population_ceilings,
    sample_lesions,
)


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    return sample_lesions(SEED, n_lesions=10_000, seed=11)


@pytest.fixture(scope="module")
def large_tumours(large: pd.DataFrame) -> pd.DataFrame:
    return large[large["pathology"] == "tumor"]


def outcome(frame: pd.DataFrame) -> np.ndarray:
    return (frame["pathology"] == "tumor").to_numpy()


def test_seed_preset_has_the_seed_structure():
    frame = sample_lesions(SEED, seed=3)
    assert len(frame) == 82
    assert frame["patient_id"].nunique() == 76
    assert (frame["pathology"] == "tumor").sum() == 55
    assert (frame["pathology"] == "necrosis").sum() == 27
    per_patient = frame.groupby("patient_id")["pathology"].agg(lambda s: tuple(sorted(s)))
    shapes = per_patient.value_counts().to_dict()
    assert shapes == {
        ("tumor",): 45,
        ("necrosis",): 25,
        ("tumor", "tumor"): 4,
        ("necrosis", "tumor"): 2,
    }
    assert frame["lesion_id"].is_unique


def test_rows_are_not_ordered_by_class():
    frame = sample_lesions(SEED, seed=3)
    first_half = (frame["pathology"].iloc[:41] == "tumor").mean()
    assert 0.45 < first_half < 0.9  # 55/82 = 0.67 overall


def test_same_seed_same_cohort_other_seed_other_cohort():
    a = sample_lesions(SEED, seed=5)
    pd.testing.assert_frame_equal(a, sample_lesions(SEED, seed=5))
    assert not a["oracle_p_tumor"].equals(sample_lesions(SEED, seed=6)["oracle_p_tumor"])


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (
            "histology",
            {
                "nsclc": 36.4,
                "breast": 23.6,
                "melanoma": 7.3,
                "sclc": 9.1,
                "endometrial": 5.5,
                "renal": 3.7,
                "thyroid": 3.7,
                "other": 10.9,
            },
        ),
        (
            "location",
            {
                "frontal": 32.4,
                "parietal": 21.8,
                "temporal": 14.6,
                "occipital": 12.7,
                "cerebellum": 18.2,
            },
        ),
        ("sex", {"M": 66.6}),
        ("prior_wbrt", {1: 19.5}),
    ],
)
def test_tumour_categories_match_seed_tables(large_tumours, column, expected):
    shares = large_tumours[column].value_counts(normalize=True) * 100
    for category, percent in expected.items():
        assert shares.get(category, 0.0) == pytest.approx(percent, abs=3.0), category


def test_tumour_medians_match_seed_tables(large_tumours):
    bed = bed_fractionated(
        large_tumours["srs_dose_gy"].astype(float), large_tumours["srs_fractions"].astype(float)
    )
    assert np.median(large_tumours["age_years"].astype(float)) == pytest.approx(56.3, rel=0.05)
    assert np.median(large_tumours["ptv_cc"].astype(float)) == pytest.approx(5.8, rel=0.05)
    assert np.median(bed) == pytest.approx(48.0, rel=0.05)
    q1, q3 = np.percentile(bed, [25, 75])
    assert (q1, q3) == (pytest.approx(41.6, rel=0.05), pytest.approx(50.4, rel=0.05))
    ptv_q1, ptv_q3 = np.percentile(large_tumours["ptv_cc"].astype(float), [25, 75])
    assert ptv_q1 == pytest.approx(0.7, rel=0.1)
    assert ptv_q3 == pytest.approx(16.2, rel=0.1)


def test_necrosis_most_often_had_20_gy_single_fraction(large):
    necrosis = large[large["pathology"] == "necrosis"]
    regimens = necrosis[["srs_dose_gy", "srs_fractions"]].astype(float).value_counts(normalize=True)
    assert regimens.index[0] == (20.0, 1.0)
    assert regimens.iloc[0] == pytest.approx(0.407, abs=0.03)
    assert necrosis["steroids"].astype(int).mean() == pytest.approx(14 / 27, abs=0.03)


def test_late_presentation_odds_ratio_is_moderate(large):
    late = large["months_since_srs"].astype(float) > 18
    tumour = outcome(large)
    odds_necrosis = late[~tumour].mean() / (1 - late[~tumour].mean())
    odds_tumour = late[tumour].mean() / (1 - late[tumour].mean())
    assert 2.5 < odds_necrosis / odds_tumour < 5


def test_mixed_lesions_are_labelled_tumour(large):
    mixed = large[large["pathology_detail"] == "mixed"]
    assert len(mixed) > 0
    assert set(mixed["pathology"]) == {"tumor"}
    assert mixed["tumour_fraction"].between(0.15, 0.65).all()
    assert (large.loc[large["pathology"] == "necrosis", "tumour_fraction"] == 0).all()


def test_oracle_auc_in_band():
    frame = sample_lesions(SEED, n_lesions=20_000, seed=12)
    assert 0.90 <= roc_auc_score(outcome(frame), frame["oracle_p_tumor"]) <= 0.95


def test_oracle_is_calibrated(large):
    """A Bayes posterior computed from the generating model must be calibrated."""
    bins = pd.qcut(large["oracle_p_tumor"], 10, duplicates="drop")
    table = pd.DataFrame({"p": large["oracle_p_tumor"], "y": outcome(large)}).groupby(
        bins, observed=True
    )
    gaps = (table["p"].mean() - table["y"].mean()).abs()
    assert gaps.max() < 0.04


@pytest.mark.parametrize(
    ("name", "stratum"),
    [
        ("late presentation", lambda f: f["months_since_srs"].astype(float) > 18),
        ("20 Gy single fraction", lambda f: f["srs_dose_gy"].astype(float) == 20),
        ("steroids", lambda f: f["steroids"].astype(int) == 1),
        ("brainstem or deep", lambda f: f["location"].isin(["brainstem", "deep"])),
        ("dual immunotherapy", lambda f: f["immunotherapy"] == "dual"),
        ("large PTV", lambda f: f["ptv_cc"].astype(float) > 16),
        ("solid enhancement", lambda f: f["latent_enhancement_solidity"] > 1),
        ("fast growth", lambda f: f["latent_growth_steadiness"] < -1),
    ],
)
def test_oracle_is_calibrated_within_strata(oracle_check, name, stratum):
    """Calibration within a covariate's strata fails when the oracle misses that covariate."""
    inside = stratum(oracle_check)
    for part in (inside, ~inside):
        predicted = oracle_check.loc[part, "oracle_p_tumor"].mean()
        observed = outcome(oracle_check[part]).mean()
        standard_error = np.sqrt(observed * (1 - observed) / part.sum())
        assert abs(predicted - observed) < max(4 * standard_error, 0.01), name


@pytest.fixture(scope="module")
def oracle_check() -> pd.DataFrame:
    # Single-lesion structure, so that every lesion's covariates come from its own class.
    preset = replace(SEED, two_tumour_patients=0.0, discordant_patients=0.0)
    return sample_lesions(preset, n_lesions=60_000, seed=21)


def test_reader_operating_point():
    point = operating_point(sample_lesions(SEED, n_lesions=10_000, seed=13))
    assert point["sensitivity"] == pytest.approx(0.97, abs=0.03)
    assert point["specificity"] == pytest.approx(0.19, abs=0.03)
    assert point["unread"] == pytest.approx(0.27, abs=0.03)


def test_reader_leaves_ambiguous_lesions_unread(large):
    unread = large["radiologist_read"].isna()
    distance = (large["oracle_p_tumor_image"] - 0.5).abs()
    assert distance[unread].median() < distance[~unread].median()


def test_reader_scores_agree_with_reads(large):
    score, read = large["radiologist_score"], large["radiologist_read"]
    assert set(score[read == "tumor"]) <= {4, 5}
    assert set(score[read == "necrosis"]) <= {1, 2}
    assert set(score[read.isna()]) == {3}


def test_reader_uses_the_image_latents(large):
    """Reads drawn independently of the latents would flatter the model."""
    called_tumour = (large["radiologist_read"] == "tumor").to_numpy()
    rho = np.corrcoef(called_tumour, large["oracle_p_tumor_image"])[0, 1]
    assert rho > 0.2


def clinical_only_auc(frame: pd.DataFrame) -> float:
    numeric = [
        "age_years",
        "months_since_srs",
        "log_ptv",
        "bed",
        "prior_wbrt",
        "steroids",
        "her2_tdm1",
        "srs_fractions",
    ]
    categorical = ["sex", "histology", "location", "immunotherapy"]
    features = frame[categorical].copy()
    features["bed"] = bed_fractionated(
        frame["srs_dose_gy"].astype(float), frame["srs_fractions"].astype(float)
    )
    features["log_ptv"] = np.log(frame["ptv_cc"].astype(float))
    for column in (
        "age_years",
        "months_since_srs",
        "prior_wbrt",
        "steroids",
        "her2_tdm1",
        "srs_fractions",
    ):
        features[column] = frame[column].astype(float)
    model = make_pipeline(
        ColumnTransformer(
            [
                ("numeric", StandardScaler(), numeric),
                ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    y = outcome(frame)
    p = cross_val_predict(
        model, features, y, groups=frame["patient_id"], cv=cv, method="predict_proba"
    )[:, 1]
    return roc_auc_score(y, p)


def test_clinical_only_model_is_modest():
    frame = sample_lesions(SEED, n_lesions=2_000, seed=14)
    assert 0.60 <= clinical_only_auc(frame) <= 0.72


def test_null_signs_carry_no_label(large):
    null = sample_lesions(SEED, n_lesions=10_000, seed=11, null=True)
    tumour = outcome(null)
    assert roc_auc_score(tumour, null["oracle_p_tumor_image"]) == 0.5  # constant: LLR = 0
    for sign in SEED.image_signs:
        z = null[latent_column(sign.name)]
        assert abs(z[tumour].mean() - z[~tumour].mean()) < 0.06, sign.name
    # Everything else is unchanged: same clinical draws as the non-null cohort.
    pd.testing.assert_series_equal(null["months_since_srs"], large["months_since_srs"])


def test_external_preset_differs_in_case_mix_and_sites():
    frame = sample_lesions(EXTERNAL, n_lesions=4_000, seed=15)
    assert (frame["pathology"] == "necrosis").mean() == pytest.approx(0.45, abs=0.01)
    assert set(frame["site"]) == {s.name for s in EXTERNAL.sites}
    assert (frame["histology"] == "melanoma").mean() > 0.15


def test_site_is_independent_of_class(large):
    table = pd.crosstab(large["site"], large["pathology"], normalize="columns")
    assert (table["tumor"] - table["necrosis"]).abs().max() < 0.03


@pytest.mark.parametrize(("n", "fraction"), [(1, None), (10, 0.0), (10, 1.0)])
def test_bad_arguments(n, fraction):
    with pytest.raises(InputError):
        sample_lesions(SEED, n_lesions=n, rn_fraction=fraction)


# --- matched ceilings: one oracle per feature set ---------------------------------------------


@pytest.fixture(scope="module")
def ceilings() -> dict[str, float]:
    return population_ceilings(SEED, n_lesions=20_000, seed=31)


def test_every_feature_set_has_its_own_oracle(large):
    for feature_set in FEATURE_SETS:
        assert oracle_column(feature_set) == f"oracle_p_tumor_{feature_set}"
        assert large[oracle_column(feature_set)].between(0, 1).all()
    assert oracle_column("all") == "oracle_p_tumor"


def test_matched_ceilings_are_ordered_by_what_each_set_sees(ceilings):
    c = {k.removeprefix("oracle_p_tumor").lstrip("_") or "full": v for k, v in ceilings.items()}
    assert c["clinical"] < c["clinical+size"] < c["combined+delta"]
    assert c["radiomics"] < c["combined"] < c["combined+delta"] < c["full"]
    assert c["image"] < c["full"]
    # The seed-like preset's difficulty: a full oracle near 0.90-0.95, clinical facts modest.
    assert 0.90 <= c["full"] <= 0.95
    assert 0.60 <= c["clinical"] <= 0.72


def test_clinical_only_oracle_with_every_covariate_meets_the_presets_target():
    """Immunotherapy and HER2 included (no feature set holds them): still 0.60-0.72."""
    frame = sample_lesions(SEED, n_lesions=20_000, seed=32)
    clinical, _ = oracle_log_likelihood_ratios(frame, SEED)
    assert 0.60 <= roc_auc_score(outcome(frame), clinical) <= 0.72


@pytest.mark.parametrize(
    "column",
    ["oracle_p_tumor_clinical", "oracle_p_tumor_clinical+size", "oracle_p_tumor_combined"],
)
def test_matched_oracles_are_calibrated(oracle_check, column):
    """A posterior that marginalises what its set cannot see (immunotherapy, HER2, unseen signs
    inside the mixed lesions' integral) is still a Bayes posterior: calibrated."""
    bins = pd.qcut(oracle_check[column], 10, duplicates="drop")
    table = pd.DataFrame({"p": oracle_check[column], "y": outcome(oracle_check)}).groupby(
        bins, observed=True
    )
    gaps = (table["p"].mean() - table["y"].mean()).abs()
    assert gaps.max() < 0.03, column


def test_combined_oracle_ignores_growth_and_unheld_covariates(large):
    """What `combined` cannot see (no prior scan; immunotherapy, HER2) cannot move its oracle."""
    changed = large.copy()
    changed["latent_growth_steadiness"] = -changed["latent_growth_steadiness"]
    changed["immunotherapy"] = "dual"
    changed["her2_tdm1"] = 1 - changed["her2_tdm1"].astype(int)
    before = oracle_posteriors(large, SEED, SEED.rn_fraction)
    after = oracle_posteriors(changed, SEED, SEED.rn_fraction)
    for column in ("oracle_p_tumor_combined", "oracle_p_tumor_radiomics"):
        np.testing.assert_array_equal(before[column], after[column])
    assert not np.array_equal(before["oracle_p_tumor"], after["oracle_p_tumor"])


def test_population_ceilings_are_quick():
    import time

    start = time.perf_counter()
    values = population_ceilings(SEED, n_lesions=20_000, seed=33)
    assert set(values) == set(ORACLE_COLUMNS)
    assert time.perf_counter() - start < 20


# --- the external preset's biology shift ------------------------------------------------------


def test_external_shift_lowers_every_image_ceiling(ceilings):
    shifted = population_ceilings(EXTERNAL, n_lesions=20_000, seed=34)
    unshifted = population_ceilings(EXTERNAL.with_shift(0.0), n_lesions=20_000, seed=34)
    assert EXTERNAL.shift == 1.0
    for column in ("oracle_p_tumor_radiomics", "oracle_p_tumor_combined", "oracle_p_tumor"):
        assert unshifted[column] == pytest.approx(ceilings[column], abs=0.015), column
        assert 0.05 <= unshifted[column] - shifted[column] <= 0.15, column
    # Clinical biology is not shifted.
    assert shifted["oracle_p_tumor_clinical"] == pytest.approx(
        unshifted["oracle_p_tumor_clinical"], abs=0.015
    )


def test_shift_scales_the_signs():
    half = SEED.with_shift(0.5)
    for base, sign in zip(SEED.signs, half.signs, strict=True):
        assert sign.d == pytest.approx(base.d * (1 - 0.5 * base.shift_weakening))
        assert sign.offset == pytest.approx(0.5 * base.shift_offset)
        assert base.shift_reason
    assert SEED.with_shift(0.0).signs == SEED.signs
    with pytest.raises(ValueError, match="shift"):
        SEED.with_shift(1.5)


def test_shifted_latents_follow_the_shifted_signs():
    frame = sample_lesions(EXTERNAL, n_lesions=20_000, seed=35, rn_fraction=0.5)
    pure = frame[frame["pathology_detail"] != "mixed"]
    tumour = outcome(pure)
    for sign in EXTERNAL.signs:
        z = pure[latent_column(sign.name)]
        assert z[tumour].mean() - z[~tumour].mean() == pytest.approx(sign.d, abs=0.06)
        assert (z[tumour].mean() + z[~tumour].mean()) / 2 == pytest.approx(sign.offset, abs=0.04)
