"""Feature selection fitted inside each training fold: mRMR ranking and an ICC robustness filter.

`MRMRSelector` keeps k features that are relevant to the label and not redundant with each other;
`ICCFilter` drops features that are not reproducible under mask perturbations. Both learn only
from the rows they are fitted on, so inside a `Pipeline` nothing sees the evaluation fold.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_selection import f_classif
from sklearn.utils.validation import check_is_fitted

#: mrmr_selection's floor on |r|: a feature uncorrelated with everything chosen is not divided
#: by zero, and a NaN correlation (a constant column) counts as this small.
REDUNDANCY_FLOOR = 0.001
#: Rankings kept by content hash of (X, y): a few folds' worth, each an int array.
CACHE_SIZE = 32
#: A ranking is computed at least this deep (the tuned k stays <= 60, `spaces.suggest`), so
#: the trials of one fold slice a single ranking whatever order their k values come in.
MIN_DEPTH = 64
#: Columns of the perturbation table that are not features.
PERTURBATION_COLUMNS = ("perturbation", "perturbation_kind", "patient_id")

_rankings: OrderedDict[bytes, np.ndarray] = OrderedDict()
_rankings_lock = threading.Lock()


def mrmr_ranking(X: Any, y: Any, k_max: int) -> np.ndarray:
    """The first `k_max` column indices of X in mRMR (FCQ) selection order.

    Relevance is the ANOVA F of each column against y (NaN, i.e. constant columns, -> 0);
    redundancy is the mean |Pearson r| with the columns already chosen, floored at
    `REDUNDANCY_FLOOR`; a column perfectly correlated with all of them scores 0. Each step
    takes the largest relevance / redundancy (the first step: the largest relevance), ties
    to the lowest index. Greedy, so the first j of a longer ranking are the ranking for j.
    Unlike `mrmr_selection`, which drops columns of zero relevance (and so may return fewer
    than K), those come last here, so k columns are always returned.
    """
    X = np.asarray(X, float)
    n, p = X.shape
    k_max = max(0, min(int(k_max), p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Features ... are constant."
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 in those columns' F
        relevance, _ = f_classif(X, y)
    relevance = np.nan_to_num(relevance, nan=0.0, posinf=np.inf)
    std = X.std(axis=0)
    z = np.divide(X - X.mean(axis=0), std, out=np.zeros_like(X), where=std > 0)
    redundancy_sum = np.zeros(p)
    chosen = np.zeros(p, bool)
    ranking = np.empty(k_max, int)
    for step in range(k_max):
        if step == 0:
            score = relevance.copy()
        else:
            r = np.abs(z.T @ z[:, ranking[step - 1]]) / n
            redundancy_sum += np.clip(np.nan_to_num(r, nan=REDUNDANCY_FLOOR), REDUNDANCY_FLOOR, 1)
            redundancy = redundancy_sum / step
            with np.errstate(divide="ignore", invalid="ignore"):
                score = np.where(redundancy >= 1 - 1e-12, 0.0, relevance / redundancy)
        score[chosen] = -np.inf
        best = int(np.argmax(score))  # the first maximum: the lowest index wins ties
        ranking[step] = best
        chosen[best] = True
    return ranking


def _data_key(X: np.ndarray, y: Any) -> bytes:
    """Content hash of X (float64, C order) and of y's partition into classes (classes
    numbered by first appearance, so relabelling y does not change the key)."""
    _, first, codes = np.unique(np.asarray(y), return_index=True, return_inverse=True)
    by_appearance = np.empty(len(first), np.int64)
    by_appearance[np.argsort(first)] = np.arange(len(first))
    codes = by_appearance[codes.ravel()]
    digest = hashlib.blake2b(digest_size=20)
    digest.update(np.asarray(X.shape, np.int64).tobytes())
    digest.update(np.ascontiguousarray(X, np.float64).data)
    digest.update(np.ascontiguousarray(codes, np.int64).data)
    return digest.digest()


def _cached_ranking(X: np.ndarray, y: Any, k: int) -> np.ndarray:
    """`mrmr_ranking(X, y, k)`, sliced from a ranking at least k long computed on equal data
    when there is one, else from a new one at least `MIN_DEPTH` long."""
    key = _data_key(X, y)
    with _rankings_lock:
        known = _rankings.get(key)
        if known is not None and len(known) >= k:
            _rankings.move_to_end(key)
            return known[:k].copy()
    ranking = mrmr_ranking(X, y, max(k, MIN_DEPTH))
    with _rankings_lock:
        known = _rankings.get(key)
        if known is None or len(known) < len(ranking):
            _rankings[key] = ranking
        _rankings.move_to_end(key)
        while len(_rankings) > CACHE_SIZE:
            _rankings.popitem(last=False)
    return ranking[:k].copy()


def clear_ranking_cache() -> None:
    with _rankings_lock:
        _rankings.clear()


class MRMRSelector(TransformerMixin, BaseEstimator):
    """Keep k features chosen by minimum-redundancy maximum-relevance forward selection.

    Peng, Long & Ding 2005 (IEEE TPAMI 27:1226), in the MRMR-FCQ form of the `mrmr_selection`
    package: ANOVA F relevance divided by mean |Pearson r| with the features already chosen
    (see `mrmr_ranking`). Written here (about 30 lines) because `mrmr_selection` pulls about
    545 MB of dependencies (polars among them) for this one loop.

    Supervised, so fitted inside each training fold like `TopKSelector`. `keep_` holds the
    chosen column indices in column order, `ranking_` the same ones in selection order. With
    k = 'all' or k >= the number of columns every column is kept and `ranking_` orders all.

    The ranking of a given (X, y) is computed once and sliced for each k: rankings are kept in a
    small module-level LRU (`CACHE_SIZE` entries) keyed by a content hash of X (as float64) and
    of y's partition into classes, holding the longest ranking computed so far (at least `MIN_DEPTH`
    deep). Content rather than object identity, because each pipeline fit makes new arrays
    upstream of this step. A fit with a k beyond the cached depth recomputes (and caches) the
    deeper ranking. The cache is per process (each joblib worker process has its own); it never
    changes a result, since a greedy ranking's first j picks are the same however deep it goes.
    `ranking_` is always the first k picks, whatever the cache held.
    """

    def __init__(self, k: int | str = 10) -> None:
        self.k = k

    def fit(self, X: Any, y: Any) -> MRMRSelector:
        _record_input(self, X)
        X = np.asarray(X, float)
        n = X.shape[1]
        if self.k == "all":
            k = n
        elif isinstance(self.k, (int, np.integer)) and not isinstance(self.k, bool) and self.k > 0:
            k = min(int(self.k), n)
        else:
            raise ValueError(f"k must be a positive integer or 'all', not {self.k!r}")
        self.ranking_ = _cached_ranking(X, y, k)
        self.keep_ = np.sort(self.ranking_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "keep_")
        X = np.asarray(X, float)
        _check_width(self, X.shape[1])
        return X[:, self.keep_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return _names_out(self, input_features)


def icc1(values: Any, groups: Any) -> np.ndarray:
    """ICC(1,1) of each column of `values` (measurements x features); `groups` names the target
    (lesion) of each measurement row.

    One-way random effects, absolute agreement, single measurement (Shrout & Fleiss 1979 case 1;
    McGraw & Wong 1996 ICC(1)): (MSB - MSW) / (MSB + (k0 - 1) MSW), MSB and MSW the between-
    and within-target mean squares of a one-way ANOVA. Targets may have unequal numbers of
    measurements: k0 = (N - sum n_i^2 / N) / (n - 1) (the usual one-way ANOVA coefficient for
    unequal group sizes), which is k when every target has k. Non-finite measurements are left
    out column by column. NaN where undefined: fewer than two targets, no within-target degrees
    of freedom, or no variance at all (a constant column).
    """
    values = np.asarray(values, float)
    one_column = values.ndim == 1
    if one_column:
        values = values[:, None]
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    codes = codes.ravel()
    rows = len(codes)
    # targets x rows, 1 where the row measures the target: sums by target as one product.
    indicator = sparse.csr_array(
        (np.ones(rows), (codes, np.arange(rows))), shape=(codes.max(initial=-1) + 1, rows)
    )
    finite = np.isfinite(values)
    if finite.all():
        x = values
        n_i = np.broadcast_to(indicator.sum(axis=1)[:, None], (indicator.shape[0], x.shape[1]))
        highest, lowest = x.max(axis=0, initial=-np.inf), x.min(axis=0, initial=np.inf)
    else:
        x = np.where(finite, values, 0.0)
        n_i = indicator @ finite.astype(float)
        highest = np.where(finite, values, -np.inf).max(axis=0, initial=-np.inf)
        lowest = np.where(finite, values, np.inf).min(axis=0, initial=np.inf)
    sums = indicator @ x
    means = np.divide(sums, n_i, out=np.zeros_like(sums), where=n_i > 0)
    deviations = x - means[codes]
    if x is not values:
        deviations[~finite] = 0.0
    total = n_i.sum(axis=0)
    targets = (n_i > 0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        grand = sums.sum(axis=0) / total
        ss_between = (n_i * (means - grand) ** 2).sum(axis=0)
        ss_within = np.einsum("ij,ij->j", deviations, deviations)
        df_between, df_within = targets - 1, total - targets
        msb, msw = ss_between / df_between, ss_within / df_within
        k0 = (total - (n_i**2).sum(axis=0) / total) / df_between
        icc = (msb - msw) / (msb + (k0 - 1) * msw)
    # Constant tested exactly: rounding in the means would leave a tiny, arbitrary ICC.
    constant = highest <= lowest
    icc[(df_between < 1) | (df_within < 1) | constant | ~np.isfinite(icc)] = np.nan
    return icc[0] if one_column else icc


class ICCFilter(TransformerMixin, BaseEstimator):
    """Drop features whose ICC(1,1) across mask perturbations is below `threshold`.

    Zwanenburg et al. 2019 (Sci Rep 9:614) judge radiomics features by their ICC(1,1) under
    image and mask perturbations; 0.75 is "good" reliability for Koo & Li 2016. The ICC is
    computed here on the training fold only, so the filter must be the first step of the
    pipeline: X is the feature DataFrame indexed by lesion ID.

    `perturbed` has one row per (lesion, perturbation): `id_column`, `perturbation`,
    `perturbation_kind` and the feature columns (as `FeatureTable.perturbed`). A lesion's
    measurements of a feature are its value in X plus its perturbed values; lesions of X absent
    from `perturbed` do not enter the ICC, a lesion listed twice in X (a bootstrap) enters once.
    Unequal perturbation counts use the one-way ANOVA's k0 (see `icc1`). Columns of X absent
    from `perturbed` (clinical covariates, which have no segmentation variability) are always
    kept. A feature whose ICC is undefined (constant over the training lesions and their
    perturbations, or too few finite values) is dropped: nothing shows it is reproducible, and a
    constant column would be dropped by `VarianceThreshold` anyway. With `perturbed=None`, or when
    no training lesion has perturbations, every column is kept: the pipeline has the same shape
    with or without perturbations.

    `transform` needs only the fitted `keep_`; returns X's kept columns (a DataFrame for a
    DataFrame). `icc_` maps each evaluated feature to its ICC (a plain dict, like every fitted
    attribute here, so skops can save it). Before saving a fitted pipeline, set
    `<step>__perturbed=None`: the table holds every lesion's features, and skops cannot save a
    DataFrame anyway.
    """

    def __init__(
        self,
        perturbed: pd.DataFrame | None = None,
        threshold: float = 0.75,
        id_column: str = "lesion_id",
    ) -> None:
        self.perturbed = perturbed
        self.threshold = threshold
        self.id_column = id_column

    def fit(self, X: Any, y: Any = None) -> ICCFilter:
        _record_input(self, X)
        n = _width(X)
        self.keep_ = np.arange(n)
        self.icc_: dict[Any, float] = {}
        self.n_lesions_ = 0
        if self.perturbed is None:
            return self
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                "ICCFilter needs X as a DataFrame indexed by lesion ID: make it the pipeline's "
                "first step"
            )
        perturbed = self.perturbed
        if self.id_column not in perturbed.columns:
            raise ValueError(f"the perturbation table has no {self.id_column!r} column")
        skip = {self.id_column, *PERTURBATION_COLUMNS}
        perturbed_types = dict(zip(perturbed.columns, perturbed.dtypes, strict=True))
        features = [
            c
            for c, kind in zip(X.columns.tolist(), X.dtypes.tolist(), strict=True)
            if c in perturbed_types
            and c not in skip
            and pd.api.types.is_numeric_dtype(kind)
            and pd.api.types.is_numeric_dtype(perturbed_types[c])
        ]
        lesions = X.index[~X.index.duplicated()]
        rows = perturbed[self.id_column].isin(lesions)
        if not features or not rows.any():
            return self
        ids = perturbed.loc[rows, self.id_column].to_numpy()
        present = pd.Index(pd.unique(ids))
        original = X.loc[~X.index.duplicated(), features].loc[present].to_numpy(float)
        values = np.vstack([original, perturbed.loc[rows, features].to_numpy(float)])
        groups = np.r_[np.arange(len(present)), present.get_indexer(ids)]
        icc = icc1(values, groups)
        self.icc_ = dict(zip(features, icc.tolist(), strict=True))
        self.n_lesions_ = len(present)
        robust = icc >= self.threshold  # NaN -> False
        dropped = set(np.asarray(features, dtype=object)[~robust])
        self.keep_ = np.array([j for j, c in enumerate(X.columns) if c not in dropped], int)
        return self

    def transform(self, X: Any) -> Any:
        check_is_fitted(self, "keep_")
        _check_width(self, _width(X))
        if isinstance(X, pd.DataFrame):
            names = getattr(self, "feature_names_in_", None)
            if names is not None and not np.array_equal(X.columns.to_numpy(object), names):
                raise ValueError("X has different columns from those ICCFilter was fitted on")
            return X.iloc[:, self.keep_]
        return np.asarray(X)[:, self.keep_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return _names_out(self, input_features)


def _width(X: Any) -> int:
    return X.shape[1] if hasattr(X, "shape") else np.asarray(X).shape[1]


def _record_input(estimator: BaseEstimator, X: Any) -> None:
    """scikit-learn's `n_features_in_` and, for a DataFrame with string columns,
    `feature_names_in_`."""
    estimator.n_features_in_ = _width(X)
    if hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_
    if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
        estimator.feature_names_in_ = X.columns.to_numpy(object)


def _check_width(estimator: BaseEstimator, n: int) -> None:
    if n != estimator.n_features_in_:
        raise ValueError(
            f"X has {n} features; {type(estimator).__name__} was fitted with "
            f"{estimator.n_features_in_}"
        )


def _names_out(estimator: BaseEstimator, input_features: Any) -> np.ndarray:
    check_is_fitted(estimator, "keep_")
    fitted = getattr(estimator, "feature_names_in_", None)
    if input_features is None:
        if fitted is not None:
            names = fitted
        else:
            names = np.array([f"x{i}" for i in range(estimator.n_features_in_)], dtype=object)
    else:
        names = np.asarray(input_features, dtype=object)
        if len(names) != estimator.n_features_in_:
            raise ValueError(
                f"input_features has {len(names)} names; expected {estimator.n_features_in_}"
            )
        if fitted is not None and not np.array_equal(names, fitted):
            raise ValueError("input_features differ from the feature names seen in fit")
    return names[estimator.keep_]
