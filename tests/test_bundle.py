"""The model bundle: the final model round-trips to identical predictions, and a changed, missing
or extra file, an unknown type or another schema version is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from scipy.special import logit
from sklearn.base import BaseEstimator

from conftest import SMALL_CV, TRAINED_CV, make_spec
from rnclassifier.bundle import MANIFEST_FILE, SCHEMA_VERSION, load_bundle, verify_bundle
from rnclassifier.errors import InputError
from rnclassifier.explain import shap_summary, shap_values
from rnclassifier.modeling.nested import Budget, final_seed, fit_tuned
from rnclassifier.modeling.ood import distance, fit_reference_with_cutoff
from rnclassifier.modeling.pipeline import make_pipeline
from rnclassifier.modeling.threshold import Calibrator
from rnclassifier.stats.descriptive import format_entry, table_one
from rnclassifier.training import read_feature_table, train_on

SMALL = Budget(outer_folds=3, repeats=1, inner_folds=2, trials=3, seed=0)


@pytest.fixture(scope="module")
def trained_bundle(trained) -> tuple[Path, Path, dict]:
    """The session's trained fixture as (feature table, bundle, metrics.json)."""
    folder = trained["folder"]
    metrics = json.loads((folder / "out" / "metrics.json").read_text())
    return folder / "features.parquet", trained["bundle"], metrics


def test_bundle_round_trips_to_identical_predictions(trained_bundle):
    path, bundle, metrics = trained_bundle
    data = read_feature_table(path)
    X = data.X[metrics["feature_sets"]["combined"]]
    # The final model rebuilt by the same procedure, in memory, against the loaded bundle.
    budget = Budget.of(make_spec(cv=TRAINED_CV))
    side = data.side_tables(harmonise=False)
    final = fit_tuned(X, data.y, data.groups, "xgboost", budget, final_seed(budget), side)
    loaded = load_bundle(bundle)
    np.testing.assert_array_equal(loaded.probability(data.X), final.probability(X))
    assert loaded.threshold == final.threshold
    assert loaded.meta.params == final.params
    assert loaded.ensemble_probabilities(data.X).shape == (len(data.y), 5)
    # Features the model does not use may be missing from a case; used ones may not.
    unused = [c for c in loaded.input_features if c not in loaded.used_features]
    np.testing.assert_array_equal(
        loaded.probability(data.X.drop(columns=unused)), final.probability(X)
    )
    with pytest.raises(InputError, match="needed by the model"):
        loaded.probability(data.X.drop(columns=loaded.used_features[0]))


def test_bundle_holds_the_contract_and_no_identifiers(trained_bundle):
    path, bundle, _metrics = trained_bundle
    meta = verify_bundle(bundle)
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["synthetic"] is True
    assert meta["training"]["prevalence"] == pytest.approx(read_feature_table(path).y.mean())
    assert meta["thresholds"]["rule"]["kind"] == "sensitivity"
    assert meta["shap"]["background_rows"] == 0
    # The distance uses the continuous model features; 0/1 ones are kept as rates.
    reference = meta["reference"]
    assert set(reference["features"]) | set(reference["indicator_rates"]) == set(
        meta["features"]["used"]
    )
    assert not set(reference["features"]) & set(reference["indicator_rates"])
    assert meta["reference"]["cutoff"] > 0
    n = len(read_feature_table(path).y)
    assert meta["table_one"]["tumor"]["n_lesions"] + meta["table_one"]["necrosis"]["n_lesions"] == n
    assert "SYNTHETIC" in (bundle / "MODEL_CARD.md").read_text()
    text = "".join(p.read_text(errors="ignore") for p in bundle.rglob("*") if p.is_file())
    ids = pd.read_parquet(path)[["lesion_id", "patient_id"]].to_numpy().ravel()
    assert not [i for i in ids if str(i) in text]


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


