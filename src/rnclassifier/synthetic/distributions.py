"""The two kinds of distribution the generator draws from, each with an exact log-density.

Exact densities matter: the Bayes oracle is computed from the same objects that draw the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.stats


@dataclass(frozen=True)
class Categorical:
    """Named categories with probabilities (normalised on construction)."""

    probabilities: Mapping[object, float]

    def __post_init__(self) -> None:
        total = sum(self.probabilities.values())
        if total <= 0 or any(p < 0 for p in self.probabilities.values()):
            raise ValueError("probabilities must be non-negative with a positive sum")
        normalised = {k: v / total for k, v in self.probabilities.items()}
        object.__setattr__(self, "probabilities", normalised)

    @property
    def categories(self) -> list[object]:
        return list(self.probabilities)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        index = rng.choice(len(self.categories), size=size, p=list(self.probabilities.values()))
        values = np.empty(size, dtype=object)
        values[:] = [self.categories[i] for i in index]
        return values

    def log_prob(self, values: Sequence[object] | np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log([self.probabilities.get(v, 0.0) for v in values])


@dataclass(frozen=True)
class QuantileKnots:
    """A continuous distribution through given quantiles: piecewise-uniform between knots.

    It reproduces a published median and IQR exactly, which no two-parameter family does for
    skewed summaries such as the seed's PTV (median 5.8, IQR 0.7-16.2 cm³). With `log=True` the
    density is piecewise-uniform in log(x), for positive, right-skewed quantities.
    """

    quantiles: tuple[float, ...]
    values: tuple[float, ...]
    log: bool = False
    _histogram: scipy.stats.rv_histogram = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        q, v = np.asarray(self.quantiles, float), np.asarray(self.values, float)
        if q[0] != 0 or q[-1] != 1 or np.any(np.diff(q) <= 0) or np.any(np.diff(v) <= 0):
            raise ValueError("quantiles must run 0..1 and values must increase")
        edges = np.log(v) if self.log else v
        histogram = scipy.stats.rv_histogram((np.diff(q), edges), density=False)
        object.__setattr__(self, "_histogram", histogram)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        draws = self._histogram.ppf(rng.random(size))
        return np.exp(draws) if self.log else draws

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """Log-density on the distribution's own scale (log x if `log`); the Jacobian of the
        log transform is the same for every class, so likelihood ratios stay exact."""
        x = np.asarray(x, float)
        with np.errstate(divide="ignore"):
            return self._histogram.logpdf(np.log(x) if self.log else x)

    def quantile(self, q: float) -> float:
        value = float(self._histogram.ppf(q))
        return float(np.exp(value)) if self.log else value
