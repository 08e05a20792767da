"""`rnclassifier synth`: a SYNTHETIC cohort imitating the seed study (never patient data)."""

from __future__ import annotations

from pathlib import Path

import click

from rnclassifier.cli.options import output_path


@click.command()
@click.option(
    "--preset",
    type=click.Choice(["seed", "external"]),
    default="seed",
    show_default=True,
    help="seed: imitates the seed study's cohort; external: a second institution (other case "
    "mix, scanners and, by default, shifted image biology: see --shift).",
)
@click.option("--out", type=output_path, required=True, help="Folder to write the cohort into.")
@click.option("--n", "n_lesions", type=click.IntRange(min=1), help="Number of lesions.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--rn-fraction", type=click.FloatRange(0, 1), help="Fraction of necrosis lesions.")
@click.option("--null", "null", is_flag=True, help="Class-specific latents equal for both classes.")
@click.option(
    "--shift",
    type=click.FloatRange(0, 1),
    help="How far the class-conditional image biology moves from the seed's, 0-1: each image "
    "sign separates the classes less well (and oedema is restrained in both classes) in "
    "proportion. 0 keeps the seed's biology; 1 is the full shift, with which a model trained "
    "on the seed preset lost 0.17 AUC (benchmarks/RESULTS.md). [default: the preset's own, "
    "seed 0, external 1]",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--jobs", type=click.IntRange(min=1), help="Parallel processes (default: 2).")
def synth(
    preset: str,
    out: Path,
    n_lesions: int | None,
    seed: int,
    rn_fraction: float | None,
    null: bool,
    shift: float | None,
    force: bool,
    jobs: int | None,
) -> None:
    """Write a SYNTHETIC cohort (manifest, images, oracle) imitating the seed study."""
    from rnclassifier.synthetic import write_synthetic_cohort

    summary = write_synthetic_cohort(
        out,
        preset=preset,
        n_lesions=n_lesions,
        seed=seed,
        rn_fraction=rn_fraction,
        null=null,
        force=force,
        jobs=jobs,
        shift=shift,
    )
    click.echo(
        f"SYNTHETIC cohort written to {summary.out}: {summary.n_lesions} lesions of "
        f"{summary.n_patients} patients ({summary.n_tumour} tumour, {summary.n_necrosis} "
        "necrosis); not patient data"
    )
