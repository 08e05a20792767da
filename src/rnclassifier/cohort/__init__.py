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

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rnclassifier.cohort.cells import INVALID, parse_cell, read_manifest_csv
from rnclassifier.cohort.schema import (
    BINARY,
    CLINICAL_COLUMNS,
    COLUMNS,
    ID_COLUMNS,
    KNOWN_SEQUENCES,
    NEGATIVE_CLASS,
    POSITIVE_CLASS,
    PRIOR_SUFFIX,
    SECOND_COURSE_PATTERN,
    SERIES_SUFFIX,
    Column,
    Kind,
    image_columns,
    sequence_name_problem,
)
from rnclassifier.errors import InputError, Problem

__all__ = [
    "BINARY",
    "CLINICAL_COLUMNS",
    "COLUMNS",
    "ID_COLUMNS",
    "KNOWN_SEQUENCES",
    "NEGATIVE_CLASS",
    "POSITIVE_CLASS",
    "PRIOR_SUFFIX",
    "SECOND_COURSE_PATTERN",
    "SERIES_SUFFIX",
    "Cohort",
    "Column",
    "Kind",
    "cohort_from_rows",
    "image_columns",
    "load_cohort",
    "sequence_name_problem",
]

if TYPE_CHECKING:  # pandas is imported where a table is made: `--help` need not load it
    import pandas as pd

logger = logging.getLogger(__name__)


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
    header, rows = read_manifest_csv(path)
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

    _check_header(header, columns, where, require_pathology)
    problems: list[str | Problem] = []
    used = [name for name in header if name in columns]
    values: dict[str, list[object]] = {name: [] for name in used}
    row_numbers: list[int] = []
    for row_number, cells in rows:
        row_numbers.append(row_number)
        record = dict(zip(header, cells, strict=True))
        for name in used:
            value, problem = parse_cell(columns[name], record[name], base, check_files)
            if problem:
                problems.append(Problem(problem, where, row_number, name))
                value = INVALID
            values[name].append(value)

    import pandas as pd

    table = pd.DataFrame(values, dtype=object)
    problems += _check_ids(table, row_numbers, where)
    if require_pathology:
        problems += [
            Problem(
                "empty, but every lesion needs its pathology for training and validation",
                where,
                n,
                "pathology",
            )
            for n, v in zip(row_numbers, table["pathology"], strict=True)
            if v is None
        ]
    problems += _check_rows(table, row_numbers, where, [*KNOWN_SEQUENCES, *extra])
    if problems:
        raise InputError(problems)

    for name in used:
        table[name] = _typed(table[name], columns[name].kind)
    present = tuple(s for s in [*KNOWN_SEQUENCES, *extra] if s in table)
    return Cohort(source=path, lesions=table, sequences=present, row_numbers=tuple(row_numbers))


def _check_header(
    header: list[str], columns: dict[str, Column], where: str, require_pathology: bool
) -> None:
    """Required columns present (else an error); unknown ones ignored with a warning."""
    required = [c.name for c in columns.values() if c.required]
    if require_pathology:
        required.append("pathology")
    problems = [
        Problem(
            f"missing required column {name!r}"
            + " (training and validation need the pathology ground truth)" * (name == "pathology"),
            where,
        )
        for name in required
        if name not in header
    ]
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


def _typed(values: pd.Series, kind: Kind) -> pd.Series:
    """A parsed column in its pandas type: float64, nullable Int64, or object."""
    import pandas as pd

    if kind is Kind.NUMBER:
        return pd.to_numeric(values, errors="raise").astype("float64")
    if kind is Kind.INTEGER:
        return pd.array(values, dtype="Int64")
    return values.astype("object")


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
) -> list[Problem]:
    """Checks that span several columns of one row."""
    problems = []

    def get(name: str, i: int) -> object:
        return table[name].iloc[i] if name in table else None

    for i, n in enumerate(row_numbers):
        dose, fractions = get("srs_dose_gy", i), get("srs_fractions", i)
        if INVALID not in (dose, fractions) and (dose is None) != (fractions is None):
            given, missing = (
                ("srs_dose_gy", "srs_fractions")
                if fractions is None
                else ("srs_fractions", "srs_dose_gy")
            )
            problems.append(
                Problem(f"empty, but {given} is given (BED needs both)", where, n, missing)
            )
        detail, pathology = get("pathology_detail", i), get("pathology", i)
        if isinstance(detail, str) and isinstance(pathology, str):
            expected = NEGATIVE_CLASS if detail == "necrosis" else POSITIVE_CLASS
            if pathology != expected:
                problems.append(
                    Problem(
                        f"{pathology!r} contradicts pathology_detail {detail!r} (rule: any "
                        "viable tumour cells -> 'tumor')",
                        where,
                        n,
                        "pathology",
                    )
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
                        Problem(
                            f"empty, but the prior scan's {priors[0]} is given (a prior scan "
                            "needs t1c_prior, mask_prior and months_between_scans)",
                            where,
                            n,
                            needed,
                        )
                    )
    return problems
