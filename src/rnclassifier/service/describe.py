"""`GET /v1/model`: what a bundle is for and what a case must bring, from the bundle alone.

The page's form is built from the same description, so a covariate's allowed values are the
manifest schema's, and the inputs asked for are the ones the model reads.
"""

from __future__ import annotations

from typing import Any

from rnclassifier.bundle import ModelBundle
from rnclassifier.cohort import COLUMNS, PRIOR_SUFFIX
from rnclassifier.scoring.case import RESEARCH_USE, intended_use
from rnclassifier.version import __version__


def describe(bundle: ModelBundle) -> dict[str, Any]:
    """The bundle's intended use, the inputs it needs (with allowed values) and the facts a
    user weighs a probability with; aggregates only, nothing about any patient."""
    meta = bundle.meta
    needs = bundle.requirements
    low, high = bundle.zone
    inputs: dict[str, Any] = {
        "files": {
            "required": [*needs.sequences, "mask"]
            + [f"{s}{PRIOR_SUFFIX}" for s in needs.prior_sequences]
            + (["mask_prior"] if needs.needs_prior else []),
            "optional": ["brain_mask"],
        },
        "months_between_scans_required": needs.needs_prior,
        "clinical": [_covariate(name) for name in needs.covariates],
    }
    return {
        "name": meta.name,
        "synthetic": meta.synthetic,
        "intended_use": intended_use(bundle),
        "notice": RESEARCH_USE,
        "model": meta.model,
        "feature_set": meta.feature_set,
        "manifest_sha256": bundle.manifest_sha256,
        "inputs": inputs,
        "threshold": {"value": bundle.threshold, "rule": meta.thresholds.rule.as_document()},
        "indeterminate_zone": {"low": low, "high": high},
        "training": {
            "n_lesions": meta.training.n_lesions,
            "n_patients": meta.training.n_patients,
            "prevalence": meta.training.prevalence,
            "nested_cv_auc": meta.metrics.nested_cv_auc,
        },
        "sites_seen": sorted(meta.sites) if meta.sites else [],
        "rnclassifier_version": __version__,
    }


def _covariate(name: str) -> dict[str, Any]:
    column = COLUMNS[name]
    entry: dict[str, Any] = {
        "name": name,
        "meaning": column.meaning,
        "kind": column.kind.name.lower(),
    }
    if column.vocabulary:
        entry["allowed"] = list(column.vocabulary)
    else:
        entry["minimum"] = column.minimum
        entry["maximum"] = column.maximum
    return entry
