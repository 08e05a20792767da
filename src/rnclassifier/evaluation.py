"""Evaluate any model's predictions against pathology and radiologists.

`evaluate_predictions` turns a table of per-lesion predictions (ours or another tool's) into the
metrics of `metrics.json`: discrimination, operating points, the comparison with radiologists,
calibration, decision curves and a STARD-style flow. Headline intervals come from the
patient-cluster bootstrap; lesion-level tests are labelled as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS
from rnclassifier.errors import InputError
from rnclassifier.stats.bootstrap import DEFAULT_RESAMPLES, bootstrap_values, percentile_interval
from rnclassifier.stats.calibration import calibration_curve, calibration_summary
from rnclassifier.stats.decision import decision_curve
from rnclassifier.stats.discrimination import (
    auc,
    auc_interval,
    delong_interval,
    delong_paired,
    paired_auc_bootstrap,
)
from rnclassifier.stats.threshold import calls_at, mcnemar_test, operating_point

POST_HOC_LABEL = (
    "post hoc, optimistic: the threshold matching the radiologists is chosen on the evaluated "
    "lesions; not the comparison with the radiologists"
)
DECISION_THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.01), 2)
BOOTSTRAP_NOTE = (
    "Intervals resample patients (all lesions of a patient together). Resampling out-of-fold "
    "predictions leaves out the variability of training itself (Bates, Hastie & Tibshirani 2023)."
)


@dataclass(frozen=True)
class EvaluationInputs:
    """Validated columns: y (1 = tumour), score, patient groups, radiologist reads and scores,
    and optionally a second model's score to compare with."""

    y: np.ndarray
    score: np.ndarray  # NaN = technical failure (no prediction)
    groups: np.ndarray
    reads: np.ndarray | None  # 1 tumour, 0 necrosis, NaN unread
    radiologist_score: np.ndarray | None
    is_probability: bool
    other_score: np.ndarray | None = None
    other_name: str | None = None


