"""The service's scoring processes: each loads the bundle once and keeps it warm.

Scoring runs in worker processes, not threads: pyradiomics and the model hold the GIL for
most of a case, and a bundle with ComBat sets the pipeline's sites per call, which threads
sharing one bundle would race on. Requests beyond the workers wait in the pool's queue.
A worker that dies (out of memory, a crash in C code) fails only its own request; the pool is
replaced and the service goes on.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnclassifier.errors import InputError
from rnclassifier.scoring.case import CaseInputs

#: The bundle of this worker process, loaded by `_load` when the process starts.
_BUNDLE: Any = None


@dataclass
class Answer:
    """What a worker sends back: the result (as `score --out` writes it), the planes its case
    report shows (rendered only when the report is asked for), the DICOM results (file name ->
    bytes), or the problems that refused the case."""

    result: dict[str, Any] | None = None
    planes: dict[str, Any] | None = None
    dicom: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _load(bundle_dir: str) -> None:
    """Worker start-up: the bundle and every module a case needs, so the first request is as
    fast as the others."""
    global _BUNDLE
    import rnclassifier.explain
    import rnclassifier.features.extract
    import rnclassifier.report.case  # noqa: F401
    from rnclassifier.bundle import load_bundle

    _BUNDLE = load_bundle(bundle_dir)


def _ready() -> int:
    return os.getpid()


def _render(result: dict[str, Any], planes: dict[str, Any]) -> bytes:
    from rnclassifier.report.case import render_case_html

    return render_case_html(result, planes).encode("utf-8")


def _score(
    case: CaseInputs,
    prevalence: float | None,
    allow_imputation: bool,
    dicom_folder: str | None,
) -> Answer:
    """One case, in a worker: exactly what `rnclassifier score --out --report` computes."""
    from rnclassifier.report.case import case_planes
    from rnclassifier.scoring import score_case

    try:
        if dicom_folder is not None:
            from rnclassifier.scoring.dicom_results import check_dicom_out

            check_dicom_out(case)
        result = score_case(_BUNDLE, case, prevalence=prevalence, allow_imputation=allow_imputation)
        dicom: dict[str, bytes] = {}
        if dicom_folder is not None:
            from rnclassifier.scoring.dicom_results import write_dicom_results

            for path in write_dicom_results(result, case, Path(dicom_folder)):
                dicom[path.name] = path.read_bytes()
        return Answer(result=result, planes=case_planes(case), dicom=dicom)
    except InputError as error:
        return Answer(problems=[str(p) for p in error.details])


class ScoringPool:
    """`workers` processes, each with the bundle loaded; `score` waits for a free one."""

    def __init__(self, bundle_dir: Path, workers: int) -> None:
        self.bundle_dir = bundle_dir
        self.workers = workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: the service's own process runs an event loop and threads, which fork copies
        # in whatever state they are in.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load,
            initargs=(str(self.bundle_dir),),
        )

    def warm(self) -> None:
        """Start every worker now (the pool starts them lazily), so that start-up, not the
        first requests, pays for loading the bundle."""
        futures = [self._pool.submit(_ready) for _ in range(self.workers * 2)]
        for future in futures:
            future.result()

    async def score(
        self,
        case: CaseInputs,
        *,
        prevalence: float | None,
        allow_imputation: bool,
        dicom_folder: Path | None,
    ) -> Answer:
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            return await loop.run_in_executor(
                pool,
                _score,
                case,
                prevalence,
                allow_imputation,
                None if dicom_folder is None else str(dicom_folder),
            )
        except BrokenProcessPool:
            if self._pool is pool:  # the first request to see it replaces the pool
                self._pool = self._new_pool()
            raise

    async def render_report(self, result: dict[str, Any], planes: dict[str, Any]) -> bytes:
        """The case report's HTML, rendered in a worker (its figures take a second or two)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, _render, result, planes)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
