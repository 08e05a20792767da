"""The external-validation report: a summary of every cohort, then one section per cohort with
the evaluation (discrimination, threshold metrics, calibration, decision curves, radiologists)
and what validation adds (recalibration beside the frozen result, sensitivity analyses,
subgroups, case mix and shift)."""

from __future__ import annotations

from typing import Any

from rnclassifier.report.html import (
    INTENDED_USE,
    METRIC_LABELS,
    _environment,
    ci,
    evaluation_context,
    pvalue,
)
from rnclassifier.stats.descriptive import format_entry
from rnclassifier.stats.discrimination import MIN_PER_CLASS
from rnclassifier.version import __version__


def _sections(metrics: dict[str, Any]) -> list[dict[str, str]]:
    smd = sorted(
        metrics["shift"]["standardised_mean_difference"].items(),
        key=lambda item: -abs(item[1]),
    )[:12]
    covariates = [
        c
        for c in metrics["case_mix"]["external"]["all"]["covariates"]
        if c in metrics["case_mix"]["training"]["all"]["covariates"]
    ]
    html = (
        _environment()
        .get_template("validation_sections.html.j2")
        .render(
            m=metrics,
            ci=ci,
            smd=smd,
            covariates=covariates,
            describe=format_entry,
            min_per_class=MIN_PER_CLASS,
        )
    )
    return [{"title": "", "html": html}]


def render_validation_html(
    document: dict[str, Any], sections: dict[str, tuple[dict[str, Any], Any]], *, synthetic: bool
) -> str:
    cohorts = [
        {"name": name, "extra_sections": _sections(metrics), **evaluation_context(metrics, data)}
        for name, (metrics, data) in sections.items()
    ]
    return (
        _environment()
        .get_template("validation.html.j2")
        .render(
            title=f"External validation of the frozen model {document['model']['name']}",
            document=document,
            cohorts=cohorts,
            synthetic=synthetic,
            intended_use=INTENDED_USE,
            recalibrated=any("recalibrated" in m for m, _ in sections.values()),
            labels=METRIC_LABELS,
            ci=ci,
            pvalue=pvalue,
            version=__version__,
        )
    )
