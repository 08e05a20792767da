"""Scoring one lesion given on the command line (or by a service, or in a notebook).

The case becomes a one-row manifest, validated by the same code as a cohort file (problems
name the flag, not the column), extracted as the bundle's config narrowed to what the model
uses, and predicted by the bundle's one `predict`. The result is what `score --out
result.json` writes; nothing in it identifies the patient: no IDs, names, dates or paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.bundle import ModelBundle, Prediction, load_bundle
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
from rnclassifier.columns import covariates_of, readable
from rnclassifier.errors import InputError, Problem
from rnclassifier.features.restrict import Requirements
from rnclassifier.scoring.inputs import bundle_requirements, extract_for_bundle
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


def case_from_flags(flags: Mapping[str, Any]) -> CaseInputs:
    """A case from the manifest's column names (`t1c`, `flair_prior`, `t1c_series`, `mask`,
    `roi_name`, ..., `site`) and `clinical` facts as KEY=VALUE texts, as the command line and
    a form give them; every missing or malformed input is one problem naming its flag."""
    given = {s: flags.get(s) for s in KNOWN_SEQUENCES if flags.get(s)}
    priors = {s: flags.get(f"{s}{PRIOR_SUFFIX}") for s in KNOWN_SEQUENCES}
    series = {
        image: flags.get(f"{image}{SERIES_SUFFIX}")
        for s in KNOWN_SEQUENCES
        for image in (s, f"{s}{PRIOR_SUFFIX}")
        if flags.get(f"{image}{SERIES_SUFFIX}")
    }
    problems = [
        f"--{name}: required to score one lesion"
        for name, value in (("t1c", given.get("t1c")), ("mask", flags.get("mask")))
        if not value
    ]
    facts: dict[str, str] = {}
    for item in flags.get("clinical") or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--clinical {item!r}: expected KEY=VALUE")
        else:
            facts[key.strip().lower()] = value.strip()
    if problems:
        raise InputError(problems)
    return CaseInputs(
        images=given,
        mask=flags["mask"],
        roi_name=flags.get("roi_name"),
        mask_label=flags.get("mask_label"),
        brain_mask=flags.get("brain_mask"),
        prior_images={s: p for s, p in priors.items() if p},
        mask_prior=flags.get("mask_prior"),
        months_between_scans=flags.get("months_between_scans"),
        site=flags.get("site"),
        clinical=facts,
        series=series,
    )


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
        # An empty value is a missing one, as an empty cell of a manifest is (`check_manifest`):
        # refused, or imputed by the bundle's imputer only when asked for, and then listed.
        if case.clinical.get(covariate):
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
        raise InputError([_flag_problem(p) for p in error.details]) from None


def _flag_problem(problem: Problem) -> str:
    """A manifest problem in the command line's terms: row 1, column histology -> the flag
    `--clinical histology`; a problem of the whole (one-row) manifest without its source."""
    if problem.row == 1 and problem.column is not None:
        column = problem.column
        flag = (
            f"--clinical {column}"
            if column in CLINICAL_COLUMNS
            else f"--{column.replace('_', '-')}"
        )
        return f"{flag}: {problem.text}"
    if problem.source == SOURCE:
        return str(Problem(problem.text, row=problem.row, column=problem.column))
    return problem.text.replace(f"{SOURCE}: ", "")


def score_case(
    bundle: str | Path | ModelBundle,
    case: CaseInputs,
    *,
    prevalence: float | None = None,
    allow_imputation: bool = False,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Score one lesion against a bundle (a folder, or one already loaded and kept warm); the
    result is what `score --out result.json` writes."""
    if prevalence is not None and not 0 < prevalence < 1:
        raise InputError(f"--prevalence {prevalence}: must be between 0 and 1")
    if not isinstance(bundle, ModelBundle):
        bundle = load_bundle(bundle)
    needs = bundle_requirements(bundle)
    imputed, extra = check_case(case, needs, allow_imputation=allow_imputation)
    features, current = _case_features(bundle, case, imputed, cache_dir)
    prediction = bundle.predict(features, [case.site], prevalence=prevalence)
    result: dict[str, Any] = {
        "probability": float(prediction.probability[0]),
        **_model_facts(bundle, prediction),
        **_explanation(bundle, features, case.site),
        "input_quality": {
            "t1c_voxel_size_mm": current.get("t1c_spacing_mm"),
            "lesion_volume_cc": current.get("lesion_volume_cc"),
            "connected_components": current.get("connected_components"),
            "sequences_used": list(needs.sequences),
            # Given but not read by the model: they change nothing (and are no reason for an
            # out-of-distribution flag, whether training saw them or not).
            "sequences_ignored": [s for s in case.images if s not in needs.sequences],
            "prior_scan_used": needs.needs_prior,
            "brain_mask": current.get("brain_mask"),
            "skipped": current.get("skipped", []),
        },
        "out_of_distribution": _flags(prediction),
        "imputed_covariates": imputed,
        "ignored_covariates": extra,
        "model": {
            "name": bundle.meta.name,
            "manifest_sha256": bundle.manifest_sha256,
            "model": bundle.meta.model,
            "feature_set": bundle.meta.feature_set,
            "synthetic": bundle.meta.synthetic,
        },
        "rnclassifier_version": __version__,
        "research_use_only": True,
        "notice": RESEARCH_USE,
    }
    if prevalence is not None:
        result["probability_at_prevalence"] = _at_prevalence(prediction)
    return result


