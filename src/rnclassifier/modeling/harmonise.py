"""ComBat harmonisation of radiomics features across scanners/sites, fitted on the training fold.

ComBat (Johnson, Li & Rabinovic 2007, Biostatistics 8:118; for imaging features Fortin et al.
2017 NeuroImage 161:149 and 2018 NeuroImage 167:104) models each feature g of lesion j at site i
as x_ijg = alpha_g + gamma_ig + sqrt(delta_ig) * sigma_g * e_ijg, a site shift gamma and a site
scale delta around a grand mean alpha and a pooled within-site SD sigma, and removes both:
x* = (x - alpha - sigma * gamma*) / sqrt(delta*) + alpha. gamma* and delta* are the empirical
Bayes estimates: each site's shifts (and scales) over all features are taken to come from one
normal (inverse-gamma) prior, whose parameters are estimated from those features by moments, so a
site with few lesions borrows strength from the other features.

Re-implemented here (about 150 lines of numpy) rather than wrapping the reference `neuroCombat`
package (PyPI 0.2.12, Fortin's). Its `neuroCombat(...)` runs on numpy 2 / pandas 3 and agrees
with this class to about 1e-14 (tests/modeling/test_harmonise.py keeps its output for a small
data set as a known answer, for the parametric, non-parametric and no-EB variants), but it only
harmonises the
data it is fitted on, whereas a fold needs fit-on-training, apply-to-held-out: its
`neuroCombatFromTraining` is marked "under development" and fails on numpy 2 (`int()` of a
1-element array). It also cannot take missing values (one NaN makes every feature NaN, through
the priors; a feature missing at a whole site makes it fail), fails on a site with one lesion (a
NaN variance enters the priors), maps a zero pooled variance to `median(var != 0)` (the median
of booleans), prints to stdout, turns a DataFrame into float32, and its metadata declares none
of the numpy and pandas it imports. The estimation below follows it (and R's `sva::ComBat`)
step by step, including the EB iteration's stopping rule (relative change below 1e-4,
`CONVERGENCE`), so that results compare with published ComBat analyses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from rnclassifier.columns import ColumnKind, column_kind

#: The parametric EB iteration stops when no site shift or scale changes by more than this
#: fraction of its previous value, as in `sva::ComBat` (`conv = 0.0001`) and `neuroCombat`.
CONVERGENCE = 1e-4
#: A safety cap on that iteration (it usually stops after 3-6 rounds).
MAX_ITERATIONS = 1000
#: A feature whose pooled within-site variance is at most this fraction of its total variance is
#: (up to rounding) constant within every site: ComBat cannot standardise it, it passes through.
WITHIN_SITE_FLOOR = 1e-12


class ComBatHarmoniser(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Remove site (scanner/protocol) shifts and scales from radiomics features by ComBat.

    Fit on the training fold only; `transform` applies the training estimates (grand means,
    pooled SDs, each training site's gamma* and delta*) to any lesion of a site seen in training.
    Like `ICCFilter`, it needs X as a DataFrame indexed by lesion ID, so it belongs at the front
    of the pipeline (before imputation: missing values are tolerated).

    `sites` maps lesion ID (the index) to site label; labels are compared as strings. Each row
    of X takes the site of its index in `sites`, at fit and at transform, so to score new
    lesions set `sites` to a Series that covers them (`set_params(combat__sites=...)` on the
    pipeline); before saving a fitted pipeline with skops, set it to None (transform does not
    need it until then, and skops cannot store a Series). With `sites=None` at fit, the step is
    the identity: the pipeline has the same shape with or without harmonisation.

    `columns` names the columns to harmonise; None takes every numeric radiomics and delta
    column (`rnclassifier.columns`), so clinical covariates (`age_years`, ...) and the growth
    between the scans (a volume ratio, not a scanner's intensity) are never touched.
    `parametric=False` uses the non-parametric EB priors of Johnson 2007 (a likelihood-weighted
    average over the site's other features), `eb=False` the plain per-site estimates without
    shrinkage (both as `neuroCombat`).

    Biological covariates: none. ComBat can protect covariates (age, sex, the diagnosis) from
    being removed with the site effect by fitting them in the standardisation model, but the
    label cannot be one (it is unknown when a lesion is scored), and protecting clinical
    covariates such as age is possible but not done here. If sites differ in their case mix,
    part of a real difference between sites is removed too.

    Details and edge cases:

    * Missing values (NaN, +-inf) are left out, feature by feature, of every estimate, and left
      as they are by `transform`.
    * A selected feature that is constant over the training rows, or has no variation within
      any site (pooled within-site variance at most `WITHIN_SITE_FLOOR` of its total variance),
      is not harmonised: it passes through unchanged (listed in `passed_through_`).
    * A site with one training lesion has no within-site variance: its scale is left at 1 (no
      rescaling, as ComBat's `mean_only`) and only its shift is estimated, shrunk to the site's
      prior as usual. Priors are per site, so the other sites are unaffected. A site/feature
      with fewer than two values (through NaNs) likewise keeps scale 1 without EB, and gets the
      posterior scale (mostly the prior's) with it; one with no value at all gets the prior's
      mean shift and scale.
    * When a site's prior cannot be estimated (fewer than two features, or no spread between
      them), that site gets its plain estimates, without shrinkage.
    * With a single training site there is nothing to harmonise between: the identity (rows
      must still be from that site).
    * A feature's pooled variance is the mean squared residual from its site means (divisor n,
      as `sva::ComBat` and `neuroCombat`); a site's scale is its sample variance (divisor n - 1)
      over that.

    `transform` raises ValueError for a row whose site was not in the training data (ComBat has
    no estimate for it) and for a lesion missing from `sites`. The fitted state is numpy arrays
    and plain dicts (skops-safe): `sites_` (training site labels, sorted), `n_lesions_` (site ->
    training rows), `columns_` (harmonised column names) and `column_indices_` (their
    positions in X), `passed_through_`, `grand_mean_` and `pooled_sd_` (per harmonised column),
    `gamma_star_` and `delta_star_` (sites x harmonised columns, in the standardised scale).
    """

    def __init__(
        self,
        sites: pd.Series | None = None,
        columns: tuple[str, ...] | None = None,
        parametric: bool = True,
        eb: bool = True,
    ) -> None:
        self.sites = sites
        self.columns = columns
        self.parametric = parametric
        self.eb = eb

    def fit(self, X: Any, y: Any = None) -> ComBatHarmoniser:
        """Estimate the site effects from X's rows (y is not used)."""
        validate_data(self, X, reset=True, skip_check_array=True)
        self.sites_ = np.array([], dtype=object)
        self.n_lesions_: dict[str, int] = {}
        self.columns_ = np.array([], dtype=object)
        self.column_indices_ = np.array([], dtype=np.int64)
        self.passed_through_ = np.array([], dtype=object)
        self.grand_mean_ = np.zeros(0)
        self.pooled_sd_ = np.zeros(0)
        self.gamma_star_ = np.zeros((0, 0))
        self.delta_star_ = np.zeros((0, 0))
        if self.sites is None:
            return self
        X = _frame(X)
        labels = _site_labels(self.sites, X.index)
        levels, codes = np.unique(labels, return_inverse=True)
        codes = codes.ravel()
        self.sites_ = levels.astype(object)
        self.n_lesions_ = {str(s): int(c) for s, c in zip(levels, np.bincount(codes), strict=True)}
        selected = self._selected(X)
        values = X.iloc[:, selected].to_numpy(float)
        finite = np.isfinite(values)
        x = np.where(finite, values, 0.0)
        # sites x rows, 1 where the row is from the site: per-site sums as one product.
        indicator = sparse.csr_array(
            (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(len(levels), len(codes))
        )
        count = indicator @ finite.astype(float)  # sites x features
        site_mean = np.divide(indicator @ x, count, out=np.zeros_like(count), where=count > 0)
        total = count.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            grand_mean = x.sum(axis=0) / total
            within = np.where(finite, x - site_mean[codes], 0.0)
            pooled_var = (within**2).sum(axis=0) / total
            total_var = (np.where(finite, x - grand_mean, 0.0) ** 2).sum(axis=0) / total
        highest = np.where(finite, values, -np.inf).max(axis=0, initial=-np.inf)
        lowest = np.where(finite, values, np.inf).min(axis=0, initial=np.inf)
        variable = (highest > lowest) & (pooled_var > WITHIN_SITE_FLOOR * total_var)
        self.passed_through_ = X.columns[selected[~variable]].to_numpy(object)
        selected, grand_mean, pooled_var = (
            selected[variable],
            grand_mean[variable],
            pooled_var[variable],
        )
        self.columns_ = X.columns[selected].to_numpy(object)
        self.column_indices_ = selected.astype(np.int64)
        self.grand_mean_ = grand_mean
        self.pooled_sd_ = np.sqrt(pooled_var)
        standardised = (values[:, variable] - grand_mean) / self.pooled_sd_
        gamma = np.zeros((len(levels), len(selected)))
        delta = np.ones((len(levels), len(selected)))
        for i in range(len(levels)):
            gamma[i], delta[i] = self._site_estimates(standardised[codes == i])
        self.gamma_star_, self.delta_star_ = gamma, delta
        return self

    def transform(self, X: Any) -> Any:
        """X with the harmonised columns replaced (as float); the others as they are."""
        check_is_fitted(self, "gamma_star_")
        validate_data(self, X, reset=False, skip_check_array=True)
        if len(self.sites_) == 0:  # fitted with sites=None
            return X
        if self.sites is None:
            raise ValueError(
                "ComBatHarmoniser was fitted with sites: set `sites` to a Series mapping the "
                "lesions to transform to their sites (on a pipeline: "
                "set_params(combat__sites=...))"
            )
        X = _frame(X)
        labels = _site_labels(self.sites, X.index)
        codes = np.searchsorted(self.sites_.astype(str), labels.astype(str))
        codes = np.minimum(codes, len(self.sites_) - 1)
        unseen = self.sites_[codes] != labels
        if unseen.any():
            missing = sorted(set(labels[unseen].tolist()))
            more = f" (nor {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else ""
            raise ValueError(
                f"site {missing[0]!r} was not in the training data: ComBat cannot harmonise "
                f"it{more}"
            )
        if len(self.sites_) < 2 or len(self.columns_) == 0:
            return X
        values = X.iloc[:, self.column_indices_].to_numpy(float)
        z = (values - self.grand_mean_) / self.pooled_sd_
        z = (z - self.gamma_star_[codes]) / np.sqrt(self.delta_star_[codes])
        harmonised = z * self.pooled_sd_ + self.grand_mean_
        out = X.astype(dict.fromkeys(self.columns_.tolist(), "float64"))
        out.iloc[:, self.column_indices_] = harmonised
        return out

    # --- estimation ------------------------------------------------------------------------

    def _selected(self, X: pd.DataFrame) -> np.ndarray:
        """Positions of the columns to harmonise."""
        numeric = [pd.api.types.is_numeric_dtype(t) for t in X.dtypes]
        if self.columns is None:
            return np.array(
                [
                    j
                    for j, (c, ok) in enumerate(zip(X.columns, numeric, strict=True))
                    if ok
                    and isinstance(c, str)
                    and column_kind(c) in (ColumnKind.RADIOMICS, ColumnKind.DELTA)
                ],
                dtype=np.int64,
            )
        positions = X.columns.get_indexer(list(self.columns))
        absent = [c for c, j in zip(self.columns, positions, strict=True) if j < 0]
        if absent:
            raise ValueError(f"columns to harmonise not in X: {', '.join(map(str, absent))}")
        text = [c for c, j in zip(self.columns, positions, strict=True) if not numeric[j]]
        if text:
            raise ValueError(f"columns to harmonise are not numeric: {', '.join(map(str, text))}")
        return np.unique(positions).astype(np.int64)

    def _site_estimates(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """gamma* and delta* of one site from its standardised rows (lesions x features)."""
        finite = np.isfinite(z)
        n = finite.sum(axis=0).astype(float)
        zero = np.where(finite, z, 0.0)
        gamma_hat = np.divide(zero.sum(axis=0), n, out=np.zeros(z.shape[1]), where=n > 0)
        # Sum of squares about the site mean: sum (z - g)^2 = ss + n (gamma_hat - g)^2.
        ss = (np.where(finite, z - gamma_hat, 0.0) ** 2).sum(axis=0)
        has_gamma, has_delta = n >= 1, n >= 2
        delta_hat = np.divide(ss, n - 1, out=np.ones(z.shape[1]), where=has_delta)
        delta_hat[delta_hat == 0] = 1.0  # a feature constant at this site (as neuroCombat)
        if not self.eb:
            return gamma_hat, delta_hat
        if not self.parametric:
            return _nonparametric(gamma_hat, delta_hat, has_gamma, n, ss)
        g_bar, t2 = _moments(gamma_hat[has_gamma])
        location = np.isfinite(t2) and t2 > 0
        m, s2 = _moments(delta_hat[has_delta])
        scale = np.isfinite(s2) and s2 > 0
        if not location and not scale:
            return gamma_hat, delta_hat
        if not scale:  # scales as they are (1 where undefined); shifts shrunk, no iteration
            return _postmean(gamma_hat, g_bar, n, delta_hat, t2), delta_hat
        a, b = (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2  # inverse-gamma moments (Johnson 2007)
        if not location:  # shifts as they are; scales shrunk about them
            return gamma_hat, _postvar(ss, n, a, b)
        gamma_hat = np.where(has_gamma, gamma_hat, g_bar)
        delta_hat = np.where(has_delta, delta_hat, b / (a - 1))
        g_old, d_old = gamma_hat, delta_hat
        for _ in range(MAX_ITERATIONS):
            g_new = _postmean(gamma_hat, g_bar, n, d_old, t2)
            d_new = _postvar(ss + n * (gamma_hat - g_new) ** 2, n, a, b)
            # sva's and neuroCombat's rule, change / old (signed: negative shifts never hold it up).
            with np.errstate(divide="ignore", invalid="ignore"):
                change = max(
                    np.nanmax((np.abs(g_new - g_old) / g_old), initial=0.0),
                    np.nanmax((np.abs(d_new - d_old) / d_old), initial=0.0),
                )
            g_old, d_old = g_new, d_new
            if change <= CONVERGENCE:
                break
        return g_new, d_new


def _frame(X: Any) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            "ComBatHarmoniser needs X as a DataFrame indexed by lesion ID: put it at the front "
            "of the pipeline"
        )
    if not X.columns.is_unique:
        raise ValueError("ComBatHarmoniser needs X's column names to be unique")
    return X


def _site_labels(sites: Any, index: pd.Index) -> np.ndarray:
    """The site label (str) of each row of an X with this index."""
    if isinstance(sites, Mapping):
        sites = pd.Series(sites)
    if not isinstance(sites, pd.Series):
        raise TypeError("sites must be a pandas Series mapping lesion ID to site label")
    if not sites.index.is_unique:
        raise ValueError("sites lists a lesion more than once")
    found = sites.reindex(index)
    missing = found.isna().to_numpy()
    if missing.any():
        raise ValueError(f"lesion {index[np.argmax(missing)]!r} has no site in `sites`")
    return np.array([str(s) for s in found.to_numpy(object)], dtype=object)


def _moments(v: np.ndarray) -> tuple[float, float]:
    """Mean and sample variance (NaN, NaN for fewer than two values)."""
    if len(v) < 2:
        return np.nan, np.nan
    return float(v.mean()), float(v.var(ddof=1))


def _postmean(g_hat: Any, g_bar: float, n: Any, d_star: Any, t2: float) -> Any:
    return (t2 * n * g_hat + d_star * g_bar) / (t2 * n + d_star)


def _postvar(sum2: Any, n: Any, a: float, b: float) -> Any:
    return (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)


def _nonparametric(
    gamma_hat: np.ndarray, delta_hat: np.ndarray, has_gamma: np.ndarray, n: np.ndarray, ss: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Johnson 2007's non-parametric EB (`int_eprior`): each feature's gamma* and delta* are the
    averages of the site's other features' (gamma_hat, delta_hat), weighted by the likelihood of
    this feature's values under each, computed in logs (neuroCombat's products underflow)."""
    prior = np.flatnonzero(has_gamma)
    if len(prior) < 2:
        return gamma_hat, delta_hat
    g, d = gamma_hat[prior], delta_hat[prior]
    gamma_star, delta_star = gamma_hat.copy(), delta_hat.copy()
    for start in range(0, len(gamma_hat), 256):
        rows = np.arange(start, min(start + 256, len(gamma_hat)))
        sum2 = ss[rows, None] + n[rows, None] * (gamma_hat[rows, None] - g) ** 2
        log_lh = -0.5 * n[rows, None] * np.log(2 * np.pi * d) - sum2 / (2 * d)
        log_lh[rows[:, None] == prior] = -np.inf  # leave the feature itself out
        w = np.exp(log_lh - log_lh.max(axis=1, keepdims=True))
        gamma_star[rows] = (w @ g) / w.sum(axis=1)
        delta_star[rows] = (w @ d) / w.sum(axis=1)
    return gamma_star, delta_star
