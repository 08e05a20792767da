"""Training experiments from a feature table: nested patient-grouped CV of each model and feature
set, out-of-fold predictions, metrics with patient-cluster intervals, the experiment report, and
the primary's final model (tuned by the same inner procedure on all lesions) as a model bundle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.atomic import atomic_file, write_json, write_text
from rnclassifier.cohort import NEGATIVE_CLASS, NON_PREDICTOR_COLUMNS, POSITIVE_CLASS
from rnclassifier.errors import InputError
from rnclassifier.evaluation import EvaluationInputs, evaluate_predictions
from rnclassifier.features.naming import parse_feature_column
from rnclassifier.modeling.feature_sets import DEFAULT_PRIMARY_SET, feature_sets
from rnclassifier.modeling.nested import (
    Budget,
    FittedModel,
    final_seed,
    fit_tuned,
    fold_settings,
    nested_cv,
    settings_digest,
)
from rnclassifier.modeling.pipeline import MODELS, SideTables, detach_side_tables, used_features
from rnclassifier.modeling.threshold import ThresholdRule, choose_threshold
from rnclassifier.report.html import render_evaluation_html
from rnclassifier.report.training import training_sections, tripod_items
from rnclassifier.stats.descriptive import table_one
from rnclassifier.stats.discrimination import auc_interval
from rnclassifier.stats.threshold import operating_point

logger = logging.getLogger(__name__)

__all__ = ["MODELS", "read_feature_table", "train_from_features"]

PRIMARY_MODEL = "xgboost"
#: Inside the output folder: finished outer folds (joblib pickles, local only), removed when the
#: run completes; a rerun of the same experiment on the same data resumes from them.
CHECKPOINT_FOLDER = ".checkpoint"
DEFAULT_BUDGET = Budget()


@dataclass(frozen=True)
class FeatureData:
    X: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray
    ids: np.ndarray
    #: The extraction sidecar when the table has one (settings, sequences, sites; no rows).
    provenance: dict[str, Any] | None = None
    #: Extraction's per-lesion mask perturbations (`<table>.perturb.parquet`), for ICC filtering.
    perturbed: pd.DataFrame | None = None
    #: Each lesion's site (scanner / institution) when the table has one: never a predictor.
    sites: np.ndarray | None = None
    #: Lesions the extraction kept as technical failures (`extract --allow-failures`): left
    #: out of training, counted in the flow.
    technical_failures: int = 0
    #: Blinded radiologist reads (1 tumour, 0 necrosis, NaN unread) and 1-5 scores when the
    #: table has them: never predictors; they fix the thresholds matched to the radiologists.
    reads: np.ndarray | None = None
    radiologist_score: np.ndarray | None = None

    def side_tables(self, *, harmonise: bool) -> SideTables:
        """What the fold pipelines look up by lesion ID; sites only when harmonising."""
        sites = pd.Series(self.sites, index=self.X.index) if harmonise else None
        return SideTables(self.perturbed, sites)

    def digest(self) -> str:
        """SHA-256 of the feature values and labels, the data hash of tracking and bundles."""
        values = pd.util.hash_pandas_object(self.X, index=False).to_numpy().tobytes()
        return hashlib.sha256(values + self.y.tobytes()).hexdigest()


def read_feature_table(
    path: str | Path,
    *,
    label: str = "pathology",
    group: str = "patient_id",
    id_column: str = "lesion_id",
    site: str = "site",
) -> FeatureData:
    """A feature table from any tool: ID, group, label, numeric features; any other
    non-numeric column is an error naming it. Reserved columns (site, radiologist reads and
    scores, pathology detail, reference standard, days to surgery) are never features."""
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
    from rnclassifier.features.extract import perturb_path, sidecar_path

    provenance = None
    if sidecar_path(path).is_file():
        try:
            provenance = json.loads(sidecar_path(path).read_text())
        except ValueError:
            raise InputError(f"{sidecar_path(path)}: not valid JSON") from None
    failed = _technical_failures(path, table, provenance)
    table = table.drop(index=failed)  # the index keeps the file's row positions for messages
    labels = table[label].astype(str).str.strip().str.lower()
    y = labels.map({POSITIVE_CLASS: 1, NEGATIVE_CLASS: 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0})
    problems = [
        f"{path}: row {i + 2}, column {label}: {v!r} is not tumor / necrosis / 1 / 0"
        for i, v in table[label].items()
        if pd.isna(y.loc[i])
    ]
    features = table.drop(columns=[id_column, group, label])
    sites = None
    if site in features:  # for harmonisation and subgroup reports, never a predictor
        column = features.pop(site)
        sites = np.array(
            [None if pd.isna(v) or not str(v).strip() else str(v).strip() for v in column],
            dtype=object,
        )
    reserved = {c: features.pop(c) for c in NON_PREDICTOR_COLUMNS if c in features}
    reads = scores = None
    if "radiologist_read" in reserved:
        reads, problems = _reads(path, reserved["radiologist_read"], problems)
    if "radiologist_score" in reserved:
        scores = pd.to_numeric(reserved["radiologist_score"], errors="coerce").to_numpy(float)
        problems += [
            f"{path}: row {i + 2}, column radiologist_score: {v!r} is not a number"
            for i, v, s in zip(table.index, reserved["radiologist_score"], scores, strict=True)
            if np.isnan(s) and not (pd.isna(v) or str(v).strip() == "")
        ]
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
    perturbed = None
    if perturb_path(path).is_file():
        perturbed = pd.read_parquet(perturb_path(path))
        if id_column not in perturbed:
            raise InputError(f"{perturb_path(path)}: missing column {id_column!r}")
        perturbed[id_column] = perturbed[id_column].astype(str)
    ids = table[id_column].astype(str)
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise InputError(
            f"{path}: row {i + 2}, column {id_column}: the same ID as an earlier row"
            for i in duplicated.index
        )
    # Indexed by lesion ID: the ICC filter finds each training lesion's perturbations by it.
    features.index = pd.Index(ids.to_numpy(), name=id_column)
    return FeatureData(
        features.astype(float),
        y.to_numpy(int),
        table[group].astype(str).to_numpy(),
        ids.to_numpy(),
        provenance,
        perturbed,
        sites,
        technical_failures=len(failed),
        reads=reads,
        radiologist_score=scores,
    )


def _reads(path: Path, column: pd.Series, problems: list[str]) -> tuple[np.ndarray, list[str]]:
    """Radiologist reads as 1 (tumour), 0 (necrosis), NaN (blank: not read)."""
    reads = np.full(len(column), np.nan)
    for j, (i, value) in enumerate(column.items()):
        text = "" if pd.isna(value) else str(value).strip().lower()
        if text in (POSITIVE_CLASS, "1", "1.0"):
            reads[j] = 1.0
        elif text in (NEGATIVE_CLASS, "0", "0.0"):
            reads[j] = 0.0
        elif text:
            problems = [
                *problems,
                f"{path}: row {i + 2}, column radiologist_read: {value!r} is not tumor / "
                "necrosis / blank",
            ]
    return reads, problems


def _technical_failures(
    path: Path, table: pd.DataFrame, provenance: dict[str, Any] | None
) -> list[int]:
    """Rows the sidecar lists as technical failures; each must hold no radiomics value, so
    that a sidecar of another table cannot drop good lesions."""
    failed = [int(f["position"]) for f in (provenance or {}).get("failed_rows", [])]
    radiomics = [c for c in table.columns if parse_feature_column(c) is not None]
    for position in failed:
        if position >= len(table) or table.iloc[position][radiomics].notna().any():
            raise InputError(
                f"{path}: row {position + 2} is listed as a technical failure in the sidecar but "
                "has radiomics values; the sidecar belongs to another table"
            )
    if failed:
        logger.warning(
            "%s: %d lesion(s) left out of training as technical failures of feature extraction",
            path,
            len(failed),
        )
    return [table.index[p] for p in failed]


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
    bundle: str | Path | None = None,
    bundle_name: str = "rnclassifier",
    overwrite_bundle: bool = False,
    optuna_storage: str | None = None,
    progress: bool = False,
    harmonise: bool = False,
    noise_alarm: bool = False,
) -> dict[str, Any]:
    """Nested CV of each model on each feature set; the primary (model, feature set) is declared
    before the run and reported whatever its rank. Writes `metrics.json`, `predictions.csv` and
    `report.html`, and the primary's model bundle to `bundle` when given (not for a
    permuted-label run, whose model means nothing). `optuna_storage` keeps each outer fold's
    study in a database (resumable, shareable by workers; not bit-reproducible)."""
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
    if harmonise:
        if data.sites is None:
            raise InputError("ComBat harmonisation needs each lesion's site: no site column")
        blank = [i for i, v in enumerate(data.sites) if v is None]
        if blank:
            raise InputError(
                f"row {i + 2}, column site: empty; ComBat harmonisation needs every lesion's site"
                for i in blank
            )
    side = data.side_tables(harmonise=harmonise)
    if bundle is not None and Path(bundle).exists() and not overwrite_bundle:
        raise InputError(f"{bundle}: already exists; choose another bundle folder or pass --force")
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
    # Optuna study names begin with the experiment name; nested_cv adds the digest of
    # everything that defines the folds, so only the same run on the same data resumes them.
    study_prefix = experiment + ("/permuted" if permute_labels else "")
    extra_settings = {"config_sha256": config_sha256, "permuted_labels": permute_labels}
    # Finished outer folds are kept here until the run completes, so a rerun resumes.
    checkpoints = Path(out) / CHECKPOINT_FOLDER
    summary = {}
    for feature_set in sets:
        for model in models:
            key = f"{model}/{feature_set}"
            X = data.X[available[feature_set]]
            settings = fold_settings(
                X, y, data.groups, model, budget, side=side, reads=data.reads, extra=extra_settings
            )
            run_id = settings_digest(settings)
            result = nested_cv(
                X,
                y,
                data.groups,
                model,
                budget,
                jobs=jobs,
                side=side,
                storage=optuna_storage,
                study_prefix=f"{study_prefix}/{key}",
                progress=key if progress else None,
                checkpoint=checkpoints / run_id,
                reads=data.reads,
                extra_settings=extra_settings,
            )
            if key == f"{primary}/{primary_set}":
                primary_result = result
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
            summary[key] |= _fold_fixed_points(
                result, y, data.groups, data.reads, full=key == f"{primary}/{primary_set}",
                seed=budget.seed,
            )  # fmt: skip
    primary_key = f"{primary}/{primary_set}"
    alarms = {}
    if noise_alarm:
        # Leakage alarm: as many pure-noise columns as the primary set (at most 100), the true
        # labels, the primary model and the whole pipeline. Must come out near AUC 0.5.
        rng = np.random.default_rng(budget.seed + 31)
        width = min(100, len(available[primary_set]))
        noise = pd.DataFrame(
            rng.normal(size=(len(y), width)),
            index=data.X.index,
            columns=[f"noise_{j:03d}" for j in range(width)],
        )
        result = nested_cv(noise, y, data.groups, primary, budget, jobs=jobs)
        probability = result.mean_probability(len(y))
        alarms["pure_noise_features"] = {
            "n_features": width,
            "auc": auc_interval(y, probability, data.groups, seed=budget.seed).as_dict(),
            "expected": "0.5 (its interval should contain 0.5)",
        }
    evaluation_inputs = EvaluationInputs(
        y=y,
        score=predictions[f"probability_{primary_key}"].to_numpy(),
        groups=data.groups,
        reads=data.reads,
        radiologist_score=data.radiologist_score,
        is_probability=True,
    )
    # The report's calls: each lesion's call in the first repeat, at the threshold its outer
    # fold fixed on its training part (never a threshold chosen on the lesions judged).
    first = primary_result.predictions.query("repeat == 0")
    fold_calls = np.full(len(y), np.nan)
    fold_calls[first["row"].to_numpy()] = first["call"].to_numpy(float)
    evaluation = evaluate_predictions(
        evaluation_inputs,
        seed=budget.seed,
        calls=fold_calls,
        calls_from="each outer fold's own threshold (the rule, fixed on its training part), "
        "first repeat",
    )
    if "radiologist_matched" in summary[primary_key]:
        evaluation["radiologists"]["prespecified"] = {
            "source": "each outer fold's training part, applied to its test fold",
            **summary[primary_key]["radiologist_matched"],
        }
    # Lesions whose extraction failed (`extract --allow-failures`) have no out-of-fold
    # prediction: the STARD flow counts them, the figures are on the lesions that have one.
    evaluation["flow"]["lesions"] += data.technical_failures
    evaluation["flow"]["technical_failures"] += data.technical_failures
    metrics = {
        "primary": {"model": primary, "feature_set": primary_set, "key": primary_key},
        "feature_sets": {name: available[name] for name in sets},
        "config_sha256": config_sha256,
        "data_sha256": data.digest(),
        "synthetic": synthetic,
        "permuted_labels": permute_labels,
        "budget": dataclasses.asdict(budget),
        "harmonisation": "combat by site" if harmonise else None,
        # The backend only: a database URL can hold a password.
        "optuna_storage": optuna_storage.split(":", 1)[0] if optuna_storage else "in-memory",
        "models": summary,
        "leakage_alarms": alarms,
        "primary_evaluation": evaluation,
    }
    X_primary = data.X[available[primary_set]]
    final = shap = None
    if not permute_labels:
        from rnclassifier.explain import SHAP_METHODS, shap_summary, shap_values

        # The final model: the same inner procedure as every outer fold, on all lesions.
        extra = {**extra_settings, "final": True}
        settings = fold_settings(
            X_primary, y, data.groups, primary, budget, side=side, reads=data.reads, extra=extra
        )
        final = fit_tuned(
            X_primary,
            y,
            data.groups,
            primary,
            budget,
            final_seed(budget),
            side,
            optuna_storage,
            f"{study_prefix}/{primary_key}/{settings_digest(settings)}/final",
            reads=data.reads,
            settings=settings,
        )
        shap = shap_summary(shap_values(final.pipeline, X_primary, primary))
        metrics["final_model"] = {
            "params": final.params,
            "threshold": final.threshold,
            "over_confidence_check": _over_confidence_check(first, y),
            "used_features": used_features(final.pipeline),
            "shap_method": SHAP_METHODS[primary],
            "shap_summary": shap.to_dict("records"),
        }
    clinical = [c for c in data.X.columns if parse_feature_column(c) is None]
    cohort_table = table_one(data.X, y, data.groups, clinical)
    metrics["table_one"] = cohort_table
    missing = data.X[available[primary_set]].isna()
    tripod = tripod_items(
        metrics,
        technical_failures=data.technical_failures,
        n_lesions=len(y),
        n_patients=len(np.unique(data.groups)),
        n_tumour=int(y.sum()),
        n_candidates=len(available[primary_set]),
        missing={
            "n_features": missing.shape[1],
            "n_features_with_missing": int(missing.any().sum()),
            "max_fraction": float(missing.mean().max()) if missing.shape[1] else 0.0,
        },
        sample_size=_sample_size(
            len(available[primary_set]), float(y.mean()), summary[primary_key]["auc"]["estimate"]
        ),
        synthetic=synthetic,
    )
    metrics["tripod"] = dict(tripod)
    html = render_evaluation_html(
        evaluation,
        evaluation_inputs,
        title=f"Training experiment: {primary_key} (primary; nested CV, out-of-fold)",
        synthetic=synthetic,
        extra_sections=training_sections(
            metrics,
            shap_summary=None if shap is None else shap.to_dict("records"),
            shap_method=metrics.get("final_model", {}).get("shap_method"),
            table_one=cohort_table,
            tripod=tripod,
        ),
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "predictions.csv") as tmp:
        predictions.to_csv(tmp, index=False)
    write_json(out / "metrics.json", metrics)
    write_text(out / "report.html", html)
    if bundle is not None and final is not None:
        from rnclassifier.bundle import write_bundle

        write_bundle(
            bundle,
            **_bundle_contents(
                data, X_primary, y, final, primary_result.fitted, metrics, bundle_name
            ),
            overwrite=overwrite_bundle,
        )
        metrics["bundle"] = str(bundle)
        write_json(out / "metrics.json", metrics)
    if track:
        from rnclassifier.tracking import log_experiment

        metrics["mlflow_run_id"] = log_experiment(
            out,
            metrics,
            predictions,
            tracking_uri=tracking_uri,
            data_hash=data.digest(),
            synthetic=synthetic,
            experiment=experiment,
            artifact_location=artifact_location,
            bundle=None if bundle is None or final is None else Path(bundle),
        )
        write_json(out / "metrics.json", metrics)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return metrics


def _over_confidence_check(first_repeat: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    """The final model is refit on all lesions and keeps a Platt calibration fitted to inner
    out-of-fold models that saw a part of them. Each outer fold does exactly that on its
    training part, so the calibration slope of the outer test predictions (first repeat, each
    lesion once) shows whether the procedure over-states confidence (slope < 1)."""
    from rnclassifier.stats.calibration import calibration_summary

    rows = first_repeat["row"].to_numpy()
    summary = calibration_summary(y[rows], first_repeat["probability"].to_numpy(float))
    low, high = summary["slope_ci_wald_lesion_level"]
    return {
        "slope": summary["slope"],
        "slope_ci_wald_lesion_level": [low, high],
        "intercept": summary["intercept"],
        "reading": "over-confident (slope below 1)"
        if high < 1
        else "under-confident (slope above 1)"
        if low > 1
        else "no evidence of over- or under-confidence (the slope's interval holds 1)",
        "how": "outer test predictions of models refit on their whole training part and "
        "calibrated on its inner out-of-fold predictions, as the final model is",
    }


def _fold_fixed_points(
    result: Any,
    y: np.ndarray,
    groups: np.ndarray,
    reads: np.ndarray | None,
    *,
    full: bool,
    seed: int,
) -> dict[str, Any]:
    """Operating points whose thresholds each outer fold fixed on its training part and applied
    to its test fold (calls pooled over repeats): the indeterminate zone, and the thresholds
    matched to the radiologists' sensitivity and specificity. With `full` (the primary),
    patient-bootstrap intervals and the paired comparison; otherwise counts and estimates."""
    from rnclassifier.evaluation import matched_comparison
    from rnclassifier.stats.threshold import proportions

    frame = result.predictions
    rows = frame["row"].to_numpy()
    yr, gr = y[rows], groups[rows]

    def point(calls: np.ndarray) -> dict[str, Any]:
        if full:
            return operating_point(yr, calls, gr, seed=seed).as_dict()
        return {
            name: {"estimate": k / n if n else None, "count": [k, n]}
            for name, (k, n) in proportions(yr, calls).items()
        } | {"indeterminate_fraction": float(np.isnan(calls).mean())}

    out: dict[str, Any] = {
        "indeterminate_zone": {
            "fold_zones": [f["indeterminate_zone"] for f in result.folds],
            **point(frame["zone_call"].to_numpy(float)),
        }
    }
    if reads is None or not any(f.get("radiologist_matched") for f in result.folds):
        return out
    matched: dict[str, Any] = {}
    for name in ("sensitivity", "specificity"):
        calls = frame.get(f"matched_{name}_call", pd.Series(np.nan, index=frame.index))
        calls = calls.to_numpy(float)
        entry = {
            "matched_to": f"radiologist_{name}",
            "folds": [
                {"repeat": f["repeat"], "fold": f["fold"], **f["radiologist_matched"][name]}
                for f in result.folds
                if f.get("radiologist_matched")
            ],
        }
        if full:
            entry |= matched_comparison(
                yr, calls, gr, reads[rows],
                threshold_source="each outer fold's training part (inner out-of-fold "
                "probabilities of its read lesions)",
                once=(frame["repeat"] == 0).to_numpy(), seed=seed,
            )  # fmt: skip
        else:
            read = np.isfinite(reads[rows])
            entry["model_on_read_lesions"] = point(np.where(read, calls, np.nan))
        matched[name] = entry
    out["radiologist_matched"] = matched
    return out


def _sample_size(parameters: int, prevalence: float, c_statistic: float) -> dict[str, Any] | None:
    """Riley's minimum sample size at the AUC this run achieved (None when undefined)."""
    from rnclassifier.stats.sample_size import minimum_sample_size

    if not (0.5 < c_statistic < 1 and 0 < prevalence < 1 and parameters > 0):
        return None
    result = minimum_sample_size(parameters, prevalence, c_statistic=c_statistic).as_dict()
    return {
        **result,
        "parameters": parameters,
        "prevalence": prevalence,
        "c_statistic": c_statistic,
    }


