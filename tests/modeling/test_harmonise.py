"""ComBat harmonisation: a known answer from neuroCombat, fold discipline, edge cases, saving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from rnclassifier.modeling.harmonise import ComBatHarmoniser
from rnclassifier.modeling.pipeline import SideTables, make_pipeline

# 3 sites x 4 lesions x 3 features (rows: A A A A B B B B C C C C), site shifts and scales
# drawn by hand, rounded to 2 decimals.
KNOWN_DATA = [
    [5.16, 11.21, -3.05],
    [5.34, 10.54, -3.0],
    [6.15, 10.59, -2.78],
    [3.93, 10.52, -2.52],
    [5.63, 8.98, 0.34],
    [8.0, 9.04, -1.74],
    [7.81, 9.06, 1.42],
    [5.92, 9.0, 0.14],
    [3.29, 10.87, -1.33],
    [4.35, 15.99, -0.25],
    [4.32, 11.38, -1.27],
    [3.51, 12.21, -1.12],
]
KNOWN_SITES = ["A"] * 4 + ["B"] * 4 + ["C"] * 4
# Produced by neuroCombat 0.2.12 (PyPI, J.-P. Fortin's), run once outside the test suite with
# numpy 2.4.6 / pandas 3.0.1 and printed with repr:
#   neuroCombat(dat=np.array(KNOWN_DATA).T, covars=pd.DataFrame({"batch": KNOWN_SITES}),
#               batch_col="batch", **options)["data"].T
# with options {} (parametric EB), {"parametric": False} and {"eb": False}; no covariates.
# neuroCombat is not a dependency of rnclassifier: only these numbers are.
NEUROCOMBAT = {
    "parametric": [
        [5.370230385034712, 11.855993741899935, -1.7627890059942515],
        [5.578259547422733, 10.499827655164443, -1.6648221865011879],
        [6.5143907781688295, 10.60103407954769, -1.2337681807317065],
        [3.9486977753832324, 10.459345085411146, -0.7243407193677744],
        [4.462283386504568, 10.579474592063779, -0.9952651779315931],
        [6.219888754407856, 10.639420897688227, -2.3940590871632796],
        [6.078983682719406, 10.659402999563044, -0.2689683404459098],
        [4.67734902223957, 10.599456693938594, -1.1297645922807935],
        [4.567755610033525, 9.851944182374119, -1.593707401275159],
        [5.666710200677181, 13.1718848818741, -0.4797788559049261],
        [5.635607712262738, 10.182641400488375, -1.5318224820879238],
        [4.795840525072774, 10.720834912321381, -1.377110184119836],
    ],
    "nonparametric": [
        [5.011823941363447, 11.341159585820918, -2.7474015477262386],
        [5.648088132691316, 10.744049431416911, -2.702841088442358],
        [8.511276993666733, 10.788609890700792, -2.5067750675932814],
        [0.664018633956335, 10.72622524770336, -2.2750606793171],
        [4.6606024032086495, 8.617876943072986, -1.101055003649322],
        [5.948163033626049, 8.650780394252763, -2.4747598319897115],
        [5.844940873381616, 8.66174821131269, -0.38778518893411995],
        [4.81815201621331, 8.628844760132912, -1.2331420063743594],
        [3.6315005671448657, 10.275841322080982, -1.8601087719657672],
        [4.166968030111478, 17.539936269690823, -1.3145564168139328],
        [4.151813290593555, 10.999413279753059, -1.829800307790665],
        [3.742635323609634, 12.176991171650748, -1.7540291473529104],
    ],
    "no_eb": [
        [5.29753480445183, 12.532226526151646, -1.8897829383602613],
        [5.457952457873802, 10.163909813986791, -1.742383031295102],
        [6.179831898272673, 10.340649867133424, -1.0938234402083993],
        [4.201347506068358, 10.093213792728141, -0.3273439234695693],
        [4.485040300180189, 9.499605811066251, -1.1003509750526497],
        [6.050271282471884, 11.423947094466854, -2.2303619924653884],
        [5.924788629883097, 12.065394188933775, -0.5136144852421894],
        [4.6765664541314935, 10.141052905533122, -1.2090058805731052],
        [4.421645663539542, 9.902291717747557, -1.7421677170869116],
        [6.004801097850799, 12.48861390146779, -0.2098976890754607],
        [5.959994811974066, 10.159913654016567, -1.6570416044196086],
        [4.750225093302256, 10.579180726768088, -1.4442263227513517],
    ],
}
OPTIONS = {
    "parametric": {},
    "nonparametric": {"parametric": False},
    "no_eb": {"eb": False},
}


def known_frame() -> tuple[pd.DataFrame, pd.Series]:
    ids = [f"L{i:02d}" for i in range(len(KNOWN_DATA))]
    columns = ["t1c__lesion__a", "t1c__lesion__b", "flair__edema__c"]
    return (
        pd.DataFrame(KNOWN_DATA, index=ids, columns=columns),
        pd.Series(KNOWN_SITES, index=ids),
    )


def simulated(
    seed: int = 0, per_site: tuple[int, ...] = (20, 20, 20), p: int = 20
) -> tuple[pd.DataFrame, pd.Series]:
    """Lesions at len(per_site) sites with per-site additive and multiplicative effects on
    every radiomics feature, plus a clinical column that has no site effect."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(len(per_site)), per_site)
    shift = rng.normal(0, 1.5, (len(per_site), p))
    scale = rng.uniform(0.5, 2.0, (len(per_site), p))
    values = rng.normal(10, 3, p) + shift[codes] + scale[codes] * rng.normal(size=(len(codes), p))
    ids = [f"L{i:03d}" for i in range(len(codes))]
    X = pd.DataFrame(values, index=ids, columns=[f"t1c__lesion__f{j:02d}" for j in range(p)])
    X["age_years"] = rng.uniform(40, 80, len(codes)).round(1)
    sites = pd.Series(np.array(["siteA", "siteB", "siteC", "siteD"])[codes], index=ids)
    return X, sites


