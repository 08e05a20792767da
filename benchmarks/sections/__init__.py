"""Issue #10's six benchmarks, issue #16's transportability and issue #19's service, one
module each, each a `run` from a Plan to a Section.

Every measured command is the installed `rnclassifier` or `pyradiomics` CLI run as a child
process (start-up included, memory isolated), built by `benchmarks.common`; in-process timings
say so.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.common import Plan
from benchmarks.report import Section
from benchmarks.sections import (
    dask,
    extraction,
    quality,
    scaling,
    scoring,
    service,
    training,
    transportability,
)

#: Every section in the report's order (`benchmarks.report.ORDER`); the command runs them in
#: dependency order (`benchmarks.cli.RUN_ORDER`).
SECTIONS: dict[str, Callable[[Plan], Section]] = {
    "extraction": extraction.run,
    "scoring": scoring.run,
    "training": training.run,
    "quality": quality.run,
    "scaling": scaling.run,
    "dask": dask.run,
    "transportability": transportability.run,
    "service": service.run,
}
