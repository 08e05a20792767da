"""Hyperparameter search spaces (optuna) for each model; the selector's size is tuned too.

xgboost, the primary by default, gets a TPE search over its space; the baselines a small fixed
grid (issue #6), searched exhaustively with optuna's GridSampler through the same `suggest`.
`logistic` is the plain baseline of the public-tables study (#20): L2 logistic regression on
every feature (no correlation filter, no selection), only its C tuned."""

from __future__ import annotations

from typing import Any

import optuna


def suggest(name: str, trial: optuna.Trial, n_features: int) -> dict[str, Any]:
    """Parameters of one trial: the model's own and the number of features kept."""
    if name == "logistic":  # every feature: nothing to choose but C
        return {
            "select_k": trial.suggest_categorical("select_k", ["all"]),
            "correlation_threshold": trial.suggest_categorical("correlation_threshold", [1.0]),
            "C": trial.suggest_float("C", 1e-4, 10.0, log=True),
        }
    upper = max(2, min(60, n_features))
    params: dict[str, Any] = {
        "select_k": trial.suggest_int("select_k", min(2, upper), upper, log=True)
    }
    if name == "xgboost":
        params |= {
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
            "max_depth": trial.suggest_int("max_depth", 1, 4),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 10.0, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 0.1, 10.0, log=True),
        }
    elif name == "elastic_net":
        params |= {
            "C": trial.suggest_float("C", 1e-3, 10.0, log=True),
            "l1_ratio": trial.suggest_float("l1_ratio", 0.0, 1.0),
        }
    elif name == "random_forest":
        params |= {
            "n_estimators": trial.suggest_int("n_estimators", 100, 400, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 8),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 10),
        }
    else:
        raise ValueError(f"unknown model {name!r}")
    return params


#: The baselines' fixed grids; `select_k` values above the number of features are clipped.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "elastic_net": {"select_k": [5, 15, 40], "C": [0.01, 0.1, 1.0], "l1_ratio": [0.2, 0.8]},
    "random_forest": {
        "select_k": [10, 40],
        "n_estimators": [200],
        "max_depth": [3, 6],
        "min_samples_leaf": [2, 5],
    },
    "logistic": {
        "select_k": ["all"],
        "correlation_threshold": [1.0],
        "C": [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0],
    },
}


def grid(name: str, n_features: int) -> dict[str, list[Any]] | None:
    """The model's fixed grid for this many features, or None for a TPE search."""
    if name not in GRIDS:
        return None
    upper = max(2, min(60, n_features))
    fixed = dict(GRIDS[name])
    fixed["select_k"] = sorted({k if k == "all" else min(k, upper) for k in fixed["select_k"]})
    return fixed


def n_trials(name: str, budget_trials: int, n_features: int) -> int:
    """TPE trials from the budget; a grid is searched in full."""
    fixed = grid(name, n_features)
    if fixed is None:
        return budget_trials
    size = 1
    for values in fixed.values():
        size *= len(values)
    return size
