"""A loaded bundle and its one way of predicting: probability, call (with the indeterminate
zone), the CV ensemble's spread and the out-of-distribution facts, for the case, cohort,
validation and registered-model paths alike (so they cannot drift apart).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from rnclassifier.bundle.meta import MANIFEST_FILE, BundleMeta
from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS
from rnclassifier.errors import InputError
from rnclassifier.features.restrict import Requirements, requirements
from rnclassifier.modeling.ood import distance
from rnclassifier.modeling.threshold import Calibrator

#: The call between the two thresholds of the indeterminate zone.
INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class Prediction:
    """Per-lesion results of `ModelBundle.predict`, in the order of the rows given."""

    probability: np.ndarray  # calibrated, at the training prevalence
    call: np.ndarray  # tumor / indeterminate / necrosis ('' without a probability)
    threshold: float
    zone: tuple[float, float]
    ensemble: np.ndarray | None  # (lesions, members): each outer-fold model's probability
    distance: np.ndarray  # Mahalanobis distance of the model's continuous features
    cutoff: float | None
    outside: list[list[str]]  # features outside the training's 0.5-99.5% range
    site_unseen: np.ndarray  # bool; False where no site was given
    prevalence: float | None = None
    #: With `prevalence`: Bayes' rule on the odds, and the thresholds moved by the same shift.
    probability_at_prevalence: np.ndarray | None = None
    threshold_at_prevalence: float | None = None
    zone_at_prevalence: list[float] | None = None

    @property
    def beyond_cutoff(self) -> np.ndarray:
        cutoff = np.inf if self.cutoff is None else self.cutoff
        return self.distance > cutoff

    @property
    def out_of_distribution(self) -> np.ndarray:
        """The one check: beyond the feature-distance cut-off, or from a site unseen in
        training. Single features outside the 0.5-99.5% range are listed but do not raise
        the flag alone: among tens of features one of them is often there by chance."""
        return self.beyond_cutoff | self.site_unseen

    def reasons(self, row: int) -> list[str]:
        """Why lesion `row` is out of distribution, in words (empty when it is not)."""
        reasons = []
        if self.beyond_cutoff[row]:
            reasons.append(
                f"feature distance {self.distance[row]:.1f} beyond the cut-off {self.cutoff:.1f}"
            )
        if self.site_unseen[row]:
            reasons.append("site not seen in training")
        return reasons

    def table(self) -> pd.DataFrame:
        """One row per lesion (a fresh index): the columns of `score --cohort` and of the
        registered MLflow model, made here only."""
        table = pd.DataFrame(
            {
                "probability": self.probability,
                "call": self.call,
                "threshold": self.threshold,
                # The indeterminate zone fixed in training: necrosis below, tumour at or above.
                "zone_low": self.zone[0],
                "zone_high": self.zone[1],
            }
        )
        if self.prevalence is not None:
            table[f"probability_at_prevalence_{self.prevalence:g}"] = self.probability_at_prevalence
            table[f"threshold_at_prevalence_{self.prevalence:g}"] = self.threshold_at_prevalence
        if self.ensemble is not None:
            table["ensemble_min"] = self.ensemble.min(axis=1)
            table["ensemble_max"] = self.ensemble.max(axis=1)
        table["mahalanobis_distance"] = self.distance
        table["beyond_distance_cutoff"] = self.beyond_cutoff
        table["site_unseen"] = self.site_unseen
        table["out_of_distribution"] = self.out_of_distribution
        table["features_outside_training_range"] = [";".join(x) for x in self.outside]
        return table


@dataclass
class ModelBundle:
    """A loaded, verified bundle: the final model, its calibrator and the CV ensemble."""

    path: Path
    meta: BundleMeta
    pipeline: Any
    calibrator: Calibrator
    ensemble: list[tuple[Any, Calibrator]] = field(default_factory=list)

    @property
    def input_features(self) -> list[str]:
        return list(self.meta.features.input)

    @property
    def used_features(self) -> list[str]:
        return list(self.meta.features.used)

    @property
    def threshold(self) -> float:
        return float(self.meta.thresholds.rule.value)

    @property
    def zone(self) -> tuple[float, float]:
        """(low, high) of the indeterminate zone fixed in training; a bundle written before
        zones has none (low = high = the rule's threshold)."""
        zone = self.meta.thresholds.indeterminate
        if zone is None:
            return self.threshold, self.threshold
        return float(zone.low), float(zone.high)

    @property
    def requirements(self) -> Requirements:
        """The inputs the final model's features come from: sequences, prior scan, covariates
        (manifest column names)."""
        return requirements(self.used_features)

    @property
    def harmonised(self) -> bool:
        return bool(self.meta.harmonisation)

    @property
    def manifest_sha256(self) -> str:
        """One digest for the whole verified folder (the SHA-256 of its manifest)."""
        return hashlib.sha256((self.path / MANIFEST_FILE).read_bytes()).hexdigest()

    def calls(self, probability: np.ndarray) -> np.ndarray:
        """'tumor' at or above the zone's high end, 'necrosis' below its low end (the rule's
        threshold), 'indeterminate' between; '' where there is no probability."""
        p = np.asarray(probability, float)
        low, high = self.zone
        calls = np.where(
            p >= high, POSITIVE_CLASS, np.where(p < low, NEGATIVE_CLASS, INDETERMINATE)
        )
        return np.where(np.isnan(p), "", calls).astype(object)

    def frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The pipeline's input columns in training order; features the model does not use may
        be absent (they are imputed and then dropped; so are covariates left to the bundle's
        imputer), used ones may not."""
        missing = [c for c in self.used_features if c not in X.columns]
        if missing:
            raise InputError(f"feature {c!r}: needed by the model but not given" for c in missing)
        return X.reindex(columns=self.input_features).astype(float)

    def probability(self, X: pd.DataFrame, sites: Any = None) -> np.ndarray:
        """Calibrated probability of tumour (at the training prevalence). `sites` (one per
        row) is needed when the model harmonises by site."""
        frame = self._prepare(self.pipeline, X, sites)
        return self.calibrator.transform(self.pipeline.predict_proba(frame)[:, 1])

    def ensemble_probabilities(self, X: pd.DataFrame, sites: Any = None) -> np.ndarray:
        """(cases, members): each outer-fold model's calibrated probability."""
        return np.column_stack(
            [
                c.transform(p.predict_proba(self._prepare(p, X, sites))[:, 1])
                for p, c in self.ensemble
            ]
        )

    def predict(
        self, features: pd.DataFrame, sites: Any = None, *, prevalence: float | None = None
    ) -> Prediction:
        """Everything the bundle says about each row of `features` (model input columns).
        `sites` (one per row, or None) harmonise a model that harmonises by site and flag
        sites unseen in training; `prevalence` adds the probability shifted to it."""
        harmonise_by = sites if self.harmonised else None
        probability = self.probability(features, harmonise_by)
        members = self.ensemble_probabilities(features, harmonise_by) if self.ensemble else None
        frame = self.frame(features)
        reference = self.meta.reference
        shifted: dict[str, Any] = {}
        if prevalence is not None:
            shifted = self._at_prevalence(probability, prevalence)
        return Prediction(
            probability=probability,
            call=self.calls(probability),
            threshold=self.threshold,
            zone=self.zone,
            ensemble=members,
            distance=distance(reference.model_dump(), frame),
            cutoff=reference.cutoff,
            outside=self._outside_range(frame),
            site_unseen=self._site_unseen(sites, len(frame)),
            prevalence=prevalence,
            **shifted,
        )

    def _at_prevalence(self, probability: np.ndarray, prevalence: float) -> dict[str, Any]:
        # Bayes' rule on the odds: the likelihood ratio the model learned, another prior. The
        # pre-specified thresholds move by the same shift: the shifted probability is read
        # against them, so the call (made at the training prevalence) is the same on both.
        shift = logit(prevalence) - logit(self.meta.training.prevalence)
        return {
            "probability_at_prevalence": expit(logit(np.clip(probability, 1e-9, 1 - 1e-9)) + shift),
            "threshold_at_prevalence": float(expit(logit(self.threshold) + shift)),
            "zone_at_prevalence": [
                float(expit(logit(t) + shift)) if 0 < t < 1 else float(t) for t in self.zone
            ],
        }

    def _outside_range(self, frame: pd.DataFrame) -> list[list[str]]:
        reference = self.meta.reference
        low = np.asarray(reference.quantiles.get("q0.5", []))
        high = np.asarray(reference.quantiles.get("q99.5", []))
        values = frame[reference.features].to_numpy(float)
        return [
            [
                reference.features[j]
                for j in range(values.shape[1])
                if np.isfinite(values[i, j]) and not low[j] <= values[i, j] <= high[j]
            ]
            for i in range(values.shape[0])
        ]

    def _site_unseen(self, sites: Any, n: int) -> np.ndarray:
        seen = self.meta.sites or {}
        if sites is None:
            return np.zeros(n, bool)
        return (
            pd.Series(list(sites), dtype=object)
            .map(lambda s: bool(seen) and s is not None and s not in seen)
            .to_numpy(bool)
        )

    def _prepare(self, pipeline: Any, X: pd.DataFrame, sites: Any) -> pd.DataFrame:
        frame = self.frame(X)
        if not self.harmonised:
            return frame
        if sites is None:
            raise InputError("this model harmonises features by site (ComBat): give the site")
        sites = [str(s).strip() for s in np.atleast_1d(sites)]
        seen = self.meta.sites or {}
        unseen = sorted(set(sites) - set(seen))
        if unseen:
            raise InputError(
                f"site {s!r}: not seen in training; a ComBat-harmonised model cannot score it "
                f"(seen: {', '.join(seen)})"
                for s in unseen
            )
        pipeline.set_params(combat__sites=pd.Series(sites, index=frame.index))
        return frame
