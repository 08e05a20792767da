"""Feature sets, so that a report shows what radiomics adds over clinical facts and size.

Chosen from the feature table's column kinds (`rnclassifier.columns`): nothing learned, so the
same sets in every fold. A table from another tool whose columns follow no rnclassifier naming
is one set, `all`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rnclassifier.columns import (
    BASIC_COVARIATES,
    GROWTH_COLUMN,
    VOLUME_COLUMN,
    ColumnKind,
    column_kind,
    covariates_of,
)
from rnclassifier.spec import DEFAULT_PRIMARY_SET, FEATURE_SETS, FOREIGN_TABLE_SET

__all__ = ["DEFAULT_PRIMARY_SET", "FEATURE_SETS", "FOREIGN_TABLE_SET", "feature_sets"]

SIZE_AND_GROWTH = (VOLUME_COLUMN, GROWTH_COLUMN)


def feature_sets(columns: Sequence[str]) -> dict[str, list[str]]:
    """Each non-empty feature set's columns, in table order."""
    columns = list(columns)
    kinds = [(c, column_kind(c)) for c in columns]
    if not any(kind in (ColumnKind.RADIOMICS, ColumnKind.DELTA) for _, kind in kinds):
        return {FOREIGN_TABLE_SET: columns}
    clinical = [
        c
        for c, kind in kinds
        if kind is ColumnKind.CLINICAL and set(covariates_of(c)) <= set(BASIC_COVARIATES)
    ]
    radiomics = [c for c, kind in kinds if kind is ColumnKind.RADIOMICS]
    delta = [c for c, kind in kinds if kind is ColumnKind.DELTA]
    size = [c for c in SIZE_AND_GROWTH if c in columns]
    sets = {
        "clinical": clinical,
        "clinical+size": clinical + size,
        "radiomics": radiomics,
        "combined": clinical + radiomics,
        "combined+delta": clinical + radiomics + delta,
    }
    return {name: cols for name, cols in sets.items() if cols}
