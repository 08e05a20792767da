"""External validation of a frozen model: each cohort scored by the bundle exactly as it is
(features, preprocessing, calibration and threshold from the bundle; nothing refitted), then
judged against pathology and the cohort's own radiologists, with case mix and shift beside.

Optional logistic recalibration is reported beside the frozen result, never instead of it: its
metrics come from patient-grouped cross-validation on the external cohort, so the recalibrated
calibration is not judged on the lesions it was fitted to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from rnclassifier.bundle import ModelBundle, load_bundle
from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS, load_cohort
from rnclassifier.columns import ColumnKind, columns_of_kind
from rnclassifier.errors import InputError
from rnclassifier.evaluation import EvaluationInputs, evaluate_predictions, matched_comparison
from rnclassifier.modeling.threshold import Calibrator
from rnclassifier.scoring import check_manifest, predict_cohort
from rnclassifier.stats.calibration import calibration_summary
from rnclassifier.stats.descriptive import table_one
from rnclassifier.stats.discrimination import MIN_PER_CLASS, auc_interval
from rnclassifier.stats.threshold import calls_at, operating_point
from rnclassifier.version import __version__

SIZE_BANDS_CC = ((0.0, 1.0), (1.0, 5.0), (5.0, np.inf))


def standardised_mean_differences(
    reference: dict[str, Any], features: pd.DataFrame
) -> dict[str, float]:
    """(external mean - training mean) / pooled SD, for each continuous model feature; |SMD|
    above 0.1 is the usual mark of a meaningful shift (Austin 2009)."""
    out = {}
    for j, name in enumerate(reference.get("features", [])):
        values = features[name].to_numpy(float)
        values = values[np.isfinite(values)]
        if len(values) < 2:
            continue
        mean, sd = float(reference["mean"][j]), float(reference["sd"][j])
        pooled = np.sqrt((sd**2 + values.std(ddof=1) ** 2) / 2)
        out[name] = float((values.mean() - mean) / pooled) if pooled > 0 else 0.0
    return out


def _subgroup(y: np.ndarray, p: np.ndarray, groups: np.ndarray, seed: int) -> dict[str, Any]:
    scored = np.isfinite(p)  # technical failures have no probability
    y, p, groups = y[scored], p[scored], groups[scored]
    n_t, n_n = int(y.sum()), int((1 - y).sum())
    entry: dict[str, Any] = {"n_tumour": n_t, "n_necrosis": n_n}
    if min(n_t, n_n) >= MIN_PER_CLASS:
        entry["auc"] = auc_interval(y, p, groups, seed=seed, n_resamples=1000).as_dict()
    return entry


def _recalibration(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, *, folds: int = 5, seed: int = 0
) -> tuple[Calibrator, np.ndarray, int]:
    """Logistic recalibration (Platt on logit p; slope never negative): the one fitted on the
    whole cohort (what a site would deploy; monotone, so the AUC is the frozen model's), and
    patient-grouped, class-stratified cross-validated probabilities to judge its calibration
    honestly. The third value counts folds whose training part held one class only: their
    lesions keep the frozen probabilities (reported, never silent)."""
    deployed = Calibrator("platt").fit(p, y)
    out = np.full(len(y), np.nan)
    folds = max(2, min(folds, len(np.unique(groups))))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    frozen = 0
    for train, test in splitter.split(p, y, groups):
        if len(np.unique(y[train])) < 2:
            out[test] = p[test]
            frozen += 1
            continue
        out[test] = Calibrator("platt").fit(p[train], y[train]).transform(p[test])
    return deployed, out, frozen


def _at_stored_thresholds(
    bundle: ModelBundle,
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    reads: np.ndarray | None,
    seed: int,
) -> dict[str, Any]:
    """The frozen model at every threshold the bundle stores (fixed in training, never on this
    cohort): the indeterminate zone and the radiologist-matched pair, each threshold recorded
    at full precision."""
    low, high = bundle.zone
    matched = bundle.meta.thresholds.radiologist_matched or {}
    out: dict[str, Any] = {
        "thresholds_applied": {
            "rule": bundle.threshold,
            "indeterminate_zone": [low, high],
            "radiologist_matched": {name: m["threshold"] for name, m in matched.items()},
        },
        "indeterminate_zone": operating_point(
            y, calls_at(p, low, high), groups, seed=seed
        ).as_dict(),
    }
    if reads is not None and matched:
        out["radiologist_matched"] = {
            name: {
                "threshold": m["threshold"],
                f"training_radiologist_{name}": m[f"radiologist_{name}"],
                **matched_comparison(
                    y,
                    calls_at(p, m["threshold"]),
                    groups,
                    reads,
                    threshold_source="the bundle (fixed in training)",
                    seed=seed,
                ),
            }
            for name, m in matched.items()
        }
    return out


def validate_cohort(
    bundle: ModelBundle,
    manifest: str | Path,
    *,
    recalibrate: bool = False,
    cache_dir: str | Path | None = None,
    jobs: int = 1,
    seed: int = 0,
    allow_failures: bool = False,
) -> tuple[dict[str, Any], EvaluationInputs, pd.DataFrame]:
    """The frozen model on one cohort: its metrics, the evaluation inputs (for the figures)
    and the per-lesion results. Technical failures (`allow_failures`) have no probability:
    the STARD flow counts them, thresholds treat them as indeterminate, and the AUCs of
    sensitivity analyses, subgroups and recalibration are on the lesions with a score."""
    cohort = load_cohort(manifest, require_pathology=True)
    results, features, _ = predict_cohort(
        bundle, cohort, cache_dir=cache_dir, jobs=jobs, allow_failures=allow_failures
    )
    lesions = cohort.lesions.reset_index(drop=True)
    inputs = _evaluation_inputs(lesions, results["probability"].to_numpy(float))
    y, p, groups = inputs.y, inputs.score, inputs.groups
    metrics = evaluate_predictions(inputs, (bundle.threshold,), seed=seed)
    stored = _at_stored_thresholds(bundle, y, p, groups, inputs.reads, seed)
    if "radiologist_matched" in stored:  # beside the radiologists, where the report reads it
        metrics["radiologists"]["prespecified"] = {
            "source": "the bundle: fixed in training, never on this cohort",
            **stored.pop("radiologist_matched"),
        }
    metrics |= stored
    metrics["sensitivity_analyses"] = _sensitivity_analyses(lesions, y, p, groups, seed)
    metrics["subgroups"] = _subgroups(lesions, results, y, p, groups, seed)
    metrics |= _case_mix_and_shift(bundle, features, results, y, groups)
    if recalibrate:
        metrics["recalibrated"] = _recalibrated(y, p, groups, seed)
    return metrics, inputs, results


def _evaluation_inputs(lesions: pd.DataFrame, p: np.ndarray) -> EvaluationInputs:
    """Pathology, the probabilities and the cohort's own radiologists' reads and scores."""
    y = (lesions["pathology"] == POSITIVE_CLASS).to_numpy(int)
    groups = lesions["patient_id"].astype(str).to_numpy()
    reads = None
    if "radiologist_read" in lesions:
        reads = lesions["radiologist_read"].map({POSITIVE_CLASS: 1.0, NEGATIVE_CLASS: 0.0})
        reads = reads.astype(float).to_numpy()
    scores = None
    if "radiologist_score" in lesions:
        scores = pd.to_numeric(lesions["radiologist_score"]).astype(float).to_numpy()
    return EvaluationInputs(y, p, groups, reads, scores, is_probability=True)


def _sensitivity_analyses(
    lesions: pd.DataFrame, y: np.ndarray, p: np.ndarray, groups: np.ndarray, seed: int
) -> dict[str, Any]:
    """The same figures on the lesions a stricter reference standard keeps (where the cohort
    has the columns to say which)."""
    sensitivity = {}
    if "reference_standard" in lesions:
        rows = (lesions["reference_standard"] == "pathology").to_numpy()
        sensitivity["pathology_confirmed_only"] = _subgroup(y[rows], p[rows], groups[rows], seed)
    if "pathology_detail" in lesions:
        rows = (lesions["pathology_detail"] != "mixed").to_numpy()
        sensitivity["mixed_lesions_excluded"] = _subgroup(y[rows], p[rows], groups[rows], seed)
    if "days_scan_to_surgery" in lesions:
        days = pd.to_numeric(lesions["days_scan_to_surgery"]).to_numpy(float)
        rows = np.isfinite(days) & (days <= 30)
        sensitivity["surgery_within_30_days"] = _subgroup(y[rows], p[rows], groups[rows], seed)
    return sensitivity


def _subgroups(
    lesions: pd.DataFrame,
    results: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Performance by site, histology, sequences available and lesion size."""
    subgroups: dict[str, dict[str, Any]] = {}
    for column in ("site", "histology"):
        if column in lesions:
            subgroups[column] = {
                str(value): _subgroup(y[rows], p[rows], groups[rows], seed)
                for value in sorted(lesions[column].dropna().unique())
                if (rows := (lesions[column] == value).to_numpy()).any()
            }
    optional = [c for c in ("flair", "t2", "t1c_prior") if c in lesions]
    if optional:
        available = (
            lesions[optional]
            .notna()
            .apply(lambda r: "+".join(["t1c", *(c for c in optional if r[c])]), axis=1)
        )
        subgroups["sequences_available"] = {
            value: _subgroup(y[rows], p[rows], groups[rows], seed)
            for value in sorted(available.unique())
            if (rows := (available == value).to_numpy()).any()
        }
    volume = results["lesion_volume_cc"].to_numpy(float)
    subgroups["lesion_volume_cc"] = {
        f"{low:g}-{high:g}" if np.isfinite(high) else f">{low:g}": _subgroup(
            y[rows], p[rows], groups[rows], seed
        )
        for low, high in SIZE_BANDS_CC
        if (rows := (volume >= low) & (volume < high)).any()
    }
    return subgroups


def _case_mix_and_shift(
    bundle: ModelBundle,
    features: pd.DataFrame,
    results: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
) -> dict[str, Any]:
    """Case mix and shift against the training cohort (the bundle's aggregates)."""
    covariates = bundle.meta.table_one["all"]["covariates"]
    clinical = [
        c
        for c in columns_of_kind(features.columns, ColumnKind.CLINICAL, ColumnKind.OTHER)
        if c in covariates
    ]
    return {
        "case_mix": {
            "external": table_one(features.reset_index(drop=True), y, groups, clinical),
            "training": bundle.meta.table_one,
        },
        "shift": {
            "standardised_mean_difference": standardised_mean_differences(
                bundle.meta.reference.model_dump(), features
            ),
            "out_of_distribution_share": float(results["out_of_distribution"].mean()),
            "n_out_of_distribution": int(results["out_of_distribution"].sum()),
            # The two reasons apart: an external site is unseen by definition, so the images'
            # distance is what says whether the model's features still look like its training.
            "n_beyond_distance_cutoff": int(results["beyond_distance_cutoff"].sum()),
            "n_site_unseen": int(results["site_unseen"].sum()),
        },
    }


def _recalibrated(y: np.ndarray, p: np.ndarray, groups: np.ndarray, seed: int) -> dict[str, Any]:
    scored = np.isfinite(p)
    y, p, groups = y[scored], p[scored], groups[scored]
    deployed, cross_validated, frozen_folds = _recalibration(y, p, groups, seed=seed)
    recalibrated = deployed.transform(p)
    return {
        "method": "logistic recalibration (Platt on logit p, slope >= 0); calibration "
        "judged by patient-grouped, class-stratified 5-fold cross-validation on this cohort",
        "parameters": deployed.to_dict(),
        "auc": auc_interval(y, recalibrated, groups, seed=seed).as_dict(),
        "calibration": calibration_summary(y, cross_validated),
        # Folds whose training part held one class: their lesions kept the frozen p.
        "folds_left_frozen": frozen_folds,
    }


def validate(
    bundle_path: str | Path | ModelBundle,
    cohorts: list[str | Path],
    out: str | Path,
    *,
    recalibrate: bool = False,
    site_adapt: bool = False,
    cache_dir: str | Path | None = None,
    jobs: int = 1,
    seed: int = 0,
    allow_failures: bool = False,
    synthetic: bool | None = None,
    track: bool = True,
    tracking_uri: str | None = None,
    experiment: str | None = None,
) -> dict[str, Any]:
    """Validate the frozen bundle (a folder, or one already loaded) on each cohort; write
    `out/metrics.json`, `out/report.html` and per cohort `out/<name>/predictions.csv`."""
    from rnclassifier.atomic import atomic_file, write_json, write_text
    from rnclassifier.report.validation import render_validation_html

    bundle = bundle_path if isinstance(bundle_path, ModelBundle) else load_bundle(bundle_path)
    if site_adapt:
        raise InputError(
            "--site-adapt: label-free site adaptation is not supported by this version "
            "(the frozen result and --recalibrate are)"
        )
    # Every manifest is checked before any extraction starts.
    for manifest in cohorts:
        check_manifest(bundle, load_cohort(manifest, require_pathology=True))
    out = Path(out)
    document = _document(bundle)
    sections = {}
    for name, manifest in zip(_cohort_names(cohorts), cohorts, strict=True):
        metrics, inputs, results = validate_cohort(
            bundle, manifest, recalibrate=recalibrate, cache_dir=cache_dir, jobs=jobs,
            seed=seed, allow_failures=allow_failures,
        )  # fmt: skip
        document["cohorts"][name] = metrics
        sections[name] = (metrics, inputs)
        (out / name).mkdir(parents=True, exist_ok=True)
        with atomic_file(out / name / "predictions.csv") as tmp:
            results.to_csv(tmp, index=False)
    is_synthetic = bundle.meta.synthetic if synthetic is None else synthetic
    html = render_validation_html(document, sections, synthetic=is_synthetic)
    write_text(out / "report.html", html)
    if track:
        from rnclassifier.tracking import log_validation

        run_id, linked = log_validation(
            out,
            document,
            data_hash=bundle.meta.training.data_sha256,
            tracking_uri=tracking_uri,
            experiment=experiment or f"{bundle.meta.name}-validation",
        )
        document["mlflow"] = {"run_id": run_id, "registered_model_version": linked}
    write_json(out / "metrics.json", document)
    return document


def _document(bundle: ModelBundle) -> dict[str, Any]:
    """metrics.json's frame: the frozen model as the bundle describes it."""
    return {
        "model": {
            "name": bundle.meta.name,
            "model": bundle.meta.model,
            "feature_set": bundle.meta.feature_set,
            "threshold": bundle.threshold,
            "indeterminate_zone": list(bundle.zone),
            "training_prevalence": bundle.meta.training.prevalence,
            "training_auc": bundle.meta.metrics.nested_cv_auc,
            "synthetic": bundle.meta.synthetic,
        },
        "rnclassifier_version": __version__,
        "frozen": "features, preprocessing, calibration and threshold from the bundle; "
        "nothing refitted on the external cohorts",
        "cohorts": {},
    }


def _cohort_names(cohorts: list[str | Path]) -> list[str]:
    """A folder name per cohort: the manifest's parent folder or file name, made unique."""
    names: list[str] = []
    for manifest in cohorts:
        path = Path(manifest)
        base = path.stem if path.stem != "cohort" else path.resolve().parent.name
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names
