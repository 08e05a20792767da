"""Feature sets, so that a report shows what radiomics adds over clinical facts and size.

Chosen from the feature table's column names (`features.naming`): nothing learned, so the same
sets in every fold. A table from another tool whose columns follow no rnclassifier naming is one
set, `all`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rnclassifier.features.naming import parse_feature_column

#: Covariates most users have at the scored MRI (issue #6), plus the BED derived from them.
BASIC_CLINICAL_PREFIXES = (
    "age_years",
    "sex_",
    "histology_",
    "location_",
    "prior_wbrt",
    "srs_dose_gy",
    "srs_fractions",
    "months_since_srs",
    "ptv_cc",
    "steroids",
    "bed_ab",
)
SIZE_AND_GROWTH = (
    "t1c__lesion__original_shape_MeshVolume",
    "delta__lesion__log_volume_growth_per_month",
)
#: The order of the report; the default primary is `combined` (current scan + basic covariates).
FEATURE_SETS = ("clinical", "clinical+size", "radiomics", "combined", "combined+delta")
DEFAULT_PRIMARY_SET = "combined"


def feature_sets(columns: Sequence[str]) -> dict[str, list[str]]:
    """Each non-empty feature set's columns, in table order."""
    columns = list(columns)
    named = [(c, parse_feature_column(c)) for c in columns]
    if not any(parsed for _, parsed in named):
        return {"all": columns}
    clinical = [
        c
        for c, parsed in named
        if parsed is None and c.startswith(BASIC_CLINICAL_PREFIXES) and c not in SIZE_AND_GROWTH
    ]
    radiomics = [c for c, parsed in named if parsed is not None and not parsed.delta]
    delta = [c for c, parsed in named if parsed is not None and parsed.delta]
    size = [c for c in SIZE_AND_GROWTH if c in columns]
    sets = {
        "clinical": clinical,
        "clinical+size": clinical + size,
        "radiomics": radiomics,
        "combined": clinical + radiomics,
        "combined+delta": clinical + radiomics + delta,
    }
    return {name: cols for name, cols in sets.items() if cols}
