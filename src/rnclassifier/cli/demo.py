"""`rnclassifier demo`: the whole story end to end on SYNTHETIC data."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rnclassifier.cli.options import output_path


@click.command()
@click.option(
    "--out",
    type=output_path,
    help="Folder for the outputs [default: demo-output, or demo-output-quick with --quick].",
)
@click.option("--force", is_flag=True, help="Replace the demo's outputs if they exist.")
@click.option("--jobs", type=click.IntRange(min=1), help="Parallel processes (default: 2).")
@click.option("--quick", is_flag=True, help="Every stage on a small scale (for tests).")
def demo(out: Path | None, force: bool, jobs: int | None, quick: bool) -> None:
    """Run the whole story end to end on SYNTHETIC data: synth, extract, train (bundle in
    ./models/), evaluate, validate on an external cohort, score a new case."""
    from rnclassifier.demo import run_demo

    out = out or Path("demo-output-quick" if quick else "demo-output")
    for line in run_demo(out, force=force, jobs=jobs, progress=sys.stderr.isatty(), quick=quick):
        click.echo(line)
