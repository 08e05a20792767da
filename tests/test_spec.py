"""Experiment configs: validated before anything runs; a study runs from its config alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rnclassifier.cli import main
from rnclassifier.errors import InputError
from rnclassifier.spec import load_experiment

SHIPPED = Path(__file__).resolve().parents[1] / "experiments" / "seed-synthetic" / "experiment.yaml"


def write(folder: Path, document: dict) -> Path:
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def minimal() -> dict:
    return {
        "name": "tiny",
        "data": {"features": "features.csv"},
        "models": ["xgboost", "elastic_net"],
        "feature_sets": ["all"],
        "primary": {"model": "xgboost", "feature_set": "all"},
        "cv": {"outer_folds": 3, "repeats": 1, "inner_folds": 2, "trials": 2},
    }


def test_shipped_experiment_is_valid():
    spec = load_experiment(SHIPPED)
    assert spec.primary.model == "xgboost"
    assert spec.primary.feature_set == "combined"
    assert spec.synthetic is True
    assert len(spec.config_sha256) == 64
    # The config's own paths are relative to it.
    shipped_table = SHIPPED.parent / "../../demo-output/features.parquet"
    assert spec.data.features == os.path.normpath(shipped_table)


def test_unknown_keys_and_wrong_values_name_the_key(tmp_path):
    document = minimal()
    document["cv"]["outer_fold"] = 5
    document["threshold"] = {"rule": "f1"}
    document["primary"]["model"] = "svm"
    path = write(tmp_path, document)
    with pytest.raises(InputError) as caught:
        load_experiment(path)
    problems = caught.value.problems
    assert any(p.startswith(f"{path}: experiment.cv.outer_fold: unknown key") for p in problems)
    assert any("experiment.threshold.rule" in p for p in problems)
    assert any("experiment.primary.model" in p for p in problems)


def test_data_needs_exactly_one_source(tmp_path):
    document = minimal()
    document["data"] = {"features": "f.csv", "cohort": "c.csv"}
    with pytest.raises(InputError, match="exactly one of 'features' and 'cohort'"):
        load_experiment(write(tmp_path, document))


def test_primary_model_must_be_run(tmp_path):
    document = minimal()
    document["models"] = ["elastic_net"]
    with pytest.raises(InputError, match=r"primary\.model 'xgboost' is not in models"):
        load_experiment(write(tmp_path, document))


def test_train_from_config(tmp_path):
    rng = np.random.default_rng(0)
    n = 90
    y = rng.random(n) < 0.6
    pd.DataFrame(
        {
            "lesion_id": [f"L{i}" for i in range(n)],
            "patient_id": [f"P{i // 2}" for i in range(n)],
            "pathology": np.where(y, "tumor", "necrosis"),
            "signal": y + rng.normal(0, 0.7, n),
            "noise": rng.normal(size=n),
        }
    ).to_csv(tmp_path / "features.csv", index=False)
    config = write(tmp_path, minimal())
    assert main(["train", "--config", str(config), "--no-mlflow"]) == 0
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert metrics["config_sha256"] == load_experiment(config).config_sha256
    assert metrics["primary"]["key"] == "xgboost/all"
    assert metrics["models"]["elastic_net/all"]["auc"]["estimate"] > 0.75


def _table(path: Path) -> Path:
    rng = np.random.default_rng(1)
    n = 60
    y = rng.random(n) < 0.6
    pd.DataFrame(
        {
            "lesion_id": [f"L{i}" for i in range(n)],
            "patient_id": [f"P{i}" for i in range(n)],
            "pathology": np.where(y, "tumor", "necrosis"),
            "signal": y + rng.normal(0, 0.7, n),
        }
    ).to_csv(path, index=False)
    return path


def test_flags_and_a_config_build_the_same_spec(tmp_path):
    """One definition: a config that declares nothing but its data and the command line's
    defaults are the same run (apart from the run's name and where its data is)."""
    from rnclassifier.cli.train import _from_flags, train

    _table(tmp_path / "features.csv")
    config = write(tmp_path, {"name": "tiny", "data": {"features": "features.csv"}})
    from_config = load_experiment(config)
    context = train.make_context(
        "train", ["--features", str(tmp_path / "features.csv"), "--out", str(tmp_path)]
    )
    from_flags = _from_flags(context.params)
    ignore = {"name", "data", "config_sha256"}
    assert from_flags.model_dump(exclude=ignore) == from_config.model_dump(exclude=ignore)
    assert from_flags.data == from_config.data


def test_one_default_primary_set_whichever_way_the_run_starts(tmp_path):
    """A config that declares no primary feature set, on a table from another tool: `all`, as
    from the command line (it used to default to `combined` and fail on such a table)."""
    _table(tmp_path / "features.csv")
    document = {
        "name": "foreign",
        "data": {"features": "features.csv"},
        "models": ["elastic_net"],
        "primary": {"model": "elastic_net"},
        "cv": {"outer_folds": 3, "repeats": 1, "inner_folds": 2, "trials": 2},
    }
    config = write(tmp_path, document)
    assert main(["train", "--config", str(config), "--no-mlflow", "--no-bundle"]) == 0
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert metrics["primary"]["key"] == "elastic_net/all"


def test_flags_that_declare_the_experiment_are_refused_beside_a_config(tmp_path, capsys):
    config = write(tmp_path, minimal())
    status = main(["train", "--config", str(config), "--trials", "5", "--model", "xgboost"])
    assert status == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --model: not with --config (the experiment config declares it)",
        "error: --trials: not with --config (the experiment config declares it)",
    ]
