"""The schema of `bundle.json`, typed: what training decides about a model (`ModelDescription`)
and what the writer adds (`BundleMeta`: schema version, calibrators, ensemble files, creation).

Validated when a bundle is written and again when it is loaded, so scoring, validation and the
model card read attributes, not string keys. Blocks that are reports rather than inputs to
scoring (hyper-parameters, Table 1, TRIPOD items, the extraction record) stay plain mappings.
Keys a bundle does not hold (a bundle written before indeterminate zones) stay absent when the
schema is written back (`as_document`), so a bundle round-trips byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1
#: The folder's files (layout in `bundle.files`).
BUNDLE_FILE = "bundle.json"
PIPELINE_FILE = "pipeline.skops"
ENSEMBLE_DIR = "ensemble"
CARD_FILE = "MODEL_CARD.md"
MANIFEST_FILE = "MANIFEST.sha256"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def as_document(self) -> dict[str, Any]:
        """The plain mapping as written: only the keys the bundle holds, in schema order."""
        return self.model_dump(exclude_unset=True)


class FeatureLists(_Part):
    input: list[str]  # the pipeline's input columns, in training order
    used: list[str]  # those the fitted model reads after selection


class RuleThreshold(_Part):
    kind: Literal["sensitivity", "youden"]
    target: float
    zone_specificity: float | None = None
    value: float


class YoudenThreshold(_Part):
    kind: Literal["youden"]
    value: float


class IndeterminateZone(_Part):
    low: float
    high: float
    meaning: str


class Thresholds(_Part):
    rule: RuleThreshold
    youden: YoudenThreshold
    #: Absent in bundles written before zones: then low = high = the rule's threshold.
    indeterminate: IndeterminateZone | None = None
    #: {"sensitivity": {"threshold": t, "radiologist_sensitivity": s}, "specificity": ...}
    radiologist_matched: dict[str, dict[str, float]] | None = None
    chosen_on: str


class TrainingFacts(_Part):
    n_lesions: int
    n_patients: int
    prevalence: float
    data_sha256: str
    config_sha256: str | None
    budget: dict[str, Any]


class Reference(_Part):
    """The training cohort's model features as aggregates, for the out-of-distribution check
    (`modeling.ood`); a model of 0/1 covariates only has no continuous features and no cut-off."""

    features: list[str]
    mean: list[float] = []
    sd: list[float] = []
    quantiles: dict[str, list[float]] = {}
    n_missing: list[int] = []
    covariance: list[list[float]] = []
    precision: list[list[float]] = []
    shrinkage: float | None = None
    indicator_rates: dict[str, float] = {}
    cutoff: float | None = None
    cutoff_rule: str = ""


class ShapMethod(_Part):
    explainer: str
    feature_perturbation: str
    output: str
    background_rows: int


class Performance(_Part):
    nested_cv_auc: dict[str, Any]
    at_threshold_rule: dict[str, Any]
    calibration: dict[str, Any]


class ModelDescription(_Part):
    """Everything training decides about the model, as aggregates: no rows, no identifiers."""

    name: str
    synthetic: bool
    model: str
    feature_set: str
    features: FeatureLists
    params: dict[str, Any]
    thresholds: Thresholds
    training: TrainingFacts
    reference: Reference
    table_one: dict[str, Any]
    sites: dict[str, int] | None
    harmonisation: str | None
    sequences: list[str] | None
    extraction: dict[str, Any] | None
    feature_table_versions: dict[str, Any] | None
    shap: ShapMethod
    shap_summary: list[dict[str, Any]]
    metrics: Performance
    tripod: dict[str, Any]


class EnsembleFile(_Part):
    file: str
    calibrator: dict[str, Any]


class Created(_Part):
    utc: str
    rnclassifier: str
    python: str
    versions: dict[str, str]


class BundleMeta(ModelDescription):
    """`bundle.json` as a whole."""

    schema_version: Literal[1]
    calibrator: dict[str, Any]
    ensemble: list[EnsembleFile]
    created: Created


def parse_meta(document: object, source: Path) -> BundleMeta:
    """`bundle.json`'s contents as a `BundleMeta`; one problem per line naming the key."""
    from rnclassifier.config import parse_settings

    return parse_settings(BundleMeta, document, source, prefix="bundle")
