"""Nested, patient-grouped cross-validation with optuna inside each outer training fold.

Outer: repeated stratified group k-fold (groups = patients; patients with lesions of both labels
are allowed). Inner: grouped k-fold on the outer training part only, an optuna TPE study per
outer fold, seeded, so results do not depend on how many folds run in parallel. The outer test
fold is predicted once by a fresh pipeline built from the fold's best parameters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import optuna
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedGroupKFold
from tqdm.auto import tqdm

from rnclassifier.modeling.pipeline import SideTables, make_pipeline
from rnclassifier.modeling.spaces import grid, n_trials, suggest
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
    fitted: list[FittedModel] = field(default_factory=list)  # the CV ensemble, fold order

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
    side: SideTables | None = None,
    storage: str | None = None,
    study_prefix: str = "rnclassifier",
    progress: str | None = None,
    checkpoint: str | Path | None = None,
) -> NestedResult:
    """Out-of-fold probabilities of `model` with hyperparameters tuned inside each outer fold.

    With a `checkpoint` folder each finished outer fold is saved there as soon as it ends, and
    a rerun (same data, model and budget: the caller names the folder after them) loads the
    finished folds instead of refitting them, so a killed run loses at most the folds in flight.
    """
    budget = budget or Budget()
    y = np.asarray(y, int)
    groups = np.asarray(groups)
    splits = outer_splits(y, groups, budget)
    saved = [
        Path(checkpoint) / f"repeat-{repeat}-fold-{fold}.joblib" if checkpoint else None
        for repeat, fold, _, _ in splits
    ]
    done: dict[int, Any] = {}
    for i, path in enumerate(saved):
        if path is not None and path.exists():
            try:
                done[i] = joblib.load(path)
            except Exception:  # written by another version, say: refit the fold
                logger.warning("%s: unreadable checkpoint %s, refitting that fold", model, path)
    if done:
        logger.info("%s: %d of %d outer folds resumed from %s", model, len(done), len(splits),
                    checkpoint)  # fmt: skip
    todo = [i for i in range(len(splits)) if i not in done]
    tasks = Parallel(n_jobs=jobs, prefer="processes", return_as="generator")(
        delayed(_outer_fold_saved)(
            saved[i], X, y, groups, model, budget, *splits[i], side, storage, study_prefix
        )
        for i in todo
    )
    for i, result in zip(
        todo,
        tqdm(tasks, total=len(splits), initial=len(done), desc=progress, unit="fold",
             disable=progress is None),
        strict=True,
    ):  # fmt: skip
        done[i] = result
    results = [done[i] for i in range(len(splits))]
    predictions = pd.concat([r[0] for r in results], ignore_index=True)
    return NestedResult(
        model=model,
        predictions=predictions,
        folds=[r[1] for r in results],
        fitted=[r[2] for r in results],
    )


@dataclass
class FittedModel:
    """A pipeline fitted with tuned parameters, its calibrator and its threshold, all chosen
    on the data it was fitted to (inner CV) and nothing else."""

    pipeline: Any
    calibrator: Calibrator
    threshold: float
    params: dict[str, Any]
    inner_probability: np.ndarray  # grouped inner out-of-fold, uncalibrated

    def probability(self, X: pd.DataFrame) -> np.ndarray:
        return self.calibrator.transform(self.pipeline.predict_proba(X)[:, 1])


def fit_tuned(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    model: str,
    budget: Budget,
    seed: int,
    side: SideTables | None = None,
    storage: str | None = None,
    study_name: str | None = None,
) -> FittedModel:
    """Tune on grouped inner CV, calibrate and set the threshold on the inner out-of-fold
    predictions, then fit a fresh pipeline with the best parameters on all of `X`.

    The same procedure makes each outer fold's model and the final model."""
    y = np.asarray(y, int)
    best = tune(X, y, groups, model, budget, seed, side, storage, study_name)
    inner = inner_oof(X, y, groups, model, best, budget, seed, side)
    calibrator = Calibrator(budget.calibration).fit(inner, y)
    threshold = choose_threshold(calibrator.transform(inner), y, budget.threshold_rule)
    pipeline = make_pipeline(model, best, seed, side).fit(X, y)
    return FittedModel(pipeline, calibrator, threshold, best, inner)


