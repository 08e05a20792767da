"""Nested, patient-grouped cross-validation with optuna inside each outer training fold.

Outer: repeated stratified group k-fold (groups = patients; patients with lesions of both labels
are allowed). Inner: grouped k-fold on the outer training part only, an optuna TPE study per
outer fold, seeded, so results do not depend on how many folds run in parallel. The outer test
fold is predicted once by a fresh pipeline built from the fold's best parameters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedGroupKFold

from rnclassifier.modeling.pipeline import make_pipeline
from rnclassifier.modeling.spaces import suggest
from rnclassifier.modeling.threshold import Calibrator, ThresholdRule, choose_threshold
from rnclassifier.stats.discrimination import auc

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """The default fits this machine (2 cores): 5 outer folds x 2 repeats, 3 inner, 30 trials."""

    outer_folds: int = 5
    repeats: int = 2
    inner_folds: int = 3
    trials: int = 30
    seed: int = 0
    calibration: str = "platt"
    threshold_rule: ThresholdRule = field(default_factory=ThresholdRule)


@dataclass
class NestedResult:
    """Out-of-fold predictions (one per lesion and repeat) and each outer fold's choices."""

    model: str
    predictions: pd.DataFrame  # row, repeat, fold, probability
    folds: list[dict[str, Any]] = field(default_factory=list)

    def pooled_calls(self) -> pd.DataFrame:
        """Every (lesion, repeat) call at its own fold's threshold."""
        return self.predictions[["row", "repeat", "call"]]

    def mean_probability(self, n_rows: int) -> np.ndarray:
        """Each lesion's out-of-fold probability averaged over repeats."""
        means = self.predictions.groupby("row")["probability"].mean()
        return means.reindex(range(n_rows)).to_numpy()


def outer_splits(
    y: np.ndarray, groups: np.ndarray, budget: Budget
) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(repeat, fold, train rows, test rows): no patient on both sides of any split."""
    splits = []
    for repeat in range(budget.repeats):
        cv = StratifiedGroupKFold(
            budget.outer_folds, shuffle=True, random_state=budget.seed + 1000 * repeat
        )
        for fold, (train, test) in enumerate(cv.split(np.zeros(len(y)), y, groups)):
            splits.append((repeat, fold, train, test))
    return splits


def nested_cv(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    model: str,
    budget: Budget | None = None,
    *,
    jobs: int = 1,
) -> NestedResult:
    """Out-of-fold probabilities of `model` with hyperparameters tuned inside each outer fold."""
    budget = budget or Budget()
    y = np.asarray(y, int)
    groups = np.asarray(groups)
    splits = outer_splits(y, groups, budget)
    results = Parallel(n_jobs=jobs, prefer="processes")(
        delayed(_outer_fold)(X, y, groups, model, budget, repeat, fold, train, test)
        for repeat, fold, train, test in splits
    )
    predictions = pd.concat([r[0] for r in results], ignore_index=True)
    return NestedResult(model=model, predictions=predictions, folds=[r[1] for r in results])


def _outer_fold(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    model: str,
    budget: Budget,
    repeat: int,
    fold: int,
    train: np.ndarray,
    test: np.ndarray,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    seed = budget.seed + 100 * repeat + fold
    best = tune(X.iloc[train], y[train], groups[train], model, budget, seed)
    # Calibration and threshold from grouped inner out-of-fold predictions of the training part.
    inner = inner_oof(X.iloc[train], y[train], groups[train], model, best, budget, seed)
    calibrator = Calibrator(budget.calibration).fit(inner, y[train])
    threshold = choose_threshold(calibrator.transform(inner), y[train], budget.threshold_rule)
    pipeline = make_pipeline(model, best, seed).fit(X.iloc[train], y[train])
    raw = pipeline.predict_proba(X.iloc[test])[:, 1]
    calibrated = calibrator.transform(raw)
    frame = pd.DataFrame(
        {
            "row": test,
            "repeat": repeat,
            "fold": fold,
            "raw_probability": raw,
            "probability": calibrated,
            "threshold": threshold,
            "call": (calibrated >= threshold).astype(int),
        }
    )
    return frame, {
        "repeat": repeat,
        "fold": fold,
        "params": best,
        "threshold": threshold,
        "n_train": len(train),
        "n_test": len(test),
    }


def inner_oof(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    model: str,
    params: dict[str, Any],
    budget: Budget,
    seed: int,
) -> np.ndarray:
    """Grouped inner-CV out-of-fold probabilities of the chosen parameters (training part)."""
    out = np.full(len(y), np.nan)
    splitter = StratifiedGroupKFold(budget.inner_folds, shuffle=True, random_state=seed + 7)
    for train, test in splitter.split(np.zeros(len(y)), y, groups):
        pipeline = make_pipeline(model, params, seed).fit(X.iloc[train], y[train])
        out[test] = pipeline.predict_proba(X.iloc[test])[:, 1]
    return out


def tune(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    model: str,
    budget: Budget,
    seed: int,
) -> dict[str, Any]:
    """Best parameters by grouped inner-CV AUC (optuna TPE, seeded, sequential)."""
    inner = list(
        StratifiedGroupKFold(budget.inner_folds, shuffle=True, random_state=seed).split(
            np.zeros(len(y)), y, groups
        )
    )

    def objective(trial: optuna.Trial) -> float:
        params = suggest(model, trial, X.shape[1])
        scores = []
        for train, test in inner:
            pipeline = make_pipeline(model, params, seed).fit(X.iloc[train], y[train])
            scores.append(auc(y[test], pipeline.predict_proba(X.iloc[test])[:, 1]))
        return float(np.nanmean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=budget.trials)
    best = dict(study.best_params)
    # Parameters the search space fixed rather than suggested are rebuilt by `suggest`.
    return suggest(model, optuna.trial.FixedTrial(best), X.shape[1])
