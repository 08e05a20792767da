"""The runnable example of the public Python API (examples/notebook_workflow.py) runs, and its
answers agree with the command line's contracts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

import rnclassifier

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "notebook_workflow.py"


def test_the_public_api_is_the_documented_one():
    assert sorted(rnclassifier.__all__) == sorted(
        ["__version__", "load_cohort", "extract_features", "read_feature_table", "TrainingSpec",
         "load_experiment", "train", "load_bundle", "ModelBundle", "CaseInputs", "score_case",
         "validate"]
    )  # fmt: skip
    for name in rnclassifier.__all__:
        assert getattr(rnclassifier, name) is not None
    # The modules behind them are named for what they hold: importing one shadows nothing.
    import importlib

    importlib.import_module("rnclassifier.training")
    importlib.import_module("rnclassifier.validation")
    assert callable(rnclassifier.train)
    assert callable(rnclassifier.validate)


@pytest.mark.slow  # ~4 min: the demo's stages again, through the notebook (test_demo runs them)
def test_the_notebook_example_runs_end_to_end(tmp_path):
    spec = importlib.util.spec_from_file_location("notebook_workflow", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(tmp_path)
    bundle, result = out["bundle"], out["result"]
    # The case scored from its images equals the bundle's prediction on its table row.
    table = pd.read_parquet(tmp_path / "features.parquet")
    assert result["probability"] == bundle.predict(table.iloc[[0]]).probability[0]
    assert result["call"] in ("tumor", "indeterminate", "necrosis")
    assert (tmp_path / "experiment" / "metrics.json").is_file()
    assert out["metrics"]["bundle"] == str(tmp_path / "models" / "notebook-synthetic")
    external = out["validation"]["cohorts"]["external"]
    assert external["n_lesions"] == 16
    assert 0 <= external["discrimination"]["auc"]["estimate"] <= 1
