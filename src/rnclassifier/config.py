"""Extraction configuration: pyradiomics' own parameters, verbatim, plus rnclassifier's settings.

An extraction config is either a plain pyradiomics parameter file (then extraction is exactly
pyradiomics with those settings on the lesion of each sequence, nothing added), or one YAML file
with two blocks:

- `pyradiomics:` a parameter mapping in pyradiomics' own format (`setting`, `imageType`,
  `featureClass`, ...), or the path of the user's own pyradiomics parameter file (relative to the
  config). It is validated with pyradiomics' own schema and kept verbatim: it is the one source of
  truth for extraction, carried into every model bundle.
- `rnclassifier:` settings validated by the typed models below (unknown keys and wrong types are
  errors naming the key and the file, before any image is read).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rnclassifier.cohort import sequence_name_problem
from rnclassifier.errors import InputError

logger = logging.getLogger(__name__)

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PerturbationSettings(_Strict):
    """Mask perturbations for feature robustness (Zwanenburg 2019, Sci Rep 9:614): erosion and
    dilation by a voxel and contour noise, in turn (`features.robustness`)."""

    n: int = Field(0, ge=0, le=200, description="perturbed masks per lesion; 0 = none")


class ExtractionSettings(_Strict):
    """rnclassifier's own extraction settings (the `rnclassifier:` block)."""

    sequences: tuple[str, ...] = Field(
        ("t1c",),
        min_length=1,
        strict=False,
        description="manifest image columns to extract from; t1c first",
    )
    regions: tuple[Literal["lesion", "shell"], ...] = Field(
        ("lesion",),
        min_length=1,
        strict=False,
        description="lesion = the mask; shell = a peritumoural ring of shell_width_mm in the brain",
    )
    shell_width_mm: float = Field(5.0, gt=0, le=30, description="peritumoural shell width, mm")
    n4_bias_correction: bool = Field(True, description="N4 bias-field correction before features")
    normalisation: Literal["none", "zscore_brain"] = Field(
        "zscore_brain",
        description="intensity normalisation; zscore_brain uses the brain mask (or the head)",
    )
    bed_alpha_betas_gy: tuple[float, ...] = Field(
        (10.0,),
        min_length=1,
        strict=False,
        description="alpha/beta values for first-course BED columns",
    )
    delta: bool = Field(False, description="also extract the prior scan and delta features")
    perturbations: PerturbationSettings = Field(default_factory=PerturbationSettings)

    @field_validator("sequences")
    @classmethod
    def _t1c_first(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value[0] != "t1c":
            raise ValueError("the first sequence must be 't1c' (masks are drawn on its grid)")
        if len(set(value)) != len(value):
            raise ValueError("a sequence is named twice")
        for name in value:
            if problem := sequence_name_problem(name):
                raise ValueError(problem)
        return value

    @field_validator("bed_alpha_betas_gy")
    @classmethod
    def _positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(v <= 0 for v in value):
            raise ValueError("alpha/beta values must be positive")
        return value


#: Top-level keys of a pyradiomics parameter file.
PYRADIOMICS_KEYS = frozenset({"setting", "imageType", "featureClass", "voxelSetting"})

#: Where the shipped profiles live (set-up installs the checkout editable).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_EXTRACTION_CONFIG = CONFIG_DIR / "extraction" / "default.yaml"
LIGHT_EXTRACTION_CONFIG = CONFIG_DIR / "extraction" / "light.yaml"


@dataclass(frozen=True)
class ExtractionConfig:
    """A validated extraction config.

    `plain` marks a bare pyradiomics parameter file: pyradiomics on the lesion of every sequence
    in the manifest, no normalisation, shell, N4 or resampling added by rnclassifier.
    """

    source: Path
    pyradiomics: dict[str, Any] = field(repr=False)
    settings: ExtractionSettings
    plain: bool = False

    def fingerprint(self) -> str:
        """A content hash of everything that changes feature values (for caches and bundles)."""
        canonical = json.dumps(
            {
                "pyradiomics": self.pyradiomics,
                "rnclassifier": self.settings.model_dump(mode="json"),
                "plain": self.plain,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_extraction_config(path: str | Path) -> ExtractionConfig:
    """Read and validate an extraction config; raise `InputError` naming the file and key."""
    path = Path(path)
    document = read_yaml(path)
    if document and set(document) <= PYRADIOMICS_KEYS:
        validate_pyradiomics_params(document, path)
        plain = ExtractionSettings(
            regions=("lesion",), n4_bias_correction=False, normalisation="none", delta=False
        )
        return ExtractionConfig(source=path, pyradiomics=document, settings=plain, plain=True)
    unknown = sorted(set(document) - {"pyradiomics", "rnclassifier"})
    if unknown:
        raise InputError(
            f"{path}: unknown top-level key {key!r} (expected 'pyradiomics' and 'rnclassifier',"
            " or a plain pyradiomics parameter file)"
            for key in unknown
        )
    if "pyradiomics" not in document:
        raise InputError(f"{path}: missing key 'pyradiomics' (pyradiomics parameters or a path)")
    params_source = path
    params = document["pyradiomics"]
    if isinstance(params, str):
        params_source = (path.parent / params).resolve()
        params = read_yaml(params_source)
    if not isinstance(params, dict):
        raise InputError(f"{path}: 'pyradiomics' must be a mapping or the path of a parameter file")
    validate_pyradiomics_params(params, params_source)
    settings = parse_settings(ExtractionSettings, document.get("rnclassifier") or {}, path)
    return ExtractionConfig(source=path, pyradiomics=params, settings=settings)


def validate_pyradiomics_params(params: dict[str, Any], source: Path) -> None:
    """Validate with pyradiomics' own schema, so the rules are exactly those of pyradiomics."""
    import pykwalify.core
    import pykwalify.errors
    import radiomics

    schema_file, schema_functions = radiomics.getParameterValidationFiles()
    core = pykwalify.core.Core(
        source_data=params, schema_files=[schema_file], extensions=[schema_functions]
    )
    pykwalify_log = logging.getLogger("pykwalify")
    level = pykwalify_log.level
    pykwalify_log.setLevel(logging.CRITICAL)  # it would log the same errors again
    try:
        core.validate(raise_exception=True)
    except pykwalify.errors.SchemaError:
        raise InputError(
            f"{source}: pyradiomics parameters: {error}" for error in core.validation_errors
        ) from None
    except ValueError as exc:  # pyradiomics' schema functions raise these (unknown image types)
        raise InputError(f"{source}: pyradiomics parameters: {exc}") from None
    finally:
        pykwalify_log.setLevel(level)


def parse_settings(
    model: type[SettingsModel], data: object, source: Path, prefix: str = "rnclassifier"
) -> SettingsModel:
    """Build a settings model; turn pydantic's errors into one line each naming file and key."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: {prefix!r} must be a mapping of settings")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(_describe(error, source, prefix) for error in exc.errors()) from None


def _describe(error: Any, source: Path, prefix: str) -> str:
    if not error["loc"] and error["type"] == "value_error":  # a check across keys
        return f"{source}: {error['msg'].removeprefix('Value error, ')}"
    key = ".".join(str(part) for part in (prefix, *error["loc"]))
    if error["type"] == "extra_forbidden":
        return f"{source}: {key}: unknown key"
    if error["type"] == "missing":
        return f"{source}: {key}: missing"
    return f"{source}: {key}: {error['msg']} (got {error['input']!r})"


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a YAML file (not UTF-8 text)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: expected a mapping of keys at the top level")
    return document
