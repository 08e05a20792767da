"""The model bundle: a self-describing folder that scoring and validation read (DESIGN.md).

Layout of `models/<name>/`:
  bundle.json       schema version, features, calibrator, thresholds, training prevalence,
                    per-feature statistics and shrinkage covariance with the out-of-distribution
                    cut-off, Table-1 aggregates, sites and sequences, extraction config, SHAP
                    set-up, nested-CV metrics, provenance. Plain JSON, no rows, no IDs.
  pipeline.skops    the final fitted pipeline (impute ... model), skops format
  ensemble/NN.skops the outer-fold pipelines of the nested CV (their calibrators are in
                    bundle.json): scoring reports their spread
  MODEL_CARD.md     intended use, data, performance, limitations
  MANIFEST.sha256   SHA-256 of every other file (`sha256sum -c` format)

Loading verifies the manifest first (a changed, missing or extra file is refused), then the
schema version, then opens skops files only if every type in them is on a fixed allow-list in
this module: nothing in a bundle can run code. The hashes detect corruption, not forgery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.atomic import atomic_directory, plain_json
from rnclassifier.errors import InputError
from rnclassifier.modeling.threshold import Calibrator
from rnclassifier.version import __version__

SCHEMA_VERSION = 1
BUNDLE_FILE = "bundle.json"
PIPELINE_FILE = "pipeline.skops"
ENSEMBLE_DIR = "ensemble"
CARD_FILE = "MODEL_CARD.md"
MANIFEST_FILE = "MANIFEST.sha256"
#: The call between the two thresholds of the indeterminate zone.
INDETERMINATE = "indeterminate"

#: Types a bundle's skops files may hold beyond skops' own default-trusted set (scikit-learn
#: estimators, numpy and scipy containers). Anything else is refused before loading.
TRUSTED_TYPES = (
    "numpy.dtype",
    "rnclassifier.modeling.harmonise.ComBatHarmoniser",
    "rnclassifier.modeling.pipeline.CorrelationFilter",
    "rnclassifier.modeling.selection.ICCFilter",
    "rnclassifier.modeling.selection.MRMRSelector",
    "sklearn.tree._tree.Tree",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
)


@dataclass
class ModelBundle:
    """A loaded, verified bundle: the final model, its calibrator and the CV ensemble."""

    path: Path
    meta: dict[str, Any]
    pipeline: Any
    calibrator: Calibrator
    ensemble: list[tuple[Any, Calibrator]] = field(default_factory=list)

    @property
    def input_features(self) -> list[str]:
        return list(self.meta["features"]["input"])

    @property
    def used_features(self) -> list[str]:
        return list(self.meta["features"]["used"])

    @property
    def threshold(self) -> float:
        return float(self.meta["thresholds"]["rule"]["value"])

    @property
    def zone(self) -> tuple[float, float]:
        """(low, high) of the indeterminate zone fixed in training; a bundle written before
        zones has none (low = high = the rule's threshold)."""
        zone = self.meta["thresholds"].get("indeterminate")
        if zone is None:
            return self.threshold, self.threshold
        return float(zone["low"]), float(zone["high"])

    def calls(self, probability: np.ndarray) -> np.ndarray:
        """'tumor' at or above the zone's high end, 'necrosis' below its low end (the rule's
        threshold), 'indeterminate' between; '' where there is no probability."""
        from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS

        p = np.asarray(probability, float)
        low, high = self.zone
        calls = np.where(
            p >= high, POSITIVE_CLASS, np.where(p < low, NEGATIVE_CLASS, INDETERMINATE)
        )
        return np.where(np.isnan(p), "", calls).astype(object)

    def frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The pipeline's input columns in training order; features the model does not use may
        be absent (they are imputed and then dropped), used ones may not."""
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

    @property
    def harmonised(self) -> bool:
        return bool(self.meta.get("harmonisation"))

    def _prepare(self, pipeline: Any, X: pd.DataFrame, sites: Any) -> pd.DataFrame:
        frame = self.frame(X)
        if not self.harmonised:
            return frame
        if sites is None:
            raise InputError("this model harmonises features by site (ComBat): give the site")
        sites = [str(s).strip() for s in np.atleast_1d(sites)]
        unseen = sorted(set(sites) - set(self.meta["sites"] or {}))
        if unseen:
            raise InputError(
                f"site {s!r}: not seen in training; a ComBat-harmonised model cannot score it "
                f"(seen: {', '.join(self.meta['sites'])})"
                for s in unseen
            )
        pipeline.set_params(combat__sites=pd.Series(sites, index=frame.index))
        return frame


def write_bundle(
    out: str | Path,
    *,
    meta: dict[str, Any],
    pipeline: Any,
    calibrator: Calibrator,
    ensemble: list[tuple[Any, Calibrator]],
    model_card: str,
    overwrite: bool = False,
) -> Path:
    """Write a bundle atomically (a complete folder or none) and return its path."""
    import skops.io as sio

    document = {
        "schema_version": SCHEMA_VERSION,
        **meta,
        "calibrator": calibrator.to_dict(),
        "ensemble": [
            {"file": f"{ENSEMBLE_DIR}/{i:02d}.skops", "calibrator": c.to_dict()}
            for i, (_, c) in enumerate(ensemble)
        ],
        "created": {
            "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rnclassifier": __version__,
            "python": platform.python_version(),
            "versions": _library_versions(),
        },
    }
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as folder:
        (folder / PIPELINE_FILE).write_bytes(_reproducible_skops(sio.dumps(pipeline)))
        (folder / ENSEMBLE_DIR).mkdir()
        for entry, (member, _) in zip(document["ensemble"], ensemble, strict=True):
            (folder / entry["file"]).write_bytes(_reproducible_skops(sio.dumps(member)))
        (folder / BUNDLE_FILE).write_text(json.dumps(document, indent=1, default=plain_json) + "\n")
        (folder / CARD_FILE).write_text(model_card)
        lines = [f"{_sha256(path)}  {name}" for name, path in _files(folder)]
        (folder / MANIFEST_FILE).write_text("\n".join(lines) + "\n")
    return out


def _reproducible_skops(data: bytes) -> bytes:
    """The same model as the same bytes, whenever and wherever it is written.

    A skops file is a zip of `schema.json` and array files; it names objects and array files by
    Python's `id()` (memory addresses) and stamps the zip with the time. Both are renumbered in
    order of appearance (the same object keeps one number, so shared references survive) and
    the time stamps fixed. The loader reads only these names' equality, not their values.
    Checked by tests/test_determinism.py (fitted in 1 or 2 processes, the same bytes).
    """
    import io
    import zipfile

    ids: dict[Any, int] = {}
    files: dict[str, str] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            # Immutable JSON values (numbers, strings) are numbered by value: whether two equal
            # values were one object depends on where the model was fitted (a worker process
            # returns copies), not on the model.
            immutable = node.get("__loader__") == "JsonNode"
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    identity = ("value", node["__class__"], node["content"]) if immutable else value
                    value = ids.setdefault(identity, len(ids))
                elif key == "file" and isinstance(value, str):
                    suffix = Path(value).suffix
                    value = files.setdefault(value, f"{len(files):06d}{suffix}")
                else:
                    value = renumber(value)
                out[key] = value
            return out
        if isinstance(node, list):
            return [renumber(value) for value in node]
        return node

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = renumber(json.loads(source.read("schema.json")))
        members = {files.get(name, name): source.read(name) for name in source.namelist()}
    members["schema.json"] = json.dumps(schema, indent=2).encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, members[name])
    return out.getvalue()


def verify_bundle(path: str | Path) -> dict[str, Any]:
    """Check the manifest and the schema version; return bundle.json. Raises InputError with
    one line per changed, missing or extra file."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a model bundle folder")
    manifest = path / MANIFEST_FILE
    if not manifest.is_file():
        raise InputError(f"{manifest}: missing; not a model bundle, or an incomplete one")
    expected: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise InputError(f"{manifest}: line {number} is not '<sha256>  <file>'")
        expected[name] = digest
    present = dict(_files(path))
    problems = [
        f"{path / name}: missing (listed in the manifest)"
        for name in expected
        if name not in present
    ]
    problems += [
        f"{path / name}: not in the manifest (extra file)"
        for name in present
        if name not in expected
    ]
    problems += [
        f"{path / name}: changed since the bundle was written (SHA-256 differs from the manifest)"
        for name, file in present.items()
        if name in expected and _sha256(file) != expected[name]
    ]
    if problems:
        raise InputError(problems)
    try:
        meta = json.loads((path / BUNDLE_FILE).read_text())
    except (OSError, ValueError):
        raise InputError(f"{path / BUNDLE_FILE}: missing or not JSON") from None
    version = meta.get("schema_version") if isinstance(meta, dict) else None
    if version != SCHEMA_VERSION:
        raise InputError(
            f"{path / BUNDLE_FILE}: schema version {version!r}; this rnclassifier "
            f"({__version__}) reads version {SCHEMA_VERSION} only"
        )
    return meta