# --- known answer -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(OPTIONS))
def test_matches_neurocombat(mode):
    X, sites = known_frame()
    out = ComBatHarmoniser(sites, **OPTIONS[mode]).fit_transform(X)
    np.testing.assert_allclose(out.to_numpy(), NEUROCOMBAT[mode], rtol=0, atol=1e-10)
    assert out.index.equals(X.index)
    assert out.columns.equals(X.columns)


def test_fitted_state_is_plain():
    X, sites = known_frame()
    h = ComBatHarmoniser(sites).fit(X)
    assert h.sites_.tolist() == ["A", "B", "C"]
    assert h.n_lesions_ == {"A": 4, "B": 4, "C": 4}
    assert h.columns_.tolist() == X.columns.tolist()
    assert h.gamma_star_.shape == h.delta_star_.shape == (3, 3)
    np.testing.assert_allclose(h.grand_mean_, X.mean().to_numpy())
    assert (h.pooled_sd_ > 0).all()
    assert (h.delta_star_ > 0).all()
    assert h.get_feature_names_out().tolist() == X.columns.tolist()


# --- properties ---------------------------------------------------------------------------------


def test_site_means_are_brought_together():
    X, sites = simulated(1)
    X["t1c__lesion__f00"] += sites.map({"siteA": 0.0, "siteB": 8.0, "siteC": -6.0})
    out = ComBatHarmoniser(sites).fit_transform(X)
    before = X.groupby(sites)["t1c__lesion__f00"].mean()
    after = out.groupby(sites)["t1c__lesion__f00"].mean()
    assert np.ptp(after) < 0.05 * np.ptp(before)
    # ... and the per-site spreads (the median over features of largest / smallest site SD)
    # become more alike; with 20 lesions a site, sampling noise alone leaves them ~1.3 apart.
    spread_before = X.groupby(sites).std().drop(columns="age_years")
    spread_after = out.groupby(sites).std().drop(columns="age_years")

    def ratio(spread: pd.DataFrame) -> float:
        return float((spread.max() / spread.min()).median())

    assert ratio(spread_after) < 0.75 * ratio(spread_before)


def test_held_out_rows_use_only_training_estimates():
    X, sites = simulated(2)
    train = X.index[::2]
    held_out = X.index[1::2]
    h = ComBatHarmoniser(sites).fit(X.loc[train])
    state = (h.gamma_star_.copy(), h.delta_star_.copy(), h.grand_mean_.copy())
    first = h.transform(X.loc[held_out])
    # Change every other held-out lesion beyond recognition: the first one's output stays.
    changed = X.loc[held_out].copy()
    changed.iloc[1:, :] = changed.iloc[1:, :] * 7.0 + 100.0
    again = h.transform(changed)
    pd.testing.assert_series_equal(again.iloc[0], first.iloc[0])
    # One row alone gives the same as within the batch, and transform learns nothing.
    alone = h.transform(X.loc[held_out[:1]])
    pd.testing.assert_frame_equal(alone, first.iloc[:1])
    for fitted, before in zip((h.gamma_star_, h.delta_star_, h.grand_mean_), state, strict=True):
        np.testing.assert_array_equal(fitted, before)
    # The training rows transformed with the fitted estimates are fit_transform's output.
    pd.testing.assert_frame_equal(
        h.transform(X.loc[train]), ComBatHarmoniser(sites).fit_transform(X.loc[train])
    )


def test_unseen_site_raises():
    X, sites = simulated(3)
    train = sites != "siteC"
    h = ComBatHarmoniser(sites).fit(X[train])
    with pytest.raises(ValueError, match="site 'siteC' was not in the training data: ComBat"):
        h.transform(X)
    h.transform(X[train])  # seen sites are fine


def test_lesion_without_a_site_raises():
    X, sites = simulated(3)
    h = ComBatHarmoniser(sites).fit(X)
    h.set_params(sites=sites.iloc[1:])
    with pytest.raises(ValueError, match="lesion 'L000' has no site"):
        h.transform(X)
    h.set_params(sites=None)
    with pytest.raises(ValueError, match="set_params"):
        h.transform(X)


