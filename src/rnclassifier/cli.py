"""The command line: parse arguments, call one function, map errors to exit codes.

Exit status: 0 success; 2 bad input (one line per problem, naming the file, row or column; no
traceback unless --debug); 1 internal error; 130 interrupted. Nothing here does science: each
command calls one function of the package.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from rnclassifier.cohort import KNOWN_SEQUENCES
from rnclassifier.errors import InputError
from rnclassifier.version import __version__

logger = logging.getLogger("rnclassifier")

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

INTENDED_USE = (
    "Research use. The model estimates P(tumour | an enlarging post-SRS lesion selected for "
    "resection) at the training cohort's prevalence; it is not a diagnosis."
)

existing_file = click.Path(exists=False, dir_okay=False, path_type=Path)
output_path = click.Path(path_type=Path)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=INTENDED_USE,
)
@click.version_option(__version__, "--version", prog_name="rnclassifier")
@click.option("--debug", is_flag=True, help="Show tracebacks for every error.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug logs).")
def app(debug: bool, verbose: int) -> None:
    """Tell tumour progression from radiation necrosis in brain metastases that grow after SRS.

    Train on a pathology-confirmed cohort, score a new follow-up MRI, or validate a frozen model
    on another institution's cohort. `rnclassifier demo` runs everything on a synthetic cohort.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    # The level goes on the handler too: libraries that set their own loggers' levels (pyradiomics
    # logs at INFO) must not reach the terminal below the chosen level.
    handler.setLevel(level)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(level)


@app.command()
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


@app.command()
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


@app.command()
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


def default_cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnclassifier" / "features"


@app.command()
@click.option("--features", type=existing_file, help="Feature table (.parquet or .csv).")
@click.option(
    "--config",
    type=existing_file,
    help="Experiment config (YAML): data, models, feature sets, primary, CV, seed.",
)
@click.option(
    "--out",
    type=output_path,
    help="Folder for metrics.json, predictions.csv and report.html "
    "[required with --features; with --config: results/ beside the config].",
)
@click.option("--id", "id_column", default="lesion_id", show_default=True)
@click.option(
    "--group",
    default="patient_id",
    show_default=True,
    help="Patient column: splits never separate a patient's lesions.",
)
@click.option(
    "--label",
    default="pathology",
    show_default=True,
    help="tumor / necrosis or 1 / 0 (1 = tumour).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Choice(["xgboost", "elastic_net", "random_forest"]),
    help="Models to compare (default: all three).",
)
@click.option(
    "--primary",
    default="xgboost",
    show_default=True,
    help="The primary model, declared before the run.",
)
@click.option("--outer-folds", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--inner-folds", type=click.IntRange(min=2), default=3, show_default=True)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Optuna trials per outer fold.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Outer folds in parallel (results do not depend on it).",
)
@click.option(
    "--feature-set",
    "sets",
    multiple=True,
    type=click.Choice(
        ["all", "clinical", "clinical+size", "radiomics", "combined", "combined+delta"]
    ),
    help="Feature sets to compare (default: every set the table has).",
)
@click.option(
    "--primary-set",
    help="The primary feature set, declared before the run (default: combined, or all for a "
    "table from another tool).",
)
@click.option(
    "--calibration",
    type=click.Choice(["platt", "isotonic"]),
    default="platt",
    show_default=True,
    help="Fitted on inner out-of-fold probabilities.",
)
@click.option(
    "--threshold-rule",
    type=click.Choice(["sensitivity", "youden"]),
    default="sensitivity",
    show_default=True,
)
@click.option(
    "--sensitivity-target",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Tumour sensitivity the threshold aims at.",
)
@click.option(
    "--indeterminate-specificity",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Necrosis specificity the upper end of the indeterminate zone aims at (tumour calls "
    "above it) [default: the sensitivity target]; between the two thresholds no call.",
)
@click.option("--tracking-uri", help="MLflow tracking URI [default: sqlite:///./mlflow.db].")
@click.option("--no-mlflow", is_flag=True, help="Do not log the experiment to MLflow.")
@click.option(
    "--permute-labels",
    is_flag=True,
    help="Leakage alarm: shuffle the labels; the AUC must come out near 0.5.",
)
@click.option(
    "--noise-alarm",
    is_flag=True,
    help="Leakage alarm: also run the primary on pure-noise features; AUC must be near 0.5.",
)
@click.option("--synthetic", is_flag=True, help="Label the report as SYNTHETIC data.")
@click.option(
    "--bundle",
    "bundle",
    type=click.Path(path_type=Path),
    help="Folder for the primary's model bundle [default: models/<name>].",
)
@click.option(
    "--name",
    help="Bundle and MLflow experiment name [default: the config's name, or the feature "
    "table's file name].",
)
@click.option("--no-bundle", is_flag=True, help="Do not build the final model and bundle.")
@click.option("--force", is_flag=True, help="Replace an existing bundle folder.")
@click.option(
    "--combat",
    is_flag=True,
    help="Harmonise radiomics features by the table's `site` column (ComBat, fitted on "
    "training folds only).",
)
@click.option(
    "--optuna-storage",
    help="Optuna storage URL (e.g. sqlite:///studies.db, postgresql://...): resumable studies, "
    "shared by workers on several machines; not bit-reproducible. Default: in memory.",
)
def train(
    features: Path | None,
    config: Path | None,
    out: Path | None,
    id_column: str,
    group: str,
    label: str,
    models: tuple[str, ...],
    primary: str,
    outer_folds: int,
    repeats: int,
    inner_folds: int,
    trials: int,
    seed: int,
    jobs: int,
    sets: tuple[str, ...],
    primary_set: str | None,
    calibration: str,
    threshold_rule: str,
    sensitivity_target: float,
    indeterminate_specificity: float | None,
    tracking_uri: str | None,
    no_mlflow: bool,
    permute_labels: bool,
    noise_alarm: bool,
    synthetic: bool,
    bundle: Path | None,
    name: str | None,
    no_bundle: bool,
    force: bool,
    optuna_storage: str | None,
    combat: bool,
) -> None:
    """Nested, patient-grouped cross-validated training of models on a feature table; the
    primary's final model goes to a model bundle."""
    from rnclassifier.modeling.nested import Budget
    from rnclassifier.modeling.threshold import ThresholdRule
    from rnclassifier.training import MODELS, read_feature_table, train_from_features

    if config is not None:
        if features is not None:
            raise InputError("give --config or --features, not both")
        from rnclassifier.experiment import run_experiment

        metrics, out = run_experiment(
            config,
            out,
            jobs=jobs,
            tracking_uri=tracking_uri,
            track=not no_mlflow,
            bundle=bundle,
            build_bundle=not no_bundle,
            overwrite_bundle=force,
            optuna_storage=optuna_storage,
            progress=sys.stderr.isatty(),
            harmonise=combat or None,
        )
        _print_training_summary(metrics, out)
        return
    if features is None:
        raise InputError("give --features (a feature table) or --config (an experiment)")
    if out is None:
        raise InputError("give --out, the folder for the results")
    data = read_feature_table(features, label=label, group=group, id_column=id_column)
    budget = Budget(
        outer_folds,
        repeats,
        inner_folds,
        trials,
        seed,
        calibration=calibration,
        threshold_rule=ThresholdRule(threshold_rule, sensitivity_target, indeterminate_specificity),
    )
    metrics = train_from_features(
        data,
        out,
        models=models or MODELS,
        primary=primary,
        budget=budget,
        jobs=jobs,
        permute_labels=permute_labels,
        noise_alarm=noise_alarm,
        synthetic=synthetic,
        sets=sets or None,
        primary_set=primary_set,
        tracking_uri=tracking_uri,
        track=not no_mlflow,
        experiment=name or features.stem,
        bundle=None
        if no_bundle or permute_labels
        else bundle or Path("models") / (name or features.stem),
        bundle_name=name or features.stem,
        overwrite_bundle=force,
        optuna_storage=optuna_storage,
        progress=sys.stderr.isatty(),
        harmonise=combat,
    )
    _print_training_summary(metrics, out)


def _print_training_summary(metrics: dict, out: Path) -> None:
    click.echo(f"{'model / feature set':<30} nested-CV AUC (95% CI, patient bootstrap)")
    for name, entry in metrics["models"].items():
        a = entry["auc"]
        role = "primary" if entry["primary"] else "secondary"
        click.echo(f"{name:<30} {a['estimate']:.3f} ({a['low']:.3f}-{a['high']:.3f})   {role}")
    click.echo(f"report: {out / 'report.html'}; metrics: {out / 'metrics.json'}")
    for name, alarm in metrics.get("leakage_alarms", {}).items():
        a = alarm["auc"]
        click.echo(
            f"{'alarm: ' + name:<30} {a['estimate']:.3f} ({a['low']:.3f}-{a['high']:.3f})"
            "   must contain 0.5"
        )
    if metrics.get("bundle"):
        click.echo(f"model bundle (primary, final model): {metrics['bundle']}")


@app.command()
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


@app.command()
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


@app.command()
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
def score(
    model_dir: Path,
    mask: str | None,
    roi_name: str | None,
    mask_label: int | None,
    brain_mask: str | None,
    mask_prior: str | None,
    months_between_scans: float | None,
    site: str | None,
    clinical: tuple[str, ...],
    prevalence: float | None,
    allow_imputation: bool,
    cohort: Path | None,
    allow_failures: bool,
    cache_dir: Path | None,
    out: Path,
    report: Path | None,
    **sequences: str | None,
) -> None:
    """Score a lesion on a new follow-up MRI (or every lesion of --cohort) against a model
    bundle: calibrated probability, call, explanation, out-of-distribution flags."""
    from rnclassifier.atomic import write_json
    from rnclassifier.scoring import CaseInputs, score_case, score_cohort

    series = {k.removesuffix("_series"): v for k, v in sequences.items() if k.endswith("_series")}
    given = {k: v for k, v in sequences.items() if v and not k.endswith("_series")}
    series = {k: v for k, v in series.items() if v}
    if cohort is not None:
        flags = [f"--{k.replace('_', '-')}" for k in given] + ["--mask"] * bool(mask)
        flags += [f"--{k.replace('_', '-')}-series" for k in series]
        if flags or clinical or report:
            raise InputError(
                "--cohort scores a manifest: give the images and facts in it, not as "
                f"{', '.join(flags) or '--clinical/--report'}"
            )
        summary = score_cohort(
            model_dir,
            cohort,
            out,
            prevalence=prevalence,
            allow_imputation=allow_imputation,
            cache_dir=cache_dir,
            allow_failures=allow_failures,
        )
        click.echo(summary)
        return
    if allow_failures:
        raise InputError("--allow-failures: only with --cohort (one case either scores or fails)")
    problems = [
        f"--{name}: required to score one lesion"
        for name, value in (("t1c", given.get("t1c")), ("mask", mask))
        if not value
    ]
    facts: dict[str, str] = {}
    for item in clinical:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--clinical {item!r}: expected KEY=VALUE")
        else:
            facts[key.strip().lower()] = value.strip()
    if problems:
        raise InputError(problems)
    case = CaseInputs(
        images={s: given[s] for s in KNOWN_SEQUENCES if s in given},
        mask=mask,
        roi_name=roi_name,
        mask_label=mask_label,
        brain_mask=brain_mask,
        prior_images={s: given[f"{s}_prior"] for s in KNOWN_SEQUENCES if f"{s}_prior" in given},
        mask_prior=mask_prior,
        months_between_scans=months_between_scans,
        site=site,
        clinical=facts,
        series=series,
    )
    result = score_case(
        model_dir,
        case,
        prevalence=prevalence,
        allow_imputation=allow_imputation,
        cache_dir=cache_dir,
    )
    if report is not None:
        from rnclassifier.report.case import write_case_report

        write_case_report(report, result, case)
    write_json(out, result)
    click.echo(
        f"probability of tumour {result['probability']:.2f} (calibrated, training prevalence "
        f"{result['training_prevalence']:.0%}); call {result['call']} at threshold "
        f"{result['threshold']['value']:.2f}"
        + ("; OUT OF DISTRIBUTION" if result["out_of_distribution"]["out_of_distribution"] else "")
        + f"; {out}"
        + (f", {report}" if report else "")
    )
    if result["imputed_covariates"]:
        click.echo(f"imputed (bundle's imputer): {', '.join(result['imputed_covariates'])}")
    for name in result["ignored_covariates"]:
        click.echo(f"warning: --clinical {name} is not used by this model", err=True)


@app.command()
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


#: Set by a SIGINT or SIGTERM: whatever exception then ends the command is an interruption.
_signalled: list[int] = []


def _terminate_as_interrupt() -> dict[int, Any]:
    """`kill` (SIGTERM, as sent by job schedulers and `timeout`) unwinds like Ctrl-C: partial
    outputs are removed, MLflow runs are closed as failed, the exit status is 130.

    The KeyboardInterrupt may surface wrapped in another exception when it lands inside a
    library's callback (xgboost turns it into an XGBoostError), hence the flag."""
    import signal
    import threading

    def interrupt(signum: int, frame: Any) -> None:
        _signalled.append(signum)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return {}
    _signalled.clear()
    return {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGINT)}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rnclassifier` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    previous = _terminate_as_interrupt()
    try:
        return _run(args, debug)
    finally:
        import signal

        for number, handler in previous.items():
            signal.signal(number, handler)


def _run(args: list[str], debug: bool) -> int:
    try:
        status = app.main(args=args, prog_name="rnclassifier", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # bad flags: click's message, on one line
        where = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            where = f"{exc.ctx.command_path}: "
        hint = " (see --help)" if isinstance(exc, click.UsageError) else ""
        click.echo(f"error: {where}{exc.format_message()}{hint}", err=True)
        return EXIT_BAD_INPUT
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except InputError as exc:
        if debug:
            logger.exception("bad input")
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _signalled:
            click.echo("interrupted", err=True)
            return EXIT_INTERRUPTED
        if debug:
            logger.exception("internal error")
        else:
            click.echo(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for details; "
                "please report it)",
                err=True,
            )
        return EXIT_INTERNAL
    return status if isinstance(status, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
