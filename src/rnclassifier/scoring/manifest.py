"""Scoring every lesion of a cohort manifest against a bundle: checked before any extraction,
one table row per lesion (the manifest's own lesion IDs, which stay with the user)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from rnclassifier.bundle import INDETERMINATE, ModelBundle, load_bundle
from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS, PRIOR_SUFFIX, Cohort
from rnclassifier.errors import InputError
from rnclassifier.scoring.inputs import bundle_requirements, extract_for_bundle


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
    table = bundle.predict(features, sites, prevalence=prevalence).table()
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