def test_missing_values_are_tolerated_and_kept():
    X, sites = simulated(4)
    X.iloc[[1, 5, 30, 47], 2] = np.nan
    X.iloc[:20, 3] = np.nan  # this feature is never measured at siteA
    for options in OPTIONS.values():
        out = ComBatHarmoniser(sites, **options).fit_transform(X)
        assert out.isna().equals(X.isna())
        assert np.isfinite(out.to_numpy()[X.notna().to_numpy()]).all()
    # A NaN only leaves that value out: the feature's other values are still harmonised.
    out = ComBatHarmoniser(sites).fit_transform(X)
    assert not np.allclose(out.iloc[:, 2].dropna(), X.iloc[:, 2].dropna())


def test_clinical_columns_and_constant_features_pass_through():
    X, sites = simulated(5)
    X["t1c__lesion__constant"] = 4.2
    X["t1c__lesion__per_site"] = sites.map({"siteA": 1.0, "siteB": 2.0, "siteC": 3.0})
    X["sex_female"] = np.arange(len(X)) % 2
    h = ComBatHarmoniser(sites).fit(X)
    out = h.transform(X)
    untouched = ["age_years", "sex_female", "t1c__lesion__constant", "t1c__lesion__per_site"]
    pd.testing.assert_frame_equal(out[untouched], X[untouched])
    assert h.passed_through_.tolist() == ["t1c__lesion__constant", "t1c__lesion__per_site"]
    assert "age_years" not in h.columns_
    assert not np.allclose(out["t1c__lesion__f00"], X["t1c__lesion__f00"])
    # An explicit column list harmonises those columns only.
    only = ComBatHarmoniser(sites, columns=("t1c__lesion__f01",)).fit_transform(X)
    changed = [c for c in X.columns if not only[c].equals(X[c])]
    assert changed == ["t1c__lesion__f01"]
    with pytest.raises(ValueError, match="not in X"):
        ComBatHarmoniser(sites, columns=("nope",)).fit(X)


def test_single_lesion_site_keeps_its_scale():
    X, sites = simulated(6)
    sites = sites.copy()
    sites.iloc[0] = "siteD"
    for options in OPTIONS.values():
        h = ComBatHarmoniser(sites, **options).fit(X)
        d = h.sites_.tolist().index("siteD")
        np.testing.assert_allclose(h.delta_star_[d], 1.0, rtol=1e-12)
        assert np.isfinite(h.gamma_star_).all()
        assert np.isfinite(h.transform(X).to_numpy()).all()


def test_one_training_site_is_the_identity():
    X, sites = simulated(7)
    one = sites == "siteA"
    h = ComBatHarmoniser(sites).fit(X[one])
    pd.testing.assert_frame_equal(h.transform(X[one]), X[one])
    with pytest.raises(ValueError, match="site 'siteB'"):
        h.transform(X)


def test_no_sites_is_the_identity():
    X, _ = simulated(8)
    h = ComBatHarmoniser().fit(X)
    assert h.transform(X) is X
    assert h.get_feature_names_out().tolist() == X.columns.tolist()
    values = X.to_numpy()
    assert ComBatHarmoniser().fit(values).transform(values) is values


def test_needs_a_dataframe():
    X, sites = simulated(8)
    with pytest.raises(TypeError, match="DataFrame"):
        ComBatHarmoniser(sites).fit(X.to_numpy())


# --- pipeline and saving ------------------------------------------------------------------------


def combat_pipeline(sites: pd.Series | None) -> Pipeline:
    params = {"C": 1.0, "l1_ratio": 0.5, "select_k": 5}
    return make_pipeline("elastic_net", params, side=SideTables(sites=sites))


def test_in_a_pipeline_with_clone():
    X, sites = simulated(9)
    y = (np.arange(len(X)) % 3 == 0).astype(int)
    pipeline = combat_pipeline(sites)
    copy = clone(pipeline)
    assert copy.named_steps["combat"].sites.equals(sites)
    assert copy.named_steps["combat"].sites is not sites
    train, held_out = X.index[np.arange(len(X)) % 4 != 0], X.index[::4]
    copy.fit(X.loc[train], y[np.arange(len(X)) % 4 != 0])
    assert copy.predict_proba(X.loc[held_out]).shape == (15, 2)
    assert len(copy[:-1].get_feature_names_out()) == 5
    # Without sites the same pipeline shape fits too.
    combat_pipeline(None).fit(X, y)


def test_skops_round_trip():
    X, sites = simulated(10)
    X.iloc[3, 4] = np.nan
    train, held_out = X.index[X.index.str[-1] != "0"], X.index[X.index.str[-1] == "0"]
    h = ComBatHarmoniser(sites).fit(X.loc[train])
    expected = h.transform(X.loc[held_out])
    h.set_params(sites=None)
    data = sio.dumps(h)
    assert sio.get_untrusted_types(data=data) == [
        "rnclassifier.modeling.harmonise.ComBatHarmoniser"
    ]
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    loaded.set_params(sites=sites.loc[held_out])
    pd.testing.assert_frame_equal(loaded.transform(X.loc[held_out]), expected, check_exact=True)
