"""Section 4: each model x feature set's nested-CV AUC beside the oracle AUC on the same
lesions, at the seed's size and larger, to show how the gap to the ceiling closes with data."""

from __future__ import annotations

import json
import shutil
from typing import Any

from benchmarks.ceilings import (
    ORACLES,
    POPULATION_LESIONS,
    ceiling_of,
    ci_text,
    interval_cell,
    oracle_aucs,
    population_ceilings,
)
from benchmarks.common import (
    PRIMARY,
    Plan,
    cohort,
    experiment_config,
    light_features,
    log,
    train_command,
    workdir,
)
from benchmarks.measure import Timing, repeat
from benchmarks.report import Figure, Section

TITLE = "Model quality against the ceiling: each nested-CV AUC beside its own matched ceiling"
#: Nested-CV metrics (metrics.json) by cohort size.
Runs = dict[int, dict[str, Any]]
#: Each cohort size's oracle AUCs, by oracle column.
Oracles = dict[int, dict[str, dict[str, float]]]
GAP_BOUND = (
    "the oracle knows each lesion's latent image signs exactly, while features "
    "measure them through rendered images (noise, partial volume, bias field, "
    "the mask): that measurement error caps any model of the features below the "
    "oracle however much data there is; the rest is finite n, which the table "
    "shows shrinking with data."
)


def run(plan: Plan) -> Section:
    """Each model x feature set's nested-CV AUC beside the oracle AUC on the same lesions, at
    the seed's size and larger, to show how the gap to the ceiling closes with data."""
    log("4. quality: nested-CV AUC against the oracle")
    timings, runs = _runs(plan)
    oracles = {n: oracle_aucs(plan, n) for n in runs}
    population = population_ceilings()
    sizes = sorted(runs)
    keys = list(dict.fromkeys(k for n in sizes for k in runs[n]["models"]))
    gaps, figures = _gaps(plan, runs, oracles, population)
    figures += _smallest_gap(plan, runs, oracles)
    return Section(
        "quality",
        TITLE,
        _setup(plan),
        timings,
        figures,
        tables=[
            "Nested-CV AUC (95% CI) by cohort size, beside each feature set's own ceiling:\n\n"
            + "\n".join(_auc_table(runs, oracles, population, keys)),
            "The ceilings (95% CI, patient-cluster bootstrap, on each cohort's lesions; the "
            "population value has no interval worth showing at this n):\n\n"
            + "\n".join(_ceiling_table(oracles, population, sizes)),
            "The primary's gap to its matched ceiling (the `combined` oracle):\n\n"
            + "\n".join(gaps),
        ],
        data={
            "auc": {n: {k: v["auc"] for k, v in runs[n]["models"].items()} for n in sizes},
            "oracle": oracles,
            "oracle_population": population,
            "ceiling_of_set": {k: ceiling_of(k.split("/", 1)[1]) for k in keys},
        },
    )


def _runs(plan: Plan) -> tuple[list[Timing], Runs]:
    """The nested-CV metrics at every size: the seed's from the training section when it left
    them, the larger cohorts' trained here (with their timings)."""
    timings: list[Timing] = []
    runs: Runs = {}
    saved = plan.data / f"metrics-seed-{plan.lesions}.json"
    cohort(plan, plan.lesions)  # a re-rendered cohort drops stale metrics
    if saved.exists():
        runs[plan.lesions] = json.loads(saved.read_text())
        log(f"  n = {plan.lesions}: the training section's default experiment")
    else:
        timing, runs[plan.lesions] = _train(plan, plan.lesions, False)
        timings.append(timing)
    for lesions in plan.quality_sizes:
        timing, runs[lesions] = _train(plan, lesions, False)
        timings.append(timing)
    for lesions in plan.primary_sizes:
        timing, runs[lesions] = _train(plan, lesions, True)
        timings.append(timing)
    return timings, runs


