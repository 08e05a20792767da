"""External validation with a frozen bundle: a new same-distribution cohort lands inside the
training interval, recalibration moves calibration but not the AUC, a manifest missing what the
model needs fails before any extraction, shift statistics, and one section per cohort."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rnclassifier.cli import main
from rnclassifier.errors import InputError
from rnclassifier.synthetic.write import write_synthetic_cohort
from rnclassifier.validation import standardised_mean_differences, validate


@pytest.fixture(scope="module")
def new_cohort(tmp_path_factory):
    """New SYNTHETIC patients from the training cohort's distribution, split in two sites'
    manifests."""
    folder = tmp_path_factory.mktemp("validate")
    write_synthetic_cohort(folder / "new", n_lesions=60, seed=404, jobs=2)
    manifest = pd.read_csv(folder / "new" / "cohort.csv", dtype=str)
    for name, rows in (("first", manifest.iloc[:30]), ("second", manifest.iloc[30:])):
        local = rows.copy()
        for column in [c for c in local if c in ("t1c", "flair", "mask", "brain_mask")
                       or c.endswith("_prior")]:  # fmt: skip
            local[column] = [str(folder / "new" / v) for v in local[column]]
        local.to_csv(folder / f"{name}.csv", index=False)
    return folder


def test_same_distribution_cohort_validates_inside_the_training_interval(
    trained, new_cohort, tmp_path
):
    document = validate(
        trained["bundle"], [new_cohort / "new" / "cohort.csv"], tmp_path / "out", recalibrate=True
    )
    metrics = document["cohorts"]["new"]
    training = document["model"]["training_auc"]
    auc = metrics["discrimination"]["auc"]["estimate"]
    print(f"external AUC {auc:.3f}; training {training}")
    assert training["low"] <= auc <= training["high"]
    # Recalibration: the deployed (monotone) map leaves the AUC exactly; calibration moves.
    recalibrated = metrics["recalibrated"]
    assert recalibrated["auc"]["estimate"] == pytest.approx(auc, abs=1e-12)
    assert recalibrated["parameters"]["slope"] > 0
    assert recalibrated["calibration"]["intercept"] != metrics["calibration"]["intercept"]
    assert (
        abs(recalibrated["calibration"]["intercept"])
        <= abs(metrics["calibration"]["intercept"]) + 0.1
    )
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["cohorts"]["new"]["n_lesions"] == 60
    assert (tmp_path / "out" / "report.html").read_text().count("Cohort: new") == 1
    ids = pd.read_csv(new_cohort / "new" / "cohort.csv")["patient_id"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert not any(i in html for i in ids)
    assert not any(i in json.dumps(written) for i in ids)


def test_two_cohorts_give_two_sections(trained, new_cohort, tmp_path, capsys):
    code = main(
        [
            "validate", "--model", str(trained["bundle"]),
            "--cohort", str(new_cohort / "first.csv"),
            "--cohort", str(new_cohort / "second.csv"),
            "--out", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("AUC") == 2
    # Tracked in MLflow; this bundle was trained without tracking, so nothing to link to.
    assert "(no registered version of this model in the tracking store)" in printed
    document = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert list(document["cohorts"]) == ["first", "second"]
    assert document["mlflow"]["registered_model_version"] is None
    assert len(document["mlflow"]["run_id"]) == 32
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Cohort: first" in html
    assert "Cohort: second" in html
    for name in ("first", "second"):
        assert len(pd.read_csv(tmp_path / "out" / name / "predictions.csv")) == 30


def test_missing_inputs_fail_before_any_extraction(trained, new_cohort, tmp_path, monkeypatch):
    import rnclassifier.features.extract as extract

    def no_extraction(*args, **kwargs):
        raise AssertionError("extraction started before the manifests were checked")

    monkeypatch.setattr(extract, "extract_features", no_extraction)
    broken = pd.read_csv(new_cohort / "second.csv").drop(columns=["flair"])
    broken.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(InputError) as caught:
        validate(
            trained["bundle"], [new_cohort / "first.csv", tmp_path / "broken.csv"], tmp_path / "o"
        )
    assert caught.value.problems == [
        f"{tmp_path / 'broken.csv'}: column flair: missing; the model uses features of this "
        "sequence"
    ]
    assert not (tmp_path / "o").exists()


def test_standardised_mean_difference_on_a_constructed_example():
    reference = {"features": ["a", "b"], "mean": [10.0, 0.0], "sd": [2.0, 1.0]}
    external = pd.DataFrame({"a": [12.0, 14.0, 16.0], "b": [0.0, 0.0, np.nan]})
    smd = standardised_mean_differences(reference, external)
    # a: mean 14, SD 2 -> (14 - 10) / sqrt((4 + 4) / 2) = 2
    assert smd["a"] == pytest.approx(2.0)
    # b: two values, both 0 (SD 0) -> (0 - 0) / sqrt(1 / 2) = 0
    assert smd["b"] == pytest.approx(0.0)


def test_a_lesion_without_its_features_is_an_error_or_a_counted_technical_failure(
    trained, new_cohort, tmp_path, capsys
):
    """One lesion's mask shrunk to a voxel: pyradiomics skips it. Without --allow-failures
    validate and score stop (exit 2, nothing written); with it the lesion has no probability,
    no call, and the STARD flow counts it (never an imputed guess)."""
    import SimpleITK as sitk

    manifest = pd.read_csv(new_cohort / "first.csv", dtype=str).iloc[:12]  # 12: quicker
    mask = sitk.ReadImage(manifest.loc[4, "mask"]) * 0
    mask[[v // 2 for v in mask.GetSize()]] = 1
    sitk.WriteImage(mask, str(tmp_path / "dot.nii.gz"))
    manifest.loc[4, "mask"] = str(tmp_path / "dot.nii.gz")
    manifest.to_csv(tmp_path / "dot.csv", index=False)
    # One cache for the four runs: each lesion is extracted once.
    base = ["--model", str(trained["bundle"]), "--cohort", str(tmp_path / "dot.csv"),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    validate_argv = ["validate", *base, "--out", str(tmp_path / "out"), "--no-mlflow"]
    score_argv = ["score", *base, "--out", str(tmp_path / "scores.csv")]
    for argv in (validate_argv, score_argv):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert "manifest row 6: pyradiomics skipped" in error
        assert "--allow-failures" in error
    assert not (tmp_path / "out" / "metrics.json").exists()
    assert not (tmp_path / "scores.csv").exists()

    assert main([*validate_argv, "--allow-failures"]) == 0
    assert "1 technical failure(s) without a score" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["cohorts"]["dot"]
    assert metrics["flow"] == {
        "lesions": 12,
        "technical_failures": 1,
        "scored": 11,
        "read_by_radiologists": metrics["flow"]["read_by_radiologists"],
    }
    predictions = pd.read_csv(tmp_path / "out" / "dot" / "predictions.csv")
    assert predictions["technical_failure"].tolist() == [i == 4 for i in range(12)]
    assert np.isnan(predictions.loc[4, "probability"])
    assert pd.isna(predictions.loc[4, "call"])
    assert predictions.drop(index=4)["probability"].notna().all()

    assert main([*score_argv, "--allow-failures"]) == 0
    assert "1 technical failure(s) without a score" in capsys.readouterr().out
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert np.isnan(scores.loc[4, "probability"])
    np.testing.assert_allclose(
        scores.drop(index=4)["probability"], predictions.drop(index=4)["probability"]
    )


def test_recalibration_folds_are_stratified_and_a_one_class_fold_is_counted():
    from rnclassifier.validation import _recalibration

    rng = np.random.default_rng(3)
    y = np.r_[np.ones(20), np.zeros(20)].astype(int)
    p = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.15, 40), 0.01, 0.99)
    groups = np.array([f"P{i}" for i in range(40)])
    _, cross_validated, frozen = _recalibration(y, p, groups)
    assert frozen == 0
    assert np.isfinite(cross_validated).all()
    # One necrosis among ten: the fold that tests it trains on tumours only.
    few = np.r_[np.ones(9), np.zeros(1)].astype(int)
    _, out, frozen = _recalibration(few, p[:10], groups[:10])
    assert frozen == 1
    assert out[9] == p[9]  # that lesion keeps its frozen probability
