"""`rnclassifier serve`: the web service (`rnclassifier.service`) on one bundle, with uvicorn."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click

from rnclassifier.cli.options import existing_file, output_path
from rnclassifier.errors import InputError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.option("--model", "model_dir", type=output_path, required=True, help="Model bundle folder.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--token-file",
    type=existing_file,
    help="File holding the bearer token every route but /health then needs (mode 600).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=lambda: min(os.cpu_count() or 1, 4),
    show_default="CPUs, at most 4",
    help="Scoring processes (each holds the bundle); further requests wait in a queue.",
)
@click.option(
    "--max-upload-mb",
    type=click.IntRange(1),
    default=2048,
    show_default=True,
    help="Largest request accepted (all its files together).",
)
@click.option(
    "--keep-results-minutes",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    help="How long an answer's case report and DICOM results stay downloadable (in memory).",
)
def serve(
    model_dir: Path,
    host: str,
    port: int,
    token_file: Path | None,
    workers: int,
    max_upload_mb: int,
    keep_results_minutes: float,
) -> None:
    """Serve a model bundle over HTTP: a page with a form (GET /), POST /v1/score for REST
    clients, GET /v1/model and GET /health. Research use: not a diagnosis."""
    import uvicorn

    from rnclassifier.service import Limits, ResultStore, Settings, create_app

    token = _read_token(token_file) if token_file is not None else None
    if host not in LOOPBACK and token is None:
        click.echo(
            f"warning: listening on {host} without --token-file: anyone who can reach this "
            "port can score cases",
            err=True,
        )
    settings = Settings(
        bundle_dir=model_dir,
        workers=workers,
        token=token,
        limits=Limits(request_bytes=max_upload_mb * 1024**2),
        store=ResultStore(ttl_seconds=keep_results_minutes * 60),
    )
    app = create_app(settings)
    click.echo(
        f"rnclassifier serve: model {app.state.bundle.meta.name} at http://{host}:{port}/ "
        f"({workers} scoring process{'es' if workers > 1 else ''}; Ctrl-C stops)",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)


def _read_token(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"--token-file {path}: file not found")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"--token-file {path}: readable by other users (chmod 600 {path})")
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16 or any(c.isspace() for c in token):
        raise InputError(
            f"--token-file {path}: the token must be one word of at least 16 characters"
        )
    return token
