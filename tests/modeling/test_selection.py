"""mRMR selection and the ICC robustness filter: known answers, determinism, fold discipline."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import f_oneway
from sklearn.base import clone
from sklearn.feature_selection import f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from rnclassifier.modeling import selection
from rnclassifier.modeling.selection import ICCFilter, MRMRSelector, icc1, mrmr_ranking

# Shrout & Fleiss 1979, Table 1: 6 targets (rows) rated by 4 judges (columns).
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float
)
# pingouin's `icc` data set (its intraclass_corr example): 8 wines (rows) x 4 judges (columns).
WINE = np.array(
    [
        [1, 2, 0, 1],
        [1, 3, 3, 2],
        [3, 8, 1, 4],
        [6, 4, 3, 3],
        [6, 5, 5, 6],
        [7, 5, 6, 2],
        [8, 7, 7, 9],
        [9, 9, 9, 8],
    ],
    float,
)


@pytest.fixture(autouse=True)
def _empty_ranking_cache():
    selection.clear_ranking_cache()
    yield
    selection.clear_ranking_cache()


def wide_icc(table: np.ndarray) -> float:
    """ICC(1,1) of a targets x raters table, through the long format `icc1` takes."""
    n, k = table.shape
    return float(icc1(table.ravel(), np.repeat(np.arange(n), k)))


# --- mRMR ---------------------------------------------------------------------------------------


def duplicates_and_an_independent_feature(seed: int = 0, n: int = 300):
    """Columns: noise, strong, a near-copy of strong, a weaker independent signal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    strong = y + rng.normal(0, 0.7, n)
    copy = strong + rng.normal(0, 0.01, n)
    weaker = y + rng.normal(0, 0.9, n)
    return np.column_stack([rng.normal(size=n), strong, copy, weaker]), y


def test_mrmr_takes_the_independent_feature_where_top_f_takes_the_duplicate():
    X, y = duplicates_and_an_independent_feature()
    f, _ = f_classif(X, y)
    assert min(f[1], f[2]) > f[3] > f[0]  # the construction: both copies beat the weaker one
    mrmr = MRMRSelector(2).fit(X, y)
    assert mrmr.ranking_[0] == np.argmax(f)  # first pick: the largest relevance
    assert mrmr.ranking_[1] == 3
    assert mrmr.keep_.tolist() == sorted([int(np.argmax(f)), 3])
    np.testing.assert_array_equal(mrmr.transform(X), X[:, mrmr.keep_])


