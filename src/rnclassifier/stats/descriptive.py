"""Table 1: the cohort's clinical make-up by pathology, as aggregates only.

Continuous covariates as median and interquartile range, binary and one-hot ones as counts and
percentages; each with the number missing. Reports and model bundles carry this, never rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _is_binary(values: pd.Series) -> bool:
    present = values.dropna()
    return len(present) > 0 and bool(present.isin([0, 1]).all())


def _describe(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().astype(float)
    missing = int(values.isna().sum())
    if _is_binary(values):
        count = int(present.sum())
        return {
            "kind": "binary",
            "count": count,
            "percent": 100.0 * count / len(present),
            "n_missing": missing,
        }
    if present.empty:
        return {"kind": "continuous", "median": None, "q1": None, "q3": None, "n_missing": missing}
    q1, median, q3 = np.quantile(present, [0.25, 0.5, 0.75])
    return {
        "kind": "continuous",
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "n_missing": missing,
    }


def table_one(
    table: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    columns: Sequence[str],
    *,
    labels: tuple[str, str] = ("necrosis", "tumor"),
) -> dict[str, Any]:
    """Aggregates of `columns` overall and for y == 0 and y == 1 (named by `labels`)."""
    y = np.asarray(y, int)
    groups = np.asarray(groups)
    strata = {"all": np.ones(len(y), bool), labels[1]: y == 1, labels[0]: y == 0}
    return {
        name: {
            "n_lesions": int(rows.sum()),
            "n_patients": len(np.unique(groups[rows])),
            "covariates": {c: _describe(pd.Series(table[c].to_numpy()[rows])) for c in columns},
        }
        for name, rows in strata.items()
    }


def format_entry(entry: dict[str, Any]) -> str:
    """'54 (47–63)' or '12 (29%)', with the number missing when any."""
    if entry["kind"] == "binary":
        text = f"{entry['count']} ({entry['percent']:.0f}%)"
    elif entry["median"] is None:
        text = "–"
    else:
        text = f"{entry['median']:.3g} ({entry['q1']:.3g}–{entry['q3']:.3g})"
    if entry["n_missing"]:
        text += f"; {entry['n_missing']} missing"
    return text
