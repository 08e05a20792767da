"""`rnclassifier check`: validate a cohort manifest, every problem at once."""

from __future__ import annotations

from pathlib import Path

import click

from rnclassifier.cli.options import existing_file


@click.command()
@click.argument("manifest", type=existing_file)
@click.option(
    "--require-pathology", is_flag=True, help="Every row needs `pathology` (as for training)."
)
@click.option(
    "--sequence",
    "sequences",
    multiple=True,
    metavar="NAME",
    help="A further image column (repeatable); t1c, t1, t2, flair, adc, dwi, swi, rcbv are known.",
)
def check(manifest: Path, require_pathology: bool, sequences: tuple[str, ...]) -> None:
    """Validate a cohort manifest and report every problem at once."""
    from rnclassifier.cohort import load_cohort

    cohort = load_cohort(manifest, require_pathology=require_pathology, sequences=sequences)
    counts = ""
    if "pathology" in cohort.lesions:
        tally = cohort.lesions["pathology"].value_counts()
        counts = f"; {int(tally.get('tumor', 0))} tumour, {int(tally.get('necrosis', 0))} necrosis"
    click.echo(
        f"{manifest}: OK, {cohort.n_lesions} lesions of {cohort.n_patients} patients{counts}; "
        f"sequences: {', '.join(cohort.sequences)}"
    )