def direct_fcq(X: np.ndarray, y: np.ndarray, k: int) -> list[int]:
    """The MRMR-FCQ loop written plainly from its definition, as a reference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        relevance = np.nan_to_num(f_classif(X, y)[0], nan=0.0)
        r = np.abs(np.nan_to_num(np.corrcoef(X, rowvar=False), nan=0.0))
    r = np.clip(r, selection.REDUNDANCY_FLOOR, None)
    chosen: list[int] = []
    for _ in range(k):
        best, best_score = -1, -np.inf
        for j in range(X.shape[1]):
            if j in chosen:
                continue
            if not chosen:
                score = relevance[j]
            else:
                mean_r = np.mean(r[j, chosen])
                score = 0.0 if mean_r >= 1 - 1e-12 else relevance[j] / mean_r
            if score > best_score:
                best, best_score = j, score
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("seed", range(4))
def test_mrmr_ranking_matches_the_definition(seed):
    rng = np.random.default_rng(seed)
    n, p = 90, 25
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 4)) @ rng.normal(size=(4, p)) + rng.normal(size=(n, p))
    X += np.outer(y, rng.normal(0, 0.6, p))
    X[:, 5] = 3.0  # constant
    X[:, 9] = X[:, 2]  # exact duplicate
    assert mrmr_ranking(X, y, p).tolist() == direct_fcq(X, y, p)


def test_mrmr_is_deterministic_and_breaks_ties_by_the_lowest_index():
    X, y = duplicates_and_an_independent_feature(seed=3)
    first = MRMRSelector(3).fit(X, y).ranking_
    selection.clear_ranking_cache()
    assert MRMRSelector(3).fit(X.copy(), y.copy()).ranking_.tolist() == first.tolist()
    twins = np.column_stack([X[:, 1], X[:, 1], X[:, 3], X[:, 1]])
    ranking = MRMRSelector("all").fit(twins, y).ranking_.tolist()
    assert ranking[:2] == [0, 2]  # the lower twin first; the other copies score 0 after it
    assert ranking[2:] == [1, 3]  # and come last, in column order


def test_constant_columns_come_last_without_warnings():
    X, y = duplicates_and_an_independent_feature(seed=1)
    X = np.column_stack([np.full(len(y), 7.0), X])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mrmr = MRMRSelector("all").fit(X, y)
        assert 0 not in MRMRSelector(4).fit(X, y).keep_
    assert mrmr.ranking_[-1] == 0


@pytest.mark.parametrize("k", ["all", 4, 9])
def test_mrmr_keeps_everything_when_k_is_all_or_at_least_the_width(k):
    X, y = duplicates_and_an_independent_feature()
    mrmr = MRMRSelector(k).fit(X, y)
    assert mrmr.keep_.tolist() == [0, 1, 2, 3]
    assert sorted(mrmr.ranking_.tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("k", [0, -2, "some", 2.5, True])
def test_mrmr_refuses_a_meaningless_k(k):
    X, y = duplicates_and_an_independent_feature()
    with pytest.raises(ValueError, match="positive integer or 'all'"):
        MRMRSelector(k).fit(X, y)


def test_one_ranking_per_data_is_computed_and_sliced_for_each_k(monkeypatch):
    calls: list[int] = []
    original = selection.mrmr_ranking

    def counting(X, y, k_max):
        calls.append(k_max)
        return original(X, y, k_max)

    monkeypatch.setattr(selection, "mrmr_ranking", counting)
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 120)
    X = rng.normal(size=(120, 100)) + np.outer(y, rng.normal(0, 0.5, 100))
    three = MRMRSelector(3).fit(X, y)
    five = MRMRSelector(5).fit(X.copy(), pd.Series(y))  # equal content, new objects
    two = MRMRSelector(2).fit(X, y)
    assert len(calls) == 1
    assert five.ranking_[:3].tolist() == three.ranking_.tolist()
    assert two.ranking_.tolist() == three.ranking_[:2].tolist()
    assert five.ranking_.tolist() == original(X, y, 5).tolist()
    MRMRSelector(3).fit(X, 1 - y)  # the same partition into classes: the same ranking
    assert len(calls) == 1
    MRMRSelector(3).fit(X, np.roll(y, 1))  # other labels: a new ranking
    MRMRSelector(80).fit(X, y)  # deeper than the cached ranking: computed again
    assert len(calls) == 3
    assert MRMRSelector(70).fit(X, y).ranking_.tolist() == original(X, y, 70).tolist()
    assert len(calls) == 3


def test_mrmr_feature_names():
    X, y = duplicates_and_an_independent_feature()
    frame = pd.DataFrame(X, columns=["noise", "strong", "copy", "weaker"])
    mrmr = MRMRSelector(2).fit(frame, y)
    assert list(mrmr.get_feature_names_out()) == list(frame.columns[mrmr.keep_])
    assert list(MRMRSelector(2).fit(X, y).get_feature_names_out()) == [f"x{j}" for j in mrmr.keep_]
    with pytest.raises(ValueError, match="differ"):
        mrmr.get_feature_names_out(["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="features"):
        mrmr.transform(X[:, :3])


# --- ICC(1,1) ------------------------------------------------------------------------------------


def test_icc1_reproduces_shrout_and_fleiss():
    # Shrout & Fleiss 1979, Table 4: ICC(1,1) = .17. Exactly (BMS - WMS) / (BMS + 3 WMS) with
    # BMS = 11.2417 and WMS = 6.2639 (their Table 2: 11.24, 6.26): 448/2703 = 0.165742.
    icc = wide_icc(SHROUT_FLEISS)
    assert round(icc, 2) == 0.17
    assert icc == pytest.approx(448 / 2703, rel=1e-12)


def test_icc1_reproduces_pingouins_example():
    # pingouin.intraclass_corr's docstring example (the `icc` data set): ICC1 = 0.728.
    assert round(wide_icc(WINE), 3) == 0.728


def test_icc1_with_unequal_counts_is_the_one_way_anova_estimate():
    rng = np.random.default_rng(2)
    counts = rng.integers(2, 8, 15)
    groups = np.repeat(np.arange(15), counts)
    values = rng.normal(size=(len(groups), 3)) + rng.normal(size=(15, 3))[groups]
    f = np.array([f_oneway(*[values[groups == g, j] for g in range(15)])[0] for j in range(3)])
    n = len(groups)
    k0 = (n - (counts**2).sum() / n) / (15 - 1)
    shuffled = rng.permutation(n)  # the row order does not matter
    np.testing.assert_allclose(icc1(values[shuffled], groups[shuffled]), (f - 1) / (f + k0 - 1))


def test_icc1_leaves_out_missing_measurements_column_by_column():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(10), 4)
    values = rng.normal(size=(40, 2)) + rng.normal(size=(10, 2))[groups]
    holed = values.copy()
    holed[[3, 17], 0] = np.nan
    keep = np.ones(40, bool)
    keep[[3, 17]] = False
    result = icc1(holed, groups)
    assert result[0] == pytest.approx(icc1(values[keep, 0], groups[keep]))
    assert result[1] == pytest.approx(icc1(values[:, 1], groups))


def test_icc1_is_undefined_for_constants_and_single_targets():
    groups = np.repeat(np.arange(5), 3)
    assert np.isnan(icc1(np.full(15, 0.1), groups))
    assert np.isnan(icc1(np.arange(3.0), np.zeros(3)))
    assert icc1(np.repeat(np.arange(5.0), 3), groups) == pytest.approx(1.0)


# --- ICCFilter -----------------------------------------------------------------------------------


def lesion_table(n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"L{i:02d}" for i in range(n)]
    return pd.DataFrame(
        {
            "a": rng.normal(10, 3, n),
            "b": rng.normal(-5, 2, n),
            "c": rng.normal(0, 1, n),
            "age": rng.normal(60, 10, n),  # clinical: never perturbed
        },
        index=pd.Index(ids, name="lesion_id"),
    )


def perturb(X: pd.DataFrame, noise: dict[str, np.ndarray], k: int = 4, seed: int = 1):
    """k perturbed rows per lesion: each feature plus normal noise of its lesion's scale."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(len(X)), k)
    frame = pd.DataFrame(
        {
            "lesion_id": X.index[rows],
            "patient_id": "P",
            "perturbation": np.tile(np.arange(k), len(X)),
            "perturbation_kind": np.tile(["erode", "dilate", "contour", "erode"][:k], len(X)),
        }
    )
    for column, scale in noise.items():
        frame[column] = X[column].to_numpy()[rows] + rng.normal(0, 1, len(rows)) * scale[rows]
    return frame