def test_changed_missing_and_extra_files_are_refused(trained_bundle, tmp_path):
    _, bundle, _ = trained_bundle
    copy = _copy(bundle, tmp_path)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["thresholds"]["rule"]["value"] = 0.01
    (copy / "bundle.json").write_text(json.dumps(meta))
    (copy / "ensemble" / "01.skops").unlink()
    (copy / "notes.txt").write_text("hello")
    with pytest.raises(InputError) as caught:
        load_bundle(copy)
    problems = caught.value.problems
    assert len(problems) == 3
    assert any("bundle.json: changed" in p for p in problems)
    assert any("01.skops: missing" in p for p in problems)
    assert any("notes.txt: not in the manifest" in p for p in problems)


def test_other_schema_versions_and_foreign_types_are_refused(trained_bundle, tmp_path):
    _, bundle, _ = trained_bundle
    copy = _copy(bundle, tmp_path)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (copy / "bundle.json").write_text(json.dumps(meta))
    _rewrite_manifest(copy)
    with pytest.raises(InputError, match="schema version 2"):
        load_bundle(copy)

    # A pipeline holding a type outside the allow-list is refused before it is loaded.
    copy = _copy(bundle, tmp_path / "b")
    sio.dump(Foreign(), copy / "pipeline.skops")
    _rewrite_manifest(copy)
    with pytest.raises(InputError, match="outside the bundle allow-list"):
        load_bundle(copy)


class Foreign(BaseEstimator):
    """A type that no bundle writes: loading it would import and run this module."""


def _rewrite_manifest(folder: Path) -> None:
    import hashlib

    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    ]
    (folder / MANIFEST_FILE).write_text("\n".join(lines) + "\n")


def test_not_a_bundle(tmp_path):
    with pytest.raises(InputError, match="not a model bundle folder"):
        verify_bundle(tmp_path / "nothing")
    with pytest.raises(InputError, match=r"MANIFEST\.sha256: missing"):
        verify_bundle(tmp_path)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrator_round_trips_through_json(method):
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.05, 0.95, 200)
    y = (rng.uniform(size=200) < raw**2).astype(int)
    calibrator = Calibrator(method).fit(raw, y)
    again = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    grid = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(again.transform(grid), calibrator.transform(grid))