def load_bundle(path: str | Path) -> ModelBundle:
    """Verify, then load without running code from the folder."""
    path = Path(path)
    meta = verify_bundle(path)
    pipeline = _load_skops(path / PIPELINE_FILE)
    ensemble = [
        (_load_skops(path / entry["file"]), Calibrator.from_dict(entry["calibrator"]))
        for entry in meta["ensemble"]
    ]
    return ModelBundle(path, meta, pipeline, Calibrator.from_dict(meta["calibrator"]), ensemble)


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in TRUSTED_TYPES]
    if untrusted:
        raise InputError(
            f"{path}: holds types outside the bundle allow-list ({', '.join(untrusted)}); "
            "refusing to load it"
        )
    model = sio.load(path, trusted=list(TRUSTED_TYPES))
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except (NotFittedError, TypeError):
        raise InputError(f"{path}: holds a model that is not fitted; refusing to use it") from None
    if not hasattr(model, "predict_proba"):
        raise InputError(f"{path}: holds a model without probabilities; refusing to use it")
    return model


def _files(folder: Path) -> list[tuple[str, Path]]:
    """Every file in the bundle except the manifest, as (relative name, path), sorted."""
    return sorted(
        (p.relative_to(folder).as_posix(), p)
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST_FILE
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    import sklearn
    import xgboost

    return {
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "numpy": np.__version__,
    }
