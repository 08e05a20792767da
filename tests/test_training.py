"""Nested patient-grouped CV: no patient across a split, signal found, permuted labels near 0.5,
results independent of parallelism, and the CLI's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SMALL_CV, make_spec
from rnclassifier.cli import main
from rnclassifier.errors import InputError
from rnclassifier.modeling.nested import Budget, nested_cv, outer_splits
from rnclassifier.stats.discrimination import auc
from rnclassifier.synthetic.presets import SEED
from rnclassifier.synthetic.sampler import sample_lesions
from rnclassifier.training import read_feature_table, train_on

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


def test_the_plain_logistic_baseline_uses_every_feature_and_tunes_only_c(table):
    """The study's plain baseline (#20): L2 logistic regression on all columns inside the same
    nested CV; asked for, never compared by default."""
    from sklearn.linear_model import LogisticRegression

    from rnclassifier.modeling.pipeline import used_features
    from rnclassifier.modeling.spaces import GRIDS
    from rnclassifier.spec import DEFAULT_MODELS, TrainingSpec

    data = read_feature_table(table)
    result = nested_cv(data.X, data.y, data.groups, "logistic", SMALL)
    assert auc(data.y, result.mean_probability(len(data.y))) > 0.75
    for fold, fitted in zip(result.folds, result.fitted, strict=True):
        assert fold["params"]["select_k"] == "all"
        assert fold["params"]["C"] in GRIDS["logistic"]["C"]
        assert used_features(fitted.pipeline) == list(data.X.columns)  # no filter, no selection
        model = fitted.pipeline[-1]
        assert isinstance(model, LogisticRegression)
        assert model.penalty in ("l2", "deprecated")  # L2 is the default, named or not
        assert model.l1_ratio in (None, 0.0)
        assert model.class_weight is None
    assert "logistic" not in DEFAULT_MODELS
    assert "logistic" not in TrainingSpec().models


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


def test_primary_must_be_among_the_models(table, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"primary\.model 'xgboost' is not in models"):
        make_spec(models=("elastic_net",))
    code = main(
        ["train", "--features", str(table), "--out", str(tmp_path), "--model", "elastic_net"]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        "error: --primary xgboost: not among the models compared (elastic_net); add --model "
        "xgboost\n"
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
        train_on(
            read_feature_table(table), make_spec(primary={"feature_set": "radiomics"}), tmp_path
        )


def test_experiment_is_tracked_in_mlflow_without_identifiers(table, tmp_path, monkeypatch):
    import hashlib

    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("RNCLASSIFIER_SALT_FILE", str(tmp_path / "salt"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = make_spec(
        models=("xgboost", "elastic_net"),
        cv=SMALL_CV,
        tracking={
            "enabled": True,
            "uri": uri,
            "experiment": "test",
            "artifact_location": (tmp_path / "artifacts").as_uri(),
        },
        synthetic=True,
        bundle={"build": True, "path": str(tmp_path / "bundle")},
    )
    metrics = train_on(read_feature_table(table), spec, tmp_path / "out")
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
    # The declared primary's bundle is registered under the experiment's name, as the pyfunc
    # over the bundle (tests/test_registry.py), not as the bare pipeline.
    versions = client.search_model_versions("name='test'")
    assert len(versions) == 1
    assert versions[0].tags["role"] == "primary"
    assert (
        versions[0].tags["bundle_manifest_sha256"]
        == hashlib.sha256((tmp_path / "bundle" / "MANIFEST.sha256").read_bytes()).hexdigest()
    )
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
    """With a storage URL each outer fold keeps its study: a rerun of the same settings
    re-runs nothing."""
    import optuna

    data = read_feature_table(table)
    X = data.X.iloc[:, :6]
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    first = nested_cv(X, data.y, data.groups, "xgboost", SMALL, storage=url, study_prefix="t")
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(url))
    assert len(names) == 3
    assert [n.split("/")[0] for n in names] == ["t"] * 3  # the experiment name first
    assert [n.split("/", 2)[2] for n in names] == [f"repeat-0/fold-{f}" for f in range(3)]
    again = nested_cv(X, data.y, data.groups, "xgboost", SMALL, storage=url, study_prefix="t")
    pd.testing.assert_frame_equal(first.predictions, again.predictions)  # nothing re-run


def test_another_cv_scheme_or_grouping_never_reads_a_stored_study(table, tmp_path, monkeypatch):
    """The issue's trap: a 3-fold run, then a 4-fold run (or a corrected patient_id) on the same
    storage. Each makes its own studies and runs all its trials; none of the first run's
    trials is read. A study of the same name holding other settings is refused."""
    import optuna

    import rnclassifier.modeling.nested as nested

    data = read_feature_table(table)
    X = data.X.iloc[:, :6]
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    fits = []
    make_pipeline = nested.make_pipeline

    def counting(*args, **kwargs):
        fits.append(1)
        return make_pipeline(*args, **kwargs)

    monkeypatch.setattr(nested, "make_pipeline", counting)
    nested_cv(X, data.y, data.groups, "xgboost", SMALL, storage=url, study_prefix="t")
    first = {s.study_name for s in optuna.get_all_study_summaries(url)}
    fits.clear()
    four = Budget(**{**SMALL.__dict__, "outer_folds": 4})
    nested_cv(X, data.y, data.groups, "xgboost", four, storage=url, study_prefix="t")
    # 4 folds x (3 trials x 2 inner folds + 2 inner out-of-fold fits + 1 refit): all run.
    assert len(fits) == 4 * (3 * 2 + 2 + 1)
    summaries = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(url)}
    assert len(summaries) == 3 + 4
    assert all(summaries[name] == 3 for name in first)  # the first run's studies untouched
    regrouped = data.groups.copy()
    regrouped[0] = regrouped[1]  # a corrected patient_id
    fits.clear()
    nested_cv(X, data.y, regrouped, "xgboost", SMALL, storage=url, study_prefix="t")
    assert len(fits) == 3 * (3 * 2 + 2 + 1)
    assert len(optuna.get_all_study_summaries(url)) == 3 + 4 + 3

    # A study of the expected name made with other settings (or none) is refused, by name.
    name = sorted(first)[0]
    optuna.delete_study(study_name=name, storage=url)
    optuna.create_study(study_name=name, storage=url).set_user_attr(
        nested.SETTINGS_ATTRIBUTE, {"budget": "another"}
    )
    with pytest.raises(InputError, match=r"studies.db: optuna study 't/.*fold-0' exists with"):
        nested_cv(X, data.y, data.groups, "xgboost", SMALL, storage=url, study_prefix="t")


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
    spec = make_spec(models=("elastic_net",), primary={"model": "elastic_net"}, cv=SMALL_CV,
                     synthetic=True)  # fmt: skip
    train_on(data, spec, out)
    metrics = json.loads((out / "metrics.json").read_text())
    flow = metrics["primary_evaluation"]["flow"]
    assert flow["lesions"] == len(frame)
    assert flow["technical_failures"] == 2
    assert flow["scored"] == len(frame) - 2
    assert "2 more lesion(s) left out as technical failures" in metrics["tripod"]["Sample size"]

    sidecar.write_text(json.dumps({"failed_rows": [{"position": 4, "manifest_row": 6}]}))
    with pytest.raises(InputError, match="row 6 is listed as a technical failure"):
        read_feature_table(path)


@pytest.fixture(scope="module")
def read_table(tmp_path_factory) -> Path:
    """The table with the simulated radiologists' reads and scores and the other reserved
    columns a tool may write beside its features."""
    frame = sample_lesions(SEED, n_lesions=240, seed=4)
    rng = np.random.default_rng(0)
    features = pd.DataFrame({c: frame[c] for c in ("lesion_id", "patient_id", "pathology")})
    for column in [c for c in frame if c.startswith("latent_")]:
        features[column.replace("latent_", "sign_")] = frame[column] + rng.normal(0, 0.5, 240)
    for column in ("radiologist_read", "radiologist_score"):
        features[column] = frame[column]
    features["pathology_detail"] = "tumor"
    features["days_scan_to_surgery"] = 12  # numeric: would pass as a feature if not reserved
    path = tmp_path_factory.mktemp("reads") / "features.csv"
    features.to_csv(path, index=False)
    return path


def test_reserved_columns_are_never_features(read_table):
    data = read_feature_table(read_table)
    for column in ("radiologist_read", "radiologist_score", "pathology_detail",
                   "days_scan_to_surgery"):  # fmt: skip
        assert column not in data.X
    frame = pd.read_csv(read_table)
    expected = frame["radiologist_read"].map({"tumor": 1.0, "necrosis": 0.0}).to_numpy()
    np.testing.assert_array_equal(data.reads, expected)  # NaN where unread
    assert np.isnan(data.reads).any()
    assert np.isfinite(data.reads).any()
    np.testing.assert_array_equal(data.radiologist_score, frame["radiologist_score"].to_numpy())
    frame.loc[5, "radiologist_read"] = "probably tumour"
    bad = read_table.parent / "bad.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(InputError, match="row 7, column radiologist_read: 'probably tumour'"):
        read_feature_table(bad)


def test_matched_thresholds_are_fixed_without_the_judged_lesions(read_table, monkeypatch):
    """Spy: each outer fold's radiologist-matched thresholds come from its training part's
    reads only, and do not move when the reads of its test lesions are changed."""
    import rnclassifier.modeling.nested as nested

    data = read_feature_table(read_table)
    seen: list[int] = []
    matched = nested.radiologist_matched

    def spy(probability, y, reads):
        seen.append(len(reads))
        return matched(probability, y, reads)

    monkeypatch.setattr(nested, "radiologist_matched", spy)
    first = nested_cv(data.X, data.y, data.groups, "elastic_net", SMALL, reads=data.reads)
    splits = outer_splits(data.y, data.groups, SMALL)
    assert seen == [len(train) for _, _, train, _ in splits]  # training parts, never all
    test0 = splits[0][3]
    flipped = data.reads.copy()
    flipped[test0] = np.where(np.isnan(flipped[test0]), 1.0, 1 - flipped[test0])
    second = nested_cv(data.X, data.y, data.groups, "elastic_net", SMALL, reads=flipped)
    assert first.folds[0]["radiologist_matched"] == second.folds[0]["radiologist_matched"]
    assert first.folds[1]["radiologist_matched"] != second.folds[1]["radiologist_matched"]
    frame = first.predictions
    rows = frame["fold"] == 0
    t = first.folds[0]["radiologist_matched"]["sensitivity"]["threshold"]
    np.testing.assert_array_equal(
        frame.loc[rows, "matched_sensitivity_call"], frame.loc[rows, "probability"] >= t
    )


def test_training_reports_matched_points_and_stores_them_in_the_bundle(read_table, tmp_path):
    data = read_feature_table(read_table)
    out, bundle = tmp_path / "experiment", tmp_path / "bundle"
    spec = make_spec(models=("elastic_net",), primary={"model": "elastic_net"}, cv=SMALL_CV,
                     synthetic=True, bundle={"build": True, "path": str(bundle)})  # fmt: skip
    metrics = train_on(data, spec, out)
    entry = metrics["models"]["elastic_net/all"]
    sensitivity = entry["radiologist_matched"]["sensitivity"]
    assert len(sensitivity["folds"]) == 3
    readers = sensitivity["radiologists_on_read_lesions"]["sensitivity"]["estimate"]
    reached = sensitivity["model_on_read_lesions"]["sensitivity"]
    assert reached["ci"][0] <= reached["estimate"] <= reached["ci"][1]
    assert abs(reached["estimate"] - readers) < 0.12  # fixed on training parts, reached on tests
    assert "mcnemar_lesion_level" in sensitivity["within_necrosis"]
    zone = entry["indeterminate_zone"]
    assert 0 < zone["indeterminate_fraction"] < 1
    assert all(low <= high for low, high in zone["fold_zones"])
    evaluation = metrics["primary_evaluation"]["radiologists"]
    assert evaluation["prespecified"]["sensitivity"] == sensitivity
    assert "post hoc, optimistic" in evaluation["post_hoc_matched"]["label"]
    stored = json.loads((bundle / "bundle.json").read_text())["thresholds"]
    assert set(stored["radiologist_matched"]) == {"sensitivity", "specificity"}
    assert stored["indeterminate"]["low"] == stored["rule"]["value"]
    assert stored["indeterminate"]["high"] >= stored["indeterminate"]["low"]
    html = (out / "report.html").read_text()
    assert "Post hoc, optimistic" in html
    assert "Threshold matched to the radiologists" in html


def _latent_table(n: int, seed: int) -> pd.DataFrame:
    """Noisy synthetic latents, as the module's table but from any generator seed."""
    frame = sample_lesions(SEED, n_lesions=n, seed=seed)
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({c: frame[c] for c in ("lesion_id", "patient_id", "pathology")})
    for column in [c for c in frame if c.startswith("latent_")]:
        out[column.replace("latent_", "sign_")] = frame[column] + rng.normal(0, 0.5, n)
    return out