@pytest.mark.parametrize(
    ("model", "params", "scale"),
    [
        ("xgboost", {"n_estimators": 30, "select_k": 4}, "logit"),
        ("random_forest", {"n_estimators": 30, "select_k": 4}, "probability"),
        ("elastic_net", {"select_k": 4, "C": 1.0, "l1_ratio": 0.5}, "logit"),
    ],
)
def test_shap_values_add_up_to_the_model_output(model, params, scale):
    """SHAP's local accuracy, without background rows: base + contributions = output."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 7)), columns=[f"f{i}" for i in range(7)])
    y = (X["f2"] + 0.5 * rng.normal(size=80) > 0).astype(int).to_numpy()
    pipeline = make_pipeline(model, params, 0).fit(X, y)
    values = shap_values(pipeline, X, model)
    output = pipeline.predict_proba(X)[:, 1]
    target = logit(output) if scale == "logit" else output
    total = values.drop(columns="base").sum(axis=1) + values["base"]
    np.testing.assert_allclose(total, target, atol=1e-4)
    assert shap_summary(values)["feature"].iloc[0] == "f2"


def test_ood_distance_flags_far_cases_and_cutoff_is_out_of_fold():
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(120, 5)), columns=list("abcde"))
    groups = np.repeat(np.arange(60), 2)
    reference = fit_reference_with_cutoff(X, groups)
    d = distance(reference, X)
    # About 1% of training-like lesions beyond the cut-off; a case 6 SD out is far beyond it.
    assert (d > reference["cutoff"]).mean() <= 0.03
    far = pd.DataFrame([[6.0, 0, 0, 0, 0]], columns=list("abcde"))
    assert distance(reference, far)[0] > reference["cutoff"]
    # A missing value counts as the training mean.
    centre = pd.DataFrame([[np.nan] * 5], columns=list("abcde"))
    assert distance(reference, centre)[0] == pytest.approx(0.0, abs=0.2)


def test_table_one_aggregates():
    table = pd.DataFrame({"age": [50, 60, 70, np.nan], "steroids": [1, 0, 1, 1]})
    result = table_one(table, np.array([1, 1, 0, 0]), np.array(["a", "a", "b", "c"]), list(table))
    assert result["tumor"]["n_patients"] == 1
    assert result["tumor"]["covariates"]["age"]["median"] == 55
    assert result["necrosis"]["covariates"]["age"]["n_missing"] == 1
    assert format_entry(result["all"]["covariates"]["steroids"]) == "3 (75%)"
    assert format_entry(result["all"]["covariates"]["age"]) == "60 (55–65); 1 missing"


def test_features_not_robust_to_the_mask_are_dropped_in_training(tmp_path):
    """With extraction's perturbation table beside the features, a feature that changes when
    the mask moves (ICC well below 0.75) never reaches the model, however informative."""
    rng = np.random.default_rng(5)
    n = 90
    y = rng.integers(0, 2, n)
    ids = [f"L{i:03d}" for i in range(n)]
    table = pd.DataFrame(
        {
            "lesion_id": ids,
            "patient_id": [f"P{i // 2:03d}" for i in range(n)],
            "pathology": np.where(y == 1, "tumor", "necrosis"),
            "t1c__lesion__original_firstorder_Fragile": y + rng.normal(0, 0.3, n),
            "t1c__lesion__original_firstorder_Robust": y + rng.normal(0, 0.8, n),
            "t1c__lesion__original_glcm_Other": rng.normal(size=n),
        }
    )
    rows = []
    for i, lesion in enumerate(ids):
        for j in range(3):
            rows.append(
                {
                    "lesion_id": lesion,
                    "perturbation": j,
                    "perturbation_kind": "erode",
                    # Fragile: a new value at each perturbation; the others barely move.
                    "t1c__lesion__original_firstorder_Fragile": rng.normal(0.5, 0.6),
                    "t1c__lesion__original_firstorder_Robust": table.iloc[i, 4]
                    + rng.normal(0, 0.02),
                    "t1c__lesion__original_glcm_Other": table.iloc[i, 5] + rng.normal(0, 0.02),
                }
            )
    table.to_parquet(tmp_path / "features.parquet")
    pd.DataFrame(rows).to_parquet(tmp_path / "features.perturb.parquet")
    data = read_feature_table(tmp_path / "features.parquet")
    assert data.perturbed is not None
    spec = make_spec(
        models=("elastic_net",),
        primary={"model": "elastic_net"},
        cv=SMALL_CV,
        bundle={"build": True, "path": str(tmp_path / "bundle")},
    )
    metrics = train_on(data, spec, tmp_path / "out")
    used = metrics["final_model"]["used_features"]
    assert "t1c__lesion__original_firstorder_Fragile" not in used
    assert "t1c__lesion__original_firstorder_Robust" in used
    loaded = load_bundle(tmp_path / "bundle")
    assert loaded.pipeline.named_steps["icc"].perturbed is None  # no rows travel with the model
    assert loaded.probability(data.X).shape == (n,)


def test_combat_harmonised_model_round_trips_and_needs_a_seen_site(tmp_path):
    """Site shifts on the radiomics features; ComBat inside the folds; the bundle scores only
    lesions from sites it has seen."""
    rng = np.random.default_rng(8)
    n = 90
    y = rng.integers(0, 2, n)
    sites = np.array(["A", "B", "C"])[rng.integers(0, 3, n)]
    shift = {"A": 0.0, "B": 3.0, "C": -2.0}
    table = pd.DataFrame(
        {
            "lesion_id": [f"L{i:03d}" for i in range(n)],
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "pathology": np.where(y == 1, "tumor", "necrosis"),
            "site": sites,
            "age_years": rng.normal(60, 8, n),
        }
    )
    for j in range(4):
        table[f"t1c__lesion__original_firstorder_F{j}"] = (
            (j == 0) * y + rng.normal(0, 1, n) + np.array([shift[s] for s in sites])
        )
    table.to_csv(tmp_path / "features.csv", index=False)
    data = read_feature_table(tmp_path / "features.csv")
    assert list(np.unique(data.sites)) == ["A", "B", "C"]
    assert "site" not in data.X.columns  # never a predictor
    spec = make_spec(
        models=("elastic_net",),
        primary={"model": "elastic_net"},
        cv=SMALL_CV,
        bundle={"build": True, "path": str(tmp_path / "bundle")},
        harmonise="combat",
    )
    metrics = train_on(data, spec, tmp_path / "out")
    assert metrics["harmonisation"] == "combat by site"
    loaded = load_bundle(tmp_path / "bundle")
    assert loaded.meta.sites == {
        "A": int((sites == "A").sum()),
        "B": int((sites == "B").sum()),
        "C": int((sites == "C").sum()),
    }
    p = loaded.probability(data.X, sites=data.sites)
    assert np.all((p > 0) & (p < 1))
    assert loaded.pipeline.named_steps["combat"].sites is not None  # set for this call only
    with pytest.raises(InputError, match="give the site"):
        loaded.probability(data.X)
    with pytest.raises(InputError, match="site 'D': not seen in training"):
        loaded.probability(data.X.iloc[:1], sites=["D"])


def test_combat_needs_sites(tmp_path):
    frame = pd.DataFrame(
        {
            "lesion_id": ["a", "b", "c", "d"],
            "patient_id": ["1", "2", "3", "4"],
            "pathology": ["tumor", "necrosis", "tumor", "necrosis"],
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match="needs each lesion's site"):
        train_on(
            read_feature_table(tmp_path / "t.csv"), make_spec(harmonise="combat"), tmp_path / "o"
        )
    frame["site"] = ["A", "", "B", "B"]
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match="row 3, column site: empty"):
        train_on(
            read_feature_table(tmp_path / "t.csv"), make_spec(harmonise="combat"), tmp_path / "o"
        )


def test_calls_with_the_indeterminate_zone():
    from rnclassifier.bundle import BundleMeta, ModelBundle
    from rnclassifier.bundle.meta import IndeterminateZone, RuleThreshold, Thresholds

    rule = RuleThreshold.model_construct(value=0.3)
    zone = IndeterminateZone.model_construct(low=0.3, high=0.7)
    meta = BundleMeta.model_construct(
        thresholds=Thresholds.model_construct(rule=rule, indeterminate=zone)
    )
    bundle = ModelBundle(Path(), meta, pipeline=None, calibrator=None)
    calls = bundle.calls(np.array([0.1, 0.3, 0.5, 0.7, 0.9, np.nan]))
    assert calls.tolist() == ["necrosis", "indeterminate", "indeterminate", "tumor", "tumor", ""]
    # A bundle written before zones: one threshold.
    meta = BundleMeta.model_construct(thresholds=Thresholds.model_construct(rule=rule))
    bundle = ModelBundle(Path(), meta, pipeline=None, calibrator=None)
    assert bundle.zone == (0.3, 0.3)
    assert bundle.calls(np.array([0.29, 0.3])).tolist() == ["necrosis", "tumor"]


def test_a_bundle_json_that_breaks_the_schema_is_refused_naming_the_key(trained_bundle, tmp_path):
    _, bundle, _ = trained_bundle
    copy = _copy(bundle, tmp_path)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["thresholds"]["rule"]["value"] = "high"
    del meta["training"]["prevalence"]
    meta["surprise"] = 1
    (copy / "bundle.json").write_text(json.dumps(meta))
    _rewrite_manifest(copy)
    with pytest.raises(InputError) as caught:
        load_bundle(copy)
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(
        "bundle.thresholds.rule.value: Input should be a valid number" in p for p in problems
    )
    assert any("bundle.training.prevalence: missing" in p for p in problems)
    assert any("bundle.surprise: unknown key" in p for p in problems)
    assert all(p.startswith(str(copy / "bundle.json")) for p in problems)


def test_the_schema_writes_back_what_it_read(trained_bundle):
    from rnclassifier.bundle import BundleMeta

    _, bundle, _ = trained_bundle
    document = json.loads((bundle / "bundle.json").read_text())
    meta = BundleMeta.model_validate(document)
    assert meta.as_document() == document  # no key added, none lost, values unchanged
    assert list(meta.thresholds.as_document()) == list(document["thresholds"])