def final_seed(budget: Budget) -> int:
    """The final model's seed: distinct from every outer fold's (budget.seed + 100 r + f)."""
    return budget.seed + 99_991


def _outer_fold_saved(
    path: Path | None, *args: Any
) -> tuple[pd.DataFrame, dict[str, Any], FittedModel]:
    """One outer fold, saved to `path` (atomically) by the worker as soon as it is done."""
    result = _outer_fold(*args)
    if path is not None:
        from rnclassifier.atomic import atomic_file

        with atomic_file(path) as tmp:
            joblib.dump(result, tmp)
    return result


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
    side: SideTables | None = None,
    storage: str | None = None,
    study_prefix: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any], FittedModel]:
    seed = budget.seed + 100 * repeat + fold
    fitted = fit_tuned(
        X.iloc[train],
        y[train],
        groups[train],
        model,
        budget,
        seed,
        side,
        storage,
        f"{study_prefix}/repeat-{repeat}/fold-{fold}",
    )
    raw = fitted.pipeline.predict_proba(X.iloc[test])[:, 1]
    calibrated = fitted.calibrator.transform(raw)
    frame = pd.DataFrame(
        {
            "row": test,
            "repeat": repeat,
            "fold": fold,
            "raw_probability": raw,
            "probability": calibrated,
            "threshold": fitted.threshold,
            "call": (calibrated >= fitted.threshold).astype(int),
        }
    )
    return (
        frame,
        {
            "repeat": repeat,
            "fold": fold,
            "params": fitted.params,
            "threshold": fitted.threshold,
            "n_train": len(train),
            "n_test": len(test),
        },
        fitted,
    )


def inner_oof(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    model: str,
    params: dict[str, Any],
    budget: Budget,
    seed: int,
    side: SideTables | None = None,
) -> np.ndarray:
    """Grouped inner-CV out-of-fold probabilities of the chosen parameters (training part)."""
    out = np.full(len(y), np.nan)
    splitter = StratifiedGroupKFold(budget.inner_folds, shuffle=True, random_state=seed + 7)
    for train, test in splitter.split(np.zeros(len(y)), y, groups):
        pipeline = make_pipeline(model, params, seed, side).fit(X.iloc[train], y[train])
        out[test] = pipeline.predict_proba(X.iloc[test])[:, 1]
    return out


def tune(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    model: str,
    budget: Budget,
    seed: int,
    side: SideTables | None = None,
    storage: str | None = None,
    study_name: str | None = None,
) -> dict[str, Any]:
    """Best parameters by grouped inner-CV AUC (optuna TPE, seeded, sequential).

    With an optuna `storage` URL (SQLite, PostgreSQL, ...) the study is named and kept there:
    an interrupted run resumes with the trials still missing, and workers on several machines
    can share it. Either way the sampler's history differs from one uninterrupted run, so that
    mode is not bit-reproducible; the default in-memory study is."""
    inner = list(
        StratifiedGroupKFold(budget.inner_folds, shuffle=True, random_state=seed).split(
            np.zeros(len(y)), y, groups
        )
    )

    def objective(trial: optuna.Trial) -> float:
        params = suggest(model, trial, X.shape[1])
        scores = []
        for train, test in inner:
            pipeline = make_pipeline(model, params, seed, side).fit(X.iloc[train], y[train])
            scores.append(auc(y[test], pipeline.predict_proba(X.iloc[test])[:, 1]))
        return float(np.nanmean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed = grid(model, X.shape[1])
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if fixed is None
        else optuna.samplers.GridSampler(fixed, seed=seed)
    )
    trials = n_trials(model, budget.trials, X.shape[1])
    study = optuna.create_study(
        direction="maximize",
        sampler=sampler,
        storage=storage,
        study_name=study_name if storage else None,
        load_if_exists=storage is not None,
    )
    done = (optuna.trial.TrialState.COMPLETE,)
    remaining = trials - len(study.get_trials(deepcopy=False, states=done))
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            # Shared by several workers: stop when the study as a whole has its trials.
            callbacks=[optuna.study.MaxTrialsCallback(trials, states=done)],
        )
    best = dict(study.best_params)
    # Parameters the search space fixed rather than suggested are rebuilt by `suggest`.
    return suggest(model, optuna.trial.FixedTrial(best), X.shape[1])
