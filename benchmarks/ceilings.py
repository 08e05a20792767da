"""The generator's Bayes-oracle ceilings that sections 4 and 7 set the models against: each
cohort's draw (on its own lesions, with an interval) and the population value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import Plan, cohort
from rnclassifier.synthetic.sampler import ORACLE_VIEWS, oracle_column

#: The generator's Bayes-oracle columns in oracle.csv, and what each one knows: one per feature
#: set (what that set's inputs can see), the full one and the image-only one.
ORACLES = {column: view.meaning for column, view in ORACLE_VIEWS.items()}
#: Lesions sampled (latents only, no images) for each ceiling's population value.
POPULATION_LESIONS = 20_000


def ceiling_of(feature_set: str) -> str:
    """The oracle column a feature set is compared with: its own (matched) ceiling."""
    return oracle_column(feature_set)


def _oracle_aucs(folder: Path, columns: list[str]) -> dict[str, dict[str, float]]:
    """The AUCs of oracle columns of a synthetic cohort's oracle.csv, with patient-cluster
    bootstrap intervals."""
    import pandas as pd

    from rnclassifier.stats.discrimination import auc_interval

    oracle = pd.read_csv(folder / "oracle.csv")
    y = (oracle["pathology"] == "tumor").to_numpy(int)
    groups = oracle["patient_id"].to_numpy()
    return {
        column: auc_interval(y, oracle[column].to_numpy(), groups).as_dict() for column in columns
    }


def oracle_aucs(plan: Plan, lesions: int) -> dict[str, dict[str, float]]:
    """The generator's Bayes-oracle AUCs on the cohort's lesions (this cohort's draw of each
    ceiling), with patient-cluster bootstrap intervals: the ceiling no model of what that
    oracle sees can pass, up to sampling."""
    return _oracle_aucs(cohort(plan, lesions).parent, list(ORACLES))


def oracle_auc(folder: Path, column: str) -> dict[str, float]:
    """One oracle column's AUC on the synthetic cohort in `folder`, with its interval."""
    return _oracle_aucs(folder, [column])[column]


def population_ceilings(preset: str = "seed", shift: float | None = None) -> dict[str, float]:
    """Each ceiling's population value: its AUC on `POPULATION_LESIONS` sampled lesions
    (latents and covariates only; about a second)."""
    from rnclassifier.synthetic.presets import PRESETS
    from rnclassifier.synthetic.sampler import population_ceilings as ceilings

    model = PRESETS[preset] if shift is None else PRESETS[preset].with_shift(shift)
    return ceilings(model, n_lesions=POPULATION_LESIONS, seed=20_000)


def interval_cell(interval: dict[str, Any] | None) -> str:
    """'0.850 (0.82–0.89)' from an interval record ('–' when there is none)."""
    if not interval:
        return "–"
    return f"{interval['estimate']:.3f} ({interval['low']:.2f}–{interval['high']:.2f})"


def ci_text(interval: dict[str, Any]) -> str:
    """'95% CI 0.82–0.89' from an interval record with `low` / `high` (or `ci`)."""
    low, high = interval["ci"] if "ci" in interval else (interval["low"], interval["high"])
    return f"95% CI {low:.2f}–{high:.2f}"
