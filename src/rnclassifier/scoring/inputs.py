"""What a bundle needs from a case, and the extraction narrowed to it (the features the
final model and its CV ensemble read, with the extraction config stored in the bundle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from rnclassifier.bundle import ModelBundle
from rnclassifier.cohort import Cohort
from rnclassifier.errors import InputError
from rnclassifier.features.restrict import Requirements, config_from_record, requirements
from rnclassifier.features.restrict import restricted_config as narrow


def bundle_requirements(bundle: ModelBundle) -> Requirements:
    return bundle.requirements


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

    if not bundle.meta.extraction:
        raise InputError(f"{bundle.path}: the bundle records no extraction config")
    config = narrow(config_from_record(bundle.meta.extraction), scoring_features(bundle))
    table = extract_features(
        cohort, config, jobs=jobs, cache_dir=cache_dir, allow_failures=allow_failures
    )
    failed = [f["position"] for f in table.sidecar["failed_rows"]]
    return table.table, table.sidecar["lesions"], failed
