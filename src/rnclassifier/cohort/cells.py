"""Reading a manifest file and parsing its cells, each to a value or one problem's text."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from rnclassifier.cohort.schema import BINARY, Column, Kind
from rnclassifier.errors import InputError

#: Stands for a cell already reported as a problem, so that checks across columns skip it.
INVALID = object()


def read_manifest_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
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


def parse_cell(
    column: Column, raw: str, base: Path, check_files: bool
) -> tuple[object, str | None]:
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
    return parse_number(column, raw)


def parse_number(column: Column, raw: str) -> tuple[object, str | None]:
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
