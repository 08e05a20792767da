"""Atomic outputs: a failed or interrupted command leaves no half-written file or folder.

Everything is written to a temporary sibling (same folder, hence same file system) and moved
into place with `os.replace` only once complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rnclassifier.errors import InputError


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`.

    On any exception (including KeyboardInterrupt) the temporary file is removed and `target`
    is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(_file_mode())  # mkstemp makes 0600; outputs get the usual umask-based mode
    try:
        yield tmp
        with tmp.open("rb") as handle:  # on disk before it takes the target's name
            os.fsync(handle.fileno())
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _file_mode() -> int:
    return 0o666 & ~_umask()


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) atomically and return the target path."""
    with atomic_file(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def plain_json(value: object) -> object:
    """`json.dumps(default=...)`: numpy scalars and arrays as plain numbers and lists."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_text(document: object) -> str:
    """The project's JSON: indented, numpy scalars and arrays as plain numbers and lists."""
    return json.dumps(document, indent=1, default=plain_json) + "\n"


def write_json(target: str | os.PathLike[str], document: object) -> Path:
    """Write JSON atomically (`json_text`)."""
    return write_text(target, json_text(document))


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` atomically and return the target path."""
    with atomic_file(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success it becomes `target`.

    An existing `target` is an error unless `overwrite` is set, in which case it is replaced only
    after the new folder is complete.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise InputError(f"{target}: already exists; choose another output or pass --force")
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    tmp.chmod(_file_mode() | 0o111 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists() and not overwrite:  # it appeared while we worked: never clobber it
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"{target}: appeared while writing; choose another output or pass --force")
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        old.rmdir()
        target.replace(old)
        tmp.replace(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.replace(target)
