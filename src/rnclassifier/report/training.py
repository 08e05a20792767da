"""What a training experiment adds to its primary model's evaluation report: the model
comparison, SHAP, Table 1 by pathology and the TRIPOD+AI / CLAIM items, filled in."""

from __future__ import annotations

import base64
from typing import Any

from rnclassifier.report import plots
from rnclassifier.report.html import _environment, ci
from rnclassifier.stats.descriptive import format_entry


def search_text(model: str, trials: int) -> str:
    """'30 optuna TPE trials' or 'a fixed grid of up to 18 settings'."""
    from rnclassifier.modeling.spaces import grid, n_trials

    if grid(model, 60) is None:
        return f"{trials} optuna TPE trials"
    return f"a fixed grid of up to {n_trials(model, trials, 60)} settings"


def rule_text(rule: dict[str, Any]) -> str:
    if rule["kind"] == "sensitivity":
        return f"tumour sensitivity target {rule['target']:g}"
    return "Youden's J"


def training_sections(
    metrics: dict[str, Any],
    *,
    shap_summary: list[dict[str, Any]] | None,
    shap_method: dict[str, Any] | None,
    table_one: dict[str, Any],
    tripod: list[tuple[str, str]],
) -> list[dict[str, str]]:
    """One extra section of HTML (its own headings), for `render_evaluation_html`."""
    covariates = list(next(iter(table_one.values()))["covariates"])
    html = (
        _environment()
        .get_template("training_sections.html.j2")
        .render(
            models=metrics["models"],
            alarms=metrics.get("leakage_alarms", {}),
            budget=metrics["budget"],
            rule_text=rule_text(metrics["budget"]["threshold_rule"]),
            ci=ci,
            shap=bool(shap_summary),
            shap_image=base64.b64encode(plots.shap_figure(shap_summary)).decode("ascii")
            if shap_summary
            else "",
            shap_method=shap_method or {},
            table_one=table_one,
            covariates=covariates,
            describe=format_entry,
            tripod=tripod,
        )
    )
    return [{"title": "", "html": html}]


def tripod_items(
    metrics: dict[str, Any],
    *,
    n_lesions: int,
    n_patients: int,
    n_tumour: int,
    n_candidates: int,
    missing: dict[str, Any],
    sample_size: dict[str, Any] | None,
    synthetic: bool,
    technical_failures: int = 0,
    cleaning: list[str] | None = None,
) -> list[tuple[str, str]]:
    """The checklist items a reader of a radiomics paper looks for, as (item, text)."""
    budget = metrics["budget"]
    primary = metrics["primary"]
    items = _data_items(synthetic, n_lesions, n_patients, n_tumour, n_candidates,
                        technical_failures)  # fmt: skip
    if sample_size is not None:
        items.append(_sample_size_item(sample_size, n_lesions))
    items += [
        (
            "Missing data",
            f"{missing['n_features_with_missing']} of {missing['n_features']} candidate features "
            f"have missing values (at most {missing['max_fraction']:.0%} of lesions); median "
            "imputation fitted inside each training fold",
        ),
        (
            "Table as read",
            "; ".join(cleaning) if cleaning else "nothing dropped or changed on reading",
        ),
        (
            "Validation scheme",
            f"nested cross-validation grouped by patient: outer {budget['outer_folds']} folds x "
            f"{budget['repeats']} repeats (stratified group k-fold), inner "
            f"{budget['inner_folds']}-fold grouped CV tuning the primary by "
            f"{search_text(primary['model'], budget['trials'])} (seed {budget['seed']}); "
            "internal validation only",
        ),
        (
            "Model and predictors",
            f"primary {primary['model']} on the '{primary['feature_set']}' feature set, "
            "declared before the run; others are secondary comparisons",
        ),
        (
            "Calibration and threshold",
            f"{budget['calibration']} calibration and the threshold rule "
            f"({rule_text(budget['threshold_rule'])}) fitted on grouped inner out-of-fold "
            "probabilities; never on the lesions they are judged on",
        ),
        (
            "Performance measures",
            "AUC with a patient-cluster bootstrap 95% CI; sensitivity and specificity at the rule "
            "with CIs; calibration and decision curves above",
        ),
        ("Config", f"SHA-256 {metrics.get('config_sha256') or 'none (command-line run)'}"),
    ]
    return items


def _data_items(
    synthetic: bool,
    n_lesions: int,
    n_patients: int,
    n_tumour: int,
    n_candidates: int,
    technical_failures: int,
) -> list[tuple[str, str]]:
    """Where the data come from, the outcome, and how many events there are per feature."""
    n_necrosis = n_lesions - n_tumour
    events = min(n_tumour, n_necrosis)
    return [
        (
            "Data source",
            "SYNTHETIC cohort from rnclassifier synth (not clinical evidence)"
            if synthetic
            else "the feature table named in the experiment config (hash in metrics.json)",
        ),
        (
            "Outcome and reference standard",
            "pathology of the resected lesion: tumour (any viable tumour cells) vs necrosis; "
            "positive class tumour",
        ),
        (
            "Sample size",
            f"{n_lesions} lesions of {n_patients} patients; {n_tumour} tumour, "
            f"{n_necrosis} necrosis"
            + (
                f"; {technical_failures} more lesion(s) left out as technical failures of "
                "feature extraction (features missing)"
                if technical_failures
                else ""
            ),
        ),
        (
            "Events per candidate feature",
            f"{events} events (the smaller class) over {n_candidates} candidate features of the "
            f"primary set = {events / max(n_candidates, 1):.2f}",
        ),
    ]


def _sample_size_item(sample_size: dict[str, Any], n_lesions: int) -> tuple[str, str]:
    return (
        "Minimum sample size (Riley et al. 2020)",
        f"{sample_size['n']} lesions ({sample_size['events']:.0f} events) for "
        f"{sample_size['parameters']} candidate parameters at prevalence "
        f"{sample_size['prevalence']:.2f}, anticipated C = "
        f"{sample_size['c_statistic']:.2f} (this run's nested-CV AUC; Cox-Snell R² "
        f"{sample_size['r2_cs']:.3f}); this cohort has {n_lesions}: "
        + ("enough" if n_lesions >= sample_size["n"] else "too few, expect overfitting")
        + ". Feature selection inside the folds does not remove this requirement.",
    )
