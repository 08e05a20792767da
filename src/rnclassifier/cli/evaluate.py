"""`rnclassifier evaluate`: any tool's predictions against pathology and radiologists."""

from __future__ import annotations

from pathlib import Path

import click

from rnclassifier.cli.options import existing_file, output_path


@click.command()
@click.option(
    "--predictions",
    type=existing_file,
    required=True,
    help="CSV of per-lesion predictions (any tool's).",
)
@click.option("--score", default="probability", show_default=True, help="Score column.")
@click.option(
    "--label",
    default="pathology",
    show_default=True,
    help="Truth column: tumor / necrosis or 1 / 0 (1 = tumour).",
)
@click.option(
    "--group",
    default="patient_id",
    show_default=True,
    help="Patient column; lesions of a patient are resampled together.",
)
@click.option(
    "--radiologist",
    default="radiologist_read",
    show_default=True,
    help="Radiologists' call column (tumor / necrosis; blank = not read), if present.",
)
@click.option(
    "--radiologist-score",
    default="radiologist_score",
    show_default=True,
    help="Radiologists' 1-5 suspicion column, if present.",
)
@click.option(
    "--compare",
    metavar="COLUMN",
    help="A second model's score column: paired AUC comparison on the same lesions.",
)
@click.option(
    "--threshold",
    "thresholds",
    type=click.FloatRange(0, 1),
    multiple=True,
    help="Call threshold (default 0.5); give two for an indeterminate zone.",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=200),
    default=2000,
    show_default=True,
    help="Patient-cluster bootstrap resamples.",
)
@click.option("--title", default="Evaluation against pathology and radiologists", show_default=True)
@click.option("--synthetic", is_flag=True, help="Label the report as SYNTHETIC data.")
@click.option(
    "--out", type=output_path, required=True, help="Folder for metrics.json and report.html."
)
def evaluate(
    predictions: Path,
    score: str,
    label: str,
    group: str,
    radiologist: str,
    radiologist_score: str,
    compare: str | None,
    thresholds: tuple[float, ...],
    resamples: int,
    title: str,
    synthetic: bool,
    out: Path,
) -> None:
    """Statistics against pathology and radiologists, with confidence intervals."""
    from rnclassifier.evaluation import evaluate_predictions, read_predictions
    from rnclassifier.report.html import write_evaluation_report

    data = read_predictions(
        predictions,
        score=score,
        label=label,
        group=group,
        radiologist=radiologist,
        radiologist_score=radiologist_score,
        compare=compare,
    )
    metrics = evaluate_predictions(data, thresholds or (0.5,), n_resamples=resamples)
    report = write_evaluation_report(out, metrics, data, title=title, synthetic=synthetic)
    auc = metrics["discrimination"]["auc"]
    click.echo(
        f"{report}: AUC {auc['estimate']:.3f} (95% CI {auc['low']:.3f}-{auc['high']:.3f},"
        f" patient-cluster bootstrap); metrics in {out / 'metrics.json'}"
    )
