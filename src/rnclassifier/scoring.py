"""Scoring new lesions against a frozen model bundle: one case from the command line, or many
from a cohort manifest.

The case goes through the same manifest validation and extraction code as training, with the
extraction config stored in the bundle narrowed to the features the model uses. The result is
a calibrated probability at the training prevalence (optionally shifted to another, flagged),
the call at the bundle's threshold, the spread of the CV ensemble, the top SHAP contributions,
input-quality facts and out-of-distribution flags. Nothing that identifies the patient is
written: no IDs, names, dates or paths.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from rnclassifier.bundle import INDETERMINATE, MANIFEST_FILE, ModelBundle, load_bundle
from rnclassifier.cohort import (
    CLINICAL_COLUMNS,
    COLUMNS,
    KNOWN_SEQUENCES,
    NEGATIVE_CLASS,
    POSITIVE_CLASS,
    PRIOR_SUFFIX,
    SERIES_SUFFIX,
    Cohort,
    cohort_from_rows,
)
from rnclassifier.errors import InputError
from rnclassifier.features.restrict import Requirements, config_from_record, requirements
from rnclassifier.features.restrict import restricted_config as narrow
from rnclassifier.modeling.ood import distance
from rnclassifier.version import __version__

RESEARCH_USE = "Research use only: not a diagnosis and not for clinical decisions."
SOURCE = "command line"
TOP_CONTRIBUTIONS = 8


@dataclass
class CaseInputs:
    """One lesion as given on the command line (the manifest's columns, without IDs)."""

    images: dict[str, str]  # sequence -> path, t1c first
    mask: str
    roi_name: str | None = None
    mask_label: int | None = None
    brain_mask: str | None = None
    prior_images: dict[str, str] = field(default_factory=dict)
    mask_prior: str | None = None
    months_between_scans: float | None = None
    site: str | None = None
    clinical: dict[str, str] = field(default_factory=dict)
    #: image column (t1c, t1c_prior, ...) -> which series of a DICOM study folder it is
    series: dict[str, str] = field(default_factory=dict)


def bundle_requirements(bundle: ModelBundle) -> Requirements:
    return requirements(bundle.used_features)


def check_case(
    case: CaseInputs, needs: Requirements, *, allow_imputation: bool
) -> tuple[list[str], list[str]]:
    """Every input the model needs and the case lacks, as problems (one each) — or, for
    covariates with `allow_imputation`, as the list of covariates to impute. Extra covariates
    are returned as warnings."""
    problems = []
    for sequence in needs.sequences:
        if sequence not in case.images:
            problems.append(f"--{sequence}: missing; the model uses features of this sequence")
    if needs.needs_prior:
        for sequence in needs.prior_sequences:
            if sequence not in case.prior_images:
                problems.append(
                    f"--{sequence}{PRIOR_SUFFIX.replace('_', '-')}: missing; the model uses "
                    "delta features of the prior scan"
                )
        if case.mask_prior is None:
            problems.append("--mask-prior: missing; the model uses delta features")
        if case.months_between_scans is None:
            problems.append("--months-between-scans: missing; the model uses growth rates")
    imputed = []
    for covariate in needs.covariates:
        if covariate in case.clinical:
            continue
        if allow_imputation:
            imputed.append(covariate)
            continue
        vocabulary = COLUMNS[covariate].vocabulary
        allowed = f" (one of {', '.join(vocabulary)})" if vocabulary else ""
        problems.append(
            f"--clinical {covariate}=VALUE: missing; the model uses it{allowed} "
            "(or pass --allow-imputation)"
        )
    unknown = [k for k in case.clinical if k not in CLINICAL_COLUMNS]
    problems += [
        f"--clinical {k}: not a clinical covariate (known: {', '.join(CLINICAL_COLUMNS)})"
        for k in unknown
    ]
    if problems:
        raise InputError(problems)
    return imputed, [k for k in case.clinical if k not in needs.covariates]


def case_cohort(case: CaseInputs) -> Cohort:
    """The case as a one-row manifest, validated by the same code as a cohort file; problems
    name the command-line flag."""
    cells: dict[str, str] = {"patient_id": "case", "lesion_id": "case"}
    cells |= case.images
    cells["mask"] = case.mask
    cells |= {f"{s}{PRIOR_SUFFIX}": p for s, p in case.prior_images.items()}
    optional = {
        "roi_name": case.roi_name,
        "mask_label": case.mask_label,
        "brain_mask": case.brain_mask,
        "mask_prior": case.mask_prior,
        "months_between_scans": case.months_between_scans,
        "site": case.site,
    }
    cells |= {k: str(v) for k, v in optional.items() if v is not None}
    cells |= {f"{image}{SERIES_SUFFIX}": selector for image, selector in case.series.items()}
    cells |= case.clinical
    header = list(cells)
    try:
        return cohort_from_rows(
            header,
            [(1, [str(cells[h]) for h in header])],
            source=Path(SOURCE),
            base=Path.cwd(),
            sequences=[s for s in case.images if s not in KNOWN_SEQUENCES],
        )
    except InputError as error:
        raise InputError([_flag_problem(p) for p in error.problems]) from None


def _flag_problem(problem: str) -> str:
    """'command line: row 1, column histology: ...' -> '--clinical histology: ...'."""
    match = re.match(rf"{SOURCE}: row 1, column (\w+): (.*)", problem)
    if not match:
        return problem.replace(f"{SOURCE}: ", "")
    column, text = match.groups()
    flag = f"--clinical {column}" if column in CLINICAL_COLUMNS else f"--{column.replace('_', '-')}"
    return f"{flag}: {text}"


def scoring_features(bundle: ModelBundle) -> list[str]:
    """The final model's features, then those only CV-ensemble models read that come from the
    same inputs (sequences, prior scan, covariates): extracted too, so the reported spread is
    the ensemble's own rather than members reading imputed values. A member's feature that
    needs an input the final model does not is left to that member's imputer."""
    from rnclassifier.modeling.pipeline import used_features

    used = bundle.used_features
    needs = requirements(used)
    extra: list[str] = []
    for pipeline, _ in bundle.ensemble:
        for column in used_features(pipeline):
            if column in used or column in extra:
                continue
            member = requirements([column])
            if (
                set(member.sequences) <= set(needs.sequences)
                and set(member.prior_sequences) <= set(needs.prior_sequences)
                and set(member.covariates) <= set(needs.covariates)
            ):
                extra.append(column)
    return [*used, *extra]


def extract_for_bundle(
    bundle: ModelBundle,
    cohort: Cohort,
    *,
    cache_dir: str | Path | None = None,
    jobs: int = 1,
    allow_failures: bool = False,
) -> tuple[pd.DataFrame, list[dict[str, Any]], list[int]]:
    """The features the model and its CV ensemble use (`scoring_features`, nothing more), each
    lesion's diagnostics, and the positions of lesions kept as technical failures (only with
    `allow_failures`)."""
    from rnclassifier.features.extract import extract_features

    if not bundle.meta.get("extraction"):
        raise InputError(f"{bundle.path}: the bundle records no extraction config")
    config = narrow(config_from_record(bundle.meta["extraction"]), scoring_features(bundle))
    table = extract_features(
        cohort, config, jobs=jobs, cache_dir=cache_dir, allow_failures=allow_failures
    )
    failed = [f["position"] for f in table.sidecar["failed_rows"]]
    return table.table, table.sidecar["lesions"], failed


def predict(
    bundle: ModelBundle,
    features: pd.DataFrame,
    *,
    sites: Any = None,
    prevalence: float | None = None,
) -> dict[str, Any]:
    """Probabilities, calls, ensemble spread and out-of-distribution facts for every row."""
    probability = bundle.probability(features, sites)
    members = bundle.ensemble_probabilities(features, sites) if bundle.ensemble else None
    training_prevalence = bundle.meta["training"]["prevalence"]
    out: dict[str, Any] = {"probability": probability}
    if prevalence is not None:
        # Bayes' rule on the odds: the likelihood ratio the model learned, another prior.
        shift = logit(prevalence) - logit(training_prevalence)
        out["probability_at_prevalence"] = expit(
            logit(np.clip(probability, 1e-9, 1 - 1e-9)) + shift
        )
        # The pre-specified threshold moved by the same shift: the shifted probability is read
        # against it, so the call (made at the training prevalence) is the same on both scales.
        out["threshold_at_prevalence"] = float(expit(logit(bundle.threshold) + shift))
    out["call"] = bundle.calls(probability)
    if prevalence is not None:
        out["zone_at_prevalence"] = [
            float(expit(logit(t) + shift)) if 0 < t < 1 else float(t) for t in bundle.zone
        ]
    if members is not None:
        out["ensemble"] = members
    reference = bundle.meta["reference"]
    frame = bundle.frame(features)
    out["distance"] = distance(reference, frame)
    quantiles = reference.get("quantiles", {"q0.5": [], "q99.5": []})
    low, high = np.asarray(quantiles["q0.5"]), np.asarray(quantiles["q99.5"])
    values = frame[reference["features"]].to_numpy(float)
    out["outside"] = [
        [
            reference["features"][j]
            for j in range(values.shape[1])
            if np.isfinite(values[i, j]) and not low[j] <= values[i, j] <= high[j]
        ]
        for i in range(values.shape[0])
    ]
    return out


def score_case(
    bundle_path: str | Path,
    case: CaseInputs,
    *,
    prevalence: float | None = None,
    allow_imputation: bool = False,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Score one lesion; the result is what `score --out result.json` writes."""
    from rnclassifier.explain import shap_values

    if prevalence is not None and not 0 < prevalence < 1:
        raise InputError(f"--prevalence {prevalence}: must be between 0 and 1")
    bundle = load_bundle(bundle_path)
    needs = bundle_requirements(bundle)
    imputed, extra = check_case(case, needs, allow_imputation=allow_imputation)
    cohort = case_cohort(case)
    try:
        features, diagnostics, _ = extract_for_bundle(bundle, cohort, cache_dir=cache_dir)
    except InputError as error:  # one case: "manifest row 1" means nothing to the user
        raise InputError([p.replace("manifest row 1: ", "") for p in error.problems]) from None
    for covariate in imputed:  # the bundle's own imputer fills them (median of training)
        for column in bundle.input_features:
            if (
                column == covariate
                or column.startswith(f"{covariate}_")
                or (covariate in ("srs_dose_gy", "srs_fractions") and column.startswith("bed_ab"))
            ):
                features[column] = np.nan
    missing = [c for c in bundle.used_features if c not in features]
    if missing:  # e.g. pyradiomics skipped a region that is too small
        skipped = diagnostics[0].get("current", {}).get("skipped", [])
        raise InputError(
            [f"feature {c}: could not be computed for this lesion" for c in missing]
            + [f"pyradiomics: {s}" for s in skipped]
        )
    sites = [case.site] if bundle.harmonised else None
    predicted = predict(bundle, features, sites=sites, prevalence=prevalence)
    p = float(predicted["probability"][0])
    frame = bundle.frame(features)
    if bundle.harmonised:
        bundle.pipeline.set_params(combat__sites=pd.Series(sites, index=frame.index))
    contributions = shap_values(bundle.pipeline, frame, bundle.meta["model"]).iloc[0]
    base = float(contributions.pop("base"))
    order = contributions.abs().sort_values(ascending=False, kind="stable").index
    top = [
        {
            "feature": name,
            "label": readable(name),
            "value": _number(frame[name].iloc[0]),
            "shap": float(contributions[name]),
            "towards": POSITIVE_CLASS if contributions[name] > 0 else NEGATIVE_CLASS,
        }
        for name in order[:TOP_CONTRIBUTIONS]
    ]
    current = diagnostics[0].get("current", {})
    seen_sites = bundle.meta.get("sites") or {}
    flags = {
        "features_outside_training_range": predicted["outside"][0],
        "mahalanobis_distance": float(predicted["distance"][0]),
        "mahalanobis_cutoff": bundle.meta["reference"]["cutoff"],
        "beyond_cutoff": bool(
            bundle.meta["reference"]["cutoff"] is not None
            and predicted["distance"][0] > bundle.meta["reference"]["cutoff"]
        ),
        "site_unseen": bool(case.site is not None and seen_sites and case.site not in seen_sites),
        "sequences_unseen": [
            s for s in case.images if s not in (bundle.meta.get("sequences") or [s])
        ],
    }
    # Single features outside the 0.5-99.5% range are listed but do not raise the flag alone:
    # among tens of features one of them is often there by chance.
    flags["out_of_distribution"] = bool(
        flags["beyond_cutoff"] or flags["site_unseen"] or flags["sequences_unseen"]
    )
    flags["reasons"] = [
        *(
            [
                f"feature distance {flags['mahalanobis_distance']:.1f} beyond the cut-off "
                f"{flags['mahalanobis_cutoff']:.1f}"
            ]
            if flags["beyond_cutoff"]
            else []
        ),
        *(["site not seen in training"] if flags["site_unseen"] else []),
        *(
            [f"sequences not seen in training: {', '.join(flags['sequences_unseen'])}"]
            if flags["sequences_unseen"]
            else []
        ),
    ]
    training = bundle.meta["training"]
    result: dict[str, Any] = {
        "probability": p,
        "intended_use": (
            "Calibrated probability of tumour progression (vs radiation necrosis) for an "
            "enlarging brain metastasis after SRS, as in lesions selected for resection, at the "
            f"training prevalence of {training['prevalence']:.0%} tumour. {RESEARCH_USE}"
        ),
        "training_prevalence": training["prevalence"],
        "call": str(predicted["call"][0]),
        "threshold": {
            "value": bundle.threshold,
            "rule": bundle.meta["thresholds"]["rule"],
        },
        "indeterminate_zone": {
            "low": bundle.zone[0],
            "high": bundle.zone[1],
            "meaning": "necrosis below low, tumour at or above high, indeterminate between; "
            "both fixed in training",
        },
        "model_variability": _spread(predicted.get("ensemble")),
        "top_contributions": top,
        "shap": {
            **bundle.meta["shap"],
            "base_value": base,
            "output_value": base + float(contributions.sum()),
        },
        "input_quality": {
            "t1c_voxel_size_mm": current.get("t1c_spacing_mm"),
            "lesion_volume_cc": current.get("lesion_volume_cc"),
            "connected_components": current.get("connected_components"),
            "sequences_used": list(needs.sequences),
            "prior_scan_used": needs.needs_prior,
            "brain_mask": current.get("brain_mask"),
            "skipped": current.get("skipped", []),
        },
        "out_of_distribution": flags,
        "imputed_covariates": imputed,
        "ignored_covariates": extra,
        "model": {
            "name": bundle.meta["name"],
            "manifest_sha256": hashlib.sha256(
                (bundle.path / MANIFEST_FILE).read_bytes()
            ).hexdigest(),
            "model": bundle.meta["model"],
            "feature_set": bundle.meta["feature_set"],
            "synthetic": bundle.meta["synthetic"],
        },
        "rnclassifier_version": __version__,
        "research_use_only": True,
        "notice": RESEARCH_USE,
    }
    if prevalence is not None:
        result["probability_at_prevalence"] = {
            "prevalence": prevalence,
            "probability": float(predicted["probability_at_prevalence"][0]),
            "threshold": predicted["threshold_at_prevalence"],
            "indeterminate_zone": predicted["zone_at_prevalence"],
            "flag": "intercept shifted from the training prevalence by Bayes' rule on the odds; "
            "assumes the model's likelihood ratios carry over to the new setting; the call is "
            "the pre-specified one, and this probability is read against the threshold moved by "
            "the same shift",
        }
    return result


def _spread(members: np.ndarray | None) -> dict[str, Any] | None:
    if members is None:
        return None
    row = members[0]
    return {
        "label": "model variability across the CV ensemble (not a confidence interval)",
        "n_models": int(row.size),
        "min": float(row.min()),
        "median": float(np.median(row)),
        "max": float(row.max()),
    }


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def readable(column: str) -> str:
    """'flair__lesion__original_glcm_Contrast' -> 'FLAIR, lesion: GLCM Contrast (original)'."""
    from rnclassifier.features.naming import parse_feature_column

    parsed = parse_feature_column(column)
    if parsed is None:
        return column.replace("_", " ")
    prefix, _, rest = parsed.radiomics.partition("_")
    family, _, name = rest.partition("_")
    family = family.upper() if family.startswith("gl") or family == "ngtdm" else family
    text = f"{parsed.sequence.upper()}, {parsed.region}: {family} {name} ({prefix})"
    return f"change since prior scan in {text}" if parsed.delta else text


def check_manifest(
    bundle: ModelBundle, cohort: Cohort, *, allow_imputation: bool = False
) -> list[str]:
    """Before any extraction: every column or cell the model needs and the manifest lacks, one
    problem each; returns the covariates to impute (absent columns) with `allow_imputation`."""
    manifest = cohort.source
    needs = bundle_requirements(bundle)
    problems = [
        f"{manifest}: column {s}: missing; the model uses features of this sequence"
        for s in needs.sequences
        if s not in cohort.lesions
    ]
    if needs.needs_prior:
        problems += [
            f"{manifest}: column {c}: missing; the model uses delta features"
            for c in (
                *(f"{s}{PRIOR_SUFFIX}" for s in needs.prior_sequences),
                "mask_prior",
                "months_between_scans",
            )
            if c not in cohort.lesions
        ]
    absent = [c for c in needs.covariates if c not in cohort.lesions]
    if not allow_imputation:
        problems += [
            f"{manifest}: column {c}: missing; the model uses it (or --allow-imputation)"
            for c in absent
        ]
        problems += [
            f"{manifest}: row {n}, column {c}: empty; the model uses it (or --allow-imputation)"
            for c in needs.covariates
            if c in cohort.lesions
            for n, v in zip(cohort.row_numbers, cohort.lesions[c], strict=True)
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
        ]
    if bundle.harmonised and "site" not in cohort.lesions:
        problems.append(f"{manifest}: column site: missing; this model harmonises by site")
    if problems:
        raise InputError(problems)
    return absent


def predict_cohort(
    bundle: ModelBundle,
    cohort: Cohort,
    *,
    prevalence: float | None = None,
    allow_imputation: bool = False,
    cache_dir: str | Path | None = None,
    jobs: int = 1,
    allow_failures: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Per-lesion results of a checked manifest (row order), the model's input features, and
    the covariates imputed. With `allow_failures`, a lesion whose features did not all come
    back gets no probability and no call (`technical_failure`), never an imputed guess."""
    absent = check_manifest(bundle, cohort, allow_imputation=allow_imputation)
    features, diagnostics, failed = extract_for_bundle(
        bundle, cohort, cache_dir=cache_dir, jobs=jobs, allow_failures=allow_failures
    )
    absent_columns = [c for c in bundle.input_features if c not in features]
    # Absent covariates: the bundle's own imputer fills them.
    features = features.reindex(columns=[*features.columns, *absent_columns])
    sites = cohort.lesions["site"].tolist() if "site" in cohort.lesions else None
    table = lesion_table(bundle, features, sites=sites, prevalence=prevalence)
    table.insert(0, "lesion_id", cohort.lesions["lesion_id"].to_numpy())
    table["lesion_volume_cc"] = [d.get("current", {}).get("lesion_volume_cc") for d in diagnostics]
    if failed:
        numbers = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
        numbers = [c for c in numbers if c not in ("threshold", "zone_low", "zone_high")]
        table.loc[failed, numbers] = np.nan
        table["call"] = table["call"].astype(object)
        table.loc[failed, "call"] = None
        for column in ("beyond_distance_cutoff", "site_unseen", "out_of_distribution"):
            table.loc[failed, column] = False
        table.loc[failed, "features_outside_training_range"] = ""
        table["technical_failure"] = np.isin(np.arange(len(table)), failed)
    return table, features, absent


def lesion_table(
    bundle: ModelBundle,
    features: pd.DataFrame,
    *,
    sites: Any = None,
    prevalence: float | None = None,
) -> pd.DataFrame:
    """The per-lesion results of a frame of model input features (one row per lesion, in
    order; a fresh index): calibrated `probability`, `call` (from `predict`), `threshold`, the
    prevalence-shifted columns with `prevalence`, the CV ensemble's range, the Mahalanobis
    distance and the out-of-distribution flags. `sites` (one per row, or None) harmonise a model
    that harmonises by site and flag sites unseen in training. `predict_cohort` (hence `score
    --cohort` and `validate`) and the registered MLflow model (`rnclassifier.registry`) both
    make their tables here, so they cannot drift apart."""
    predicted = predict(
        bundle, features, sites=sites if bundle.harmonised else None, prevalence=prevalence
    )
    table = pd.DataFrame(
        {
            "probability": predicted["probability"],
            "call": predicted["call"],
            "threshold": bundle.threshold,
            # The indeterminate zone fixed in training: necrosis below, tumour at or above.
            "zone_low": bundle.zone[0],
            "zone_high": bundle.zone[1],
        }
    )
    if prevalence is not None:
        table[f"probability_at_prevalence_{prevalence:g}"] = predicted["probability_at_prevalence"]
        table[f"threshold_at_prevalence_{prevalence:g}"] = predicted["threshold_at_prevalence"]
    if "ensemble" in predicted:
        table["ensemble_min"] = predicted["ensemble"].min(axis=1)
        table["ensemble_max"] = predicted["ensemble"].max(axis=1)
    table["mahalanobis_distance"] = predicted["distance"]
    cutoff = bundle.meta["reference"]["cutoff"]
    cutoff = np.inf if cutoff is None else cutoff
    seen = bundle.meta.get("sites") or {}
    site_unseen = (
        pd.Series(list(sites), dtype=object)
        .map(lambda s: bool(seen) and s is not None and s not in seen)
        .to_numpy(bool)
        if sites is not None
        else np.zeros(len(table), bool)
    )
    table["beyond_distance_cutoff"] = predicted["distance"] > cutoff
    table["site_unseen"] = site_unseen
    table["out_of_distribution"] = table["beyond_distance_cutoff"] | site_unseen
    table["features_outside_training_range"] = [";".join(x) for x in predicted["outside"]]
    return table


def score_cohort(
    bundle_path: str | Path,
    manifest: str | Path,
    out: str | Path,
    *,
    prevalence: float | None = None,
    allow_imputation: bool = False,
    cache_dir: str | Path | None = None,
    jobs: int = 1,
    allow_failures: bool = False,
) -> str:
    """Score every lesion of a manifest; write one CSV row per lesion (the manifest's own
    lesion IDs, which stay with the user) and return a one-line summary."""
    from rnclassifier.atomic import atomic_file
    from rnclassifier.cohort import load_cohort

    bundle = load_bundle(bundle_path)
    table, _, absent = predict_cohort(
        bundle,
        load_cohort(manifest),
        prevalence=prevalence,
        allow_imputation=allow_imputation,
        cache_dir=cache_dir,
        jobs=jobs,
        allow_failures=allow_failures,
    )
    out = Path(out)
    with atomic_file(out) as tmp:
        table.to_csv(tmp, index=False)
    n_ood = int(table["out_of_distribution"].sum())
    low, high = bundle.zone
    counts = table["call"].value_counts()
    return (
        f"{out}: {len(table)} lesions scored: {counts.get(POSITIVE_CLASS, 0)} tumour "
        f"(probability >= {high:.2f}), {counts.get(INDETERMINATE, 0)} indeterminate, "
        f"{counts.get(NEGATIVE_CLASS, 0)} necrosis (< {low:.2f}); {n_ood} out of distribution"
        + (f"; imputed covariates: {', '.join(absent)}" if absent and allow_imputation else "")
        + (
            f"; {int(table['technical_failure'].sum())} technical failure(s) without a score"
            if "technical_failure" in table
            else ""
        )
    )
