"""The evaluation report: one self-contained HTML file (inline CSS and PNGs, no scripts, no
external URLs), written atomically beside `metrics.json`."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from rnclassifier.atomic import write_json, write_text
from rnclassifier.report import plots
from rnclassifier.version import __version__

INTENDED_USE = (
    "Research use only, not a diagnosis. A model trained on resected lesions estimates "
    "P(tumour | an enlarging post-SRS lesion selected for resection), at its training cohort's "
    "prevalence."
)
METRIC_LABELS = {
    "sensitivity": "Sensitivity (tumour called tumour)",
    "specificity": "Specificity (necrosis called necrosis; the necrosis view's sensitivity)",
    "ppv": "PPV (called tumour, is tumour)",
    "npv": "NPV (called necrosis, is necrosis)",
    "accuracy": "Accuracy",
}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rnclassifier.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )


def ci(entry: dict[str, Any], digits: int = 2) -> str:
    """'0.87 (0.81-0.92)' from an interval dict; 'n/a' where undefined."""
    estimate = entry.get("estimate")
    low, high = entry.get("low"), entry.get("high")
    if "ci" in entry:
        low, high = entry["ci"]
    if estimate is None or not math.isfinite(estimate):
        return "n/a"
    if low is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{estimate:.{digits}f}"
    return f"{estimate:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def pvalue(p: float) -> str:
    """'= 0.034', or '< 0.001' below what the test can resolve or print."""
    return "< 0.001" if p < 0.001 else f"= {p:.2g}" if p < 0.1 else f"= {p:.2f}"


def evaluation_context(metrics: dict[str, Any], data: Any) -> dict[str, Any]:
    """What `_evaluation_body.html.j2` needs for one evaluation: its metrics and figures."""
    scored = np.isfinite(data.score)
    figures = {
        "roc": plots.roc_figure(data.y[scored], data.score[scored], data.groups[scored], metrics)
    }
    if "calibration" in metrics:
        figures["calibration"] = plots.calibration_figure(metrics)
        figures["decision"] = plots.decision_figure(metrics)
    return {
        "metrics": metrics,
        "images": {k: base64.b64encode(v).decode("ascii") for k, v in figures.items()},
        "confusion": _confusion(metrics),
    }


def render_evaluation_html(
    metrics: dict[str, Any],
    data: Any,
    *,
    title: str,
    synthetic: bool = False,
    extra_sections: list[dict[str, str]] | None = None,
) -> str:
    """The report's HTML: the evaluation, plus sections that training adds."""
    return (
        _environment()
        .get_template("evaluation.html.j2")
        .render(
            title=title,
            synthetic=synthetic,
            intended_use=INTENDED_USE,
            labels=METRIC_LABELS,
            ci=ci,
            pvalue=pvalue,
            version=__version__,
            extra_sections=extra_sections or [],
            **evaluation_context(metrics, data),
        )
    )


def write_evaluation_report(
    out_dir: str | Path,
    metrics: dict[str, Any],
    data: Any,
    *,
    title: str,
    synthetic: bool = False,
) -> Path:
    """Write `out_dir/metrics.json` and `out_dir/report.html`; return the report's path."""
    html = render_evaluation_html(metrics, data, title=title, synthetic=synthetic)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", metrics)
    return write_text(out_dir / "report.html", html)


def _confusion(metrics: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Confusion counts (with the indeterminate / unread column) for the model and readers."""

    def table(point: dict[str, Any], n_tumour: int, n_necrosis: int) -> dict[str, int]:
        tp, positives = point["sensitivity"]["count"]
        tn, negatives = point["specificity"]["count"]
        return {
            "tp": tp,
            "fn": positives - tp,
            "tn": tn,
            "fp": negatives - tn,
            "tumour_none": n_tumour - positives,
            "necrosis_none": n_necrosis - negatives,
        }

    n = metrics["n_lesions"]
    n_tumour = round(metrics["tumour_fraction"] * n)
    out = {"model": table(metrics["model_at_threshold"], n_tumour, n - n_tumour)}
    if "radiologists" in metrics:
        # On the lesions read; the rest are the unread column.
        on_read = metrics["radiologists"]["on_read_lesions"]
        out["radiologists"] = table(on_read, n_tumour, n - n_tumour)
    return out
