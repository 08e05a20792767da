"""The model registered in MLflow: a pyfunc over the verified model bundle, so that
`mlflow models serve` and `mlflow.pyfunc.load_model(...).predict` give the answers of
`rnclassifier score --cohort`.

Its only artefact is the bundle folder, copied as it was verified at registration. Loading
(`load_context`) goes through `rnclassifier.bundle.load_bundle`: the SHA-256 manifest first (a
changed, missing or extra file is refused), then the skops type allow-list; the manifest's own
digest must also be the one recorded at registration. Nothing of the pipeline is pickled: the
pickled Python model is this class, by reference, without state.

Input: one row per lesion, the bundle's input feature columns as doubles (the signature lists
exactly these), as `rnclassifier extract` writes them. Those that the final model or a model of
the CV ensemble reads are required; the others, imputed and then dropped by every pipeline,
may be absent. A model that harmonises by site (ComBat) also needs a `site` column with sites
seen in training; for any other model a feature row carries no site, so `out_of_distribution`
is the feature-distance flag alone (`score --cohort` also flags sites unseen in training when
its manifest names them). A missing value in a feature a model reads is refused: `score`
never imputes a lesion's radiomics, and imputes covariates only when asked
(`--allow-imputation`).

Output: one row per lesion, the columns of `score --cohort` (made by the same method,
`rnclassifier.bundle.Prediction.table`) without the lesion ID and the extraction facts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from rnclassifier.bundle import MANIFEST_FILE, ModelBundle, load_bundle
from rnclassifier.errors import InputError

#: The artefact name of the bundle folder inside the registered model.
BUNDLE_ARTIFACT = "bundle"
SITE_COLUMN = "site"


def manifest_digest(path: str | Path) -> str:
    """SHA-256 of the bundle's MANIFEST.sha256: one digest for the whole verified folder."""
    return hashlib.sha256((Path(path) / MANIFEST_FILE).read_bytes()).hexdigest()


def needed_features(bundle: ModelBundle) -> list[str]:
    """The input features the final model or any model of the CV ensemble reads, in input
    order: without them the probability, or the ensemble's spread, would rest on imputed
    values."""
    from rnclassifier.modeling.pipeline import used_features

    needed = set(bundle.used_features)
    for member, _ in bundle.ensemble:
        needed |= set(used_features(member))
    return [c for c in bundle.input_features if c in needed]


def output_columns(bundle: ModelBundle) -> list[tuple[str, str]]:
    """(name, MLflow type) of what `predict` returns for this bundle."""
    columns = [
        ("probability", "double"),
        ("call", "string"),
        ("threshold", "double"),
        ("zone_low", "double"),
        ("zone_high", "double"),
    ]
    if bundle.ensemble:
        columns += [("ensemble_min", "double"), ("ensemble_max", "double")]
    return [
        *columns,
        ("mahalanobis_distance", "double"),
        ("beyond_distance_cutoff", "boolean"),
        ("out_of_distribution", "boolean"),
        ("features_outside_training_range", "string"),
    ]


def signature(bundle: ModelBundle) -> Any:
    """Inputs: the bundle's input features (doubles; required when a model reads them), and
    `site` for a model that harmonises by site. Outputs: `output_columns`."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    used = set(needed_features(bundle))
    inputs = [ColSpec("double", name, required=name in used) for name in bundle.input_features]
    if bundle.harmonised:
        inputs.append(ColSpec("string", SITE_COLUMN))
    outputs = [ColSpec(kind, name) for name, kind in output_columns(bundle)]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


class BundleModel(mlflow.pyfunc.PythonModel):
    """Calibrated probability, call (with the indeterminate zone when the bundle has one), the
    bundle's threshold and the out-of-distribution flags, as `score --cohort` makes them."""

    bundle: ModelBundle | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # never pickle a loaded bundle: it is loaded from the artefact

    def load_context(self, context: Any) -> None:
        path = Path(context.artifacts[BUNDLE_ARTIFACT])
        bundle = load_bundle(path)  # the manifest and the skops allow-list
        expected = (context.model_config or {}).get("manifest_sha256")
        if expected is not None and manifest_digest(path) != expected:
            raise InputError(
                f"{path / MANIFEST_FILE}: not the bundle registered (its SHA-256 differs from "
                "the one recorded at registration); refusing to load it"
            )
        self.bundle = bundle

    # No type hints on the inputs: MLflow would read them as a second, looser signature.
    def predict(self, context, model_input, params=None):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if self.bundle is None:
            raise MlflowException("the model bundle is not loaded (load it with MLflow)")
        try:
            return predict_frame(self.bundle, pd.DataFrame(model_input))
        except InputError as error:
            raise MlflowException(
                "; ".join(error.problems), error_code=INVALID_PARAMETER_VALUE
            ) from None


def predict_frame(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """`predict` of the registered model on a loaded bundle: checks, then the bundle's
    `predict`."""
    used = needed_features(bundle)
    problems = [
        f"column {c!r}: missing; the model or its CV ensemble reads this feature"
        for c in used
        if c not in frame
    ]
    if bundle.harmonised and SITE_COLUMN not in frame:
        problems.append(f"column {SITE_COLUMN!r}: missing; this model harmonises by site")
    if problems:
        raise InputError(problems)
    values = frame[used].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    empty = ~np.isfinite(values)
    problems = [
        f"row {i}, column {used[j]!r}: empty or not a finite number; a model reads it and "
        "nothing imputes a lesion's features here"
        for i, j in zip(*np.nonzero(empty), strict=True)
    ]
    if problems:
        raise InputError(problems)
    features = frame.reindex(columns=bundle.input_features)
    sites = frame[SITE_COLUMN].astype(str).str.strip().tolist() if bundle.harmonised else None
    table = bundle.predict(features.reset_index(drop=True), sites).table()
    table = table[[name for name, _ in output_columns(bundle)]]
    table.index = frame.index
    return table
