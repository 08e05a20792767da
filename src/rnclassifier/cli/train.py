"""`rnclassifier train`: a feature table (or an experiment config) in, the nested-CV comparison,
report and the primary's bundle out. Every choice and default comes from the training spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from rnclassifier.cli.options import (
    annotation,
    choice,
    default,
    existing_file,
    group,
    jobs_option,
    output_path,
    tracking_options,
)
from rnclassifier.errors import InputError
from rnclassifier.spec import CrossValidation, DataSettings, Primary, Threshold, TrainingSpec

#: Flags that declare the experiment: with --config, the config declares them instead.
DECLARING = (
    "id_column", "group", "label", "positive_label", "models", "primary", "outer_folds",
    "repeats", "inner_folds", "trials", "seed", "sets", "primary_set", "calibration",
    "threshold_rule",
    "sensitivity_target", "indeterminate_specificity", "permute_labels", "noise_alarm",
    "synthetic", "name",
)  # fmt: skip

data_options = group(
    click.option("--id", "id_column", default=default(DataSettings, "id"), show_default=True),
    click.option(
        "--group",
        default=default(DataSettings, "group"),
        show_default=True,
        help="Patient column: splits never separate a patient's lesions.",
    ),
    click.option(
        "--label",
        default=default(DataSettings, "label"),
        show_default=True,
        help="tumor / necrosis or 1 / 0 (1 = tumour).",
    ),
    click.option(
        "--positive-label",
        default=None,
        help="For labels of two other values: the one that means the positive class (1).",
    ),
)


def _count(flag: str, field: str, minimum: int, help_text: str | None = None) -> Any:
    return click.option(
        flag,
        type=click.IntRange(min=minimum),
        default=default(CrossValidation, field),
        show_default=True,
        help=help_text,
    )


cv_options = group(
    _count("--outer-folds", "outer_folds", 2),
    _count("--repeats", "repeats", 1),
    _count("--inner-folds", "inner_folds", 2),
    _count("--trials", "trials", 1, "Optuna trials per outer fold."),
    click.option("--seed", type=int, default=default(TrainingSpec, "seed"), show_default=True),
)

model_options = group(
    click.option(
        "--model",
        "models",
        multiple=True,
        type=choice(annotation(TrainingSpec, "models")),
        help="Models to compare (default: all three).",
    ),
    click.option(
        "--primary",
        type=choice(annotation(Primary, "model")),
        default=default(Primary, "model"),
        show_default=True,
        help="The primary model, declared before the run.",
    ),
    click.option(
        "--feature-set",
        "sets",
        multiple=True,
        type=choice(annotation(TrainingSpec, "feature_sets")),
        help="Feature sets to compare (default: every set the table has).",
    ),
    click.option(
        "--primary-set",
        type=choice(annotation(Primary, "feature_set")),
        help="The primary feature set, declared before the run (default: combined, or all for a "
        "table from another tool).",
    ),
)

threshold_options = group(
    click.option(
        "--calibration",
        type=choice(annotation(TrainingSpec, "calibration")),
        default=default(TrainingSpec, "calibration"),
        show_default=True,
        help="Fitted on inner out-of-fold probabilities.",
    ),
    click.option(
        "--threshold-rule",
        type=choice(annotation(Threshold, "rule")),
        default=default(Threshold, "rule"),
        show_default=True,
    ),
    click.option(
        "--sensitivity-target",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=default(Threshold, "target"),
        show_default=True,
        help="Tumour sensitivity the threshold aims at.",
    ),
    click.option(
        "--indeterminate-specificity",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        help="Necrosis specificity the upper end of the indeterminate zone aims at (tumour calls "
        "above it) [default: the sensitivity target]; between the two thresholds no call.",
    ),
)

run_options = group(
    click.option(
        "--permute-labels",
        is_flag=True,
        help="Leakage alarm: shuffle the labels; the AUC must come out near 0.5.",
    ),
    click.option(
        "--noise-alarm",
        is_flag=True,
        help="Leakage alarm: also run the primary on pure-noise features; AUC must be near 0.5.",
    ),
    click.option("--synthetic", is_flag=True, help="Label the report as SYNTHETIC data."),
    click.option(
        "--bundle",
        "bundle",
        type=click.Path(path_type=Path),
        help="Folder for the primary's model bundle [default: models/<name>].",
    ),
    click.option(
        "--name",
        help="Bundle and MLflow experiment name [default: the config's name, or the feature "
        "table's file name].",
    ),
    click.option("--no-bundle", is_flag=True, help="Do not build the final model and bundle."),
    click.option("--force", is_flag=True, help="Replace an existing bundle folder."),
    click.option(
        "--combat",
        is_flag=True,
        help="Harmonise radiomics features by the table's `site` column (ComBat, fitted on "
        "training folds only).",
    ),
    click.option(
        "--optuna-storage",
        help="Optuna storage URL (e.g. sqlite:///studies.db, postgresql://...): resumable "
        "studies, shared by workers on several machines; not bit-reproducible. Default: in "
        "memory.",
    ),
)


@click.command()
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
@data_options
@model_options
@cv_options
@jobs_option("Outer folds in parallel (results do not depend on it).")
@threshold_options
@tracking_options("experiment")
@run_options
def train(**options: Any) -> None:
    """Nested, patient-grouped cross-validated training of models on a feature table; the
    primary's final model goes to a model bundle."""
    from rnclassifier.training import train as run

    spec, out = _spec_and_out(options)
    metrics = run(spec, out, jobs=options["jobs"], progress=sys.stderr.isatty())
    _print_summary(metrics, out)


