"""Training experiments from a feature table: nested patient-grouped CV of each model, out-of-fold
predictions, metrics with patient-cluster intervals, and the evaluation report of the primary.

This is the first slice of issue #6: no MLflow, model bundle, threshold rule or SHAP yet.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.atomic import atomic_file, write_json, write_text
from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS
from rnclassifier.errors import InputError
from rnclassifier.evaluate import EvaluationInputs, evaluate_predictions
from rnclassifier.modeling.feature_sets import DEFAULT_PRIMARY_SET, feature_sets
from rnclassifier.modeling.nested import Budget, nested_cv
from rnclassifier.modeling.pipeline import MODELS

__all__ = ["MODELS", "read_feature_table", "train_from_features"]
from rnclassifier.report.html import ci, render_evaluation_html
from rnclassifier.stats.discrimination import auc_interval
from rnclassifier.stats.threshold import operating_point

PRIMARY_MODEL = "xgboost"
DEFAULT_BUDGET = Budget()


@dataclass(frozen=True)
class FeatureData:
    X: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray
    ids: np.ndarray


def read_feature_table(
    path: str | Path,
    *,
    label: str = "pathology",
    group: str = "patient_id",
    id_column: str = "lesion_id",
) -> FeatureData:
    """A feature table from any tool: ID, group, label, numeric features; any other
    non-numeric column is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable feature table ({type(exc).__name__})") from None
    missing = [c for c in (id_column, group, label) if c not in table]
    if missing:
        raise InputError(f"{path}: missing column {c!r}" for c in missing)
    labels = table[label].astype(str).str.strip().str.lower()
    y = labels.map({POSITIVE_CLASS: 1, NEGATIVE_CLASS: 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0})
    problems = [
        f"{path}: row {i + 2}, column {label}: {v!r} is not tumor / necrosis / 1 / 0"
        for i, v in enumerate(table[label])
        if pd.isna(y.iloc[i])
    ]
    features = table.drop(columns=[id_column, group, label])
    problems += [
        f"{path}: column {c!r} is not numeric"
        for c in features
        if not pd.api.types.is_numeric_dtype(features[c])
    ]
    if problems:
        raise InputError(problems)
    if y.nunique() < 2:
        raise InputError(f"{path}: column {label} needs both tumour and necrosis lesions")
    if features.shape[1] == 0:
        raise InputError(f"{path}: no feature columns")
    return FeatureData(
        features.astype(float),
        y.to_numpy(int),
        table[group].astype(str).to_numpy(),
        table[id_column].astype(str).to_numpy(),
    )


