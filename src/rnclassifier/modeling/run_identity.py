"""What defines a nested-CV run, as a digest: the table, grouping, side tables, reads, CV
scheme and budget, the model and the caller's extras. Optuna studies and checkpoints are named
by it and store it, so another run's trials or folds are never read as this one's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rnclassifier.errors import InputError
from rnclassifier.modeling.pipeline import SideTables
from rnclassifier.modeling.threshold import ThresholdRule
from rnclassifier.spec import TrainingSpec

if TYPE_CHECKING:
    import optuna

#: The spec's defaults (declared there once).
_SPEC = TrainingSpec()
_CV = _SPEC.cv


@dataclass(frozen=True)
class Budget:
    """The CV scheme, search budget, seed, calibration and threshold rule of a run; defaults
    are the training spec's (`rnclassifier.spec`), declared there once."""

    outer_folds: int = _CV.outer_folds
    repeats: int = _CV.repeats
    inner_folds: int = _CV.inner_folds
    trials: int = _CV.trials
    seed: int = _SPEC.seed
    calibration: str = _SPEC.calibration
    threshold_rule: ThresholdRule = field(default_factory=ThresholdRule)

    @classmethod
    def of(cls, spec: TrainingSpec) -> Budget:
        return cls(
            spec.cv.outer_folds,
            spec.cv.repeats,
            spec.cv.inner_folds,
            spec.cv.trials,
            spec.seed,
            calibration=spec.calibration,
            threshold_rule=ThresholdRule(
                spec.threshold.rule, spec.threshold.target, spec.threshold.indeterminate_specificity
            ),
        )


SETTINGS_ATTRIBUTE = "rnclassifier_settings"
CHECKPOINT_SETTINGS = "settings.json"


def claim_study(study: optuna.Study, storage: str, settings: dict[str, Any]) -> None:
    """A new study takes the run's settings; an existing one must hold the same."""
    wanted = json.loads(json.dumps(settings, sort_keys=True, default=str))
    stored = study.user_attrs.get(SETTINGS_ATTRIBUTE)
    if stored is None and not study.get_trials(deepcopy=False):
        study.set_user_attr(SETTINGS_ATTRIBUTE, wanted)
        return
    if stored != wanted:
        differ = sorted(
            k for k in {*wanted, *(stored or {})} if (stored or {}).get(k) != wanted.get(k)
        )
        raise InputError(
            f"{describe_storage(storage)}: optuna study {study.study_name!r} exists with other "
            f"settings ({', '.join(differ) if stored else 'none stored'}); refusing to reuse its "
            "trials: use another --name or another storage"
        )


def check_checkpoint(folder: Path, settings: dict[str, Any]) -> None:
    """A checkpoint folder holds the settings it was made with; other settings are refused."""
    wanted = json.loads(json.dumps(settings, sort_keys=True, default=str))
    path = folder / CHECKPOINT_SETTINGS
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except ValueError:
            stored = None
        if stored != wanted:
            raise InputError(
                f"{folder}: checkpoint made with other settings; refusing to resume from it "
                "(delete the folder to start again)"
            )
        return
    from rnclassifier.atomic import write_json

    folder.mkdir(parents=True, exist_ok=True)
    write_json(path, wanted)


def _sha256(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if part is None:
            digest.update(b"none")
        elif isinstance(part, pd.DataFrame | pd.Series):
            digest.update(pd.util.hash_pandas_object(part, index=True).to_numpy().tobytes())
            digest.update(json.dumps([str(c) for c in getattr(part, "columns", [])]).encode())
        else:
            digest.update(np.asarray(part).astype(str).tobytes())
    return digest.hexdigest()


def fold_settings(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    model: str,
    budget: Budget,
    *,
    side: SideTables | None = None,
    reads: np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything that defines the outer and inner folds and what is fitted in them: the
    table (values, columns, labels), the patient grouping, the perturbation and site tables,
    the reads, the CV scheme and budget, the model, the seed, and the caller's `extra` (e.g.
    the config hash). Optuna studies and checkpoints are keyed by its digest and store it."""
    side = side or SideTables()
    settings = {
        "table_sha256": _sha256(X, np.asarray(y, int)),
        "groups_sha256": _sha256(np.asarray(groups)),
        "perturbations_sha256": None if side.perturbed is None else _sha256(side.perturbed),
        "sites_sha256": None if side.sites is None else _sha256(side.sites.astype(str)),
        "reads_sha256": None if reads is None else _sha256(np.asarray(reads, float)),
        "budget": json.loads(json.dumps(dataclasses.asdict(budget), default=str)),
        "model": model,
        **(extra or {}),
    }
    return settings


def settings_digest(settings: dict[str, Any]) -> str:
    """12 hex digits of the settings' SHA-256: part of every study name and checkpoint."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def describe_storage(url: str) -> str:
    """The storage URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a database URL
        return url.split(":", 1)[0]
