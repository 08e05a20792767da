"""Clinical covariates known at the scored MRI, and the biologically effective dose (BED).

Only facts known on the date of the scored MRI may enter a model. The second course
(re-irradiation dose, BED2, brachytherapy) was given only to tumours, so it would leak the label:
`bed_permanent_implant` exists to describe such courses in tables, never as a predictor.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rnclassifier.errors import InputError

#: Tumour / early-responding tissue; the default for `bed_ab10_gy`.
ALPHA_BETA_TUMOUR_GY = 10.0
#: Late-responding normal tissue (brain), the "normal-tissue view" of the same course.
ALPHA_BETA_NORMAL_BRAIN_GY = 2.0

#: Cs-131 physical half-life, 9.7 days (as used for GammaTile / Cs-131 brachytherapy BED).
CS131_HALF_LIFE_DAYS = 9.7
#: Sublethal-damage repair half-time, 0.5 h (the seed study's re-irradiation BED convention).
REPAIR_HALF_TIME_HOURS = 0.5


def bed_fractionated(
    total_dose_gy: float | np.ndarray | pd.Series,
    fractions: float | np.ndarray | pd.Series,
    alpha_beta_gy: float = ALPHA_BETA_TUMOUR_GY,
) -> float | np.ndarray | pd.Series:
    """BED = D·(1 + d/(α/β)) with d = D/n: the linear-quadratic model for external beams.

    Known answers at α/β = 10: 20 Gy × 1 → 60, 18 × 1 → 50.4, 27 Gy / 3 → 51.3, 30 Gy / 5 → 48.
    """
    if alpha_beta_gy <= 0:
        raise ValueError(f"alpha/beta must be positive, got {alpha_beta_gy}")
    dose_per_fraction = total_dose_gy / fractions
    return total_dose_gy * (1.0 + dose_per_fraction / alpha_beta_gy)


def bed_permanent_implant(
    total_dose_gy: float,
    alpha_beta_gy: float = ALPHA_BETA_TUMOUR_GY,
    half_life_days: float = CS131_HALF_LIFE_DAYS,
    repair_half_time_hours: float = REPAIR_HALF_TIME_HOURS,
) -> float:
    """BED of a permanent implant: D·(1 + (λ/(λ+μ))·D/(α/β)), λ = ln2/T½, μ = ln2/T_rep.

    λ and μ are both taken in h⁻¹: the half-life is converted from days to hours here, which is
    the step that goes wrong when units are mixed. Cs-131: 60 Gy → 60.8, 65 Gy → 65.9.
    For describing second courses only; never a predictor (see the module docstring).
    """
    if half_life_days <= 0 or repair_half_time_hours <= 0 or alpha_beta_gy <= 0:
        raise ValueError("half-life, repair half-time and alpha/beta must be positive")
    decay_per_hour = math.log(2) / (half_life_days * 24.0)
    repair_per_hour = math.log(2) / repair_half_time_hours
    relative = decay_per_hour / (decay_per_hour + repair_per_hour)
    return total_dose_gy * (1.0 + relative * total_dose_gy / alpha_beta_gy)


def bed_column_name(alpha_beta_gy: float) -> str:
    """`bed_ab10_gy` for α/β = 10; `bed_ab2_gy` for 2; `bed_ab3p5_gy` for 3.5."""
    return f"bed_ab{alpha_beta_gy:g}_gy".replace(".", "p")


def first_course_bed(
    lesions: pd.DataFrame,
    alpha_betas: tuple[float, ...] = (ALPHA_BETA_TUMOUR_GY,),
) -> pd.DataFrame:
    """The first course's BED per lesion, one column per α/β; missing where dose is missing."""
    if "srs_dose_gy" not in lesions or "srs_fractions" not in lesions:
        missing = [c for c in ("srs_dose_gy", "srs_fractions") if c not in lesions]
        raise InputError(f"first-course BED needs column(s) {', '.join(missing)}")
    dose = pd.to_numeric(lesions["srs_dose_gy"]).astype("float64")
    fractions = pd.to_numeric(lesions["srs_fractions"]).astype("float64")
    return pd.DataFrame(
        {bed_column_name(ab): bed_fractionated(dose, fractions, ab) for ab in alpha_betas},
        index=lesions.index,
    )
