"""The model bundle on disk: write it atomically, verify it, load it (DESIGN.md).

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
from pathlib import Path
from typing import Any

import numpy as np

from rnclassifier.atomic import atomic_directory, plain_json
from rnclassifier.bundle.meta import (
    BUNDLE_FILE,
    CARD_FILE,
    ENSEMBLE_DIR,
    MANIFEST_FILE,
    PIPELINE_FILE,
    SCHEMA_VERSION,
    BundleMeta,
    ModelDescription,
    parse_meta,
)
from rnclassifier.bundle.model import ModelBundle
from rnclassifier.errors import InputError
from rnclassifier.modeling.threshold import Calibrator
from rnclassifier.version import __version__

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


def write_bundle(
    out: str | Path,
    *,
    description: ModelDescription,
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
        **description.as_document(),
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
    BundleMeta.model_validate(document)  # what is written is what loading accepts
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
    """Check the manifest and the schema version; return bundle.json as written. Raises
    InputError with one line per changed, missing or extra file."""
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
    """Verify, check the schema, then load without running code from the folder."""
    path = Path(path)
    meta = parse_meta(verify_bundle(path), path / BUNDLE_FILE)
    pipeline = _load_skops(path / PIPELINE_FILE)
    ensemble = [
        (_load_skops(path / entry.file), Calibrator.from_dict(entry.calibrator))
        for entry in meta.ensemble
    ]
    return ModelBundle(path, meta, pipeline, Calibrator.from_dict(meta.calibrator), ensemble)


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
