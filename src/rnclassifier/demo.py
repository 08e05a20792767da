"""The end-to-end demo on a SYNTHETIC cohort: every stage that exists, in order.

Stages are added here as they are built; each one is the same function the CLI calls.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rnclassifier.config import load_extraction_config

logger = logging.getLogger(__name__)

#: The shipped configs, found relative to the source tree (set-up installs it editable).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def run_demo(out: Path, *, force: bool = False) -> list[str]:
    """Run the demo and return one line per stage for the user."""
    lines = []
    for name in ("extraction.yaml", "extraction-fast.yaml"):
        config = load_extraction_config(CONFIG_DIR / name)
        lines.append(
            f"config {name}: valid (sequences {', '.join(config.settings.sequences)}; "
            f"fingerprint {config.fingerprint()[:12]})"
        )
    lines.append(
        "not built yet: synth (#3), extract (#4), evaluate (#5), train (#6), score (#7), "
        "validate (#8)"
    )
    return lines