def _case_features(
    bundle: ModelBundle, case: CaseInputs, imputed: list[str], cache_dir: str | Path | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The case's model features (covariates to impute left empty for the bundle's imputer)
    and the scored scan's extraction facts."""
    cohort = case_cohort(case)
    try:
        features, diagnostics, _ = extract_for_bundle(bundle, cohort, cache_dir=cache_dir)
    except InputError as error:  # one case: "manifest row 1" means nothing to the user
        raise InputError(
            p.text if p.row == 1 and p.source is None else str(p) for p in error.details
        ) from None
    for column in bundle.input_features:  # the bundle's own imputer fills them
        if set(covariates_of(column)) & set(imputed):
            features[column] = np.nan  # (an absent covariate has no column: `frame` adds it)
    missing = [c for c in bundle.used_features if c not in features]
    if missing:  # e.g. pyradiomics skipped a region that is too small
        skipped = diagnostics[0].get("current", {}).get("skipped", [])
        raise InputError(
            [f"feature {c}: could not be computed for this lesion" for c in missing]
            + [f"pyradiomics: {s}" for s in skipped]
        )
    return features, diagnostics[0].get("current", {})


def intended_use(bundle: ModelBundle) -> str:
    """What a bundle's probability means, for a result, a service's description, a report."""
    return (
        "Calibrated probability of tumour progression (vs radiation necrosis) for an "
        "enlarging brain metastasis after SRS, as in lesions selected for resection, at the "
        f"training prevalence of {bundle.meta.training.prevalence:.0%} tumour. {RESEARCH_USE}"
    )


def _model_facts(bundle: ModelBundle, prediction: Prediction) -> dict[str, Any]:
    """What the probability means, the call and the thresholds it was made at."""
    training = bundle.meta.training
    low, high = prediction.zone
    return {
        "intended_use": intended_use(bundle),
        "training_prevalence": training.prevalence,
        "call": str(prediction.call[0]),
        "threshold": {
            "value": bundle.threshold,
            "rule": bundle.meta.thresholds.rule.as_document(),
        },
        "indeterminate_zone": {
            "low": low,
            "high": high,
            "meaning": "necrosis below low, tumour at or above high, indeterminate between; "
            "both fixed in training",
        },
        "model_variability": _spread(prediction.ensemble),
    }


def _explanation(bundle: ModelBundle, features: pd.DataFrame, site: str | None) -> dict[str, Any]:
    """The final model's top SHAP contributions for the case, largest first."""
    from rnclassifier.explain import shap_values

    frame = bundle.frame(features)
    if bundle.harmonised:
        bundle.pipeline.set_params(combat__sites=pd.Series([site], index=frame.index))
    contributions = shap_values(bundle.pipeline, frame, bundle.meta.model).iloc[0]
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
    return {
        "top_contributions": top,
        "shap": {
            **bundle.meta.shap.as_document(),
            "base_value": base,
            "output_value": base + float(contributions.sum()),
        },
    }


def _flags(prediction: Prediction) -> dict[str, Any]:
    """The bundle's one out-of-distribution check, for the case's row."""
    return {
        "features_outside_training_range": prediction.outside[0],
        "mahalanobis_distance": float(prediction.distance[0]),
        "mahalanobis_cutoff": prediction.cutoff,
        "beyond_cutoff": bool(prediction.beyond_cutoff[0]),
        "site_unseen": bool(prediction.site_unseen[0]),
        "out_of_distribution": bool(prediction.out_of_distribution[0]),
        "reasons": prediction.reasons(0),
    }


def _at_prevalence(prediction: Prediction) -> dict[str, Any]:
    assert prediction.probability_at_prevalence is not None
    return {
        "prevalence": prediction.prevalence,
        "probability": float(prediction.probability_at_prevalence[0]),
        "threshold": prediction.threshold_at_prevalence,
        "indeterminate_zone": prediction.zone_at_prevalence,
        "flag": "intercept shifted from the training prevalence by Bayes' rule on the odds; "
        "assumes the model's likelihood ratios carry over to the new setting; the call is "
        "the pre-specified one, and this probability is read against the threshold moved by "
        "the same shift",
    }


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
