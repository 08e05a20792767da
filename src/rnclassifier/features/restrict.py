"""What a model needs from a new case, and extraction restricted to it.

Scoring reads the extraction config recorded in the bundle (never one from the command line)
and narrows it to the image types, feature classes, features, sequences and regions of the
features the model uses, so a tumour-board case computes only those. pyradiomics computes each
feature from the same image and matrices whatever else is enabled, so the values are the ones
full extraction gives.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnclassifier.columns import GROWTH_COLUMN, covariates_of, parse_feature_column
from rnclassifier.config import ExtractionConfig, ExtractionSettings
from rnclassifier.errors import InputError

#: pyradiomics' image-type names by the prefix of its feature keys.
IMAGE_TYPES = {
    "original": "Original",
    "wavelet": "Wavelet",
    "log": "LoG",
    "square": "Square",
    "squareroot": "SquareRoot",
    "logarithm": "Logarithm",
    "exponential": "Exponential",
    "gradient": "Gradient",
    "lbp2d": "LBP2D",
    "lbp3d": "LBP3D",
}


@dataclass(frozen=True)
class Requirements:
    """The inputs a model's features come from (manifest column names)."""

    sequences: tuple[str, ...]  # of the scored MRI, t1c first
    prior_sequences: tuple[str, ...]  # of the earlier scan (delta features); empty if none
    covariates: tuple[str, ...]  # clinical manifest columns

    @property
    def needs_prior(self) -> bool:
        return bool(self.prior_sequences)


def requirements(columns: Iterable[str]) -> Requirements:
    """Which sequences, prior scan and clinical covariates the feature `columns` need."""
    sequences, prior, covariates = ["t1c"], [], []

    def add(into: list[str], value: str) -> None:
        if value not in into:
            into.append(value)

    for column in columns:
        parsed = parse_feature_column(column)
        if parsed is not None:
            add(sequences, parsed.sequence)
            if parsed.delta:
                add(prior, parsed.sequence)
        elif column == GROWTH_COLUMN:
            add(prior, "t1c")
        elif not covariates_of(column):
            raise InputError(f"model feature {column!r}: not one rnclassifier can compute")
        for covariate in covariates_of(column):
            add(covariates, covariate)
    if prior and "t1c" not in prior:
        prior.insert(0, "t1c")  # the prior mask is drawn on the prior T1c
    return Requirements(tuple(sequences), tuple(prior), tuple(covariates))


def config_from_record(record: dict[str, Any]) -> ExtractionConfig:
    """The extraction config a feature table's sidecar recorded (and a bundle carries), checked
    against its fingerprint."""
    try:
        settings = ExtractionSettings.model_validate_json(json.dumps(record["rnclassifier"]))
        config = ExtractionConfig(
            source=Path(record["source_name"]),
            pyradiomics=record["pyradiomics"],
            settings=settings,
            plain=bool(record["plain_pyradiomics"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the model's extraction config is incomplete ({exc})") from None
    if config.fingerprint() != record.get("fingerprint"):
        raise InputError("the model's extraction config does not match its recorded fingerprint")
    return config


def restricted_config(config: ExtractionConfig, columns: Iterable[str]) -> ExtractionConfig:
    """`config` narrowed to what the radiomics `columns` need; no perturbations."""
    parsed = [p for c in columns if (p := parse_feature_column(c)) is not None]
    needs = requirements(columns)
    params = copy.deepcopy(config.pyradiomics)
    image_types: dict[str, Any] = {}
    classes: dict[str, list[str]] = {}
    for name in parsed:
        prefix, _, rest = name.radiomics.partition("_")
        family, _, feature = rest.partition("_")
        key = prefix.split("-")[0] + (
            prefix.split("-")[1].lower() if prefix.startswith("lbp") else ""
        )
        image_type = IMAGE_TYPES.get(key.lower())
        if image_type is None:
            raise InputError(f"model feature {name.radiomics!r}: unknown pyradiomics image type")
        image_types[image_type] = (config.pyradiomics.get("imageType") or {}).get(image_type) or {}
        if feature not in classes.setdefault(family, []):
            classes[family].append(feature)
    params["imageType"] = image_types or {"Original": {}}
    params["featureClass"] = classes or {"firstorder": ["Mean"]}
    settings = config.settings
    if not config.plain:
        regions = tuple(r for r in settings.regions if any(p.region == r for p in parsed))
        settings = settings.model_copy(
            update={
                "sequences": tuple(s for s in settings.sequences if s in needs.sequences),
                "regions": regions or ("lesion",),
                "delta": needs.needs_prior,
                "perturbations": settings.perturbations.model_copy(update={"n": 0}),
            }
        )
    return ExtractionConfig(config.source, params, settings, config.plain)
