"""Experiment configs: what a training study is, declared before it runs.

One YAML per study in `experiments/<study>/experiment.yaml`: the data (a feature table, or a
cohort and an extraction config), the models and feature sets, the primary model and feature set,
the CV scheme and budget, calibration, the threshold rule and the seed. Unknown keys and wrong
types are errors naming the key and the file. The file's hash is recorded with the results.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rnclassifier.config import parse_settings, read_yaml
from rnclassifier.errors import InputError

ModelName = Literal["xgboost", "elastic_net", "random_forest"]
SetName = Literal["all", "clinical", "clinical+size", "radiomics", "combined", "combined+delta"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Strict):
    features: str | None = Field(None, description="feature table, relative to the config")
    cohort: str | None = Field(None, description="cohort manifest (then extraction runs first)")
    extraction: str | None = Field(None, description="extraction config for `cohort`")
    label: str = "pathology"
    group: str = "patient_id"
    id: str = "lesion_id"
    site: str = "site"

    @model_validator(mode="after")
    def _one_source(self) -> DataSettings:
        if (self.features is None) == (self.cohort is None):
            raise ValueError("give exactly one of 'features' and 'cohort'")
        return self


class Primary(_Strict):
    model: ModelName = "xgboost"
    feature_set: SetName = "combined"


class CrossValidation(_Strict):
    outer_folds: int = Field(5, ge=2, le=20)
    repeats: int = Field(2, ge=1, le=20)
    inner_folds: int = Field(3, ge=2, le=10)
    trials: int = Field(30, ge=1, le=1000)


class Threshold(_Strict):
    rule: Literal["sensitivity", "youden"] = "sensitivity"
    target: float = Field(0.95, gt=0, lt=1)
    #: The upper end of the indeterminate zone aims at this necrosis specificity (None: target).
    indeterminate_specificity: float | None = Field(None, gt=0, lt=1)


class ExperimentSettings(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    data: DataSettings
    synthetic: bool = False
    models: tuple[ModelName, ...] = ("xgboost", "elastic_net", "random_forest")
    feature_sets: tuple[SetName, ...] | None = None
    primary: Primary = Field(default_factory=Primary)
    cv: CrossValidation = Field(default_factory=CrossValidation)
    calibration: Literal["platt", "isotonic"] = "platt"
    #: ComBat by the table's `site` column, fitted on training folds only.
    harmonise: Literal["none", "combat"] = "none"
    threshold: Threshold = Field(default_factory=Threshold)
    seed: int = Field(0, ge=0)


def load_experiment(path: str | Path) -> tuple[ExperimentSettings, str]:
    """The validated settings and the SHA-256 of the file as written."""
    path = Path(path)
    document = read_yaml(path)
    settings = parse_settings(ExperimentSettings, document, path, prefix="experiment")
    if settings.primary.model not in settings.models:
        raise InputError(f"{path}: primary.model {settings.primary.model!r} is not in models")
    return settings, hashlib.sha256(path.read_bytes()).hexdigest()


def run_experiment(
    path: str | Path,
    out: str | Path | None = None,
    *,
    jobs: int = 1,
    tracking_uri: str | None = None,
    track: bool = True,
    bundle: str | Path | None = None,
    build_bundle: bool = True,
    overwrite_bundle: bool = False,
    optuna_storage: str | None = None,
    progress: bool = False,
    harmonise: bool | None = None,
) -> tuple[dict, Path]:
    """Run the study a config declares; results go to `out` (default: `results/` beside it),
    the primary's bundle to `bundle` (default: `models/<name>`)."""
    from rnclassifier.features.api import run_extraction
    from rnclassifier.modeling.nested import Budget
    from rnclassifier.modeling.threshold import ThresholdRule
    from rnclassifier.training import read_feature_table, train_from_features

    path = Path(path)
    settings, digest = load_experiment(path)
    base = path.resolve().parent
    out = Path(out) if out is not None else base / "results"
    if settings.data.cohort is not None:
        features = out / "features.parquet"
        extraction = base / settings.data.extraction if settings.data.extraction else None
        run_extraction(base / settings.data.cohort, features, params=extraction, jobs=jobs)
    else:
        features = base / settings.data.features
    data = read_feature_table(
        features,
        label=settings.data.label,
        group=settings.data.group,
        id_column=settings.data.id,
        site=settings.data.site,
    )
    budget = Budget(
        settings.cv.outer_folds,
        settings.cv.repeats,
        settings.cv.inner_folds,
        settings.cv.trials,
        settings.seed,
        calibration=settings.calibration,
        threshold_rule=ThresholdRule(
            settings.threshold.rule,
            settings.threshold.target,
            settings.threshold.indeterminate_specificity,
        ),
    )
    metrics = train_from_features(
        data,
        out,
        models=settings.models,
        primary=settings.primary.model,
        sets=settings.feature_sets,
        primary_set=settings.primary.feature_set,
        budget=budget,
        jobs=jobs,
        synthetic=settings.synthetic,
        tracking_uri=tracking_uri,
        track=track,
        experiment=settings.name,
        config_sha256=digest,
        bundle=(bundle or Path("models") / settings.name) if build_bundle else None,
        bundle_name=settings.name,
        overwrite_bundle=overwrite_bundle,
        optuna_storage=optuna_storage,
        progress=progress,
        harmonise=settings.harmonise == "combat" if harmonise is None else harmonise,
    )
    return metrics, out
