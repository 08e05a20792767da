"""Figures of the evaluation report, as PNG bytes (inline in the HTML, readable offline)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; set here, where the figures are made, not at package import
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from rnclassifier.stats.bootstrap import bootstrap_samples

MODEL, READERS, GREY = "#1f5fa8", "#c0392b", "#7f7f7f"


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def roc_figure(
    y: np.ndarray,
    score: np.ndarray,
    groups: np.ndarray,
    metrics: dict[str, Any],
    n_resamples: int = 500,
    seed: int = 0,
) -> bytes:
    """ROC with a patient-cluster bootstrap band and the radiologists' operating point."""
    grid = np.linspace(0, 1, 101)
    curves = []
    for rows in bootstrap_samples(groups, n_resamples, seed):
        if 0 < y[rows].sum() < len(rows):
            fpr, tpr, _ = roc_curve(y[rows], score[rows])
            curves.append(np.interp(grid, fpr, tpr))
    low, high = np.percentile(curves, [2.5, 97.5], axis=0)
    fpr, tpr, _ = roc_curve(y, score)
    figure, axis = plt.subplots(figsize=(4.6, 4.4))
    axis.fill_between(grid, low, high, color=MODEL, alpha=0.18, lw=0, label="95% band (patients)")
    estimate = metrics["discrimination"]["auc"]
    axis.plot(
        fpr,
        tpr,
        color=MODEL,
        lw=2,
        label=f"model, AUC {estimate['estimate']:.2f} "
        f"({estimate['low']:.2f}-{estimate['high']:.2f})",
    )
    point = metrics["model_at_threshold"]
    axis.plot(
        1 - point["specificity"]["estimate"],
        point["sensitivity"]["estimate"],
        "o",
        color=MODEL,
        mfc="white",
        ms=7,
        label="model at threshold",
    )
    readers = metrics.get("radiologists", {}).get("on_read_lesions")
    if readers:
        axis.plot(
            1 - readers["specificity"]["estimate"],
            readers["sensitivity"]["estimate"],
            "s",
            color=READERS,
            ms=8,
            label="radiologists (lesions read)",
        )
    axis.plot([0, 1], [0, 1], ls=":", color=GREY, lw=1)
    axis.set(
        xlabel="1 - specificity (necrosis called tumour)",
        ylabel="sensitivity for tumour",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    axis.legend(loc="lower right", fontsize=7.5, frameon=False)
    return _png(figure)


def calibration_figure(metrics: dict[str, Any]) -> bytes:
    curve = metrics["calibration"]["curve"]
    figure, axis = plt.subplots(figsize=(4.4, 4.2))
    axis.plot([0, 1], [0, 1], ls=":", color=GREY, lw=1, label="ideal")
    axis.plot(
        curve["smooth_predicted"], curve["smooth_observed"], color=MODEL, lw=2, label="LOWESS"
    )
    sizes = 10 + 60 * np.asarray(curve["bin_count"]) / max(curve["bin_count"])
    axis.scatter(
        curve["bin_predicted"],
        curve["bin_observed"],
        s=sizes,
        color=MODEL,
        alpha=0.6,
        label="deciles of prediction",
    )
    summary = metrics["calibration"]
    axis.set(
        xlabel="predicted probability of tumour",
        ylabel="observed fraction tumour",
        xlim=(0, 1),
        ylim=(-0.02, 1.02),
        title=f"intercept {summary['intercept']:.2f}, slope {summary['slope']:.2f}, "
        f"Brier {summary['brier']:.3f}",
    )
    axis.title.set_fontsize(9)
    axis.legend(loc="upper left", fontsize=7.5, frameon=False)
    return _png(figure)


def decision_figure(metrics: dict[str, Any]) -> bytes:
    curve = metrics["decision_curve"]
    t = np.asarray(curve["threshold"])
    figure, axis = plt.subplots(figsize=(5.2, 3.8))
    axis.plot(t, curve["model"], color=MODEL, lw=2, label="model")
    if "radiologists" in curve:
        axis.plot(
            t, curve["radiologists"], color=READERS, lw=1.6, label="radiologists (unread treated)"
        )
    axis.plot(t, curve["treat_all"], color=GREY, lw=1.2, label="re-irradiate all")
    axis.plot(t, curve["treat_none"], color="black", lw=1, ls="--", label="re-irradiate none")
    top = max(max(curve["model"]), max(curve["treat_all"])) * 1.1 + 0.01
    axis.set(
        xlabel="threshold probability of tumour for re-irradiation",
        ylabel="net benefit",
        ylim=(-0.05, top),
        xlim=(t.min(), t.max()),
    )
    axis.legend(fontsize=7.5, frameon=False)
    return _png(figure)


def shap_figure(summary: list[dict[str, Any]], top: int = 15) -> bytes:
    """Mean |SHAP| of the final model's features, largest at the top."""
    rows = summary[:top][::-1]
    figure, axis = plt.subplots(figsize=(6.4, 0.32 * len(rows) + 1.0))
    colours = [READERS if r["mean_shap"] >= 0 else MODEL for r in rows]  # red: tumour
    axis.barh([r["feature"] for r in rows], [r["mean_abs_shap"] for r in rows], color=colours)
    axis.set_xlabel("mean |SHAP| (model output scale)")
    axis.tick_params(axis="y", labelsize=8)
    axis.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def lesion_slices_figure(planes: dict[str, Any]) -> bytes:
    """Rows: sequences; columns: axial, coronal, sagittal; the mask outlined in yellow."""
    sequences = [k for k in planes if k not in ("mask", "aspect")]
    views = ("axial", "coronal", "sagittal")
    figure, axes = plt.subplots(
        len(sequences), 3, figsize=(7.2, 2.5 * len(sequences)), squeeze=False
    )
    for row, sequence in enumerate(sequences):
        for col, view in enumerate(views):
            axis = axes[row][col]
            image = planes[sequence][view]
            low, high = np.nanpercentile(image, [1, 99])
            axis.imshow(
                image,
                cmap="gray",
                vmin=low,
                vmax=high,
                aspect=planes["aspect"][view],
                interpolation="nearest",
            )
            mask = planes["mask"][view]
            if mask.any():
                axis.contour(mask, levels=[0.5], colors="#ffd400", linewidths=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(view, fontsize=9)
            if col == 0:
                axis.set_ylabel(sequence.upper(), fontsize=9)
    figure.tight_layout()
    return _png(figure)


def probability_figure(result: dict[str, Any]) -> bytes:
    """The calibrated probability on a 0-1 scale against the threshold, with the ensemble's
    range."""
    figure, axis = plt.subplots(figsize=(6.4, 1.15))
    p = result["probability"]
    threshold = result["threshold"]["value"]
    zone = result.get("indeterminate_zone") or {"low": threshold, "high": threshold}
    low, high = zone["low"], zone["high"]
    axis.axvspan(0, low, color="#e8eef7")
    if high > low:
        axis.axvspan(low, high, color="#eeeeee")
        axis.axvline(high, color="black", linewidth=1.2)
        axis.text(high, 0.55, f" {high:.2f}", fontsize=8, va="bottom")
        axis.text((low + high) / 2, -0.6, "indeterminate", fontsize=8, color=GREY, va="top",
                  ha="center")  # fmt: skip
    axis.axvspan(high, 1, color="#f7e8e8")
    spread = result.get("model_variability")
    if spread:
        axis.plot(
            [spread["min"], spread["max"]],
            [0, 0],
            color=GREY,
            linewidth=6,
            solid_capstyle="butt",
            alpha=0.6,
            label="CV ensemble range",
        )
    axis.plot([p], [0], marker="o", markersize=11, color=MODEL, label="probability")
    axis.axvline(threshold, color="black", linewidth=1.2)
    axis.text(threshold, 0.55, f" threshold {threshold:.2f}", fontsize=8, va="bottom")
    axis.text(0.01, -0.6, "necrosis", fontsize=8, color="#1f5fa8", va="top")
    axis.text(0.99, -0.6, "tumour", fontsize=8, color=READERS, va="top", ha="right")
    axis.set_xlim(0, 1)
    axis.set_ylim(-1, 1)
    axis.set_yticks([])
    axis.set_xlabel("calibrated probability of tumour")
    axis.spines[["top", "right", "left"]].set_visible(False)
    axis.legend(loc="upper left", fontsize=7, frameon=False, ncol=2, bbox_to_anchor=(0, 1.45))
    return _png(figure)


def waterfall_figure(result: dict[str, Any]) -> bytes:
    """SHAP waterfall: from the model's base value, each top feature's push in turn, then the
    rest together, to this case's output. Red pushes towards tumour, blue towards necrosis."""
    top = result["top_contributions"]
    base, output = result["shap"]["base_value"], result["shap"]["output_value"]
    steps = [
        (
            f"{t['label']} = {t['value']:.3g}"
            if t["value"] is not None
            else f"{t['label']} (missing)",
            t["shap"],
        )
        for t in top
    ]
    rest = output - base - sum(t["shap"] for t in top)
    steps.append(("all other features", rest))
    figure, axis = plt.subplots(figsize=(6.0, 0.36 * len(steps) + 1.0))
    level = base
    for i, (_, push) in enumerate(steps):
        axis.barh(len(steps) - 1 - i, push, left=level, color=READERS if push > 0 else MODEL)
        level += push
    axis.set_yticks(range(len(steps)), [label for label, _ in steps[::-1]], fontsize=8)
    axis.axvline(base, color=GREY, linewidth=0.8, linestyle=":")
    axis.axvline(output, color="black", linewidth=0.8)
    axis.set_xlabel(f"{result['shap']['output']}: base {base:.2f} -> this case {output:.2f}")
    axis.spines[["top", "right"]].set_visible(False)
    return _png(figure)
