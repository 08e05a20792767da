"""The column vocabulary: every kind of column named, the covariates behind clinical columns,
and the growth column treated as what it is everywhere (neither a clinical fact of Table 1
nor a scanner intensity for ComBat)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnclassifier.cohort import CLINICAL_COLUMNS
from rnclassifier.columns import (
    GROWTH_COLUMN,
    ColumnKind,
    column_kind,
    columns_of_kind,
    covariates_of,
    encode_clinical,
    feature_column,
    parse_feature_column,
    readable,
)
from rnclassifier.features.restrict import requirements
from rnclassifier.modeling.feature_sets import feature_sets
from rnclassifier.modeling.harmonise import ComBatHarmoniser

EXAMPLES = {
    "t1c__lesion__original_shape_MeshVolume": ColumnKind.RADIOMICS,
    "flair__shell__wavelet-LLH_glcm_Contrast": ColumnKind.RADIOMICS,
    "delta__t1c__lesion__original_firstorder_Mean": ColumnKind.DELTA,
    GROWTH_COLUMN: ColumnKind.GROWTH,
    "age_years": ColumnKind.CLINICAL,
    "bed_ab10_gy": ColumnKind.CLINICAL,
    "bed_ab3p5_gy": ColumnKind.CLINICAL,
    "histology_breast": ColumnKind.CLINICAL,
    "immunotherapy_dual": ColumnKind.CLINICAL,
    "steroids": ColumnKind.CLINICAL,
    "original_glcm_Contrast": ColumnKind.OTHER,  # a pyradiomics batch table's own name
    "kps": ColumnKind.OTHER,
}


@pytest.mark.parametrize(("column", "kind"), EXAMPLES.items())
def test_each_column_has_its_kind(column, kind):
    assert column_kind(column) is kind


def test_names_round_trip():
    name = feature_column("flair", "shell", "log-sigma-2-0-mm-3D_glszm_ZoneEntropy", delta=True)
    assert name == "delta__flair__shell__log-sigma-2-0-mm-3D_glszm_ZoneEntropy"
    parsed = parse_feature_column(name)
    assert parsed is not None
    assert parsed.delta
    assert parsed.family == "glszm"
    assert feature_column(*parsed[:3], delta=parsed.delta) == name
    assert readable("flair__lesion__original_glcm_Contrast") == (
        "FLAIR, lesion: GLCM Contrast (original)"
    )


def test_every_clinical_column_leads_back_to_its_covariates():
    lesions = pd.DataFrame(
        {
            "age_years": [61.5, np.nan],
            "sex": ["f", None],
            "histology": ["breast", "nsclc"],
            "srs_dose_gy": [20.0, 27.0],
            "srs_fractions": [1, 3],
            "steroids": ["1", "0"],
        }
    )
    encoded = encode_clinical(lesions, (10.0, 2.0))
    assert encoded["bed_ab10_gy"].tolist() == pytest.approx([60.0, 51.3])
    assert encoded["bed_ab2_gy"].tolist() == pytest.approx([220.0, 148.5])
    assert np.isnan(encoded.loc[1, ["sex_m", "sex_f"]].astype(float)).all()  # missing stays so
    for column in encoded:
        assert column_kind(column) is ColumnKind.CLINICAL
        assert set(covariates_of(column)) <= set(lesions)
    assert covariates_of("bed_ab10_gy") == ("srs_dose_gy", "srs_fractions")
    assert covariates_of("histology_breast") == ("histology",)
    needed = requirements(encoded.columns).covariates
    assert set(needed) == set(lesions)
    assert all(c in CLINICAL_COLUMNS for c in needed)


def test_growth_is_neither_clinical_nor_harmonised():
    rng = np.random.default_rng(0)
    n = 30
    sites = pd.Series(np.repeat(["A", "B", "C"], 10), index=[f"L{i}" for i in range(n)])
    X = pd.DataFrame(
        {
            "t1c__lesion__original_firstorder_Mean": rng.normal(size=n) + np.repeat([0, 2, 4], 10),
            GROWTH_COLUMN: rng.normal(size=n) + np.repeat([0, 2, 4], 10),
            "age_years": rng.normal(60, 10, size=n),
        },
        index=sites.index,
    )
    harmoniser = ComBatHarmoniser(sites).fit(X)
    assert harmoniser.columns_.tolist() == ["t1c__lesion__original_firstorder_Mean"]
    out = harmoniser.transform(X)
    pd.testing.assert_series_equal(out[GROWTH_COLUMN], X[GROWTH_COLUMN])
    clinical = columns_of_kind(X.columns, ColumnKind.CLINICAL, ColumnKind.OTHER)
    assert clinical == ["age_years"]  # Table 1's covariates
    sets = feature_sets(list(X.columns))
    assert sets["clinical+size"] == ["age_years", GROWTH_COLUMN]
    assert GROWTH_COLUMN not in sets["combined"]


def test_a_table_from_another_tool_is_one_set():
    columns = ["original_firstorder_Mean", "original_glcm_Contrast", "kps"]
    assert feature_sets(columns) == {"all": columns}
