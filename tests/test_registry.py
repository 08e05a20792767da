"""The model registered in MLflow is a pyfunc over the verified bundle: served with `mlflow
models serve`, loaded with `mlflow.pyfunc.load_model`, it answers as `rnclassifier score
--cohort` does on the same lesions (issue #16, point 5)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnclassifier.bundle import MANIFEST_FILE, load_bundle
from rnclassifier.cli import main
from rnclassifier.errors import InputError
from rnclassifier.registry import needed_features

NAME = "registry-test"


def _pick_lesions(bundle, features: pd.DataFrame) -> list[int]:
    """Positions of a few training lesions with complete model features: two of every call,
    two called tumour below 0.5 (where labels at 0.5, the old registered model's answer, would
    say necrosis), and the most distant one (out of distribution when any is)."""
    complete = features[bundle.used_features].notna().all(axis=1).to_numpy()
    table = bundle.predict(features.reset_index(drop=True)).table()[complete]
    picked = [int(table["mahalanobis_distance"].idxmax())]
    for _, rows in table.groupby("call"):
        picked += rows.index[:2].tolist()
    trap = table[(table["probability"] < 0.5) & (table["call"] == "tumor")]
    picked += trap.index[:2].tolist()
    return sorted(set(picked))


@pytest.fixture(scope="module")
def registered(trained, tmp_path_factory) -> dict:
    """The fixture's training experiment logged with its bundle, as `train` logs it, into a
    fresh store; the chosen lesions as a manifest beside the fixture's own."""
    from rnclassifier.tracking import log_experiment

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    out = trained["folder"] / "out"
    bundle = load_bundle(trained["bundle"])
    features = pd.read_parquet(trained["folder"] / "features.parquet")
    rows = _pick_lesions(bundle, features)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RNCLASSIFIER_SALT_FILE", str(folder / "salt"))
        log_experiment(
            out,
            json.loads((out / "metrics.json").read_text()),
            pd.read_csv(out / "predictions.csv"),
            tracking_uri=uri,
            experiment=NAME,
            artifact_location=(folder / "artifacts").as_uri(),
            data_hash="0" * 64,
            synthetic=True,
            bundle=trained["bundle"],
        )
    features = features.iloc[rows].reset_index(drop=True)
    manifest = trained["folder"] / "cohort" / "registry-lesions.csv"  # relative paths resolve
    lesions = trained["manifest"].set_index("lesion_id", drop=False)
    lesions.loc[features["lesion_id"]].to_csv(manifest, index=False)
    return {
        "folder": folder,
        "uri": uri,
        "bundle": bundle,
        "manifest": manifest,
        "features": features,
    }


@pytest.fixture(scope="module")
def scored(registered, tmp_path_factory) -> pd.DataFrame:
    """`rnclassifier score --cohort` (the CLI) on the chosen lesions."""
    folder = tmp_path_factory.mktemp("scored")
    status = main(["score", "--model", str(registered["bundle"].path),
                   "--cohort", str(registered["manifest"]), "--out", str(folder / "scores.csv"),
                   "--cache-dir", str(folder / "cache")])  # fmt: skip
    assert status == 0
    return pd.read_csv(folder / "scores.csv", keep_default_na=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(registered, tmp_path_factory):
    """`mlflow models serve` of the registered version on loopback, started (not yet
    answering); its process group is always ended, also when a test fails."""
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registered["uri"],
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # uvicorn
    }
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{NAME}/1",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield process, f"http://127.0.0.1:{port}", log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def served(server, scored) -> str:
    """The server's URL once /ping answers (`score --cohort` runs while it starts)."""
    process, url, log = server
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"mlflow models serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _rows(frame: pd.DataFrame, columns: list[str]) -> dict:
    """`dataframe_split` JSON with every double at full precision, missing values as null."""
    values = frame[columns].astype(float).to_numpy()
    data = [[None if np.isnan(v) else float(v) for v in row] for row in values]
    return {"dataframe_split": {"columns": columns, "data": data}}


