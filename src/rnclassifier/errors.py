"""The one error type that users can cause.

Its message is what the user reads: one line per problem, each naming the file, row or column
and what is wrong. The CLI prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Problems listed before the rest are summarised, so that a badly broken file stays readable.
MAX_PROBLEMS_SHOWN = 50


class InputError(Exception):
    """Bad input from the user: a file, row, column, flag or setting that cannot be used."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        lines = [problems] if isinstance(problems, str) else list(problems)
        if not lines:
            raise ValueError("InputError needs at least one problem")
        self.problems: list[str] = lines
        super().__init__(format_problems(lines))


def format_problems(problems: list[str], limit: int = MAX_PROBLEMS_SHOWN) -> str:
    """Join problems one per line, capping the list with a count of the rest."""
    shown = problems[:limit]
    rest = len(problems) - len(shown)
    if rest > 0:
        shown = [*shown, f"... and {rest} more problem{'s' if rest > 1 else ''}"]
    return "\n".join(shown)
