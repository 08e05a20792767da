"""The feature cache: one JSON file per lesion, named by the content hash of everything its
features depend on (image and mask bytes, settings, library versions).

Entries hold feature values and diagnostics only, never identifiers or paths. Each entry is
written atomically as its lesion finishes, so an interrupted extraction resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rnclassifier.atomic import atomic_file

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def content_hash(item: str | os.PathLike[str] | bytes) -> str:
    """SHA-256 of bytes, of a file's content, or of a folder's files (names and content)."""
    if isinstance(item, bytes):
        return hashlib.sha256(item).hexdigest()
    path = Path(item)
    if path.is_dir():
        digest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(child.relative_to(path).as_posix().encode())
            digest.update(bytes.fromhex(content_hash(child)))
        return digest.hexdigest()
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        with path.open("rb") as handle:
            _FILE_HASHES[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _FILE_HASHES[key]


class FeatureCache:
    """A folder of `<key>.json` entries."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            path.unlink(missing_ok=True)  # a damaged entry is recomputed
            return None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        path = self._path(key)
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(entry, allow_nan=True), encoding="utf-8")
