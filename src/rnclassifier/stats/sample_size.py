"""Minimum sample size for developing a prediction model with a binary outcome (Riley et al.).

Riley RD et al., Stat Med 2019;38:1276-96 (Part II: binary and time-to-event outcomes) and BMJ
2020;368:m441. Three criteria, each giving a number of patients; the largest is required:

1. small overfitting: expected uniform shrinkage of the predictor effects >= `shrinkage` (0.9);
2. small optimism: apparent minus adjusted Nagelkerke R² <= `delta` (0.05);
3. the overall risk estimated within ± `margin` (0.05) with 95% confidence.

Criteria 1 and 2 need the anticipated Cox-Snell R² of the new model. When only a C-statistic is
known, `cox_snell_r2_from_c` converts it as Riley, Van Calster & Collins (Stat Med 2021;40:859)
and the pmsampsize R package (>= 1.1) do, but deterministically (see there).

The arithmetic follows pmsampsize (>= 1.1.1, after its rounding fix) so that its published
numbers are reproduced exactly: 1.96 rather than the exact normal quantile in criterion 3, and
each criterion rounded up before the maximum is taken.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Integral

import numpy as np
from scipy import integrate, special, stats

Z_95 = 1.96  # pmsampsize's value; the exact 0.975 quantile would change some results by one.


@dataclass(frozen=True)
class SampleSize:
    """The required sample size and what it implies.

    `criteria` holds the patients each criterion needs on its own; `n` is their maximum.
    `shrinkage` is the larger of the target and the shrinkage criterion 2 requires, which the
    developed model is expected to reach at `n`.
    """

    n: int
    events: float
    events_per_parameter: float
    criteria: dict[str, int]
    shrinkage: float
    r2_cs: float
    max_r2_cs: float

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON reports."""
        return asdict(self)


def max_cox_snell_r2(prevalence: float) -> float:
    """Largest Cox-Snell R² a model can reach at this prevalence: 1 - L_null^(2/n).

    Riley et al. 2019: 1 - (phi^phi (1-phi)^(1-phi))^2, the R² of a perfect model.
    """
    phi = prevalence
    return 1.0 - math.exp(2.0 * (phi * math.log(phi) + (1.0 - phi) * math.log(1.0 - phi)))


def _n_for_shrinkage(parameters: int, r2_cs: float, shrinkage: float) -> int:
    """Patients for an expected uniform shrinkage `shrinkage` (Riley et al. 2019)."""
    return math.ceil(parameters / ((shrinkage - 1.0) * math.log(1.0 - r2_cs / shrinkage)))


def cox_snell_r2_from_c(c_statistic: float, prevalence: float) -> float:
    """Anticipated Cox-Snell R² of a model with this C-statistic at this prevalence.

    Riley, Van Calster & Collins 2021 (and pmsampsize's `cstat2rsq`) assume a linear predictor
    that is normal with unit variance in each outcome group, the means sqrt(2)·Φ⁻¹(C) apart (so
    that its AUC is C), simulate a million patients, fit a logistic regression on it and report
    1 - exp(-LR/n). Under that model the logistic regression is correctly specified, so as n grows
    LR/n tends to 2·I(Y; LP), twice the mutual information of outcome and linear predictor. We
    compute that limit by numerical integration instead of simulating: the result is the same
    quantity without pmsampsize's Monte Carlo error (a standard deviation of about 0.0006 in R²,
    about ±2 patients in criterion 1 for its C = 0.89 example) and takes milliseconds.
    """
    _check_open_unit("prevalence", prevalence)
    if not 0.5 < c_statistic < 1.0:
        raise ValueError(f"c_statistic must be in (0.5, 1), got {c_statistic!r}")
    phi = float(prevalence)
    mu = math.sqrt(2.0) * float(stats.norm.ppf(c_statistic))
    # log-odds of the outcome given the linear predictor x: logit(phi) + mu·x - mu²/2
    a = float(special.logit(phi)) - mu * mu / 2.0

    def expected(log_p) -> float:
        """E[log_p(z)] for z ~ N(0, 1)."""
        value, _ = integrate.quad(
            lambda z: stats.norm.pdf(z) * log_p(z), -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12
        )
        return value

    # E[log P(Y | X)] over events (x = mu + z) and non-events (x = z)
    log_lik = phi * expected(lambda z: special.log_expit(a + mu * (mu + z))) + (
        1.0 - phi
    ) * expected(lambda z: special.log_expit(-(a + mu * z)))
    log_lik_null = phi * math.log(phi) + (1.0 - phi) * math.log(1.0 - phi)
    return 1.0 - math.exp(-2.0 * (log_lik - log_lik_null))


def minimum_sample_size(
    parameters: int,
    prevalence: float,
    *,
    r2_cs: float | None = None,
    c_statistic: float | None = None,
    shrinkage: float = 0.9,
    delta: float = 0.05,
    margin: float = 0.05,
) -> SampleSize:
    """Riley et al.'s minimum sample size for `parameters` candidate predictor parameters.

    Give exactly one of `r2_cs` (anticipated Cox-Snell R², e.g. the optimism-adjusted value of
    an existing model) or `c_statistic` (converted by `cox_snell_r2_from_c`).

    Criterion 2 is met by the shrinkage S2 = R²cs / (R²cs + delta·max R²cs). Like pmsampsize,
    criterion 1 keeps the target `shrinkage` and criterion 2 computes its own n with S2; since n
    grows with S, the maximum is the same as recomputing criterion 1 with S2 whenever S2 exceeds
    the target, and the reported shrinkage is max(shrinkage, S2).
    """
    if isinstance(parameters, bool) or not isinstance(parameters, Integral) or parameters < 1:
        raise ValueError(f"parameters must be a positive integer, got {parameters!r}")
    _check_open_unit("prevalence", prevalence)
    _check_open_unit("shrinkage", shrinkage)
    _check_open_unit("delta", delta)
    _check_open_unit("margin", margin)
    phi = float(prevalence)
    max_r2 = max_cox_snell_r2(phi)
    if r2_cs is not None and c_statistic is None:
        r2 = float(r2_cs)
    elif c_statistic is not None and r2_cs is None:
        r2 = cox_snell_r2_from_c(c_statistic, phi)
    else:
        raise ValueError("give exactly one of r2_cs and c_statistic")
    if not 0.0 < r2 <= max_r2:
        raise ValueError(
            f"r2_cs must be in (0, {max_r2:.4f}], the largest Cox-Snell R² possible at "
            f"prevalence {phi}; got {r2!r}"
        )
    if r2 >= shrinkage:
        raise ValueError(f"shrinkage ({shrinkage}) must exceed r2_cs ({r2:.4f})")
    shrinkage_2 = r2 / (r2 + delta * max_r2)
    if r2 >= shrinkage_2:
        raise ValueError(f"delta ({delta}) is too large for r2_cs {r2:.4f}: no shrinkage meets it")
    criteria = {
        "shrinkage": _n_for_shrinkage(parameters, r2, float(shrinkage)),
        "r2_optimism": _n_for_shrinkage(parameters, r2, shrinkage_2),
        "overall_risk": math.ceil((Z_95 / margin) ** 2 * phi * (1.0 - phi)),
    }
    n = max(criteria.values())
    return SampleSize(
        n=n,
        events=n * phi,
        events_per_parameter=n * phi / parameters,
        criteria=criteria,
        shrinkage=max(float(shrinkage), shrinkage_2),
        r2_cs=r2,
        max_r2_cs=max_r2,
    )


def _check_open_unit(name: str, value: float) -> None:
    """Reject values outside (0, 1), NaN included."""
    if isinstance(value, bool) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
