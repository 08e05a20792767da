"""Section 6: the same cold extraction on a Dask cluster (a LocalCluster here, or the scheduler
given) against local processes: that the scale-out path works, and what it costs on one
machine."""

from __future__ import annotations

import math
import shutil
import time
from typing import Any

from benchmarks.common import Plan, cohort, extract_command, log, plain_params, prefix, workdir
from benchmarks.measure import Measurement, Timing, repeat
from benchmarks.report import Figure, Section

TITLE = "Scale-out: the same extraction on a Dask cluster"


def run(plan: Plan) -> Section:
    """The same cold extraction on a Dask cluster (a LocalCluster here, or the scheduler given)
    against local processes: that the scale-out path works, and what it costs on one machine."""
    import pandas as pd

    lesions = min(plan.dask_lesions or plan.lesions, plan.lesions)
    manifest = cohort(plan, plan.lesions)
    if lesions < plan.lesions:
        manifest = prefix(manifest, lesions)
    work = workdir("dask")
    params = plain_params(work)
    local = extract_command(manifest, params, work / "local.parquet", jobs=plan.jobs, no_cache=True)
    log(f"6. dask: {lesions} lesions")
    baseline = repeat(f"`rnclassifier extract --jobs {plan.jobs}` (baseline)", local, plan.repeats)
    started = time.perf_counter()
    cluster, address, where = _cluster(plan)
    start_up = time.perf_counter() - started
    try:
        on_dask = repeat(
            "`rnclassifier extract --scheduler ADDRESS`",
            extract_command(
                manifest, params, work / "dask.parquet", scheduler=address, no_cache=True
            ),
            plan.repeats,
        )
    finally:
        if cluster is not None:
            cluster.close()
    same = pd.read_parquet(work / "local.parquet").equals(pd.read_parquet(work / "dask.parquet"))
    shutil.rmtree(work, ignore_errors=True)
    startup = Timing(
        "cluster start-up (in the benchmark process, not in the command)",
        [Measurement(start_up, math.nan, math.nan)],
    )
    return Section(
        "dask",
        TITLE,
        _setup(plan, lesions, where),
        [baseline, on_dask, startup],
        [_figure(plan, on_dask, baseline)],
        notes=[
            f"Feature tables from Dask and from local processes identical: "
            f"{'yes' if same else '**no**'}."
        ],
        data={"identical": bool(same), "cluster_start_s": start_up},
    )


def _cluster(plan: Plan) -> tuple[Any, str, str]:
    """The cluster started here (None when the plan names a scheduler), the scheduler's
    address, and where the work ran, in words."""
    if plan.scheduler:
        return None, plan.scheduler, f"the Dask scheduler at `{plan.scheduler}`"
    from dask.distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=plan.jobs, threads_per_worker=1, processes=True, dashboard_address=None
    )
    where = (
        f"a Dask `LocalCluster` of {plan.jobs} worker processes, one thread each, "
        "started by the benchmark"
    )
    return cluster, cluster.scheduler_address, where


def _setup(plan: Plan, lesions: int, where: str) -> str:
    """What ran where."""
    return (
        f"Cold extraction of section 1's cohort (its first {lesions} lesions, plain parameters, "
        f"no cache) on {where}, against `--jobs {plan.jobs}` local processes; "
        f"{plan.repeats} repeats each. On a real cluster pass `--scheduler tcp://host:8786` to "
        "the benchmark (the workers must see the same file paths). The workers' memory is "
        "not in the command's peak RSS."
    )


def _figure(plan: Plan, on_dask: Timing, baseline: Timing) -> Figure:
    """Dask against local processes."""
    return Figure(
        "extraction on Dask / local processes",
        on_dask.seconds,
        baseline.seconds,
        f"`--jobs {plan.jobs}`",
        "– (scale-out cost on one machine)",
        None,
    )
