"""Every MLflow call of the project, at the edge: a parent run per experiment, a child run per
model and feature set, metrics with their intervals, and the experiment's artefacts.

No patient identifier reaches MLflow: out-of-fold predictions are logged with patient and lesion
IDs replaced by hashes salted with one secret per installation, kept outside every output
(`~/.config/rnclassifier/salt`, or the file named by RNCLASSIFIER_SALT_FILE), so reruns give the
same hashes and nobody without the secret can test a guess.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from rnclassifier.atomic import json_text
from rnclassifier.version import __version__

DEFAULT_EXPERIMENT = "rnclassifier"


def salt_path() -> Path:
    configured = os.environ.get("RNCLASSIFIER_SALT_FILE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "rnclassifier" / "salt"


def installation_salt() -> bytes:
    """The installation's secret, made once (readable by its owner only)."""
    path = salt_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def pseudonymise(values: pd.Series, salt: bytes) -> pd.Series:
    """A salted SHA-256 (16 hex characters) of each ID."""
    return values.astype(str).map(
        lambda v: hashlib.sha256(salt + b"\0" + v.encode()).hexdigest()[:16]
    )


def log_experiment(
    out_dir: Path,
    metrics: dict[str, Any],
    predictions: pd.DataFrame,
    *,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    artifact_location: str | None = None,
    data_hash: str,
    synthetic: bool,
    bundle: Path | None = None,
) -> str:
    """Log one training experiment; return the parent run's ID. With a bundle, it is logged as
    artefacts and registered as the experiment's model (a pyfunc over the verified bundle,
    `rnclassifier.registry`), primary whatever its rank; never with permuted labels. Without a
    bundle nothing is registered: the bare pipeline is neither calibrated nor thresholded."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifact_location)
    mlflow.set_experiment(experiment)
    primary = metrics["primary"]["key"]
    tags = {
        "rnclassifier_version": __version__,
        "synthetic": str(synthetic).lower(),
        "data_hash": data_hash,
        "primary": primary,
        "permuted_labels": str(metrics["permuted_labels"]).lower(),
        "config_sha256": metrics.get("config_sha256") or "none",
    }
    with mlflow.start_run(run_name=f"experiment {primary}", tags=tags) as parent:
        mlflow.log_params({f"budget.{k}": v for k, v in _flat(metrics["budget"]).items()})
        for key, entry in metrics["models"].items():
            with mlflow.start_run(
                run_name=key,
                nested=True,
                tags={"role": "primary" if entry["primary"] else "secondary", **tags},
            ):
                mlflow.log_params(
                    {
                        "model": entry["model"],
                        "feature_set": entry["feature_set"],
                        "n_features": entry["n_features"],
                    }
                )
                mlflow.log_metrics(_interval_metrics("auc", entry["auc"]))
                for name in ("sensitivity", "specificity"):
                    point = entry["at_threshold_rule"][name]
                    mlflow.log_metrics(
                        _interval_metrics(
                            f"{name}_at_rule",
                            {
                                "estimate": point["estimate"],
                                "low": point["ci"][0],
                                "high": point["ci"][1],
                            },
                        )
                    )
        mlflow.log_metrics(_interval_metrics("primary_auc", metrics["models"][primary]["auc"]))
        salt = installation_salt()
        hashed = predictions.copy()
        hashed["patient_id"] = pseudonymise(hashed["patient_id"], salt)
        hashed["lesion_id"] = pseudonymise(hashed["lesion_id"], salt)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "predictions_pseudonymised.csv"
            hashed.to_csv(path, index=False)
            mlflow.log_artifact(str(path))
        # From memory: the file is written once, after this run's ID is known.
        mlflow.log_text(json_text(metrics), "metrics.json")
        mlflow.log_artifact(str(out_dir / "report.html"))
        if bundle is not None:
            mlflow.log_artifacts(str(bundle), artifact_path="bundle")
        if bundle is not None and not metrics["permuted_labels"]:
            _register(bundle, experiment, tags)
        return parent.info.run_id


def _register(bundle_path: Path, name: str, tags: dict[str, str]) -> None:
    """Register the bundle as the pyfunc `rnclassifier.registry.BundleModel` under `name`: its
    artefact is the bundle folder, verified here first, its signature the bundle's input
    features. No input example is logged (it would be a patient's lesion). Requirements are
    given, not inferred: inference lists both xgboost wheels and takes seconds."""
    import mlflow
    import sklearn
    import skops
    import xgboost

    from rnclassifier.bundle import load_bundle
    from rnclassifier.registry import BUNDLE_ARTIFACT, BundleModel, manifest_digest, signature

    bundle = load_bundle(bundle_path)  # refuses a changed bundle before it is registered
    digest = manifest_digest(bundle_path)
    mlflow.pyfunc.log_model(
        name="primary_model",
        python_model=BundleModel(),
        artifacts={BUNDLE_ARTIFACT: str(Path(bundle_path).resolve())},
        model_config={"manifest_sha256": digest},
        signature=signature(bundle),
        pip_requirements=[
            f"rnclassifier=={__version__}",
            f"mlflow=={mlflow.__version__}",
            f"scikit-learn=={sklearn.__version__}",
            f"skops=={skops.__version__}",
            f"xgboost-cpu=={xgboost.__version__}",
        ],
        registered_model_name=name,
        tags={
            "role": "primary",
            "synthetic": tags["synthetic"],
            "bundle": str(bundle.meta.name),
            "bundle_manifest_sha256": digest,
            "primary": tags["primary"],
        },
    )


def _interval_metrics(name: str, interval: dict[str, Any]) -> dict[str, float]:
    values = {
        name: interval["estimate"],
        f"{name}_ci_low": interval["low"],
        f"{name}_ci_high": interval["high"],
    }
    return {k: float(v) for k, v in values.items() if v is not None and v == v}


def _flat(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def log_validation(
    out_dir: Path,
    document: dict[str, Any],
    *,
    data_hash: str,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
) -> tuple[str, str | None]:
    """Log one external validation as a run linked to the model's registered version (found by
    the training data hash and the primary it was registered for). Returns the run ID and the
    linked 'name/version', or None when this store has no such version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    client = MlflowClient()
    model = document["model"]
    primary = f"{model['model']}/{model['feature_set']}"
    linked = None
    for version in client.search_model_versions(max_results=1000):
        run = client.get_run(version.run_id) if version.run_id else None
        if (
            run
            and run.data.tags.get("data_hash") == data_hash
            and run.data.tags.get("primary") == primary
        ):
            candidate = f"{version.name}/{version.version}"
            linked = max(linked or candidate, candidate, key=lambda v: int(v.rsplit("/", 1)[1]))
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment)
    mlflow.set_experiment(experiment)
    tags = {
        "rnclassifier_version": __version__,
        "role": "external validation",
        "model_bundle": model["name"],
        "registered_model": linked or "not registered in this tracking store",
        "synthetic": str(model["synthetic"]).lower(),
    }
    with mlflow.start_run(run_name=f"validation of {model['name']}", tags=tags) as run:
        for name, metrics in document["cohorts"].items():
            key = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
            mlflow.log_metrics(_interval_metrics(f"{key}.auc", metrics["discrimination"]["auc"]))
            calibration = metrics["calibration"]
            mlflow.log_metrics(
                {
                    f"{key}.calibration_slope": calibration["slope"],
                    f"{key}.calibration_intercept": calibration["intercept"],
                    f"{key}.n_lesions": metrics["n_lesions"],
                }
                if calibration["slope"] == calibration["slope"]
                else {f"{key}.n_lesions": metrics["n_lesions"]}
            )
        # From memory: the file is written once, after this run's ID is known.
        mlflow.log_text(json_text(document), "metrics.json")
        mlflow.log_artifact(str(out_dir / "report.html"))
        if linked:
            name, version = linked.rsplit("/", 1)
            client.set_model_version_tag(name, version, f"validated_by_run_{run.info.run_id}", "1")
        return run.info.run_id, linked
