"""Killed runs lose no finished work: extraction resumes from its cache, training from its finished
outer folds, no half output or half bundle is visible, and an interrupted MLflow run is marked
failed. The kills are real (SIGKILL, SIGTERM) on real commands."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_spec
from rnclassifier.config import LIGHT_EXTRACTION_CONFIG
from rnclassifier.modeling.nested import Budget
from rnclassifier.synthetic import write_synthetic_cohort
from rnclassifier.synthetic.presets import SEED
from rnclassifier.synthetic.sampler import sample_lesions
from rnclassifier.training import CHECKPOINT_FOLDER, read_feature_table, train_on

CLI = [str(Path(sys.executable).parent / "rnclassifier"), "-v"]


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(CLI + args, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)


def wait_for(condition, process: subprocess.Popen, timeout: float = 300) -> None:
    """Poll until `condition()` holds; fail if the command ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the command finished before it could be interrupted"
        assert time.monotonic() < deadline, "timed out waiting to interrupt"
        time.sleep(0.05)


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if (
        folder.exists()
    ) else []  # fmt: skip


def test_killed_extraction_resumes_from_its_cache(tmp_path):
    write_synthetic_cohort(tmp_path / "cohort", n_lesions=8, seed=21, jobs=2)
    args = ["extract", "--cohort", str(tmp_path / "cohort" / "cohort.csv"), "--params",
            str(LIGHT_EXTRACTION_CONFIG), "--out", "out/features.parquet", "--cache-dir",
            "cache", "--jobs", "1"]  # fmt: skip
    process = start(args, tmp_path, tmp_path / "first.log")
    entries = lambda: list((tmp_path / "cache").rglob("*.json"))  # noqa: E731
    wait_for(lambda: len(entries()) >= 3, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = {p: p.stat().st_mtime_ns for p in entries()}
    assert 3 <= len(kept) < 8
    assert visible(tmp_path / "out") == []  # no feature table, not even a partial one

    resumed = subprocess.run(CLI + args, cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} lesions from the cache, {8 - len(kept)} to extract" in resumed.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished work kept as is

    # The resumed table is bit-identical to one extracted in a single uninterrupted run.
    fresh = subprocess.run(
        [*CLI, *args[:-5], "fresh.parquet", "--no-cache", "--jobs", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert fresh.returncode == 0, fresh.stderr
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "out" / "features.parquet"),
        pd.read_parquet(tmp_path / "fresh.parquet"),
        check_exact=True,
    )


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    frame = sample_lesions(SEED, n_lesions=120, seed=7)
    rng = np.random.default_rng(1)
    table = frame[["lesion_id", "patient_id", "pathology"]].copy()
    for column in [c for c in frame if c.startswith("latent_")]:
        table[column.replace("latent_", "sign_")] = frame[column] + rng.normal(0, 0.5, len(frame))
    path = tmp_path_factory.mktemp("features") / "features.csv"
    table.to_csv(path, index=False)
    return path


def train_args(features: Path, out: str, name: str) -> list[str]:
    """A small training run: 5 outer folds to interrupt between."""
    return ["train", "--features", str(features), "--out", out, "--no-mlflow", "--model",
            "xgboost", "--outer-folds", "5", "--repeats", "1", "--inner-folds", "2",
            "--trials", "4", "--name", name]  # fmt: skip


def finished_folds(out: Path) -> list[Path]:
    return list((out / CHECKPOINT_FOLDER).rglob("*.joblib"))


def test_killed_training_resumes_per_outer_fold(features, tmp_path):
    args = train_args(features, "out", "killed")
    process = start(args, tmp_path, tmp_path / "first.log")
    folds = lambda: finished_folds(tmp_path / "out")  # noqa: E731
    wait_for(lambda: len(folds()) >= 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(folds())
    assert 2 <= finished < 5
    assert visible(tmp_path / "models") == []  # no bundle, not even half of one
    assert visible(tmp_path / "out") == []

    resumed = subprocess.run(CLI + args, cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished} of 5 outer folds resumed" in resumed.stderr
    assert not (tmp_path / "out" / CHECKPOINT_FOLDER).exists()  # removed once complete
    assert visible(tmp_path / "models") == ["killed"]

    # Resuming changes nothing: the same predictions as an uninterrupted run.
    whole = subprocess.run(
        [*CLI, *train_args(features, "whole", "whole")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert whole.returncode == 0, whole.stderr
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "out" / "predictions.csv"),
        pd.read_csv(tmp_path / "whole" / "predictions.csv"),
        check_exact=True,
    )


def test_sigterm_is_an_interruption_that_leaves_nothing_half_written(features, tmp_path):
    process = start(train_args(features, "out", "stopped"), tmp_path, tmp_path / "log")
    wait_for(lambda: len(finished_folds(tmp_path / "out")) >= 1, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    assert "interrupted" in (tmp_path / "log").read_text()
    assert visible(tmp_path / "models") == []
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".partial")]


def test_an_interrupted_mlflow_run_is_marked_failed(features, tmp_path, monkeypatch):
    import mlflow

    import rnclassifier.tracking

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rnclassifier.tracking, "_register", interrupt)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(KeyboardInterrupt):
        spec = make_spec(
            models=("xgboost",),
            cv={"outer_folds": 3, "repeats": 1, "inner_folds": 2, "trials": 2},
            tracking={"enabled": True, "uri": uri, "experiment": "interrupted"},
            bundle={"build": True, "path": str(tmp_path / "models" / "interrupted")},
        )
        train_on(read_feature_table(features), spec, tmp_path / "out")
    runs = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("interrupted").experiment_id]
    )
    assert runs, "no run was started: the interruption came too early to test anything"
    assert "RUNNING" not in {run.info.status for run in runs}
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "FAILED"
    assert parent.info.end_time is not None


def test_resumed_folds_equal_fitted_ones_and_a_bad_checkpoint_is_refitted(tmp_path):
    from rnclassifier.modeling.nested import nested_cv

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(60, 4)), columns=list("abcd"))
    y = (X["a"] + rng.normal(0, 1, 60) > 0).astype(int).to_numpy()
    groups = np.arange(60) // 2
    budget = Budget(outer_folds=3, repeats=1, inner_folds=2, trials=2)
    first = nested_cv(X, y, groups, "elastic_net", budget, checkpoint=tmp_path)
    files = sorted(tmp_path.glob("*.joblib"))
    assert len(files) == 3
    files[0].write_bytes(b"written by some other version")
    again = nested_cv(X, y, groups, "elastic_net", budget, checkpoint=tmp_path)
    pd.testing.assert_frame_equal(first.predictions, again.predictions, check_exact=True)
    assert files[0].read_bytes() != b"written by some other version"  # refitted and saved