def read_predictions(
    path: str | Path,
    *,
    score: str = "probability",
    label: str = "pathology",
    group: str = "patient_id",
    radiologist: str | None = "radiologist_read",
    radiologist_score: str | None = "radiologist_score",
    compare: str | None = None,
) -> EvaluationInputs:
    """Read a predictions CSV; every problem is one line naming the file, row or column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({type(exc).__name__})") from None
    frame.columns = [c.strip() for c in frame.columns]
    needed = (score, label, group, *([compare] if compare else []))
    problems = [f"{path}: missing column {c!r}" for c in needed if c not in frame]
    if problems:
        raise InputError(problems)
    if frame.empty:
        raise InputError(f"{path}: has a header but no rows")

    def row(i: int) -> str:
        return f"{path}: row {i + 2}"

    y = np.full(len(frame), np.nan)
    for i, value in enumerate(frame[label].str.strip().str.lower()):
        if value in (POSITIVE_CLASS, "1", "1.0"):
            y[i] = 1
        elif value in (NEGATIVE_CLASS, "0", "0.0"):
            y[i] = 0
        else:
            problems.append(f"{row(i)}, column {label}: {value!r} is not tumor / necrosis / 1 / 0")
    scores = _numbers(frame[score], score, row, problems, allow_blank=True)
    groups = frame[group].str.strip().to_numpy(dtype=object)
    problems += [f"{row(i)}, column {group}: empty" for i, g in enumerate(groups) if not g]
    reads = None
    if radiologist and radiologist in frame:
        reads = np.full(len(frame), np.nan)
        for i, value in enumerate(frame[radiologist].str.strip().str.lower()):
            if value in (POSITIVE_CLASS, "1"):
                reads[i] = 1
            elif value in (NEGATIVE_CLASS, "0"):
                reads[i] = 0
            elif value:
                problems.append(
                    f"{row(i)}, column {radiologist}: {value!r} is not tumor / necrosis / blank"
                )
    radiologist_scores = None
    if radiologist_score and radiologist_score in frame:
        radiologist_scores = _numbers(
            frame[radiologist_score], radiologist_score, row, problems, allow_blank=True
        )
    other = _numbers(frame[compare], compare, row, problems, allow_blank=True) if compare else None
    if problems:
        raise InputError(problems)
    if len(np.unique(y)) < 2:
        raise InputError(f"{path}: column {label} needs both tumour and necrosis lesions")
    finite = scores[np.isfinite(scores)]
    return EvaluationInputs(
        y=y.astype(int),
        score=scores,
        groups=groups,
        reads=reads,
        radiologist_score=radiologist_scores,
        is_probability=bool(finite.size and finite.min() >= 0 and finite.max() <= 1),
        other_score=other,
        other_name=compare,
    )


def _numbers(
    column: pd.Series, name: str, row, problems: list[str], *, allow_blank: bool
) -> np.ndarray:
    values = np.full(len(column), np.nan)
    for i, raw in enumerate(column.str.strip()):
        if raw == "" and allow_blank:
            continue
        try:
            values[i] = float(raw)
        except ValueError:
            problems.append(f"{row(i)}, column {name}: {raw!r} is not a number")
            continue
        if not math.isfinite(values[i]):
            problems.append(f"{row(i)}, column {name}: {raw!r} is not a finite number")
    return values


def evaluate_predictions(
    data: EvaluationInputs,
    thresholds: tuple[float, ...] = (0.5,),
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    calls: np.ndarray | None = None,
    calls_from: str | None = None,
) -> dict[str, Any]:
    """All metrics of `metrics.json`. Lesions without a score are technical failures: counted,
    and treated as indeterminate at thresholds; discrimination uses the lesions with a score.
    `calls` (1, 0, NaN per lesion) replaces the calls at `thresholds` when each lesion's call
    was made at its own pre-specified threshold (training's outer folds), `calls_from` says how.
    """
    if not 1 <= len(thresholds) <= 2:
        raise InputError("give one threshold, or two for an indeterminate zone")
    low, high = (thresholds[0], thresholds[-1])
    if low > high:
        raise InputError(f"thresholds must be in increasing order, got {low} and {high}")
    y, score, groups = data.y, data.score, data.groups
    scored = np.isfinite(score)
    ys, ss, gs = y[scored], score[scored], groups[scored]
    kw = {"n_resamples": n_resamples, "seed": seed}

    metrics: dict[str, Any] = {
        "positive_class": POSITIVE_CLASS,
        "n_lesions": len(y),
        "n_patients": len(set(groups)),
        "tumour_fraction": float(y.mean()),
        "flow": {
            "lesions": len(y),
            "technical_failures": int((~scored).sum()),
            "scored": int(scored.sum()),
            "read_by_radiologists": int(np.isfinite(data.reads).sum())
            if data.reads is not None
            else None,
        },
        "notes": [BOOTSTRAP_NOTE],
    }
    metrics["discrimination"] = {
        "auc": auc_interval(ys, ss, gs, **kw).as_dict(),
        "auc_delong_lesion_level": delong_interval(ys, ss).as_dict(),
    }
    if data.other_score is not None:
        both = scored & np.isfinite(data.other_score)
        metrics["discrimination"]["versus"] = {
            "column": data.other_name,
            "n_lesions": int(both.sum()),
            "bootstrap": paired_auc_bootstrap(
                y[both], score[both], data.other_score[both], groups[both], **kw
            ).as_dict(),
            "delong_lesion_level": delong_paired(
                y[both], score[both], data.other_score[both]
            ).as_dict(),
        }
    if calls is None:
        calls = calls_at(score, low, high)
        metrics["thresholds"] = list(thresholds)
    else:
        calls = np.where(scored, np.asarray(calls, float), np.nan)
        metrics["thresholds"] = calls_from
    metrics["model_at_threshold"] = operating_point(y, calls, groups, **kw).as_dict()
    if data.is_probability:
        metrics["calibration"] = calibration_summary(ys, ss) | {"curve": calibration_curve(ys, ss)}
        metrics["decision_curve"] = decision_curve(
            ys,
            ss,
            DECISION_THRESHOLDS,
            reads=data.reads[scored] if data.reads is not None else None,
        )
    else:
        metrics["notes"].append(
            "Scores are not probabilities in [0, 1]: no calibration or decision curve."
        )
    if data.reads is not None:
        metrics["radiologists"] = _against_radiologists(data, calls, **kw)
    return metrics


def _against_radiologists(
    data: EvaluationInputs, calls: np.ndarray, *, n_resamples: int, seed: int
) -> dict[str, Any]:
    y, score, groups, reads = data.y, data.score, data.groups, data.reads
    kw = {"n_resamples": n_resamples, "seed": seed}
    read = np.isfinite(reads)
    out: dict[str, Any] = {
        "read_fraction": float(read.mean()),
        "on_read_lesions": operating_point(y[read], reads[read], groups[read], **kw).as_dict(),
        "unread_as_tumour": operating_point(y, np.where(read, reads, 1.0), groups, **kw).as_dict(),
        "unread_as_necrosis": operating_point(
            y, np.where(read, reads, 0.0), groups, **kw
        ).as_dict(),
        "model_on_read_lesions": operating_point(
            y[read], calls[read], groups[read], **kw
        ).as_dict(),
    }
    out |= _paired_within_class(y, calls, reads, read & np.isfinite(calls))
    # Post hoc: the threshold matching the radiologists is chosen on these very lesions, so the
    # figure flatters the model; a pre-specified comparison needs a threshold fixed before
    # (training folds, or a frozen bundle's `radiologist_matched`: see `matched_comparison`).
    scored = read & np.isfinite(score)
    yr, sr, gr, rr = y[scored], score[scored], groups[scored], reads[scored]
    reader_sensitivity = float((rr[yr == 1] == 1).mean())
    reader_specificity = float((rr[yr == 0] == 0).mean())

    def specificity_at_sensitivity(rows: np.ndarray) -> float:
        return _at_matched(yr[rows], sr[rows], sensitivity=reader_sensitivity)

    def sensitivity_at_specificity(rows: np.ndarray) -> float:
        return _at_matched(yr[rows], sr[rows], specificity=reader_specificity)

    full = np.arange(len(yr))
    out["post_hoc_matched"] = {
        "label": POST_HOC_LABEL,
        "model_specificity_at_radiologists_sensitivity": {
            "radiologists_sensitivity": reader_sensitivity,
            **percentile_interval(
                specificity_at_sensitivity(full),
                bootstrap_values(specificity_at_sensitivity, gr, **kw),
            ).as_dict(),
        },
        "model_sensitivity_at_radiologists_specificity": {
            "radiologists_specificity": reader_specificity,
            **percentile_interval(
                sensitivity_at_specificity(full),
                bootstrap_values(sensitivity_at_specificity, gr, **kw),
            ).as_dict(),
        },
    }
    if data.radiologist_score is not None:
        both_scores = np.isfinite(score) & np.isfinite(data.radiologist_score)
        comparison = paired_auc_bootstrap(
            y[both_scores],
            score[both_scores],
            data.radiologist_score[both_scores],
            groups[both_scores],
            **kw,
        )
        out["auc_model_vs_radiologist_score"] = comparison.as_dict()
        out["auc_radiologist_score"] = auc(y[both_scores], data.radiologist_score[both_scores])
    return out


def _paired_within_class(
    y: np.ndarray, calls: np.ndarray, reads: np.ndarray, rows: np.ndarray
) -> dict[str, Any]:
    """Within each class, the model's and the radiologists' correct calls on the same lesions,
    with McNemar's paired test (lesion level)."""
    out: dict[str, Any] = {}
    for name, cls in (("within_tumour", 1), ("within_necrosis", 0)):
        chosen = rows & (y == cls)
        if chosen.sum() == 0:
            continue
        model_correct = calls[chosen] == cls
        reader_correct = reads[chosen] == cls
        out[name] = {
            "n": int(chosen.sum()),
            "model_correct": float(model_correct.mean()),
            "radiologists_correct": float(reader_correct.mean()),
            "mcnemar_lesion_level": mcnemar_test(model_correct, reader_correct),
        }
    return out


def matched_comparison(
    y: np.ndarray,
    calls: np.ndarray,
    groups: np.ndarray,
    reads: np.ndarray,
    *,
    threshold_source: str,
    once: np.ndarray | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The model's calls at a threshold fixed before these lesions were seen (training folds or
    a frozen bundle) beside the radiologists': on the lesions they read (the paired comparison,
    McNemar within class) and on all lesions. `once` marks one row per lesion for the paired
    test when rows repeat (pooled CV repeats); the operating points resample patients."""
    y, calls, reads = np.asarray(y, int), np.asarray(calls, float), np.asarray(reads, float)
    groups = np.asarray(groups)
    kw = {"n_resamples": n_resamples, "seed": seed}
    read = np.isfinite(reads)
    paired = read & np.isfinite(calls) & (np.ones(len(y), bool) if once is None else once)
    return {
        "threshold_source": threshold_source,
        "model_on_read_lesions": operating_point(
            y[read], calls[read], groups[read], **kw
        ).as_dict(),
        "radiologists_on_read_lesions": operating_point(
            y[read], reads[read], groups[read], **kw
        ).as_dict(),
        "model_on_all_lesions": operating_point(y, calls, groups, **kw).as_dict(),
        **_paired_within_class(y, calls, reads, paired),
    }


def _at_matched(
    y: np.ndarray,
    score: np.ndarray,
    *,
    sensitivity: float | None = None,
    specificity: float | None = None,
) -> float:
    """The model's specificity at the highest threshold reaching `sensitivity`, or its
    sensitivity at the lowest threshold reaching `specificity` (calls: score >= threshold)."""
    y = np.asarray(y, bool)
    if y.all() or not y.any():
        return float("nan")
    positives, negatives = np.sort(score[y]), np.sort(score[~y])
    thresholds = np.unique(score)
    sens = 1 - np.searchsorted(positives, thresholds, side="left") / len(positives)
    spec = np.searchsorted(negatives, thresholds, side="left") / len(negatives)
    if sensitivity is not None:
        reaching = np.flatnonzero(sens >= sensitivity - 1e-12)
        return float(spec[reaching[-1]]) if reaching.size else float("nan")
    reaching = np.flatnonzero(spec >= specificity - 1e-12)
    return float(sens[reaching[0]]) if reaching.size else float("nan")