def _train(plan: Plan, lesions: int, primary_only: bool) -> tuple[Timing, dict]:
    """Nested-CV metrics of the default experiment (or the primary and elastic net on the
    combined set) on a cohort of `lesions`, with its wall time and memory."""
    table = light_features(plan, lesions)
    work = workdir(f"quality-{lesions}")
    if primary_only:
        command = train_command(
            work / "out",
            plan.jobs,
            features=table,
            models=["xgboost", "elastic_net"],
            feature_set="combined",
            cv=plan.primary_cv,
        )
        label = f"n = {lesions}: xgboost and elastic net on the combined set"
    else:
        config = experiment_config(table, plan.quality_cv, work)
        command = train_command(work / "out", plan.jobs, config=config)
        label = f"n = {lesions}: default experiment, 15 model x feature-set runs"
    timing = repeat(label, command, 1)
    metrics = json.loads((work / "out" / "metrics.json").read_text())
    shutil.rmtree(work, ignore_errors=True)
    return timing, metrics


def _short(column: str) -> str:
    """An oracle column's short name: the feature set it is matched to, or 'full'."""
    return column.removeprefix("oracle_p_tumor").lstrip("_") or "full"


def _auc_table(
    runs: Runs, oracles: Oracles, population: dict[str, float], keys: list[str]
) -> list[str]:
    """Each model x feature set's AUC at every size beside its own ceiling."""
    sizes = sorted(runs)
    head = (
        "| model / feature set | its ceiling | "
        + " | ".join(f"n = {n}: AUC | ceiling, this cohort" for n in sizes)
        + f" | ceiling, population (n = {POPULATION_LESIONS:,}) |"
    )
    lines = [head, "|---|---|" + "---|---|" * len(sizes) + "---|"]
    for key in keys:
        model, feature_set = key.split("/", 1)
        name = f"**{key} (primary)**" if (model, feature_set) == PRIMARY else key
        column = ceiling_of(feature_set)
        lines.append(
            f"| {name} | `{_short(column)}` | "
            + " | ".join(
                f"{interval_cell(runs[n]['models'].get(key, {}).get('auc'))} | "
                f"{oracles[n][column]['estimate']:.3f}"
                for n in sizes
            )
            + f" | {population[column]:.3f} |"
        )
    return lines


def _ceiling_table(oracles: Oracles, population: dict[str, float], sizes: list[int]) -> list[str]:
    """Every ceiling at every size and in the population."""
    lines = [
        "| ceiling | what it sees | "
        + " | ".join(f"n = {n} (this cohort)" for n in sizes)
        + f" | population (n = {POPULATION_LESIONS:,}) |",
        "|---|---|" + "---|" * len(sizes) + "---|",
    ]
    for column, text in ORACLES.items():
        lines.append(
            f"| `{_short(column)}` | {text} | "
            + " | ".join(interval_cell(oracles[n][column]) for n in sizes)
            + f" | {population[column]:.3f} |"
        )
    return lines


def _gap_to_own(runs: Runs, oracles: Oracles, n: int, key: str) -> float:
    """A model x feature set's AUC gap to its own ceiling on the cohort of size n."""
    column = ceiling_of(key.split("/", 1)[1])
    return oracles[n][column]["estimate"] - runs[n]["models"][key]["auc"]["estimate"]


