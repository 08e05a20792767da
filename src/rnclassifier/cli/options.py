"""Option groups shared by several commands, and choices and defaults taken from the training
spec's types (`rnclassifier.spec`), so that the command line cannot drift from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import click
from pydantic import BaseModel

existing_file = click.Path(exists=False, dir_okay=False, path_type=Path)
output_path = click.Path(path_type=Path)
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def choice(annotation: Any) -> click.Choice:
    """A click choice of the values of the `Literal[...]` in a type (`Literal[...]`,
    `Literal[...] | None`, `tuple[Literal[...], ...]`)."""
    return click.Choice(list(dict.fromkeys(_literal_values(annotation))))


def _literal_values(annotation: Any) -> list[Any]:
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    return [v for part in get_args(annotation) for v in _literal_values(part)]


def default(model: type[BaseModel], field: str) -> Any:
    """The spec's default of `field` (declared there once)."""
    return model.model_fields[field].default


def annotation(model: type[BaseModel], field: str) -> Any:
    return model.model_fields[field].annotation


def group(*decorators: Decorator) -> Decorator:
    """Several options as one decorator, applied in the order written."""

    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def jobs_option(help_text: str, default_jobs: int | None = 1) -> Decorator:
    return click.option(
        "--jobs",
        type=click.IntRange(min=1),
        default=default_jobs,
        show_default=default_jobs is not None,
        help=help_text,
    )


def tracking_options(what: str) -> Decorator:
    return group(
        click.option(
            "--tracking-uri", help="MLflow tracking URI [default: sqlite:///./mlflow.db]."
        ),
        click.option("--no-mlflow", is_flag=True, help=f"Do not log the {what} to MLflow."),
    )


def allow_failures_option(help_text: str) -> Decorator:
    return click.option("--allow-failures", is_flag=True, help=help_text)


cache_option = click.option("--cache-dir", type=output_path, help="Feature cache folder.")


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/rnclassifier/features (or ~/.cache/...)."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnclassifier" / "features"