def train_from_features(
    data: FeatureData,
    out: str | Path,
    *,
    models: tuple[str, ...] = MODELS,
    primary: str = PRIMARY_MODEL,
    sets: tuple[str, ...] | None = None,
    primary_set: str | None = None,
    budget: Budget = DEFAULT_BUDGET,
    jobs: int = 1,
    permute_labels: bool = False,
    synthetic: bool = False,
    tracking_uri: str | None = None,
    track: bool = True,
    experiment: str = "rnclassifier",
    artifact_location: str | None = None,
    config_sha256: str | None = None,
) -> dict[str, Any]:
    """Nested CV of each model on each feature set; the primary (model, feature set) is declared
    before the run and reported whatever its rank. Writes `metrics.json`, `predictions.csv` and
    `report.html`."""
    unknown = [m for m in models if m not in MODELS]
    if unknown or primary not in models:
        raise InputError(
            f"models must be among {', '.join(MODELS)} and include the primary ({primary})"
        )
    available = feature_sets(list(data.X.columns))
    if primary_set is None:
        primary_set = DEFAULT_PRIMARY_SET if DEFAULT_PRIMARY_SET in available else "all"
    sets = tuple(sets) if sets else tuple(available)
    missing = [name for name in {*sets, primary_set} if name not in available]
    if missing:
        raise InputError(
            f"feature set(s) {', '.join(sorted(missing))} have no columns in this table "
            f"(available: {', '.join(available)})"
        )
    if primary_set not in sets:
        sets = (primary_set, *sets)
    y = data.y
    if permute_labels:  # leakage alarm: AUC must come out near 0.5
        y = np.random.default_rng(budget.seed).permutation(y)
    predictions = pd.DataFrame(
        {
            "lesion_id": data.ids,
            "patient_id": data.groups,
            "pathology": np.where(y == 1, POSITIVE_CLASS, NEGATIVE_CLASS),
        }
    )
    summary = {}
    for feature_set in sets:
        for model in models:
            key = f"{model}/{feature_set}"
            X = data.X[available[feature_set]]
            result = nested_cv(X, y, data.groups, model, budget, jobs=jobs)
            probability = result.mean_probability(len(y))
            predictions[f"probability_{key}"] = probability
            calls = result.pooled_calls()
            rows = calls["row"].to_numpy()
            summary[key] = {
                "model": model,
                "feature_set": feature_set,
                "n_features": len(available[feature_set]),
                "primary": model == primary and feature_set == primary_set,
                "auc": auc_interval(y, probability, data.groups, seed=budget.seed).as_dict(),
                # Each outer fold's own calibrated threshold, from its inner out-of-fold
                # predictions; every repeat's calls pooled, resampled by patient.
                "at_threshold_rule": operating_point(
                    y[rows], calls["call"].to_numpy(float), data.groups[rows], seed=budget.seed
                ).as_dict(),
                "outer_folds": result.folds,
            }
    primary_key = f"{primary}/{primary_set}"
    evaluation_inputs = EvaluationInputs(
        y=y,
        score=predictions[f"probability_{primary_key}"].to_numpy(),
        groups=data.groups,
        reads=None,
        radiologist_score=None,
        is_probability=True,
    )
    evaluation = evaluate_predictions(evaluation_inputs, seed=budget.seed)
    metrics = {
        "primary": {"model": primary, "feature_set": primary_set, "key": primary_key},
        "feature_sets": {name: available[name] for name in sets},
        "config_sha256": config_sha256,
        "permuted_labels": permute_labels,
        "budget": dataclasses.asdict(budget),
        "models": summary,
        "primary_evaluation": evaluation,
    }
    rule = budget.threshold_rule
    rule_text = (
        f"tumour sensitivity target {rule.target:g}" if rule.kind == "sensitivity" else "Youden's J"
    )
    table_rows = "".join(
        f"<tr><td>{m} ({s['n_features']} features)"
        f"{' <strong>primary</strong>' if s['primary'] else ' (secondary)'}</td>"
        f"<td class='num'>{ci(s['auc'], 3)}</td>"
        f"<td class='num'>{ci(s['at_threshold_rule']['sensitivity'])}</td>"
        f"<td class='num'>{ci(s['at_threshold_rule']['specificity'])}</td></tr>"
        for m, s in summary.items()
    )
    comparison = {
        "title": "Model comparison (nested CV, out-of-fold)",
        "html": "<table><tr><th>Model / feature set</th><th>AUC (95% CI, patients)</th>"
        f"<th>Sensitivity at the rule ({rule_text})</th><th>Specificity at the rule</th></tr>"
        + table_rows
        + "</table><p class='note'>Probabilities are Platt-calibrated and thresholds"
        " chosen on each outer training fold's grouped inner out-of-fold predictions; the "
        "sensitivity actually achieved on the outer folds is shown with its interval.</p>",
    }
    html = render_evaluation_html(
        evaluation,
        evaluation_inputs,
        title=f"Training experiment: {primary_key} (primary; nested CV, out-of-fold)",
        synthetic=synthetic,
        extra_sections=[comparison],
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "predictions.csv") as tmp:
        predictions.to_csv(tmp, index=False)
    write_json(out / "metrics.json", metrics)
    write_text(out / "report.html", html)
    if track:
        from rnclassifier.tracking import log_experiment

        data_hash = hashlib.sha256(
            pd.util.hash_pandas_object(data.X, index=False).to_numpy().tobytes() + data.y.tobytes()
        ).hexdigest()
        metrics["mlflow_run_id"] = log_experiment(
            out,
            metrics,
            predictions,
            tracking_uri=tracking_uri,
            data_hash=data_hash,
            synthetic=synthetic,
            experiment=experiment,
            artifact_location=artifact_location,
        )
        write_json(out / "metrics.json", metrics)
    return metrics