def test_icc_filter_judges_features_on_the_training_lesions_only():
    X = lesion_table()
    first, second = np.arange(20) < 10, np.arange(20) >= 10
    # a: reproducible on the first ten lesions, noise on the others; b the reverse; c good.
    noise = {
        "a": np.where(first, 0.05, 30.0),
        "b": np.where(second, 0.05, 30.0),
        "c": np.full(20, 0.05),
    }
    perturbed = perturb(X, noise)
    on_first = ICCFilter(perturbed).fit(X[first])
    assert list(on_first.get_feature_names_out()) == ["a", "c", "age"]
    assert on_first.icc_["a"] > 0.99 > 0.2 > on_first.icc_["b"]
    assert on_first.n_lesions_ == 10
    on_second = ICCFilter(perturbed).fit(X[second])
    assert list(on_second.get_feature_names_out()) == ["b", "c", "age"]
    assert list(on_second.transform(X).columns) == ["b", "c", "age"]  # any lesions, once fitted


def test_lesions_without_perturbations_do_not_enter_the_icc():
    X = lesion_table()
    perturbed = perturb(X.iloc[:12], {c: np.full(12, 0.5) for c in "abc"})
    outlier = X.copy()
    outlier.iloc[15] *= 1000  # not perturbed: would dominate the between-lesion variance
    with_outlier = ICCFilter(perturbed).fit(outlier).icc_
    assert with_outlier == pytest.approx(ICCFilter(perturbed).fit(X.iloc[:12]).icc_)
    assert ICCFilter(perturbed).fit(X.iloc[:12]).n_lesions_ == 12
    untouched = ICCFilter(perturbed, threshold=1.01).fit(X.iloc[12:])  # none perturbed
    assert untouched.keep_.tolist() == [0, 1, 2, 3]


