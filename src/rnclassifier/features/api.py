"""`rnclassifier extract` as one function: manifest and config in, feature table out."""

from __future__ import annotations

import logging
from pathlib import Path

from rnclassifier.cohort import load_cohort
from rnclassifier.columns import NON_PREDICTOR_COLUMNS
from rnclassifier.config import DEFAULT_EXTRACTION_CONFIG, load_extraction_config
from rnclassifier.errors import InputError
from rnclassifier.features.extract import extract_features

logger = logging.getLogger(__name__)


def run_extraction(
    cohort_path: str | Path,
    out: str | Path,
    *,
    params: str | Path | None = None,
    jobs: int = 1,
    perturb: int = 0,
    csv: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    scheduler: str | None = None,
    allow_failures: bool = False,
) -> str:
    """Validate everything first, extract, write atomically; return a one-line summary."""
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise InputError(f"{out}: the feature table must end in .parquet or .csv")
    config = load_extraction_config(params or DEFAULT_EXTRACTION_CONFIG)
    cohort = load_cohort(cohort_path, sequences=() if config.plain else config.settings.sequences)
    features = extract_features(
        cohort,
        config,
        jobs=jobs,
        cache_dir=cache_dir,
        progress=progress,
        perturb=perturb or None,
        scheduler=scheduler,
        allow_failures=allow_failures,
    )
    features.write(out, csv=csv or None)
    n_features = (
        features.table.drop(columns=[c for c in NON_PREDICTOR_COLUMNS if c in features.table])
        .select_dtypes("number")
        .shape[1]
    )
    failed = features.sidecar["failed_rows"]
    return (
        f"{out}: {features.table.shape[0]} lesions x {n_features} features "
        f"({config.source.name}{', plain pyradiomics' if config.plain else ''})"
        + (
            f"; {len(failed)} technical failure(s) kept with NaN features, manifest row(s) "
            f"{', '.join(str(f['manifest_row']) for f in failed)} (see the sidecar)"
            if failed
            else ""
        )
    )
