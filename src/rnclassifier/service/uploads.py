"""A `POST /v1/score` form, streamed into a private folder and turned into a case.

Uploads go straight to disk in a folder only the service's user can read (mode 0700), under
names the service chooses (`t1c.nii.gz`, `mask.dcm`, `t1c/` for a zip): the client's file
names are read only for their extension and never stored, logged or echoed. The folder is
removed after the answer. Every problem is one line naming the form field, in the command
line's words where the command line has the same input (`--t1c: ...`).
"""

from __future__ import annotations

import json
import math
import shutil
import stat
import tempfile
import zipfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from rnclassifier.cohort import KNOWN_SEQUENCES, PRIOR_SUFFIX, SERIES_SUFFIX
from rnclassifier.errors import InputError
from rnclassifier.scoring.case import CaseInputs, case_from_flags

#: Form fields that carry files: the images and masks of `rnclassifier score`.
IMAGE_FIELDS = (
    *KNOWN_SEQUENCES,
    *(f"{s}{PRIOR_SUFFIX}" for s in KNOWN_SEQUENCES),
    "mask",
    "mask_prior",
    "brain_mask",
)
#: Text fields: which series of an uploaded study zip, and the command line's other options.
TEXT_FIELDS = (
    *(f"{image}{SERIES_SUFFIX}" for s in KNOWN_SEQUENCES for image in (s, f"{s}{PRIOR_SUFFIX}")),
    "clinical",
    "roi_name",
    "mask_label",
    "months_between_scans",
    "site",
    "prevalence",
    "allow_imputation",
    "dicom_results",
)
#: What a file's name may end with; the format comes from here, as for a manifest's paths.
#: `.zip` is a DICOM series (or a study, with `<image>_series`) zipped as one folder.
EXTENSIONS = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha", ".dcm", ".zip")
TRUE_VALUES, FALSE_VALUES = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Limits:
    """Upload sizes: the whole request, and the unpacked content of each zip (a zip bomb
    stops at this size, not at the disk's)."""

    request_bytes: int = 2 * 1024**3
    unzipped_bytes: int = 4 * 1024**3


@dataclass
class ScoreRequest:
    """One scoring request: the case, its options, and the folder its files are in."""

    case: CaseInputs
    folder: Path
    prevalence: float | None = None
    allow_imputation: bool = False
    dicom_results: bool = False
    ignored_fields: list[str] = field(default_factory=list)


class TooLargeError(InputError):
    """The request is larger than the service accepts (HTTP 413)."""


def private_folder(parent: str | Path | None = None) -> Path:
    """A new folder only this user can enter, for one request's uploads."""
    folder = Path(tempfile.mkdtemp(prefix="rnclassifier-upload-", dir=parent))
    folder.chmod(stat.S_IRWXU)
    return folder


async def receive_form(
    chunks: AsyncIterator[bytes], content_type: str, folder: Path, limits: Limits
) -> tuple[dict[str, str], dict[str, Path]]:
    """Stream a multipart form into `folder`: its text fields, and its files as paths named
    by their field. Raises `TooLargeError` as soon as the request passes `limits.request_bytes`."""
    from python_multipart import FormParser
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import parse_options_header

    if not content_type.lower().startswith("multipart/form-data"):
        raise InputError("request: expected a multipart/form-data form (files and fields)")
    texts: dict[str, str] = {}
    files: list[Any] = []
    problems: list[str] = []

    def on_field(item: Any) -> None:
        name = (item.field_name or b"").decode("utf-8", "replace")
        texts[name] = (item.value or b"").decode("utf-8", "replace")

    def on_file(item: Any) -> None:
        files.append(item)

    ended: list[bool] = []

    config = {
        "UPLOAD_DIR": str(folder),
        "UPLOAD_DELETE_TMP": False,
        "MAX_MEMORY_FILE_SIZE": 0,  # every upload on disk, in the private folder
    }
    try:
        media, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise InputError("request: the multipart form has no boundary")
        parser = FormParser(
            media.decode(),
            on_field,
            on_file,
            on_end=lambda: ended.append(True),
            boundary=boundary,
            config=config,
        )
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if received > limits.request_bytes:
                raise TooLargeError(f"request: larger than the service's limit of {_size(limits)}")
            parser.write(chunk)
        parser.finalize()
        if not ended:  # the closing boundary never came: a cut-off or garbled body
            raise FormParserError("no closing boundary")
    except FormParserError:
        raise InputError("request: not a well-formed multipart/form-data form") from None
    stored: dict[str, Path] = {}
    for item in files:
        name = (item.field_name or b"").decode("utf-8", "replace")
        item.close()
        if item.in_memory:  # an empty file: nothing was written to disk
            problems.append(f"{name}: the uploaded file is empty")
            continue
        source = Path((item.actual_file_name or b"").decode())
        client_name = (item.file_name or b"").decode("utf-8", "replace")
        if name not in IMAGE_FIELDS:
            problems.append(_unknown(name))
            source.unlink(missing_ok=True)
            continue
        if name in stored:
            problems.append(f"{name}: given twice")
            continue
        extension = _extension(client_name)
        if extension is None:
            problems.append(
                f"{name}: the file name must end with one of {', '.join(EXTENSIONS)} "
                "(the format is read from it)"
            )
            continue
        stored[name] = source.rename(folder / f"{name}{extension}")
    if problems:
        raise InputError(problems)
    return texts, stored


