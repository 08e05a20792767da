"""Section 3: the default experiment's wall time and peak memory against its 10-minute budget,
and the primary with `--jobs N` against `--jobs 1`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import (
    PRIMARY,
    Plan,
    default_bundle,
    experiment_config,
    light_features,
    log,
    train_command,
    workdir,
)
from benchmarks.measure import Timing, repeat
from benchmarks.report import Figure, Section

TITLE = "Training: the default experiment's wall time and peak memory"


def run(plan: Plan) -> Section:
    """The default experiment's wall time and peak memory against its 10-minute budget, and the
    primary with `--jobs N` against `--jobs 1`."""
    table = light_features(plan, plan.lesions)
    work = workdir("train")
    config = experiment_config(
        table, plan.training_cv, work, plan.training_models, plan.training_sets
    )
    chosen = yaml.safe_load(config.read_text())
    log(f"3. training: the default experiment on {plan.lesions} lesions, jobs {plan.jobs}")
    full = _experiment(plan, config, chosen, work)
    one, two = _primary(plan, table, work)
    shutil.rmtree(work, ignore_errors=True)
    return Section(
        "training",
        TITLE,
        _setup(plan, chosen),
        [full, one, two],
        _figures(plan, full, one, two),
        data={"budget": chosen["cv"]},
    )


def _experiment(plan: Plan, config: Path, chosen: dict[str, Any], work: Path) -> Timing:
    """The whole default experiment, final model and bundle included, run once; its metrics
    kept for the quality section."""
    runs = f"{len(chosen['models'])} models x {len(chosen['feature_sets'])} feature sets"
    command = train_command(
        work / "full", plan.jobs, config=config, bundle=default_bundle(plan), force=True
    )
    full = repeat(f"default experiment ({runs}, final model, bundle)", command, 1)
    shutil.copy(work / "full" / "metrics.json", plan.data / f"metrics-seed-{plan.lesions}.json")
    return full


def _primary(plan: Plan, table: Path, work: Path) -> tuple[Timing, Timing]:
    """The primary alone (no bundle) with `--jobs 1` and with `--jobs N`."""

    def primary(out: str, jobs: int) -> list[str]:
        return train_command(
            work / out,
            jobs,
            features=table,
            models=[PRIMARY[0]],
            feature_set=PRIMARY[1],
            cv=plan.training_cv,
        )

    one = repeat("primary only (xgboost / combined), `--jobs 1` (baseline)", primary("p1", 1), 1)
    two = repeat(f"primary only, `--jobs {plan.jobs}`", primary("p2", plan.jobs), 1)
    return one, two


def _setup(plan: Plan, chosen: dict[str, Any]) -> str:
    """What was run, with the experiment's budget."""
    budget = chosen["cv"]
    return (
        f"`experiments/seed-synthetic/experiment.yaml` ({', '.join(chosen['models'])} on the "
        f"feature sets {', '.join(chosen['feature_sets'])}; outer {budget['outer_folds']} folds "
        f"x {budget['repeats']} repeats, inner {budget['inner_folds']} folds, "
        f"{budget['trials']} TPE trials for xgboost, fixed grids for the baselines; then the "
        "final model and its bundle) on the synthetic seed cohort's light-profile features "
        f"({plan.lesions} lesions), `--jobs {plan.jobs}`, MLflow off. Run once each: a median "
        "of several 4-minute runs would not fit the hour."
    )


def _figures(plan: Plan, full: Timing, one: Timing, two: Timing) -> list[Figure]:
    """The experiment against its budget and the machine's memory; N jobs against one."""
    return [
        Figure("default experiment, wall time", full.seconds, 600.0, "budget", "< 10 min", 1.0),
        Figure(
            "default experiment, peak memory (process tree)",
            full.tree_peak_mib,
            _memory_mib(),
            "machine memory",
            "–",
            None,
            unit="MiB",
        ),
        Figure(
            f"primary, `--jobs {plan.jobs}` / `--jobs 1`",
            two.seconds,
            one.seconds,
            "`--jobs 1`",
            "≤ 0.6",
            0.6,
            bound="single runs on a shared 2-core machine vary by tens of percent.",
        ),
    ]


def _memory_mib() -> float:
    """The machine's memory."""
    import psutil

    return psutil.virtual_memory().total / 2**20
