"""The end-to-end demo on a SYNTHETIC cohort: every stage that exists, in order.

Stages are added here as they are built; each is the same function the CLI calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from rnclassifier.cohort import load_cohort
from rnclassifier.config import LIGHT_EXTRACTION_CONFIG, load_extraction_config
from rnclassifier.errors import InputError
from rnclassifier.features.api import run_extraction
from rnclassifier.synthetic import write_synthetic_cohort
from rnclassifier.synthetic.write import SETTINGS_FILE, synthesis_settings

logger = logging.getLogger(__name__)

#: The seed study's size.
DEMO_LESIONS = 82


def run_demo(
    out: Path, *, force: bool = False, jobs: int | None = None, progress: bool = False
) -> Iterator[str]:
    """Run the demo into the folder `out`, yielding one line per stage as it finishes."""
    config = load_extraction_config(LIGHT_EXTRACTION_CONFIG)
    yield f"config: {config.source.name} valid (fingerprint {config.fingerprint()[:12]})"

    cohort_dir = out / "cohort"
    if not force and _is_demo_cohort(cohort_dir):
        yield f"synth: reusing the SYNTHETIC cohort in {cohort_dir} (--force remakes it)"
    elif cohort_dir.exists() and not force:
        raise InputError(
            f"{cohort_dir}: exists and is not this version's demo cohort; choose another --out "
            "or pass --force to replace it"
        )
    else:
        summary = write_synthetic_cohort(
            cohort_dir, preset="seed", n_lesions=DEMO_LESIONS, seed=0, force=True, jobs=jobs
        )
        yield (
            f"synth: SYNTHETIC seed-like cohort in {summary.out}: {summary.n_lesions} lesions of"
            f" {summary.n_patients} patients ({summary.n_tumour} tumour, {summary.n_necrosis} "
            "necrosis)"
        )
    cohort = load_cohort(cohort_dir / "cohort.csv", require_pathology=True)
    yield f"check: manifest valid; sequences {', '.join(cohort.sequences)}; prior scans present"
    extracted = run_extraction(
        cohort_dir / "cohort.csv",
        out / "features.parquet",
        params=LIGHT_EXTRACTION_CONFIG,
        jobs=jobs or 2,
        cache_dir=out / "feature-cache",
        progress=progress,
    )
    yield f"extract: {extracted}"
    yield (
        "not built yet: train (#6), score (#7), validate (#8); the demo will run evaluate "
        "(#5) on the out-of-fold predictions that train writes"
    )


def _is_demo_cohort(folder: Path) -> bool:
    """A complete cohort from an earlier demo run (folders appear only when complete)."""
    settings = folder / SETTINGS_FILE
    if not settings.is_file():
        return False
    expected = synthesis_settings("seed", DEMO_LESIONS, 0, None, False)
    return json.loads(settings.read_text(encoding="utf-8")) == expected
