"""`rnclassifier validate`: a frozen bundle on other institutions' cohorts."""

from __future__ import annotations

from pathlib import Path

import click

from rnclassifier.cli.options import existing_file, output_path


@click.command()
@click.option("--model", "model_dir", type=output_path, required=True, help="Model bundle.")
@click.option(
    "--cohort",
    "cohorts",
    type=existing_file,
    required=True,
    multiple=True,
    help="External cohort manifest with pathology; repeat for several (reported separately).",
)
@click.option("--out", type=output_path, required=True, help="Folder for metrics and report.")
@click.option(
    "--recalibrate",
    is_flag=True,
    help="Also report logistic recalibration (cross-validated on the cohort), beside the "
    "frozen result.",
)
@click.option("--site-adapt", is_flag=True, help="Label-free site adaptation (not supported).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--cache-dir", type=output_path, help="Feature cache folder.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--tracking-uri", help="MLflow tracking URI [default: sqlite:///./mlflow.db].")
@click.option("--no-mlflow", is_flag=True, help="Do not log the validation to MLflow.")
@click.option(
    "--allow-failures",
    is_flag=True,
    help="Keep a lesion whose features did not all come back as a technical failure (no "
    "probability; counted in the flow) instead of stopping with an error.",
)
def validate(
    model_dir: Path,
    cohorts: tuple[Path, ...],
    out: Path,
    recalibrate: bool,
    site_adapt: bool,
    jobs: int,
    cache_dir: Path | None,
    seed: int,
    tracking_uri: str | None,
    no_mlflow: bool,
    allow_failures: bool,
) -> None:
    """External validation of a frozen model on other institutions' cohorts."""
    from rnclassifier.validation import validate as run

    document = run(
        model_dir,
        list(cohorts),
        out,
        recalibrate=recalibrate,
        site_adapt=site_adapt,
        cache_dir=cache_dir,
        jobs=jobs,
        seed=seed,
        allow_failures=allow_failures,
        track=not no_mlflow,
        tracking_uri=tracking_uri,
    )
    _print_summary(document, out)


def _print_summary(document: dict, out: Path) -> None:
    for name, metrics in document["cohorts"].items():
        auc = metrics["discrimination"]["auc"]
        cal = metrics["calibration"]
        click.echo(
            f"{name}: AUC {auc['estimate']:.3f} (95% CI {auc['low']:.3f}-{auc['high']:.3f}), "
            f"calibration slope {cal['slope']:.2f}, intercept {cal['intercept']:.2f}; "
            f"{metrics['shift']['n_beyond_distance_cutoff']} of {metrics['n_lesions']} lesions "
            f"beyond the feature-distance cut-off, {metrics['shift']['n_site_unseen']} from "
            "unseen sites"
            + (
                f"; {failures} technical failure(s) without a score"
                if (failures := metrics["flow"]["technical_failures"])
                else ""
            )
        )
    if "mlflow" in document:
        linked = document["mlflow"]["registered_model_version"]
        click.echo(
            f"mlflow: run {document['mlflow']['run_id']}"
            + (
                f", linked to registered model {linked}"
                if linked
                else " (no registered version of this model in the tracking store)"
            )
        )
    click.echo(f"report: {out / 'report.html'}; metrics: {out / 'metrics.json'}")
