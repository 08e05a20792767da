"""`rnclassifier score`: one lesion on a new follow-up MRI (or every lesion of a manifest)
against a model bundle. The flags become a case in `scoring.case`; nothing is decided here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rnclassifier.cli.options import existing_file, output_path
from rnclassifier.cohort.schema import KNOWN_SEQUENCES
from rnclassifier.errors import InputError


def _sequence_options(function: Any) -> Any:
    """--t1c, --flair, ... and --t1c-prior, ...: the manifest's image columns as flags, and
    --t1c-series, --t1c-prior-series, ...: which series of a DICOM study folder each is."""
    for sequence in reversed(KNOWN_SEQUENCES):
        for image in (f"{sequence}_prior", sequence):
            function = click.option(
                f"--{image.replace('_', '-')}-series",
                f"{image}_series",
                help="Which series of a DICOM study folder is the t1c: SeriesDescription, "
                "SeriesNumber or SeriesInstanceUID (likewise --flair-series, ...)."
                if image == "t1c"
                else None,
            )(function)
    for sequence in reversed(KNOWN_SEQUENCES):
        function = click.option(
            f"--{sequence}-prior",
            f"{sequence}_prior",
            help=f"{sequence} of the earlier scan (delta features)." if sequence == "t1c" else None,
        )(function)
    for sequence in reversed(KNOWN_SEQUENCES):
        what = "Post-contrast T1 (file or DICOM series folder)." if sequence == "t1c" else None
        function = click.option(f"--{sequence}", sequence, help=what)(function)
    return function


@click.command()
@click.option("--model", "model_dir", type=output_path, required=True, help="Model bundle folder.")
@_sequence_options
@click.option("--mask", help="Lesion mask on the t1c grid: image, DICOM SEG or RTSTRUCT.")
@click.option("--roi-name", help="Which RTSTRUCT ROI or SEG segment is the lesion.")
@click.option("--mask-label", type=int, help="Which label value of a label image is the lesion.")
@click.option("--brain-mask", help="Brain mask on the t1c grid.")
@click.option("--mask-prior", help="Lesion mask of the earlier scan.")
@click.option("--months-between-scans", type=float, help="Months from the earlier scan.")
@click.option("--site", help="Scanner or institution (never a predictor).")
@click.option("--clinical", multiple=True, metavar="KEY=VALUE", help="A clinical fact.")
@click.option(
    "--prevalence",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Also give the probability shifted to this tumour prevalence (flagged).",
)
@click.option(
    "--allow-imputation",
    is_flag=True,
    help="Fill covariates the model needs but were not given with the bundle's own imputer.",
)
@click.option("--cohort", type=existing_file, help="Score every lesion of a manifest instead.")
@click.option(
    "--allow-failures",
    is_flag=True,
    help="Keep a lesion whose features did not all come back as a technical failure (no "
    "probability; counted in the flow) instead of stopping with an error (--cohort).",
)
@click.option("--cache-dir", type=output_path, help="Feature cache folder.")
@click.option(
    "--out",
    type=output_path,
    required=True,
    help="result.json (one case) or scores.csv (--cohort).",
)
@click.option("--report", type=output_path, help="One-page HTML case report (one case).")
@click.option(
    "--dicom-out",
    type=output_path,
    help="Folder for a DICOM SEG of the lesion and a DICOM SR of the result, for PACS (one "
    "case; the t1c must be a DICOM series). They carry the study's patient identifiers.",
)
def score(
    model_dir: Path,
    cohort: Path | None,
    out: Path,
    report: Path | None,
    dicom_out: Path | None,
    **flags: Any,
) -> None:
    """Score a lesion on a new follow-up MRI (or every lesion of --cohort) against a model
    bundle: calibrated probability, call, explanation, out-of-distribution flags."""
    if cohort is not None:
        if dicom_out is not None:
            raise InputError("--dicom-out: only for one case, not with --cohort")
        _score_cohort(model_dir, cohort, out, report, flags)
        return
    from rnclassifier.atomic import write_json
    from rnclassifier.scoring import score_case
    from rnclassifier.scoring.case import case_from_flags

    if flags["allow_failures"]:
        raise InputError("--allow-failures: only with --cohort (one case either scores or fails)")
    case = case_from_flags(flags)
    if dicom_out is not None:  # before the slow part: a request that cannot be met costs nothing
        from rnclassifier.scoring.dicom_results import check_dicom_out

        check_dicom_out(case, dicom_out)
    result = score_case(
        model_dir,
        case,
        prevalence=flags["prevalence"],
        allow_imputation=flags["allow_imputation"],
        cache_dir=flags["cache_dir"],
    )
    if report is not None:
        from rnclassifier.report.case import write_case_report

        write_case_report(report, result, case)
    written: list[Path] = []
    if dicom_out is not None:
        from rnclassifier.scoring.dicom_results import write_dicom_results

        written = write_dicom_results(result, case, dicom_out)
    write_json(out, result)
    _print_result(result, out, report, written)


def _score_cohort(
    model_dir: Path, cohort: Path, out: Path, report: Path | None, flags: dict[str, Any]
) -> None:
    from rnclassifier.scoring import score_cohort

    case_flags = [
        f"--{k.replace('_', '-')}"
        for k, v in flags.items()
        if v and (k in KNOWN_SEQUENCES or k.removesuffix("_prior") in KNOWN_SEQUENCES)
    ]
    case_flags += ["--mask"] * bool(flags["mask"])
    case_flags += [
        f"--{k.replace('_', '-')}" for k, v in flags.items() if v and k.endswith("_series")
    ]
    if case_flags or flags["clinical"] or report:
        raise InputError(
            "--cohort scores a manifest: give the images and facts in it, not as "
            f"{', '.join(case_flags) or '--clinical/--report'}"
        )
    summary = score_cohort(
        model_dir,
        cohort,
        out,
        prevalence=flags["prevalence"],
        allow_imputation=flags["allow_imputation"],
        cache_dir=flags["cache_dir"],
        allow_failures=flags["allow_failures"],
    )
    click.echo(summary)


def _print_result(
    result: dict[str, Any], out: Path, report: Path | None, written: list[Path]
) -> None:
    click.echo(
        f"probability of tumour {result['probability']:.2f} (calibrated, training prevalence "
        f"{result['training_prevalence']:.0%}); call {result['call']} at threshold "
        f"{result['threshold']['value']:.2f}"
        + ("; OUT OF DISTRIBUTION" if result["out_of_distribution"]["out_of_distribution"] else "")
        + f"; {out}"
        + (f", {report}" if report else "")
        + "".join(f", {path}" for path in written)
    )
    if result["imputed_covariates"]:
        click.echo(f"imputed (bundle's imputer): {', '.join(result['imputed_covariates'])}")
    for name in result["ignored_covariates"]:
        click.echo(f"warning: --clinical {name} is not used by this model", err=True)
