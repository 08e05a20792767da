"""The cohort manifest: one CSV row per lesion, validated before any work starts.

This module is the one place that knows the manifest's columns (DESIGN.md, "Cohort manifest").
`load_cohort` reads the CSV, checks every row and column, and either returns a `Cohort` with
normalised values (lower-case vocabularies, numbers as floats, absolute paths) or raises one
`InputError` listing every problem, each naming the file, row and column.

Rows are numbered as a spreadsheet shows them: the header is row 1. Identifier values
(`patient_id`, `lesion_id`) and file paths are never echoed in messages or logs, since they can
carry names or record numbers; the row and column are enough to find them.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import pandas as pd

from rnclassifier.errors import InputError

logger = logging.getLogger(__name__)

ID_COLUMNS: tuple[str, ...] = ("patient_id", "lesion_id")
POSITIVE_CLASS = "tumor"
NEGATIVE_CLASS = "necrosis"

#: Image sequences recognised without configuration; an experiment config may name more.
KNOWN_SEQUENCES: tuple[str, ...] = ("t1c", "t1", "t2", "flair", "adc", "dwi", "swi", "rcbv")
PRIOR_SUFFIX = "_prior"
#: `<sequence>_series` (e.g. `t1c_series`, `t1c_prior_series`) picks one series of a DICOM
#: folder that holds a whole study: its SeriesDescription, SeriesNumber or SeriesInstanceUID.
SERIES_SUFFIX = "_series"

#: Columns that describe the second course of treatment. Only tumours received one, so any of
#: them would leak the label; they are refused as predictors wherever they appear.
SECOND_COURSE_PATTERN = re.compile(
    r"bed2|bed_2|re_?irradiat|second_course|brachy|cs131|cs_131|gammatile|salvage", re.IGNORECASE
)
_SEQUENCE_NAME = re.compile(r"^[a-z][a-z0-9]*$")

#: Stands for a cell already reported as a problem, so that checks across columns skip it.
INVALID = object()


class Kind(Enum):
    IDENTIFIER = "identifier"
    PATH = "path"
    VOCABULARY = "vocabulary"
    NUMBER = "number"
    INTEGER = "integer"
    TEXT = "text"


@dataclass(frozen=True)
class Column:
    """One manifest column: how to read it and which values are allowed."""

    name: str
    kind: Kind
    meaning: str
    required: bool = False
    vocabulary: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False


def _vocab(name: str, values: Sequence[str], meaning: str) -> Column:
    return Column(name, Kind.VOCABULARY, meaning, vocabulary=tuple(values))


BINARY = ("0", "1")

#: The manifest's non-image columns. Image columns (sequences, masks, priors) are added by
#: `image_columns` since their set depends on the configured sequences.
COLUMNS: dict[str, Column] = {
    c.name: c
    for c in [
        Column("patient_id", Kind.IDENTIFIER, "pseudonymous patient key", required=True),
        Column("lesion_id", Kind.IDENTIFIER, "lesion key, unique in the file", required=True),
        Column("roi_name", Kind.TEXT, "ROI of an RTSTRUCT or segment of a SEG that is the lesion"),
        Column(
            "mask_label",
            Kind.INTEGER,
            "label value of the lesion in a label image",
            minimum=1,
            maximum=65535,
        ),
        Column(
            "months_between_scans",
            Kind.NUMBER,
            "months from the prior scan to the scored scan",
            minimum=0,
            minimum_exclusive=True,
            maximum=120,
        ),
        _vocab("pathology", (POSITIVE_CLASS, NEGATIVE_CLASS), "ground truth from resection"),
        _vocab("pathology_detail", ("tumor", "mixed", "necrosis"), "pathology in more detail"),
        _vocab("reference_standard", ("pathology", "follow_up"), "how the truth was settled"),
        Column(
            "days_scan_to_surgery",
            Kind.INTEGER,
            "days from the scored MRI to surgery",
            minimum=0,
            maximum=3650,
        ),
        _vocab("radiologist_read", (POSITIVE_CLASS, NEGATIVE_CLASS), "blinded read; blank = none"),
        Column("radiologist_score", Kind.INTEGER, "1-5 suspicion of tumour", minimum=1, maximum=5),
        Column("age_years", Kind.NUMBER, "age at the first SRS (years)", minimum=0, maximum=120),
        _vocab("sex", ("m", "f"), "sex"),
        _vocab(
            "histology",
            ("nsclc", "sclc", "breast", "melanoma", "renal", "endometrial", "thyroid", "other"),
            "primary tumour histology",
        ),
        _vocab(
            "location",
            (
                "frontal",
                "parietal",
                "temporal",
                "occipital",
                "cerebellum",
                "brainstem",
                "deep",
                "other",
            ),
            "lesion location",
        ),
        _vocab("prior_wbrt", BINARY, "whole-brain radiotherapy before the first SRS"),
        Column(
            "srs_dose_gy",
            Kind.NUMBER,
            "first-course total dose (Gy)",
            minimum=0,
            minimum_exclusive=True,
            maximum=60,
        ),
        Column(
            "srs_fractions",
            Kind.INTEGER,
            "first-course number of fractions",
            minimum=1,
            maximum=30,
        ),
        Column(
            "months_since_srs",
            Kind.NUMBER,
            "months from the first SRS to the scored MRI",
            minimum=0,
            maximum=360,
        ),
        Column(
            "ptv_cc",
            Kind.NUMBER,
            "first-course PTV (cm3)",
            minimum=0,
            minimum_exclusive=True,
            maximum=1000,
        ),
        _vocab("steroids", BINARY, "on steroids at the scored MRI"),
        _vocab("immunotherapy", ("none", "single", "dual"), "checkpoint immunotherapy"),
        _vocab("her2_tdm1", BINARY, "HER2+ breast cancer treated with T-DM1"),
        Column("site", Kind.TEXT, "scanner or institution; never a predictor"),
    ]
}

#: Clinical covariates that may enter a model: all known on the date of the scored MRI.
CLINICAL_COLUMNS: tuple[str, ...] = (
    "age_years",
    "sex",
    "histology",
    "location",
    "prior_wbrt",
    "srs_dose_gy",
    "srs_fractions",
    "months_since_srs",
    "ptv_cc",
    "steroids",
    "immunotherapy",
    "her2_tdm1",
)

#: Columns that describe the reference standard, the readers or the scanner: carried beside the
#: features where they are needed (site, reads), never a predictor, also in a feature table
#: written by another tool.
NON_PREDICTOR_COLUMNS: tuple[str, ...] = (
    "site",
    "radiologist_read",
    "radiologist_score",
    "pathology_detail",
    "reference_standard",
    "days_scan_to_surgery",
)
#: The non-predictor columns extraction carries into the feature table.
CARRIED_COLUMNS: tuple[str, ...] = ("site", "radiologist_read", "radiologist_score")


def sequence_name_problem(name: str) -> str | None:
    """Why `name` cannot name an image sequence, or None when it can."""
    if not _SEQUENCE_NAME.match(name):
        return (
            f"sequence name {name!r} must be lower-case letters and digits, starting with a letter"
        )
    if name in ("mask", "brain", "prior") or name in COLUMNS:
        return f"sequence name {name!r} is reserved for another manifest column"
    return None


def image_columns(sequences: Iterable[str] = KNOWN_SEQUENCES) -> dict[str, Column]:
    """Path columns for the given sequences: each sequence, the masks, and their priors."""
    names = list(dict.fromkeys([*sequences, "mask", "brain_mask"]))
    columns: dict[str, Column] = {}
    for name in names:
        columns[name] = Column(name, Kind.PATH, f"{name} image", required=name in ("t1c", "mask"))
        prior = name + PRIOR_SUFFIX
        columns[prior] = Column(prior, Kind.PATH, f"{name} of the earlier scan")
        if name not in ("mask", "brain_mask"):
            for image in (name, prior):
                columns[image + SERIES_SUFFIX] = Column(
                    image + SERIES_SUFFIX,
                    Kind.TEXT,
                    f"which series of a DICOM study folder is the {image} image",
                )
    return columns


@dataclass(frozen=True)
class Cohort:
    """A validated manifest: one row per lesion, values normalised, paths absolute."""

    source: Path
    lesions: pd.DataFrame = field(repr=False)
    sequences: tuple[str, ...]
    #: Each lesion's row in the CSV as a spreadsheet numbers it (header = 1), for messages.
    row_numbers: tuple[int, ...] = ()

    @property
    def n_lesions(self) -> int:
        return len(self.lesions)

    @property
    def n_patients(self) -> int:
        return int(self.lesions["patient_id"].nunique())

    @property
    def has_pathology(self) -> bool:
        return "pathology" in self.lesions and bool(self.lesions["pathology"].notna().all())

    def label(self) -> pd.Series:
        """Pathology as 1 = tumour (positive class), 0 = necrosis."""
        if not self.has_pathology:
            raise InputError(f"{self.source}: pathology is needed but not given for every row")
        return (self.lesions["pathology"] == POSITIVE_CLASS).astype(int)


def load_cohort(
    path: str | Path,
    *,
    require_pathology: bool = False,
    sequences: Iterable[str] = (),
    check_files: bool = True,
) -> Cohort:
    """Read and validate a cohort manifest; raise one `InputError` listing every problem.

    `sequences` names sequences beyond `KNOWN_SEQUENCES` (from an experiment config).
    `require_pathology` is for training and validation, which need the ground truth.
    """
    path = Path(path)
    header, rows = _read_csv(path)
    return cohort_from_rows(
        header,
        rows,
        source=path,
        base=path.resolve().parent,
        require_pathology=require_pathology,
        sequences=sequences,
        check_files=check_files,
    )


def cohort_from_rows(
    header: list[str],
    rows: list[tuple[int, list[str]]],
    *,
    source: Path,
    base: Path,
    require_pathology: bool = False,
    sequences: Iterable[str] = (),
    check_files: bool = True,
) -> Cohort:
    """Validate manifest rows (header stripped and lower-case; (row number, cells)) that came
    from a file or elsewhere, e.g. the command line of `score`; paths relative to `base`."""
    path = source
    where = str(source)
    extra = [s.strip().lower() for s in sequences]
    bad_names = [problem for s in extra if (problem := sequence_name_problem(s))]
    if bad_names:
        raise InputError(bad_names)
    columns = {**COLUMNS, **image_columns([*KNOWN_SEQUENCES, *extra])}

    problems: list[str] = []
    required = [c.name for c in columns.values() if c.required]
    if require_pathology:
        required.append("pathology")
    for name in required:
        if name not in header:
            why = " (training and validation need the pathology ground truth)" * (
                name == "pathology"
            )
            problems.append(f"{where}: missing required column {name!r}{why}")
    if problems:
        # Say nothing about the other header cells: without the required columns the first
        # row may be data (a file without a header), and its cells may be identifiers.
        raise InputError(problems)
    for name in header:
        if name in columns:
            continue
        if SECOND_COURSE_PATTERN.search(name):
            logger.warning(
                "%s: ignoring column %r: it describes the second course, which only tumours "
                "received, so it can never be a predictor",
                where,
                name,
            )
        else:
            logger.warning("%s: ignoring unknown column %r", where, name)

    used = [name for name in header if name in columns]
    values: dict[str, list[object]] = {name: [] for name in used}
    row_numbers: list[int] = []
    for row_number, cells in rows:
        row_numbers.append(row_number)
        record = dict(zip(header, cells, strict=True))
        for name in used:
            value, problem = _parse(columns[name], record[name], base, check_files)
            if problem:
                problems.append(f"{where}: row {row_number}, column {name}: {problem}")
                value = INVALID
            values[name].append(value)

    table = pd.DataFrame(values, dtype=object)
    problems += _check_ids(table, row_numbers, where)
    if require_pathology:
        problems += [
            f"{where}: row {n}, column pathology: empty, but every lesion needs its pathology "
            "for training and validation"
            for n, v in zip(row_numbers, table["pathology"], strict=True)
            if v is None
        ]
    problems += _check_rows(table, row_numbers, where, [*KNOWN_SEQUENCES, *extra])
    if problems:
        raise InputError(problems)

    for name in used:
        kind = columns[name].kind
        if kind is Kind.NUMBER:
            table[name] = pd.to_numeric(table[name], errors="raise").astype("float64")
        elif kind is Kind.INTEGER:
            table[name] = pd.array(table[name], dtype="Int64")
        else:
            table[name] = table[name].astype("object")
    present = tuple(s for s in [*KNOWN_SEQUENCES, *extra] if s in table)
    return Cohort(source=path, lesions=table, sequences=present, row_numbers=tuple(row_numbers))


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (stripped, lower-case) and the non-blank rows with their row numbers."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a CSV file")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise InputError(f"{path}: not a CSV file (binary content)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a CSV file (not UTF-8 text at byte {exc.start})") from None
    if not text.strip():
        raise InputError(f"{path}: the file is empty")

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
        rows: list[tuple[int, list[str]]] = []
        problems: list[str] = []
        # Rows as a spreadsheet numbers them: one per record (a quoted cell may span lines).
        for row_number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    f"{path}: row {row_number}: has {len(cells)} fields, "
                    f"the header has {len(header)}"
                )
                continue
            rows.append((row_number, [c.strip() for c in cells]))
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None

    separator = next((sep for sep in ";\t|" if len(header) == 1 and sep in header[0]), None)
    if separator:
        raise InputError(
            f"{path}: not a comma-separated file (the header is one column containing "
            f"{separator!r}); save it as CSV with commas"
        )
    for i, name in enumerate(header, start=1):
        if not name:
            problems.append(f"{path}: header column {i} has no name")
    for name in sorted({h for h in header if h and header.count(h) > 1}):
        problems.append(f"{path}: column {name!r} appears more than once in the header")
    if problems:
        raise InputError(problems)
    if not rows:
        raise InputError(f"{path}: has a header but no rows")
    return header, rows


def _parse(column: Column, raw: str, base: Path, check_files: bool) -> tuple[object, str | None]:
    """The normalised value of one cell and the problem with it, if any."""
    if raw == "":
        if column.required:
            return None, "empty"
        return None, None
    if column.kind in (Kind.IDENTIFIER, Kind.TEXT):
        return raw, None
    if column.kind is Kind.PATH:
        resolved = Path(raw).expanduser()
        if not resolved.is_absolute():
            resolved = base / resolved
        if check_files and not resolved.exists():
            return str(resolved), (
                "file or folder not found (path not shown; relative paths are resolved "
                "against the manifest's folder)"
            )
        return str(resolved), None
    if column.kind is Kind.VOCABULARY:
        value = raw.lower()
        if column.vocabulary == BINARY and value in ("0.0", "1.0"):
            value = value[0]  # 0/1 as a spreadsheet or pandas may write them
        if value not in column.vocabulary:
            allowed = ", ".join(column.vocabulary)
            return None, f"unknown value {raw!r}; allowed: {allowed}"
        return value, None
    return _parse_number(column, raw)


def _parse_number(column: Column, raw: str) -> tuple[object, str | None]:
    try:
        if "_" in raw:
            raise ValueError
        number = float(raw)
    except ValueError:
        return None, f"{raw!r} is not a number"
    if not math.isfinite(number):
        return None, f"{raw!r} is not a finite number"
    if column.kind is Kind.INTEGER:
        if number != int(number):
            return None, f"{raw!r} is not a whole number"
        number = int(number)
    low, high = column.minimum, column.maximum
    too_low = low is not None and (number <= low if column.minimum_exclusive else number < low)
    if too_low or (high is not None and number > high):
        bounds = []
        if low is not None:
            bounds.append(f"> {low:g}" if column.minimum_exclusive else f">= {low:g}")
        if high is not None:
            bounds.append(f"<= {high:g}")
        return None, f"{raw} is out of range (expected {' and '.join(bounds)})"
    return number, None


def _check_ids(table: pd.DataFrame, row_numbers: list[int], where: str) -> list[str]:
    """Duplicate lesion IDs; the values are never printed."""
    problems = []
    rows_by_lesion: dict[object, list[int]] = defaultdict(list)
    for n, lesion in zip(row_numbers, table["lesion_id"], strict=True):
        if lesion is not None:
            rows_by_lesion[lesion].append(n)
    for rows in rows_by_lesion.values():
        if len(rows) > 1:
            listed = ", ".join(map(str, rows))
            problems.append(
                f"{where}: rows {listed}, column lesion_id: the same lesion_id appears "
                f"{len(rows)} times (IDs are not printed)"
            )
    return problems


def _check_rows(
    table: pd.DataFrame, row_numbers: list[int], where: str, sequences: list[str]
) -> list[str]:
    """Checks that span several columns of one row."""
    problems = []

    def get(name: str, i: int) -> object:
        return table[name].iloc[i] if name in table else None

    for i, n in enumerate(row_numbers):
        at = f"{where}: row {n}"
        dose, fractions = get("srs_dose_gy", i), get("srs_fractions", i)
        if INVALID not in (dose, fractions) and (dose is None) != (fractions is None):
            given, missing = (
                ("srs_dose_gy", "srs_fractions")
                if fractions is None
                else ("srs_fractions", "srs_dose_gy")
            )
            problems.append(f"{at}, column {missing}: empty, but {given} is given (BED needs both)")
        detail, pathology = get("pathology_detail", i), get("pathology", i)
        if isinstance(detail, str) and isinstance(pathology, str):
            expected = NEGATIVE_CLASS if detail == "necrosis" else POSITIVE_CLASS
            if pathology != expected:
                problems.append(
                    f"{at}, column pathology: {pathology!r} contradicts pathology_detail "
                    f"{detail!r} (rule: any viable tumour cells -> 'tumor')"
                )
        priors = [
            name
            for name in [*(s + PRIOR_SUFFIX for s in sequences), "mask_prior", "brain_mask_prior"]
            if get(name, i) is not None
        ]
        if priors:
            for needed in ("t1c_prior", "mask_prior", "months_between_scans"):
                if get(needed, i) is None:
                    problems.append(
                        f"{at}, column {needed}: empty, but the prior scan's {priors[0]} is "
                        "given (a prior scan needs t1c_prior, mask_prior and "
                        "months_between_scans)"
                    )
    return problems
