"""What a training run is, declared before it runs: the one definition (`TrainingSpec`), with
the names of models and feature sets and every default.

An experiment config (`experiments/<study>/experiment.yaml`) and the command line's flags both
build it; the command line takes its choices and defaults from here. Unknown keys and wrong
types are errors naming the key and the file. The config file's hash is recorded with the
results (`config_sha256`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rnclassifier.config import parse_settings, read_yaml
from rnclassifier.errors import InputError

ModelName = Literal["xgboost", "elastic_net", "random_forest", "logistic"]
MODELS: tuple[ModelName, ...] = get_args(ModelName)
#: Compared unless told otherwise; `logistic` (plain L2 on every feature) is a baseline to ask for.
DEFAULT_MODELS: tuple[ModelName, ...] = ("xgboost", "elastic_net", "random_forest")
PRIMARY_MODEL: ModelName = "xgboost"
SetName = Literal["all", "clinical", "clinical+size", "radiomics", "combined", "combined+delta"]
#: The one set of a table whose columns follow no rnclassifier naming (another tool's).
FOREIGN_TABLE_SET: SetName = "all"
#: The order of the report; the default primary is `combined` (current scan + basic covariates).
FEATURE_SETS: tuple[SetName, ...] = tuple(s for s in get_args(SetName) if s != FOREIGN_TABLE_SET)
DEFAULT_PRIMARY_SET: SetName = "combined"
#: Where a bundle goes unless told: models/<name>, beside the command's working folder.
MODELS_FOLDER = Path("models")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Strict):
    features: str | None = Field(None, description="feature table, relative to the config")
    cohort: str | None = Field(None, description="cohort manifest (then extraction runs first)")
    extraction: str | None = Field(None, description="extraction config for `cohort`")
    label: str = "pathology"
    #: For labels of two other values (say "codeleted" / "intact"): the one read as 1.
    positive_label: str | None = None
    group: str = "patient_id"
    id: str = "lesion_id"
    site: str = "site"

    @model_validator(mode="after")
    def _one_source(self) -> DataSettings:
        if (self.features is None) == (self.cohort is None):
            raise ValueError("give exactly one of 'features' and 'cohort'")
        return self


class Primary(_Strict):
    """Declared before the run: reported (and bundled) whatever its rank."""

    model: ModelName = PRIMARY_MODEL
    #: None: `combined` for rnclassifier's own tables, `all` for a table from another tool.
    feature_set: SetName | None = None


class CrossValidation(_Strict):
    """The default fits this machine (2 cores): 5 outer folds x 2 repeats, 3 inner, 30 trials."""

    outer_folds: int = Field(5, ge=2, le=20)
    repeats: int = Field(2, ge=1, le=20)
    inner_folds: int = Field(3, ge=2, le=10)
    trials: int = Field(30, ge=1, le=1000)


class Threshold(_Strict):
    rule: Literal["sensitivity", "youden"] = "sensitivity"
    target: float = Field(0.95, gt=0, lt=1)
    #: The upper end of the indeterminate zone aims at this necrosis specificity (None: target).
    indeterminate_specificity: float | None = Field(None, gt=0, lt=1)


class Alarms(_Strict):
    """Leakage alarms: each must come out near AUC 0.5."""

    permute_labels: bool = False  # shuffle the labels (no bundle is built)
    noise: bool = False  # also run the primary on pure-noise features


class Tracking(_Strict):
    enabled: bool = True
    uri: str | None = None  # default: sqlite:///./mlflow.db
    experiment: str | None = None  # default: the run's name
    artifact_location: str | None = None


class BundleOutput(_Strict):
    build: bool = True
    path: str | None = None  # default: models/<name>
    overwrite: bool = False


class TrainingSpec(_Strict):
    #: The study's name: the bundle's and the MLflow experiment's (default: the table's stem).
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    #: Where the table comes from; None when the caller hands `train_on` a table it has read.
    data: DataSettings | None = None
    synthetic: bool = False
    models: tuple[ModelName, ...] = DEFAULT_MODELS
    #: None: every set the table has.
    feature_sets: tuple[SetName, ...] | None = None
    primary: Primary = Field(default_factory=Primary)
    cv: CrossValidation = Field(default_factory=CrossValidation)
    calibration: Literal["platt", "isotonic"] = "platt"
    #: ComBat by the table's `site` column, fitted on training folds only.
    harmonise: Literal["none", "combat"] = "none"
    threshold: Threshold = Field(default_factory=Threshold)
    seed: int = Field(0, ge=0)
    alarms: Alarms = Field(default_factory=Alarms)
    tracking: Tracking = Field(default_factory=Tracking)
    bundle: BundleOutput = Field(default_factory=BundleOutput)
    #: Optuna storage URL: resumable studies shared by workers; not bit-reproducible.
    optuna_storage: str | None = None
    #: SHA-256 of the experiment config the spec was read from (set by `load_experiment`).
    config_sha256: str | None = None

    @model_validator(mode="after")
    def _primary_is_run(self) -> TrainingSpec:
        if self.primary.model not in self.models:
            raise ValueError(f"primary.model {self.primary.model!r} is not in models")
        return self

    def primary_set(self, available: dict[str, list[str]]) -> str:
        """The declared primary set, or the one default whichever way the run started."""
        if self.primary.feature_set is not None:
            return self.primary.feature_set
        return DEFAULT_PRIMARY_SET if DEFAULT_PRIMARY_SET in available else FOREIGN_TABLE_SET

    def run_name(self, table: Path | None = None) -> str:
        if self.name is not None:
            return self.name
        return table.stem if table is not None else "rnclassifier"

    def bundle_path(self, table: Path | None = None) -> Path | None:
        """Where the primary's bundle goes; None when none is built (nor for permuted labels,
        whose model means nothing)."""
        if not self.bundle.build or self.alarms.permute_labels:
            return None
        if self.bundle.path is not None:
            return Path(self.bundle.path)
        return MODELS_FOLDER / self.run_name(table)

    def with_changes(self, **changes: object) -> TrainingSpec:
        """A copy with fields replaced, validated again (`cv={"trials": 5}` merges into cv)."""
        document = self.model_dump()
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key] = {**document[key], **value}
            else:
                document[key] = value
        return TrainingSpec.model_validate(document)


def load_experiment(path: str | Path) -> TrainingSpec:
    """The validated experiment config, with the SHA-256 of the file as written."""
    path = Path(path)
    document = read_yaml(path)
    if "name" not in document:
        raise InputError(f"{path}: experiment.name: missing")
    spec = parse_settings(TrainingSpec, document, path, prefix="experiment")
    base = path.resolve().parent  # the config's own paths are relative to it
    data = spec.data.model_dump() if spec.data is not None else None
    if data is not None:
        for key in ("features", "cohort", "extraction"):
            if data[key] is not None:
                data[key] = os.path.normpath(base / data[key])  # no "..": messages name it
    return spec.with_changes(data=data, config_sha256=hashlib.sha256(path.read_bytes()).hexdigest())