def test_a_lesion_listed_twice_enters_the_icc_once():
    X = lesion_table()
    perturbed = perturb(X, {c: np.full(20, 1.0) for c in "abc"})
    boot = X.iloc[[0, 0, 1, 2, 2, 2, *range(3, 20)]]
    assert ICCFilter(perturbed).fit(boot).icc_ == pytest.approx(ICCFilter(perturbed).fit(X).icc_)


def test_columns_absent_from_the_perturbations_are_always_kept():
    X = lesion_table()
    perturbed = perturb(X, {c: np.full(20, 0.1) for c in "abc"})
    strict = ICCFilter(perturbed, threshold=1.01).fit(X)  # no ICC reaches it
    assert list(strict.get_feature_names_out()) == ["age"]
    assert list(strict.icc_) == ["a", "b", "c"]
    assert list(ICCFilter(perturbed.drop(columns="c")).fit(X).get_feature_names_out()) == [
        "a",
        "b",
        "c",
        "age",
    ]


def test_constant_features_are_dropped():
    X = lesion_table().assign(flat=1.5)
    perturbed = perturb(X, {c: np.full(20, 0.1) for c in "abc"}).assign(flat=1.5)
    fitted = ICCFilter(perturbed).fit(X)
    assert np.isnan(fitted.icc_["flat"])
    assert "flat" not in fitted.get_feature_names_out()


def test_without_perturbations_the_filter_is_a_no_op():
    X = lesion_table()
    fitted = ICCFilter(None).fit(X)
    pd.testing.assert_frame_equal(fitted.transform(X), X)
    array = X.to_numpy()
    np.testing.assert_array_equal(ICCFilter(None).fit(array).transform(array), array)
    assert list(ICCFilter(None).fit(array).get_feature_names_out()) == ["x0", "x1", "x2", "x3"]


def test_the_filter_needs_the_lesion_table_as_a_frame():
    X = lesion_table()
    perturbed = perturb(X, {"a": np.full(20, 0.1)})
    with pytest.raises(TypeError, match="first step"):
        ICCFilter(perturbed).fit(X.to_numpy())
    fitted = ICCFilter(perturbed).fit(X)
    with pytest.raises(ValueError, match="different columns"):
        fitted.transform(X[["b", "a", "c", "age"]])


