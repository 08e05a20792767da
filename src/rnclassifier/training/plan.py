"""A training spec made concrete for one feature table: every choice checked against the
table before any model is fitted (models, feature sets, the primary, harmonisation, the
bundle folder), the labels the run trains on, and the names its studies and checkpoints
take."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnclassifier.errors import InputError
from rnclassifier.modeling.feature_sets import feature_sets
from rnclassifier.modeling.nested import Budget
from rnclassifier.modeling.pipeline import SideTables
from rnclassifier.spec import TrainingSpec
from rnclassifier.training.table import FeatureData

#: Inside the output folder: finished outer folds (joblib pickles, local only), removed when the
#: run completes; a rerun of the same experiment on the same data resumes from them.
CHECKPOINT_FOLDER = ".checkpoint"


@dataclass(frozen=True)
class RunPlan:
    spec: TrainingSpec
    name: str  # the run's: the bundle's, and the MLflow experiment's by default
    models: tuple[str, ...]
    primary: str
    sets: tuple[str, ...]  # the primary set first if it was not asked for
    primary_set: str
    available: dict[str, list[str]]  # every set the table has, its columns
    budget: Budget
    y: np.ndarray  # the labels trained on (permuted for the leakage alarm)
    side: SideTables
    bundle: Path | None
    checkpoints: Path

    @property
    def primary_key(self) -> str:
        return f"{self.primary}/{self.primary_set}"

    @property
    def permuted(self) -> bool:
        return self.spec.alarms.permute_labels

    @property
    def harmonise(self) -> bool:
        return self.spec.harmonise == "combat"

    @property
    def experiment(self) -> str:
        """The MLflow experiment's name (the run's, unless the spec names another)."""
        return self.spec.tracking.experiment or self.name

    @property
    def study_prefix(self) -> str:
        """Optuna study names begin with the experiment's name; nested CV adds the digest of
        everything that defines the folds, so only the same run on the same data resumes."""
        return self.experiment + ("/permuted" if self.permuted else "")

    @property
    def extra_settings(self) -> dict[str, Any]:
        return {"config_sha256": self.spec.config_sha256, "permuted_labels": self.permuted}


def plan_run(
    data: FeatureData, spec: TrainingSpec, out: Path, table: Path | None = None
) -> RunPlan:
    """Check the spec against the table; raise InputError naming what does not fit."""
    available = feature_sets(list(data.X.columns))
    primary_set = spec.primary_set(available)
    sets = tuple(spec.feature_sets) if spec.feature_sets else tuple(available)
    missing = [name for name in {*sets, primary_set} if name not in available]
    if missing:
        raise InputError(
            f"feature set(s) {', '.join(sorted(missing))} have no columns in this table "
            f"(available: {', '.join(available)})"
        )
    if primary_set not in sets:
        sets = (primary_set, *sets)
    if spec.harmonise == "combat":
        _check_sites(data)
    bundle = spec.bundle_path(table)
    if bundle is not None and bundle.exists() and not spec.bundle.overwrite:
        raise InputError(f"{bundle}: already exists; choose another bundle folder or pass --force")
    budget = Budget.of(spec)
    y = data.y
    if spec.alarms.permute_labels:  # leakage alarm: AUC must come out near 0.5
        y = np.random.default_rng(budget.seed).permutation(y)
    return RunPlan(
        spec=spec,
        name=spec.run_name(table),
        models=tuple(spec.models),
        primary=spec.primary.model,
        sets=sets,
        primary_set=primary_set,
        available=available,
        budget=budget,
        y=y,
        side=data.side_tables(harmonise=spec.harmonise == "combat"),
        bundle=bundle,
        checkpoints=Path(out) / CHECKPOINT_FOLDER,
    )


def _check_sites(data: FeatureData) -> None:
    if data.sites is None:
        raise InputError("ComBat harmonisation needs each lesion's site: no site column")
    blank = [i for i, v in enumerate(data.sites) if v is None]
    if blank:
        raise InputError(
            f"row {i + 2}, column site: empty; ComBat harmonisation needs every lesion's site"
            for i in blank
        )
