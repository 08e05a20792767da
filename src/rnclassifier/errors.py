"""The one error type that users can cause, and the problems it carries.

Its message is what the user reads: one line per problem, each naming the file, row or column
and what is wrong. The CLI prints it without a traceback and exits with status 2. A problem may
be structured (`Problem`: source, row, column, text), so that a caller can say it in its own
terms (the command line names a flag where a manifest names a column) without parsing text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Problems listed before the rest are summarised, so that a badly broken file stays readable.
MAX_PROBLEMS_SHOWN = 50


@dataclass(frozen=True)
class Problem:
    """One thing wrong: `text`, where it is (any of a source file, a row number, a column)."""

    text: str
    source: str | None = None
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        if self.source is None and self.row is not None:  # extraction: the manifest's row
            where = [f"manifest row {self.row}"]
        else:
            where = [f"row {self.row}"] if self.row is not None else []
        where += [f"column {self.column}"] if self.column is not None else []
        place = ", ".join(where)
        if self.source is not None:
            place = f"{self.source}: {place}" if place else self.source
        return f"{place}: {self.text}" if place else self.text


class InputError(Exception):
    """Bad input from the user: a file, row, column, flag or setting that cannot be used."""

    def __init__(self, problems: str | Problem | Iterable[str | Problem]) -> None:
        items = [problems] if isinstance(problems, str | Problem) else list(problems)
        if not items:
            raise ValueError("InputError needs at least one problem")
        #: Each problem, structured (a plain message is a Problem with its text only).
        self.details: list[Problem] = [p if isinstance(p, Problem) else Problem(p) for p in items]
        #: Each problem as the user reads it, one line each.
        self.problems: list[str] = [str(p) for p in self.details]
        super().__init__(format_problems(self.problems))


def format_problems(problems: list[str], limit: int = MAX_PROBLEMS_SHOWN) -> str:
    """Join problems one per line, capping the list with a count of the rest."""
    shown = problems[:limit]
    rest = len(problems) - len(shown)
    if rest > 0:
        shown = [*shown, f"... and {rest} more problem{'s' if rest > 1 else ''}"]
    return "\n".join(shown)