def test_over_confidence_check_agrees_with_new_lesions(tmp_path):
    """Platt fitted on inner out-of-fold models (which saw 2/3 of the lesions) is applied to
    the final model refit on all of them. The training run's check (the outer folds' test
    predictions, made by the same procedure) must tell what 4000 new lesions from the same
    generator show about the final model: here an elastic net whose refit on more lesions is
    over-confident (slope about 0.83)."""
    from rnclassifier.stats.calibration import calibration_summary

    train_path, new_path = tmp_path / "train.csv", tmp_path / "new.csv"
    _latent_table(240, 4).to_csv(train_path, index=False)
    _latent_table(4000, 5).to_csv(new_path, index=False)
    data, new = read_feature_table(train_path), read_feature_table(new_path)
    cv = {"outer_folds": 3, "repeats": 1, "inner_folds": 3, "trials": 5}
    out, bundle = tmp_path / "experiment", tmp_path / "bundle"
    spec = make_spec(models=("elastic_net",), primary={"model": "elastic_net"}, cv=cv,
                     bundle={"build": True, "path": str(bundle)})  # fmt: skip
    metrics = train_on(data, spec, out)
    from rnclassifier.bundle import load_bundle

    truth = calibration_summary(new.y, load_bundle(bundle).probability(new.X))
    assert truth["slope_ci_wald_lesion_level"][1] < 1  # over-confident on new lesions
    check = metrics["final_model"]["over_confidence_check"]
    low, high = check["slope_ci_wald_lesion_level"]
    assert low < truth["slope"] < high
    assert check["slope"] == pytest.approx(truth["slope"], abs=0.1)
