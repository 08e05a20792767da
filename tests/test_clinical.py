"""BED of the first course (known answers) and the Cs-131 utility (with a units trap)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rnclassifier.clinical import (
    bed_column_name,
    bed_fractionated,
    bed_permanent_implant,
    first_course_bed,
)


@pytest.mark.parametrize(
    ("dose", "fractions", "expected"),
    [
        (20, 1, 60.0),
        (18, 1, 50.4),
        (16, 1, 41.6),
        (27, 3, 51.3),
        (30, 5, 48.0),
        (25, 5, 37.5),
        (24, 3, 43.2),
        (21, 3, 35.7),  # the seed's re-irradiation BED10 IQR is 35.7-43.2
    ],
)
def test_bed_alpha_beta_10_known_answers(dose, fractions, expected):
    assert bed_fractionated(dose, fractions) == pytest.approx(expected, abs=1e-9)


def test_bed_alpha_beta_2_normal_tissue_view():
    assert bed_fractionated(20, 1, alpha_beta_gy=2) == pytest.approx(220.0)
    assert bed_fractionated(30, 5, alpha_beta_gy=2) == pytest.approx(120.0)


@pytest.mark.parametrize(("dose", "expected"), [(60, 60.8), (65, 65.9)])
def test_cs131_bed_matches_seed(dose, expected):
    assert round(bed_permanent_implant(dose), 1) == expected


def test_cs131_units_are_hours_on_both_rates():
    # An independent computation with both rates per minute must agree.
    decay_per_minute = math.log(2) / (9.7 * 24 * 60)
    repair_per_minute = math.log(2) / 30
    relative = decay_per_minute / (decay_per_minute + repair_per_minute)
    assert bed_permanent_implant(60) == pytest.approx(60 * (1 + relative * 60 / 10), rel=1e-12)
    # The common slip, a half-life in days used as if in hours, is what 9.7/24 "days" gives:
    # about 77.6 Gy for 60 Gy, far outside the seed's 61-66.
    assert bed_permanent_implant(60, half_life_days=9.7 / 24) == pytest.approx(77.6, abs=0.1)
    assert bed_permanent_implant(60) == pytest.approx(60.77, abs=0.01)


def test_cs131_bed_approaches_physical_dose_for_slow_decay():
    assert bed_permanent_implant(60, half_life_days=1e9) == pytest.approx(60.0, abs=1e-6)


def test_bed_rejects_bad_alpha_beta():
    with pytest.raises(ValueError, match="alpha/beta"):
        bed_fractionated(20, 1, alpha_beta_gy=0)


def test_first_course_bed_columns_and_missing_values():
    lesions = pd.DataFrame(
        {"srs_dose_gy": [20.0, 27.0, np.nan], "srs_fractions": pd.array([1, 3, None], "Int64")}
    )
    bed = first_course_bed(lesions, alpha_betas=(10.0, 2.0))
    assert list(bed.columns) == ["bed_ab10_gy", "bed_ab2_gy"]
    assert bed["bed_ab10_gy"].iloc[:2].tolist() == pytest.approx([60.0, 51.3])
    assert bed["bed_ab2_gy"].iloc[:2].tolist() == pytest.approx([220.0, 148.5])
    assert bed.iloc[2].isna().all()


def test_bed_column_names():
    assert bed_column_name(10) == "bed_ab10_gy"
    assert bed_column_name(2.0) == "bed_ab2_gy"
    assert bed_column_name(3.5) == "bed_ab3p5_gy"
