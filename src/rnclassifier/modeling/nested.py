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
from rnclassifier.modeling.run_identity import (
    SETTINGS_ATTRIBUTE,
    Budget,
    check_checkpoint,
    claim_study,
    fold_settings,
    settings_digest,
)
from rnclassifier.modeling.spaces import grid, n_trials, suggest
from rnclassifier.modeling.threshold import (
    Calibrator,
    choose_threshold,
    indeterminate_zone,
    radiologist_matched,
)
from rnclassifier.stats.discrimination import auc

logger = logging.getLogger(__name__)


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
    reads: np.ndarray | None = None,
    extra_settings: dict[str, Any] | None = None,
) -> NestedResult:
    """Out-of-fold probabilities of `model` with hyperparameters tuned inside each outer fold.

    With a `checkpoint` folder each finished outer fold is saved there as soon as it ends, and
    a rerun (same data, model and budget: the caller names the folder after them) loads the
    finished folds instead of refitting them, so a killed run loses at most the folds in flight.
    `reads` (1 tumour, 0 necrosis, NaN unread; never a predictor) lets each outer fold fix the
    thresholds matched to the radiologists on its training part and apply them to its test fold.

    Study names are `<study_prefix>/<settings digest>/repeat-r/fold-f` and each study stores
    its settings (`fold_settings`): another table, grouping, CV scheme or budget never reads
    another run's trials, and a study or checkpoint of the same name made with other settings
    is refused.
    """
    budget = budget or Budget()
    y = np.asarray(y, int)
    groups = np.asarray(groups)
    settings = fold_settings(X, y, groups, model, budget, side=side, reads=reads,
                             extra=extra_settings)  # fmt: skip
    study_prefix = f"{study_prefix}/{settings_digest(settings)}"
    if checkpoint is not None:
        check_checkpoint(Path(checkpoint), settings)
    splits = outer_splits(y, groups, budget)
    saved = [
        Path(checkpoint) / f"repeat-{repeat}-fold-{fold}.joblib" if checkpoint else None
        for repeat, fold, _, _ in splits
    ]
    done = _resume(saved, model, checkpoint)
    todo = [i for i in range(len(splits)) if i not in done]
    tasks = Parallel(n_jobs=jobs, prefer="processes", return_as="generator")(
        delayed(_outer_fold_saved)(
            saved[i],
            X,
            y,
            groups,
            model,
            budget,
            *splits[i],
            side,
            storage,
            study_prefix,
            reads,
            settings,
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


def _resume(saved: list[Path | None], model: str, checkpoint: str | Path | None) -> dict[int, Any]:
    """The outer folds a killed run finished (by position), loaded from their checkpoints."""
    done: dict[int, Any] = {}
    for i, path in enumerate(saved):
        if path is not None and path.exists():
            try:
                done[i] = joblib.load(path)
            except Exception:  # written by another version, say: refit the fold
                logger.warning("%s: unreadable checkpoint %s, refitting that fold", model, path)
    if done:
        logger.info("%s: %d of %d outer folds resumed from %s", model, len(done), len(saved),
                    checkpoint)  # fmt: skip
    return done


@dataclass
class FittedModel:
    """A pipeline fitted with tuned parameters, its calibrator and its thresholds, all chosen
    on the data it was fitted to (inner CV) and nothing else."""

    pipeline: Any
    calibrator: Calibrator
    threshold: float
    params: dict[str, Any]
    inner_probability: np.ndarray  # grouped inner out-of-fold, uncalibrated
    zone: tuple[float, float] = (np.nan, np.nan)  # indeterminate between low and high
    #: Thresholds matched to the radiologists' sensitivity / specificity (None without reads).
    matched: dict[str, dict[str, float]] | None = None

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
    reads: np.ndarray | None = None,
    settings: dict[str, Any] | None = None,
) -> FittedModel:
    """Tune on grouped inner CV, calibrate and set the thresholds on the inner out-of-fold
    predictions (the radiologist-matched ones on the lesions with a read), then fit a fresh
    pipeline with the best parameters on all of `X`.

    The same procedure makes each outer fold's model and the final model."""
    y = np.asarray(y, int)
    best = tune(X, y, groups, model, budget, seed, side, storage, study_name, settings)
    inner = inner_oof(X, y, groups, model, best, budget, seed, side)
    calibrator = Calibrator(budget.calibration).fit(inner, y)
    calibrated = calibrator.transform(inner)
    threshold = choose_threshold(calibrated, y, budget.threshold_rule)
    zone = indeterminate_zone(calibrated, y, budget.threshold_rule)
    matched = radiologist_matched(calibrated, y, reads)
    pipeline = make_pipeline(model, best, seed, side).fit(X, y)
    return FittedModel(pipeline, calibrator, threshold, best, inner, zone, matched)


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
    reads: np.ndarray | None = None,
    settings: dict[str, Any] | None = None,
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
        None if reads is None else np.asarray(reads, float)[train],
        None if settings is None else {**settings, "repeat": repeat, "fold": fold},
    )
    raw = fitted.pipeline.predict_proba(X.iloc[test])[:, 1]
    calibrated = fitted.calibrator.transform(raw)
    low, high = fitted.zone
    frame = pd.DataFrame(
        {
            "row": test,
            "repeat": repeat,
            "fold": fold,
            "raw_probability": raw,
            "probability": calibrated,
            "threshold": fitted.threshold,
            "call": (calibrated >= fitted.threshold).astype(int),
            # 1 tumour, 0 necrosis, NaN indeterminate: the zone fixed on the training part.
            "zone_call": np.where(calibrated >= high, 1.0, np.where(calibrated < low, 0.0, np.nan)),
        }
    )
    for name, point in (fitted.matched or {}).items():
        frame[f"matched_{name}_threshold"] = point["threshold"]
        frame[f"matched_{name}_call"] = (calibrated >= point["threshold"]).astype(int)
    return (
        frame,
        {
            "repeat": repeat,
            "fold": fold,
            "params": fitted.params,
            "threshold": fitted.threshold,
            "indeterminate_zone": list(fitted.zone),
            "radiologist_matched": fitted.matched,
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
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Best parameters by grouped inner-CV AUC (optuna TPE, seeded, sequential).

    With an optuna `storage` URL (SQLite, PostgreSQL, ...) the study is named and kept there:
    an interrupted run resumes with the trials still missing, and workers on several machines
    can share it. Either way the sampler's history differs from one uninterrupted run, so that
    mode is not bit-reproducible; the default in-memory study is. The study stores `settings`
    (a user attribute); an existing study with other or no settings is refused, never reused."""
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
    if storage is not None:
        claim_study(study, storage, settings or {})
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


__all__ = [
    "SETTINGS_ATTRIBUTE",
    "Budget",
    "FittedModel",
    "NestedResult",
    "final_seed",
    "fit_tuned",
    "fold_settings",
    "nested_cv",
    "outer_splits",
    "settings_digest",
]