def unpack_zips(files: Mapping[str, Path], limits: Limits) -> dict[str, Path]:
    """Each `.zip` upload unpacked into a folder of its field's name; a zip holding one
    folder (as zipping a series folder makes) is that folder."""
    out = {}
    for name, path in files.items():
        out[name] = _unzip(name, path, limits) if path.suffix == ".zip" else path
    return out


def score_request(
    texts: Mapping[str, str], files: Mapping[str, Path], folder: Path
) -> ScoreRequest:
    """The form as a case, in the same terms as `rnclassifier score`'s flags."""
    problems = [_unknown(name) for name in texts if name not in TEXT_FIELDS]
    problems += [
        f"{name}: expected a file, not a text field" for name in texts if name in IMAGE_FIELDS
    ]
    flags: dict[str, Any] = {name: str(path) for name, path in files.items()}
    for name in ("roi_name", "site", *(n for n in TEXT_FIELDS if n.endswith(SERIES_SUFFIX))):
        if texts.get(name, "").strip():
            flags[name] = texts[name].strip()
    numbers: dict[str, float | None] = {}
    for name in ("mask_label", "months_between_scans", "prevalence"):
        try:
            numbers[name] = _number(texts.get(name, ""))
        except ValueError:
            problems.append(f"--{name.replace('_', '-')}: {texts[name]!r} is not a number")
    label = numbers.get("mask_label")
    if label is not None and label != int(label):
        problems.append(f"--mask-label: {texts['mask_label']!r} is not a whole number")
    else:
        flags["mask_label"] = None if label is None else int(label)
    flags["months_between_scans"] = numbers.get("months_between_scans")
    switches = {}
    for name in ("allow_imputation", "dicom_results"):
        value = texts.get(name, "").strip().lower()
        if value not in TRUE_VALUES + FALSE_VALUES:
            problems.append(f"{name}: expected true or false, not {texts[name]!r}")
        switches[name] = value in TRUE_VALUES
    try:
        flags["clinical"] = clinical_flags(texts.get("clinical", ""))
    except InputError as error:
        problems += [str(p) for p in error.details]
    if problems:
        raise InputError(problems)
    return ScoreRequest(
        case=case_from_flags(flags),
        folder=folder,
        prevalence=numbers.get("prevalence"),
        allow_imputation=switches["allow_imputation"],
        dicom_results=switches["dicom_results"],
    )


def clinical_flags(text: str) -> list[str]:
    """The `clinical` field, a JSON object of the manifest's covariates, as the command line's
    KEY=VALUE texts (a null or empty value is a missing covariate, as an empty cell is)."""
    if not text.strip():
        return []
    try:
        facts = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"clinical: not valid JSON ({error.msg} at character {error.pos})"
        ) from None
    if not isinstance(facts, dict):
        raise InputError(
            'clinical: expected a JSON object of covariates, e.g. {"histology": "NSCLC"}'
        )
    out, problems = [], []
    for key, value in facts.items():
        if value is None:
            value = ""
        elif isinstance(value, bool):
            value = int(value)
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"--clinical {key}: not a finite number")
        elif isinstance(value, str | int | float):
            out.append(f"{key}={value}")
        else:
            problems.append(f"--clinical {key}: expected a text or a number")
    if problems:
        raise InputError(problems)
    return out


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _unzip(name: str, path: Path, limits: Limits) -> Path:
    target = path.with_suffix("")
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not _ignored(m.filename)]
            if sum(m.file_size for m in members) > limits.unzipped_bytes:
                raise TooLargeError(
                    f"{name}: unpacks to more than the service's limit of "
                    f"{limits.unzipped_bytes / 1024**3:.1f} GiB"
                )
            for member in members:
                inner = PurePosixPath(member.filename.replace("\\", "/"))
                if inner.is_absolute() or ".." in inner.parts:
                    raise InputError(f"{name}: the zip holds a path outside its own folder")
                if member.is_dir():
                    continue
                destination = target.joinpath(*inner.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, destination.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError):
        raise InputError(f"{name}: not a zip archive that can be read") from None
    path.unlink()
    folder = target
    while True:
        if not folder.is_dir():
            raise InputError(f"{name}: the zip is empty")
        entries = list(folder.iterdir())
        if len(entries) == 1 and entries[0].is_dir():
            folder = entries[0]
            continue
        if not any(e.is_file() for e in entries):
            raise InputError(
                f"{name}: the zip's files are in several folders; zip one series folder (or "
                "one study folder, choosing the series with the `_series` field)"
            )
        return folder


def _ignored(member: str) -> bool:
    """What archivers add beside the files: macOS resource forks and Finder files."""
    parts = PurePosixPath(member).parts
    return "__MACOSX" in parts or (bool(parts) and parts[-1] in (".DS_Store", "Thumbs.db"))


def _extension(file_name: str) -> str | None:
    lower = file_name.lower()
    return next((e for e in EXTENSIONS if lower.endswith(e)), None)


def _number(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _unknown(name: str) -> str:
    return f"{name}: not a field of this form (files: {', '.join(IMAGE_FIELDS)})"


def _size(limits: Limits) -> str:
    return f"{limits.request_bytes / 1024**2:.0f} MiB"
