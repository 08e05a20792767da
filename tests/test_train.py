"""Nested patient-grouped CV: no patient across a split, signal found, permuted labels near 0.5,
results independent of parallelism, and the CLI's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnclassifier.cli import main
from rnclassifier.errors import InputError
from rnclassifier.modeling.nested import Budget, nested_cv, outer_splits
from rnclassifier.stats.discrimination import auc
from rnclassifier.synthetic.presets import SEED
from rnclassifier.synthetic.sampler import sample_lesions
from rnclassifier.train import read_feature_table, train_from_features

SMALL = Budget(outer_folds=3, repeats=1, inner_folds=2, trials=3, seed=0)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """Noisy copies of the synthetic latents plus pure-noise columns, with multi-lesion patients."""
    frame = sample_lesions(SEED, n_lesions=240, seed=4)
    rng = np.random.default_rng(0)
    features = pd.DataFrame(
        {
            "lesion_id": frame["lesion_id"],
            "patient_id": frame["patient_id"],
            "pathology": frame["pathology"],
        }
    )
    for column in [c for c in frame if c.startswith("latent_")]:
        features[column.replace("latent_", "sign_")] = frame[column] + rng.normal(0, 0.5, 240)
    for j in range(15):
        features[f"noise_{j}"] = rng.normal(size=240)
    path = tmp_path_factory.mktemp("train") / "features.csv"
    features.to_csv(path, index=False)
    return path


def test_no_patient_on_both_sides_of_an_outer_split(table):
    data = read_feature_table(table)
    splits = outer_splits(data.y, data.groups, Budget(outer_folds=5, repeats=2))
    assert len(splits) == 10
    for _, _, train, test in splits:
        assert not set(data.groups[train]) & set(data.groups[test])
    for repeat in (0, 1):
        tested = np.concatenate([test for r, _, _, test in splits if r == repeat])
        assert sorted(tested) == list(range(len(data.y)))  # every lesion predicted once


def test_signal_is_found_and_permuted_labels_give_chance(table):
    data = read_feature_table(table)
    result = nested_cv(data.X, data.y, data.groups, "elastic_net", SMALL)
    assert auc(data.y, result.mean_probability(len(data.y))) > 0.75
    permuted = np.random.default_rng(1).permutation(data.y)
    null = nested_cv(data.X, permuted, data.groups, "elastic_net", SMALL)
    assert abs(auc(permuted, null.mean_probability(len(data.y))) - 0.5) < 0.1


def test_pure_noise_features_give_chance(table):
    data = read_feature_table(table)
    noise = data.X[[c for c in data.X if c.startswith("noise_")]]
    result = nested_cv(noise, data.y, data.groups, "xgboost", SMALL)
    assert abs(auc(data.y, result.mean_probability(len(data.y))) - 0.5) < 0.1


def test_results_do_not_depend_on_jobs(table):
    data = read_feature_table(table)
    one = nested_cv(data.X, data.y, data.groups, "xgboost", SMALL, jobs=1)
    two = nested_cv(data.X, data.y, data.groups, "xgboost", SMALL, jobs=2)
    pd.testing.assert_frame_equal(one.predictions, two.predictions)


def test_train_writes_metrics_predictions_and_report(table, tmp_path):
    out = tmp_path / "experiment"
    code = main(
        [
            "train",
            "--features",
            str(table),
            "--out",
            str(out),
            "--model",
            "xgboost",
            "--model",
            "elastic_net",
            "--outer-folds",
            "3",
            "--repeats",
            "1",
            "--inner-folds",
            "2",
            "--trials",
            "3",
            "--synthetic",
            "--no-mlflow",
            "--noise-alarm",
            "--no-bundle",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # A table from another tool (no rnclassifier naming): one feature set, "all".
    assert metrics["primary"] == {"model": "xgboost", "feature_set": "all", "key": "xgboost/all"}
    assert metrics["models"]["xgboost/all"]["primary"] is True
    assert metrics["models"]["elastic_net/all"]["primary"] is False
    assert metrics["models"]["elastic_net/all"]["auc"]["low"] > 0.7
    rule = metrics["models"]["elastic_net/all"]["at_threshold_rule"]
    assert rule["sensitivity"]["estimate"] > 0.85  # target 0.95, on unseen outer folds
    assert rule["sensitivity"]["ci"][0] < rule["sensitivity"]["estimate"]
    folds = metrics["models"]["xgboost/all"]["outer_folds"]
    assert all(0 <= fold["threshold"] <= 1 for fold in folds)
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 240
    assert predictions["probability_xgboost/all"].between(0, 1).all()
    alarm = metrics["leakage_alarms"]["pure_noise_features"]
    assert alarm["n_features"] == 20  # as many noise columns as the primary set has features
    assert abs(alarm["auc"]["estimate"] - 0.5) < 0.12
    html = (out / "report.html").read_text()
    assert "Model comparison" in html
    assert "leakage alarm: pure noise features" in html
    assert "http" not in html


def test_feature_table_errors(table, tmp_path):
    frame = pd.read_csv(table)
    frame["scanner"] = "a"
    frame.loc[3, "pathology"] = "unclear"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError) as caught:
        read_feature_table(path)
    assert caught.value.problems == [
        f"{path}: row 5, column pathology: 'unclear' is not tumor / necrosis / 1 / 0",
        f"{path}: column 'scanner' is not numeric",
    ]
    with pytest.raises(InputError, match="missing column 'subject'"):
        read_feature_table(table, group="subject")


def test_primary_must_be_among_the_models(table, tmp_path):
    with pytest.raises(InputError, match="include the primary"):
        train_from_features(
            read_feature_table(table), tmp_path, models=("elastic_net",), budget=SMALL
        )


def test_feature_sets_from_rnclassifier_names():
    from rnclassifier.modeling.feature_sets import feature_sets

    columns = [
        "age_years",
        "sex_m",
        "bed_ab10_gy",
        "immunotherapy_dual",
        "t1c__lesion__original_shape_MeshVolume",
        "flair__shell__original_glcm_Contrast",
        "delta__t1c__lesion__original_firstorder_Mean",
        "delta__lesion__log_volume_growth_per_month",
    ]
    sets = feature_sets(columns)
    assert sets["clinical"] == ["age_years", "sex_m", "bed_ab10_gy"]
    assert sets["clinical+size"] == [
        "age_years",
        "sex_m",
        "bed_ab10_gy",
        "t1c__lesion__original_shape_MeshVolume",
        "delta__lesion__log_volume_growth_per_month",
    ]
    assert sets["radiomics"] == [
        "t1c__lesion__original_shape_MeshVolume",
        "flair__shell__original_glcm_Contrast",
    ]
    assert "delta__t1c__lesion__original_firstorder_Mean" not in sets["combined"]
    assert "delta__t1c__lesion__original_firstorder_Mean" in sets["combined+delta"]
    assert feature_sets(["a", "b"]) == {"all": ["a", "b"]}


def test_unknown_feature_set_is_refused(table, tmp_path):
    with pytest.raises(InputError, match="have no columns in this table"):
        train_from_features(
            read_feature_table(table), tmp_path, primary_set="radiomics", budget=SMALL
        )


def test_experiment_is_tracked_in_mlflow_without_identifiers(table, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("RNCLASSIFIER_SALT_FILE", str(tmp_path / "salt"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics = train_from_features(
        read_feature_table(table),
        tmp_path / "out",
        models=("xgboost", "elastic_net"),
        budget=SMALL,
        tracking_uri=uri,
        experiment="test",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        synthetic=True,
    )
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("test")
    runs = client.search_runs([experiment.experiment_id])
    parent = client.get_run(metrics["mlflow_run_id"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    assert parent.data.tags["synthetic"] == "true"
    assert parent.data.metrics["primary_auc"] == pytest.approx(
        metrics["models"]["xgboost/all"]["auc"]["estimate"]
    )
    primary = [r for r in children if r.data.tags["role"] == "primary"]
    assert [r.info.run_name for r in primary] == ["xgboost/all"]
    artifacts = Path(parent.info.artifact_uri.removeprefix("file://"))
    logged = pd.read_csv(artifacts / "predictions_pseudonymised.csv")
    assert not logged["patient_id"].str.startswith("SYN-").any()
    assert logged["patient_id"].str.len().eq(16).all()
    assert (artifacts / "report.html").exists()
    # The declared primary's final model is registered under the experiment's name.
    versions = client.search_model_versions("name='test'")
    assert len(versions) == 1
    assert versions[0].tags["role"] == "primary"
    # A later validation of this model is linked to that registered version.
    from rnclassifier.tracking import log_validation

    document = {
        "model": {"name": "b", "model": "xgboost", "feature_set": "all", "synthetic": True},
        "cohorts": {},
    }
    run_id, linked = log_validation(
        tmp_path / "out",
        document,
        data_hash=read_feature_table(table).digest(),
        tracking_uri=uri,
        experiment="test-validation",
    )
    assert linked == "test/1"
    assert client.get_run(run_id).data.tags["registered_model"] == "test/1"
    # The same salt gives the same hashes on a rerun; the salt stays outside every output.
    assert (tmp_path / "salt").stat().st_mode & 0o777 == 0o600


def test_optuna_storage_resumes_per_outer_fold(table, tmp_path):
    """With a storage URL each outer fold keeps its study: a rerun adds only missing trials."""
    import optuna

    data = read_feature_table(table)
    X = data.X.iloc[:, :6]
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    first = nested_cv(X, data.y, data.groups, "xgboost", SMALL, storage=url, study_prefix="t")
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(url))
    assert names == ["t/repeat-0/fold-0", "t/repeat-0/fold-1", "t/repeat-0/fold-2"]
    again = nested_cv(X, data.y, data.groups, "xgboost", SMALL, storage=url, study_prefix="t")
    pd.testing.assert_frame_equal(first.predictions, again.predictions)  # nothing re-run
    longer = Budget(**{**SMALL.__dict__, "trials": 5})
    nested_cv(X, data.y, data.groups, "xgboost", longer, storage=url, study_prefix="t")
    counts = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(url)}
    assert set(counts.values()) == {5}  # 3 kept + 2 added per fold


def test_nothing_fitted_sees_its_outer_test_fold(table, monkeypatch):
    """A spy on every pipeline fit: no fit inside an outer fold (tuning trials, inner
    out-of-fold models for calibration and threshold, the refit) sees a patient of that fold's
    test part."""
    import rnclassifier.modeling.nested as nested

    data = read_feature_table(table)
    patient = dict(zip(data.X.index, data.groups, strict=True))
    current: dict[str, set] = {}
    seen: list[tuple[set, set]] = []
    outer_fold, make_pipeline = nested._outer_fold, nested.make_pipeline

    def spying_outer_fold(X, y, groups, model, budget, repeat, fold, train, test, *rest):
        current["test"] = {patient[i] for i in X.index[test]}
        return outer_fold(X, y, groups, model, budget, repeat, fold, train, test, *rest)

    def spying_make_pipeline(*args, **kwargs):
        pipeline = make_pipeline(*args, **kwargs)
        fit = pipeline.fit

        def spy(X, y=None, **params):
            seen.append((current["test"], {patient[i] for i in X.index}))
            return fit(X, y, **params)

        pipeline.fit = spy
        return pipeline

    monkeypatch.setattr(nested, "_outer_fold", spying_outer_fold)
    monkeypatch.setattr(nested, "make_pipeline", spying_make_pipeline)
    nested_cv(data.X, data.y, data.groups, "xgboost", SMALL, jobs=1)
    # 3 outer folds x (3 trials x 2 inner folds + 2 inner out-of-fold fits + 1 refit)
    assert len(seen) == 3 * (3 * 2 + 2 + 1)
    assert all(test and fitted and not test & fitted for test, fitted in seen)


def test_technical_failures_are_left_out_and_counted(table, tmp_path):
    """Rows that `extract --allow-failures` kept (NaN radiomics, listed in the sidecar) are
    not trained on and appear in the flow; a sidecar naming a row with values is refused."""
    frame = pd.read_csv(table)
    signs = [c for c in frame if c.startswith("sign_")]
    frame = frame.rename(columns={c: f"t1c__lesion__original_firstorder_{c}" for c in signs})
    for position in (3, 7):
        frame.loc[position, [c for c in frame if c.startswith("t1c__")]] = np.nan
    path = tmp_path / "features.csv"
    frame.to_csv(path, index=False)
    failed = [
        {"position": p, "manifest_row": p + 2, "reason": "pyradiomics skipped"} for p in (3, 7)
    ]
    sidecar = Path(f"{path}.json")
    sidecar.write_text(json.dumps({"failed_rows": failed}))
    data = read_feature_table(path)
    assert data.technical_failures == 2
    assert len(data.y) == len(frame) - 2
    assert frame.loc[3, "lesion_id"] not in set(data.ids)
    out = tmp_path / "experiment"
    train_from_features(data, out, models=("elastic_net",), primary="elastic_net",
                        budget=SMALL, track=False, synthetic=True)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    flow = metrics["primary_evaluation"]["flow"]
    assert flow["lesions"] == len(frame)
    assert flow["technical_failures"] == 2
    assert flow["scored"] == len(frame) - 2
    assert "2 more lesion(s) left out as technical failures" in metrics["tripod"]["Sample size"]

    sidecar.write_text(json.dumps({"failed_rows": [{"position": 4, "manifest_row": 6}]}))
    with pytest.raises(InputError, match="row 6 is listed as a technical failure"):
        read_feature_table(path)
