"""`rnclassifier extract`: radiomics and clinical features of a cohort into a feature table."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rnclassifier.cli.options import default_cache_dir, existing_file, output_path


@click.command()
@click.option("--cohort", type=existing_file, required=True, help="Cohort manifest (CSV).")
@click.option(
    "--params",
    type=existing_file,
    help="Extraction config (YAML), or a plain pyradiomics parameter file. "
    "[default: configs/extraction/default.yaml]",
)
@click.option("--out", type=output_path, required=True, help="Feature table (.parquet or .csv).")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV whatever the file name.")
@click.option(
    "--perturb",
    type=click.IntRange(min=0),
    default=0,
    help="Also write each lesion's features under K mask perturbations.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Lesions extracted in parallel.",
)
@click.option(
    "--cache-dir",
    type=output_path,
    help="Feature cache folder. [default: $XDG_CACHE_HOME/rnclassifier/features]",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run on a Dask cluster (e.g. tcp://host:8786) instead of --jobs processes.",
)
@click.option(
    "--allow-failures",
    is_flag=True,
    help="Keep a lesion whose features did not all come back, with NaN features, as a "
    "technical failure (listed in the sidecar) instead of stopping with an error.",
)
def extract(
    cohort: Path,
    params: Path | None,
    out: Path,
    as_csv: bool,
    perturb: int,
    jobs: int,
    cache_dir: Path | None,
    no_cache: bool,
    scheduler: str | None,
    allow_failures: bool,
) -> None:
    """Extract radiomics and clinical features into a feature table."""
    from rnclassifier.features.api import run_extraction

    summary = run_extraction(
        cohort,
        out,
        params=params,
        jobs=jobs,
        perturb=perturb,
        csv=as_csv,
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
        progress=sys.stderr.isatty(),
        scheduler=scheduler,
        allow_failures=allow_failures,
    )
    click.echo(summary)