def _post(url: str, document: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _same_answers(answers: pd.DataFrame, scored: pd.DataFrame) -> None:
    assert len(answers) == len(scored)
    np.testing.assert_allclose(answers["probability"], scored["probability"], rtol=0, atol=1e-12)
    assert answers["call"].tolist() == scored["call"].tolist()
    assert answers["out_of_distribution"].tolist() == scored["out_of_distribution"].tolist()
    assert answers["threshold"].tolist() == scored["threshold"].tolist()
    np.testing.assert_allclose(
        answers["mahalanobis_distance"], scored["mahalanobis_distance"], rtol=0, atol=1e-12
    )


def _same_spread(answers: pd.DataFrame, bundle, features: pd.DataFrame) -> None:
    """The CV ensemble's spread as the bundle gives it on the lesions' full feature rows."""
    expected = bundle.predict(features[bundle.input_features]).table()
    for column in ("ensemble_min", "ensemble_max"):
        np.testing.assert_allclose(answers[column], expected[column], rtol=0, atol=1e-12)


def test_served_model_answers_as_score_cohort(registered, scored, served):
    """The registered version served on loopback, sent the lesions' feature rows as
    `rnclassifier extract` wrote them (every input feature), answers as `score --cohort` on
    the same lesions' images: probability to 1e-12, the same call and flag on every lesion."""
    bundle = registered["bundle"]
    status, answer = _post(served, _rows(registered["features"], bundle.input_features))
    assert status == 200, answer
    assert scored["lesion_id"].tolist() == registered["features"]["lesion_id"].tolist()
    answers = pd.DataFrame(answer["predictions"])
    print(pd.concat([scored[["probability", "call", "out_of_distribution"]], answers], axis=1))
    _same_answers(answers, scored)
    _same_spread(answers, bundle, registered["features"])
    # Without the features that only the CV ensemble's models read, the spread would rest on
    # imputed values: refused, naming one.
    needed = needed_features(bundle)
    assert len(needed) > len(bundle.used_features)
    status, answer = _post(served, _rows(registered["features"], bundle.used_features))
    assert status == 400
    assert next(c for c in needed if c not in bundle.used_features) in answer["message"]


def test_served_model_refuses_a_lesion_without_a_feature_it_uses(registered, served):
    used = needed_features(registered["bundle"])
    features = registered["features"].copy()
    features.loc[1, used[0]] = np.nan
    status, answer = _post(served, _rows(features, used))
    assert status == 400
    assert f"row 1, column {used[0]!r}: empty" in answer["message"]
    status, answer = _post(served, _rows(features, used[1:]))
    assert status == 400
    assert used[0] in answer["message"]


def test_loaded_model_predicts_in_process_with_the_bundle_signature(registered, scored):
    import mlflow

    mlflow.set_tracking_uri(registered["uri"])
    (version,) = mlflow.MlflowClient().search_model_versions(f"name='{NAME}'")
    assert str(version.version) == "1"
    assert version.tags["role"] == "primary"
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    assert model.loader_module == "mlflow.pyfunc.model"
    bundle = registered["bundle"]
    inputs = model.metadata.signature.inputs.inputs
    assert [c.name for c in inputs] == bundle.input_features
    assert {c.type.name for c in inputs} == {"double"}
    assert [c.name for c in inputs if c.required] == needed_features(bundle)
    assert set(bundle.used_features) <= set(needed_features(bundle))
    outputs = [c.name for c in model.metadata.signature.outputs.inputs]
    assert outputs[:3] == ["probability", "call", "threshold"]
    assert "out_of_distribution" in outputs
    answers = model.predict(registered["features"][bundle.input_features].astype(float))
    assert list(answers.columns) == outputs
    _same_answers(answers.reset_index(drop=True), scored)
    _same_spread(answers, bundle, registered["features"])


def test_score_cohort_spread_is_the_ensemble_spread_on_full_features(registered, scored):
    _same_spread(scored, registered["bundle"], registered["features"])


def test_nothing_logged_names_a_patient(registered, trained):
    """The registered model's artefacts (the bundle, MLmodel) and every other logged file or
    tag hold no patient or lesion ID, and no feature row (no input example is logged)."""
    ids = set(trained["manifest"]["patient_id"]) | set(trained["manifest"]["lesion_id"])
    stored = [p for p in registered["folder"].rglob("*") if p.is_file() and p.name != "salt"]
    assert any(p.name == "MLmodel" for p in stored)
    assert not [p for p in stored if "input_example" in p.name or "serving_input" in p.name]
    for path in stored:
        text = path.read_bytes().decode("latin-1")
        found = [i for i in ids if i in text]
        assert not found, f"{path}: {found[:3]}"


def _download(registered, tmp_path) -> Path:
    import mlflow

    mlflow.set_tracking_uri(registered["uri"])
    return Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", dst_path=str(tmp_path)))


def test_a_tampered_bundle_artefact_is_refused_when_the_model_loads(registered, tmp_path):
    import mlflow

    model = _download(registered, tmp_path / "changed")
    card = model / "artifacts" / "bundle" / "MODEL_CARD.md"
    card.write_text(card.read_text() + "\nEdited.\n")
    with pytest.raises(InputError, match=r"MODEL_CARD\.md: changed since the bundle was written"):
        mlflow.pyfunc.load_model(str(model))


def test_another_self_consistent_bundle_is_refused_when_the_model_loads(registered, tmp_path):
    """A bundle whose manifest was rewritten to match its edits passes the bundle's own check;
    the registered model also holds the manifest's digest and refuses it."""
    import mlflow

    model = _download(registered, tmp_path / "swapped")
    folder = model / "artifacts" / "bundle"
    card = folder / "MODEL_CARD.md"
    card.write_text(card.read_text() + "\nEdited.\n")
    digest = hashlib.sha256(card.read_bytes()).hexdigest()
    manifest = folder / MANIFEST_FILE
    manifest.write_text(
        "".join(
            f"{digest}  MODEL_CARD.md\n" if line.endswith("  MODEL_CARD.md\n") else line
            for line in manifest.read_text().splitlines(True)
        )
    )
    load_bundle(folder)  # consistent in itself
    with pytest.raises(InputError, match="not the bundle registered"):
        mlflow.pyfunc.load_model(str(model))


def test_a_model_harmonised_by_site_asks_for_the_site(registered):
    """For a ComBat bundle the signature adds a required `site` column, and a frame without it
    is refused with one line (sites are checked against training by the bundle itself)."""
    import dataclasses

    from rnclassifier.registry import predict_frame, signature

    bundle = registered["bundle"]
    meta = bundle.meta.model_copy(update={"harmonisation": "combat by site"})
    harmonised = dataclasses.replace(bundle, meta=meta)
    inputs = signature(harmonised).inputs.inputs
    assert [c.name for c in inputs] == [*bundle.input_features, "site"]
    assert inputs[-1].required
    assert inputs[-1].type.name == "string"
    with pytest.raises(InputError, match="column 'site': missing; this model harmonises by site"):
        predict_frame(harmonised, registered["features"][bundle.input_features])
    assert "site" not in [c.name for c in signature(bundle).inputs.inputs]
