"""The one place that knows a feature table's columns: their names, their kinds, the clinical
facts behind them, readable labels, and the reserved columns that are never predictors.

Radiomics columns are `<sequence>__<region>__<pyradiomics feature name>` (e.g.
`t1c__lesion__wavelet-LLH_glcm_Contrast`); their relative change since the prior scan prefixes
`delta__`; the lesion's growth between the scans is `GROWTH_COLUMN`; clinical columns keep
their manifest names (`age_years`, `prior_wbrt`), one-hot columns add the category
(`histology_breast`), and the first course's BED is `bed_ab<α/β>_gy`. Any other column (a
table from another tool) is of kind OTHER. Every module asks here instead of reading names.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

import numpy as np
import pandas as pd

from rnclassifier.clinical import first_course_bed
from rnclassifier.cohort import BINARY, CLINICAL_COLUMNS, COLUMNS, Kind

SEPARATOR = "__"
DELTA_PREFIX = "delta"
#: Log-volume growth per month between the prior and the scored scan: an image measurement,
#: but no pyradiomics feature (neither clinical in Table 1 nor radiomics to harmonise).
GROWTH_COLUMN = "delta__lesion__log_volume_growth_per_month"
#: The lesion's volume on the scored scan: with GROWTH_COLUMN, the `clinical+size` set's size.
VOLUME_COLUMN = "t1c__lesion__original_shape_MeshVolume"
BED_PREFIX = "bed_ab"
#: The first course's dose and fractions: every BED column comes from both.
BED_COVARIATES = ("srs_dose_gy", "srs_fractions")

#: Clinical covariates that enter the table as numbers as they are (numbers and 0/1 flags) ...
NUMERIC_CLINICAL = tuple(
    c
    for c in CLINICAL_COLUMNS
    if COLUMNS[c].kind in (Kind.NUMBER, Kind.INTEGER) or COLUMNS[c].vocabulary == BINARY
)
#: ... and those one-hot encoded over their fixed vocabularies (fixed in code, nothing fitted).
CATEGORICAL_CLINICAL = tuple(c for c in CLINICAL_COLUMNS if c not in NUMERIC_CLINICAL)
#: Covariates most users have at the scored MRI (issue #6): the `clinical` feature set's.
BASIC_COVARIATES = tuple(c for c in CLINICAL_COLUMNS if c not in ("immunotherapy", "her2_tdm1"))

#: Columns that describe the reference standard, the readers or the scanner: carried beside the
#: features where they are needed (site, reads), never a predictor, also in a feature table
#: written by another tool.
NON_PREDICTOR_COLUMNS: tuple[str, ...] = (
    "site",
    "radiologist_read",
    "radiologist_score",
    "pathology_detail",
    "reference_standard",
    "days_scan_to_surgery",
)
#: The non-predictor columns extraction carries into the feature table.
CARRIED_COLUMNS: tuple[str, ...] = ("site", "radiologist_read", "radiologist_score")


class ColumnKind(Enum):
    RADIOMICS = "radiomics"  # a pyradiomics feature of the scored scan
    DELTA = "delta"  # its relative change since the prior scan
    GROWTH = "growth"  # log-volume growth per month between the scans
    CLINICAL = "clinical"  # a covariate known at the scored MRI, or its BED / one-hot column
    OTHER = "other"  # none of rnclassifier's names (e.g. a table from another tool)


class FeatureName(NamedTuple):
    sequence: str
    region: str
    radiomics: str  # pyradiomics' own key, e.g. "original_shape_MeshVolume"
    delta: bool = False

    @property
    def image_type(self) -> str:
        return self.radiomics.split("_", 1)[0]

    @property
    def family(self) -> str:
        return self.radiomics.split("_")[1]


def feature_column(sequence: str, region: str, radiomics_key: str, *, delta: bool = False) -> str:
    parts = [sequence, region, radiomics_key]
    if delta:
        parts.insert(0, DELTA_PREFIX)
    return SEPARATOR.join(parts)


def parse_feature_column(column: str) -> FeatureName | None:
    """The parts of a radiomics (or delta) column name, or None for any other column."""
    parts = column.split(SEPARATOR)
    delta = parts[0] == DELTA_PREFIX
    if delta:
        parts = parts[1:]
    if len(parts) != 3 or not all(parts):
        return None
    return FeatureName(parts[0], parts[1], parts[2], delta)


def is_radiomics_key(key: str) -> bool:
    """pyradiomics' result keys: features, not `diagnostics_*` entries."""
    return not key.startswith("diagnostics_")


def covariates_of(column: str) -> tuple[str, ...]:
    """The manifest covariates a clinical column comes from (empty for any other column)."""
    if column.startswith(BED_PREFIX):
        return BED_COVARIATES
    if column in NUMERIC_CLINICAL:
        return (column,)
    base = next((c for c in CATEGORICAL_CLINICAL if column.startswith(f"{c}_")), None)
    return (base,) if base is not None else ()


def column_kind(column: str) -> ColumnKind:
    if column == GROWTH_COLUMN:
        return ColumnKind.GROWTH
    parsed = parse_feature_column(column)
    if parsed is not None:
        return ColumnKind.DELTA if parsed.delta else ColumnKind.RADIOMICS
    return ColumnKind.CLINICAL if covariates_of(column) else ColumnKind.OTHER


def columns_of_kind(columns: Iterable[str], *kinds: ColumnKind) -> list[str]:
    """The columns of the given kinds, in their order."""
    return [c for c in columns if column_kind(c) in kinds]


def encode_clinical(lesions: pd.DataFrame, alpha_betas: tuple[float, ...]) -> pd.DataFrame:
    """Numeric clinical columns: BED per α/β, numeric covariates, one-hot vocabularies.

    A missing value stays missing (NaN, across a one-hot group too), to be imputed inside the
    training folds. Nothing here is fitted to the data, so it cannot leak.
    """
    out = pd.DataFrame(index=lesions.index)
    if all(c in lesions for c in BED_COVARIATES):
        out = out.join(first_course_bed(lesions, alpha_betas))
    for column in NUMERIC_CLINICAL:
        if column in lesions:
            out[column] = pd.to_numeric(lesions[column]).astype("float64")
    for column in CATEGORICAL_CLINICAL:
        if column not in lesions:
            continue
        values = lesions[column]
        for category in COLUMNS[column].vocabulary:
            out[f"{column}_{category}"] = np.where(
                values.isna(), np.nan, (values == category).astype(float)
            )
    return out


def readable(column: str) -> str:
    """'flair__lesion__original_glcm_Contrast' -> 'FLAIR, lesion: GLCM Contrast (original)'."""
    parsed = parse_feature_column(column)
    if parsed is None:
        return column.replace("_", " ")
    prefix, _, rest = parsed.radiomics.partition("_")
    family, _, name = rest.partition("_")
    family = family.upper() if family.startswith("gl") or family == "ngtdm" else family
    text = f"{parsed.sequence.upper()}, {parsed.region}: {family} {name} ({prefix})"
    return f"change since prior scan in {text}" if parsed.delta else text