def test_icc_filter_fit_time():
    """300 lesions x 500 features x 5 perturbations: well under 50 ms a fit (loose bound here)."""
    import time

    rng = np.random.default_rng(0)
    n, p, k = 300, 500, 5
    base = rng.normal(size=(n, p)) * rng.lognormal(2, 1, p)
    X = pd.DataFrame(base, index=[f"L{i}" for i in range(n)], columns=[f"f{j}" for j in range(p)])
    noise = base.std(axis=0) * np.linspace(0.05, 2, p)
    perturbed = pd.DataFrame(np.repeat(base, k, axis=0) + rng.normal(size=(n * k, p)) * noise)
    perturbed.columns = X.columns
    perturbed.insert(0, "lesion_id", np.repeat(X.index, k))
    perturbed.insert(1, "perturbation", np.tile(np.arange(k), n))
    ICCFilter(perturbed).fit(X)
    start = time.perf_counter()
    fitted = ICCFilter(perturbed).fit(X.iloc[:240])
    assert time.perf_counter() - start < 0.5
    assert 0 < len(fitted.keep_) < p


# --- both, in a pipeline -------------------------------------------------------------------------


def cohort(seed: int = 0, n: int = 80):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = lesion_table(n, seed)
    X["a"] += 3 * y
    X["c"] += 2 * y
    X.iloc[::9, 1] = np.nan  # the imputer after the filter fills these
    noise = {"a": np.full(n, 0.3), "b": np.full(n, 8.0), "c": np.full(n, 0.2)}
    return X, y, perturb(X.fillna(0), noise)


def test_filter_and_selector_inside_a_pipeline_with_clone_and_cross_validation():
    X, y, perturbed = cohort()
    pipeline = Pipeline(
        [
            ("icc", ICCFilter(perturbed)),
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("select", MRMRSelector(2)),
            ("model", LogisticRegression()),
        ]
    )
    fitted = clone(pipeline).fit(X.iloc[:60], y[:60])
    assert fitted.named_steps["icc"].n_lesions_ == 60
    assert list(fitted[:-1].get_feature_names_out()) == ["a", "c"]  # b is not reproducible
    assert fitted.predict_proba(X.iloc[60:]).shape == (20, 2)
    assert "perturbed" in repr(pipeline)
    assert cross_val_score(pipeline, X, y, cv=4, scoring="roc_auc").mean() > 0.8
    twin = clone(pipeline)
    assert twin.get_params()["icc__threshold"] == 0.75
    assert not hasattr(twin.named_steps["icc"], "keep_")


def test_simple_imputer_and_logistic_regression_after_the_filter_alone():
    X, y, perturbed = cohort(seed=1)
    pipeline = Pipeline(
        [("icc", ICCFilter(perturbed)), ("impute", SimpleImputer()), ("lr", LogisticRegression())]
    )
    pipeline.fit(X, y)
    # Once fitted, the table is no longer needed (and should not be saved with the model).
    pipeline.set_params(icc__perturbed=None)
    assert pipeline.predict(X).shape == (len(y),)
    assert list(pipeline[:-1].get_feature_names_out()) == ["a", "c", "age"]


def test_a_fitted_pipeline_survives_skops_once_the_table_is_dropped(tmp_path):
    import skops.io as sio

    X, y, perturbed = cohort(seed=2)
    pipeline = Pipeline(
        [
            ("icc", ICCFilter(perturbed)),
            ("impute", SimpleImputer()),
            ("select", MRMRSelector(2)),
            ("lr", LogisticRegression()),
        ]
    ).fit(X, y)
    pipeline.set_params(icc__perturbed=None)
    path = tmp_path / "pipeline.skops"
    sio.dump(pipeline, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert set(untrusted) - {"numpy.dtype"} == {  # numpy.dtype: SimpleImputer's
        "rnclassifier.modeling.selection.ICCFilter",
        "rnclassifier.modeling.selection.MRMRSelector",
    }
    loaded = sio.load(path, trusted=untrusted)
    np.testing.assert_allclose(loaded.predict_proba(X), pipeline.predict_proba(X))
    assert loaded.named_steps["icc"].icc_ == pytest.approx(pipeline.named_steps["icc"].icc_)