def _spec_and_out(options: dict[str, Any]) -> tuple[TrainingSpec, Path]:
    """The spec the flags (or the config and the flags that only say how to run it) declare."""
    if options["config"] is not None:
        if options["features"] is not None:
            raise InputError("give --config or --features, not both")
        _refuse_declaring_flags()
        return _from_config(options)
    if options["features"] is None:
        raise InputError("give --features (a feature table) or --config (an experiment)")
    if options["out"] is None:
        raise InputError("give --out, the folder for the results")
    return _from_flags(options), options["out"]


def _refuse_declaring_flags() -> None:
    context = click.get_current_context()
    given = [
        name
        for name in DECLARING
        if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        flags = {"id_column": "id", "models": "model", "sets": "feature-set"}
        raise InputError(
            f"--{flags.get(n, n).replace('_', '-')}: not with --config (the experiment config "
            "declares it)"
            for n in given
        )


def _run_settings(options: dict[str, Any]) -> dict[str, Any]:
    """How to run it: outputs, tracking, storage (the same with --config or --features)."""
    return {
        "tracking": {"enabled": not options["no_mlflow"], "uri": options["tracking_uri"]},
        "bundle": {
            "build": not options["no_bundle"],
            "path": None if options["bundle"] is None else str(options["bundle"]),
            "overwrite": options["force"],
        },
        "optuna_storage": options["optuna_storage"],
    }


def _from_config(options: dict[str, Any]) -> tuple[TrainingSpec, Path]:
    from rnclassifier.spec import load_experiment

    path = options["config"]
    spec = load_experiment(path)
    changes = _run_settings(options)
    if options["combat"]:
        changes["harmonise"] = "combat"
    out = options["out"] or path.resolve().parent / "results"
    return spec.with_changes(**changes), out


def _from_flags(options: dict[str, Any]) -> TrainingSpec:
    from rnclassifier.spec import DEFAULT_MODELS

    models = options["models"] or DEFAULT_MODELS
    if options["primary"] not in models:
        raise InputError(
            f"--primary {options['primary']}: not among the models compared "
            f"({', '.join(models)}); add --model {options['primary']}"
        )
    return TrainingSpec.model_validate(
        {
            "name": options["name"],
            "data": {
                "features": str(options["features"]),
                "label": options["label"],
                "positive_label": options["positive_label"],
                "group": options["group"],
                "id": options["id_column"],
            },
            "synthetic": options["synthetic"],
            "models": models,
            "feature_sets": options["sets"] or None,
            "primary": {"model": options["primary"], "feature_set": options["primary_set"]},
            "cv": {k: options[k] for k in ("outer_folds", "repeats", "inner_folds", "trials")},
            "calibration": options["calibration"],
            "harmonise": "combat" if options["combat"] else "none",
            "threshold": {
                "rule": options["threshold_rule"],
                "target": options["sensitivity_target"],
                "indeterminate_specificity": options["indeterminate_specificity"],
            },
            "seed": options["seed"],
            "alarms": {
                "permute_labels": options["permute_labels"],
                "noise": options["noise_alarm"],
            },
            **_run_settings(options),
        }
    )


def _print_summary(metrics: dict[str, Any], out: Path) -> None:
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
