"""The one place that names feature columns: `<sequence>__<region>__<pyradiomics feature name>`.

e.g. `t1c__lesion__wavelet-LLH_glcm_Contrast`; delta features prefix `delta__`; clinical
columns keep their manifest names (`bed_ab10_gy`, `histology_breast`).
"""

from __future__ import annotations

from typing import NamedTuple

SEPARATOR = "__"
DELTA_PREFIX = "delta"


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
    """The parts of a radiomics column name, or None for a clinical or other column."""
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