def _bundle_contents(
    data: FeatureData,
    X: pd.DataFrame,
    y: np.ndarray,
    final: FittedModel,
    ensemble: list[FittedModel],
    metrics: dict[str, Any],
    name: str,
) -> dict[str, Any]:
    """Everything scoring needs, as aggregates (DESIGN.md's bundle contract)."""
    from rnclassifier.modeling.ood import fit_reference_with_cutoff
    from rnclassifier.report.model_card import model_card

    primary = metrics["primary"]
    used = used_features(final.pipeline)
    budget = metrics["budget"]
    calibrated_inner = final.calibrator.transform(final.inner_probability)
    provenance = data.provenance or {}
    meta = {
        "name": name,
        "synthetic": metrics["synthetic"],
        "model": primary["model"],
        "feature_set": primary["feature_set"],
        "features": {"input": list(X.columns), "used": used},
        "params": final.params,
        "thresholds": {
            "rule": {**budget["threshold_rule"], "value": final.threshold},
            "youden": {
                "kind": "youden",
                "value": choose_threshold(calibrated_inner, y, ThresholdRule("youden")),
            },
            "indeterminate": {
                "low": final.zone[0],
                "high": final.zone[1],
                "meaning": "necrosis below low (the rule's threshold), tumour at or above high "
                "(the rule's target as specificity), indeterminate between",
            },
            **({"radiologist_matched": final.matched} if final.matched is not None else {}),
            "chosen_on": "grouped inner-CV out-of-fold probabilities of the final tuning run",
        },
        "training": {
            "n_lesions": len(y),
            "n_patients": len(np.unique(data.groups)),
            "prevalence": float(np.mean(y)),
            "data_sha256": metrics["data_sha256"],
            "config_sha256": metrics["config_sha256"],
            "budget": budget,
        },
        "reference": fit_reference_with_cutoff(X[used], data.groups),
        "table_one": metrics["table_one"],
        "sites": (
            pd.Series(data.sites).dropna().value_counts().sort_index().to_dict()
            if data.sites is not None
            else provenance.get("sites")
        ),
        "harmonisation": metrics["harmonisation"],
        "sequences": provenance.get("sequences"),
        "extraction": provenance.get("config"),
        "feature_table_versions": provenance.get("versions"),
        "shap": metrics["final_model"]["shap_method"],
        "shap_summary": metrics["final_model"]["shap_summary"],
        "metrics": {
            "nested_cv_auc": metrics["models"][primary["key"]]["auc"],
            "at_threshold_rule": metrics["models"][primary["key"]]["at_threshold_rule"],
            "calibration": {
                k: v
                for k, v in metrics["primary_evaluation"].get("calibration", {}).items()
                if k != "curve"
            },
        },
        "tripod": metrics["tripod"],
    }
    return {
        "meta": meta,
        "pipeline": detach_side_tables(final.pipeline),
        "calibrator": final.calibrator,
        "ensemble": [
            (detach_side_tables(member.pipeline), member.calibrator) for member in ensemble
        ],
        "model_card": model_card(meta),
    }