def _gaps(
    plan: Plan, runs: Runs, oracles: Oracles, population: dict[str, float]
) -> tuple[list[str], list[Figure]]:
    """The primary's gap to its matched ceiling at every size: the table and a figure each
    (judged from n = 400, or at the quick run's largest size)."""
    sizes = sorted(runs)
    lines = [
        "| n | primary AUC | its ceiling, this cohort | gap | ceiling, population | gap | "
        "best model / feature set | best AUC | gap to its own ceiling, this cohort |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    figures = []
    column = ceiling_of(PRIMARY[1])
    for n in sizes:
        models = runs[n]["models"]
        primary = models["/".join(PRIMARY)]["auc"]["estimate"]
        best_key = max(models, key=lambda k: models[k]["auc"]["estimate"])
        best = models[best_key]["auc"]["estimate"]
        ceiling = oracles[n][column]["estimate"]
        lines.append(
            f"| {n} | {primary:.3f} | {ceiling:.3f} | {ceiling - primary:.3f} | "
            f"{population[column]:.3f} | {population[column] - primary:.3f} | "
            f"{best_key} | {best:.3f} | {_gap_to_own(runs, oracles, n, best_key):.3f} |"
        )
        judged = n >= 400 or (plan.quick and n == sizes[-1])
        figures.append(
            Figure(
                f"primary AUC gap to its matched ceiling (`{PRIMARY[1]}` oracle), n = {n}",
                primary,
                ceiling,
                f"`{PRIMARY[1]}` oracle AUC, this cohort",
                "≤ 0.05" if judged else "– (n < 400)",
                0.05 if judged else None,
                kind="difference",
                unit="",
                interval=ci_text(models["/".join(PRIMARY)]["auc"]),
                bound=GAP_BOUND,
            )
        )
    return lines, figures


def _smallest_gap(plan: Plan, runs: Runs, oracles: Oracles) -> list[Figure]:
    """The model x feature set closest to its own ceiling at the largest size the whole
    experiment ran at (none when it did not run there)."""
    n = max([plan.lesions, *plan.quality_sizes])
    if n not in runs:
        return []
    models = runs[n]["models"]
    best_key = min(models, key=lambda k: _gap_to_own(runs, oracles, n, k))
    column = ceiling_of(best_key.split("/", 1)[1])
    return [
        Figure(
            f"smallest gap of a model to its own ceiling, n = {n} ({best_key})",
            models[best_key]["auc"]["estimate"],
            oracles[n][column]["estimate"],
            f"`{_short(column)}` oracle AUC, this cohort",
            "– (not chosen before the run)",
            None,
            kind="difference",
            unit="",
            interval=ci_text(models[best_key]["auc"]),
        )
    ]


def _budgets(plan: Plan) -> list[str]:
    """The training budget at each size, in words."""
    experiment = (
        f"the default experiment's budget{' (quick)' if plan.training_cv else ''}"
        f" at n = {plan.lesions}"
    )
    budget = plan.quality_cv or {}
    budgets = [experiment]
    if plan.quality_sizes:
        budgets.append(
            f"at n = {', '.join(map(str, plan.quality_sizes))} the same experiment with outer "
            f"{budget.get('outer_folds', 5)} folds x {budget.get('repeats', 2)} repeats, inner "
            f"{budget.get('inner_folds', 3)}, {budget.get('trials', 30)} trials, no final model"
        )
    if plan.primary_sizes:
        budgets.append(
            f"at n = {', '.join(map(str, plan.primary_sizes))} xgboost and elastic net on the "
            "combined set only"
        )
    return budgets


def _setup(plan: Plan) -> str:
    """What was compared with what, and the budgets."""
    return (
        "Nested patient-grouped CV AUCs (95% CI, patient-cluster bootstrap) of each model x "
        "feature set on the synthetic seed-like cohort's light-profile features, beside the "
        "ceiling matched to that feature set: the generator's Bayes oracle limited to what the "
        "set's inputs can see (`clinical`: the basic covariates, immunotherapy and HER2/T-DM1 "
        "marginalised out as no set holds them; `clinical+size` adds growth between the scans; "
        "`radiomics` and `combined` see the scored scan's T1c and FLAIR signs but no growth; "
        "`combined+delta` every sign; `rnclassifier.synthetic.sampler.ORACLE_VIEWS`), both as "
        "this cohort's draw (on the same lesions) and as its population value "
        f"({POPULATION_LESIONS:,} lesions sampled without images). Budgets: "
        + "; ".join(_budgets(plan))
        + ". Each n is its own synthetic cohort (seed 0), not a superset of a smaller one. "
        "SYNTHETIC data: these numbers show the pipeline and how far n lesions are from the "
        "Bayes limit, not evidence about patients."
    )
