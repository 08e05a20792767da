"""A feature table in: any tool's (ID, group, label, numeric features), or rnclassifier's own
with its extraction sidecar, mask perturbations and the columns carried beside the features.
Reserved columns (site, radiologist reads and scores, pathology detail, reference standard,
days to surgery) are never features.

Real tables are untidy; what reading does about it (`TableCleaning`, counted in the report):
pyradiomics' batch output keeps its `diagnostics_*` columns and the batch input's Image / Mask /
Label / Label_channel columns, dropped; +-inf values become missing (imputed inside each
training fold, like any missing value); constant and all-missing columns are counted and left
to the fold pipeline, which drops them. IDs are text as written ("007" stays "007"). A column
name written twice, a blank ID and labels that are not two classes are errors."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS
from rnclassifier.columns import NON_PREDICTOR_COLUMNS, ColumnKind, columns_of_kind
from rnclassifier.errors import InputError
from rnclassifier.modeling.pipeline import SideTables

logger = logging.getLogger(__name__)

#: Labels read as tumour (1) and necrosis (0), after stripping and lower-casing.
LABELS = {POSITIVE_CLASS: 1, NEGATIVE_CLASS: 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0, "true": 1,
          "false": 0}  # fmt: skip
#: pyradiomics' batch output: per-case diagnostics (text, versions, hashes), not features.
DIAGNOSTICS_PREFIX = "diagnostics_"
#: The batch input's own columns, which pyradiomics copies into its output.
PYRADIOMICS_INPUT_COLUMNS = ("Image", "Mask", "Label", "Label_channel")


@dataclass(frozen=True)
class TableCleaning:
    """What reading the table changed or found, each with a count: the report states it."""

    pyradiomics_columns_dropped: int = 0  # diagnostics_* and the batch input's columns
    infinite_values: int = 0  # set to missing
    infinite_columns: int = 0
    constant_columns: int = 0  # carry no information; each fold's pipeline drops them
    empty_columns: int = 0  # all missing; likewise

    def lines(self) -> list[str]:
        """One sentence per thing done or found (none for a tidy table)."""
        lines = []
        if self.pyradiomics_columns_dropped:
            lines.append(
                f"{self.pyradiomics_columns_dropped} pyradiomics diagnostics / batch-input "
                "column(s) dropped (not features)"
            )
        if self.infinite_values:
            lines.append(
                f"{self.infinite_values} infinite value(s) in {self.infinite_columns} column(s) "
                "read as missing (imputed inside each training fold)"
            )
        if self.constant_columns:
            lines.append(
                f"{self.constant_columns} constant column(s): no information, dropped by the "
                "fold pipeline"
            )
        if self.empty_columns:
            lines.append(
                f"{self.empty_columns} column(s) with no value at all: dropped by the fold pipeline"
            )
        return lines


@dataclass(frozen=True)
class FeatureData:
    X: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray
    ids: np.ndarray
    #: The extraction sidecar when the table has one (settings, sequences, sites; no rows).
    provenance: dict[str, Any] | None = None
    #: Extraction's per-lesion mask perturbations (`<table>.perturb.parquet`), for ICC filtering.
    perturbed: pd.DataFrame | None = None
    #: Each lesion's site (scanner / institution) when the table has one: never a predictor.
    sites: np.ndarray | None = None
    #: Lesions the extraction kept as technical failures (`extract --allow-failures`): left
    #: out of training, counted in the flow.
    technical_failures: int = 0
    #: Blinded radiologist reads (1 tumour, 0 necrosis, NaN unread) and 1-5 scores when the
    #: table has them: never predictors; they fix the thresholds matched to the radiologists.
    reads: np.ndarray | None = None
    radiologist_score: np.ndarray | None = None
    cleaning: TableCleaning = TableCleaning()

    def side_tables(self, *, harmonise: bool) -> SideTables:
        """What the fold pipelines look up by lesion ID; sites only when harmonising."""
        sites = pd.Series(self.sites, index=self.X.index) if harmonise else None
        return SideTables(self.perturbed, sites)

    def digest(self) -> str:
        """SHA-256 of the feature values and labels, the data hash of tracking and bundles."""
        values = pd.util.hash_pandas_object(self.X, index=False).to_numpy().tobytes()
        return hashlib.sha256(values + self.y.tobytes()).hexdigest()


def read_feature_table(
    path: str | Path,
    *,
    label: str = "pathology",
    group: str = "patient_id",
    id_column: str = "lesion_id",
    site: str = "site",
    positive_label: str | None = None,
) -> FeatureData:
    """A feature table from any tool: ID, group, label, numeric features; any other
    non-numeric column is an error naming it. `positive_label` names the label value read as
    1 (tumour) when the labels are two other strings; the other value is 0."""
    path = Path(path)
    table = _read(path, (id_column, group, label))
    provenance = _provenance(path)
    failed = _technical_failures(path, table, provenance)
    table = table.drop(index=failed)  # the index keeps the file's row positions for messages
    y, problems = _labels(path, table[label], label, positive_label)
    problems += _blank_ids(path, table, dict.fromkeys((id_column, group)))
    features = table.drop(columns=list(dict.fromkeys((id_column, group, label))))
    features, dropped = _drop_pyradiomics_columns(features)
    sites = _sites(features.pop(site)) if site in features else None
    reserved = {c: features.pop(c) for c in NON_PREDICTOR_COLUMNS if c in features}
    reads, scores, problems = _radiologists(path, table, reserved, problems)
    problems += [
        f"{path}: column {c!r} is not numeric"
        for c in features
        if not pd.api.types.is_numeric_dtype(features[c])
    ]
    if problems:
        raise InputError(problems)
    if y.nunique() < 2:
        raise InputError(f"{path}: column {label} needs both tumour and necrosis lesions")
    if features.shape[1] == 0:
        raise InputError(f"{path}: no feature columns")
    perturbed = _perturbed(path, id_column)
    ids = _unique_ids(path, table[id_column].astype(str).str.strip(), id_column)
    # Indexed by lesion ID: the ICC filter finds each training lesion's perturbations by it.
    features.index = pd.Index(ids.to_numpy(), name=id_column)
    features, cleaning = _clean_values(path, features.astype(float), dropped)
    return FeatureData(
        features,
        y.to_numpy(int),
        table[group].astype(str).str.strip().to_numpy(),
        ids.to_numpy(),
        provenance,
        perturbed,
        sites,
        technical_failures=len(failed),
        reads=reads,
        radiologist_score=scores,
        cleaning=cleaning,
    )


def _labels(
    path: Path, column: pd.Series, label: str, positive_label: str | None
) -> tuple[pd.Series, list[str]]:
    """Labels as 1 / 0 (NaN where unreadable) and one line per problem."""
    text = column.astype(str).str.strip()
    text = text.where(column.notna(), "")
    if positive_label is not None:
        values = sorted(set(text) - {""})
        others = [v for v in values if v != positive_label]
        if positive_label not in values or len(others) != 1:
            return text.map(lambda _: np.nan), [
                f"{path}: column {label}: --positive-label {positive_label!r} needs two label "
                f"values, it and one other (found: {', '.join(map(repr, values[:10]))})"
            ]
        y = text.map({positive_label: 1, others[0]: 0})
    else:
        y = text.str.lower().map(LABELS)
        values = sorted(set(text) - {""})
        if len(values) == 2 and y[text != ""].isna().any():  # two classes, named another way
            return y, [
                f"{path}: column {label}: labels {values[0]!r} and {values[1]!r} are not "
                "tumor / necrosis / 1 / 0; name the positive class with --positive-label "
                "(data.positive_label in an experiment config)"
            ]
    expected = "tumor / necrosis / 1 / 0" if positive_label is None else "one of the two labels"
    return y, [
        f"{path}: row {i + 2}, column {label}: {column.loc[i]!r} is not {expected}"
        for i in y.index[y.isna()]
    ]


def _blank_ids(path: Path, table: pd.DataFrame, columns: dict[str, None]) -> list[str]:
    return [
        f"{path}: row {i + 2}, column {c}: empty"
        for c in columns
        for i, v in table[c].items()
        if pd.isna(v) or not str(v).strip()
    ]


def _drop_pyradiomics_columns(features: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """pyradiomics' batch output minus its diagnostics and the batch input's columns (only
    when the diagnostics are there: elsewhere `Label` may be someone's feature)."""
    diagnostics = [c for c in features if str(c).startswith(DIAGNOSTICS_PREFIX)]
    if not diagnostics:
        return features, 0
    drop = diagnostics + [c for c in PYRADIOMICS_INPUT_COLUMNS if c in features]
    return features.drop(columns=drop), len(drop)


def _clean_values(
    path: Path, features: pd.DataFrame, pyradiomics_dropped: int
) -> tuple[pd.DataFrame, TableCleaning]:
    """+-inf read as missing; constant and empty columns counted (the fold pipeline drops
    them: a step fitted on the training rows, so nothing is decided here on all lesions)."""
    infinite = np.isinf(features.to_numpy())
    if infinite.any():
        features = features.mask(infinite)
    empty = features.isna().all()
    constant = (features.nunique(dropna=True) <= 1) & ~empty
    cleaning = TableCleaning(
        pyradiomics_columns_dropped=pyradiomics_dropped,
        infinite_values=int(infinite.sum()),
        infinite_columns=int(infinite.any(axis=0).sum()),
        constant_columns=int(constant.sum()),
        empty_columns=int(empty.sum()),
    )
    for line in cleaning.lines():
        logger.warning("%s: %s", path, line)
    return features, cleaning


def _read(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    """The table as written; the ID and group columns of a CSV as text."""
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: folder not found (it should hold {path.name})")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            _check_header(path)
            table = pd.read_csv(path, dtype=dict.fromkeys(needed[:2], str))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable feature table ({type(exc).__name__})") from None
    missing = [c for c in needed if c not in table]
    if missing:
        raise InputError(f"{path}: missing column {c!r}" for c in missing)
    return table


def _check_header(path: Path) -> None:
    """A column name written twice is an error: pandas would silently rename the second."""
    names = list(pd.read_csv(path, header=None, nrows=1).iloc[0].astype(str))
    seen: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        seen.setdefault(name, []).append(position)
    twice = {n: p for n, p in seen.items() if len(p) > 1}
    if twice:
        raise InputError(
            f"{path}: column {name!r} appears {len(p)} times (columns "
            f"{', '.join(map(str, p))}); each column needs its own name"
            for name, p in twice.items()
        )


def _provenance(path: Path) -> dict[str, Any] | None:
    """The extraction sidecar beside the table, when there is one."""
    from rnclassifier.features.extract import sidecar_path

    if not sidecar_path(path).is_file():
        return None
    try:
        return json.loads(sidecar_path(path).read_text())
    except ValueError:
        raise InputError(f"{sidecar_path(path)}: not valid JSON") from None


def _sites(column: pd.Series) -> np.ndarray:
    """For harmonisation and subgroup reports, never a predictor; blank is None."""
    return np.array(
        [None if pd.isna(v) or not str(v).strip() else str(v).strip() for v in column],
        dtype=object,
    )


def _radiologists(
    path: Path, table: pd.DataFrame, reserved: dict[str, pd.Series], problems: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """Radiologist reads and 1-5 scores when the table has them (never predictors)."""
    reads = scores = None
    if "radiologist_read" in reserved:
        reads, problems = _reads(path, reserved["radiologist_read"], problems)
    if "radiologist_score" in reserved:
        scores = pd.to_numeric(reserved["radiologist_score"], errors="coerce").to_numpy(float)
        problems += [
            f"{path}: row {i + 2}, column radiologist_score: {v!r} is not a number"
            for i, v, s in zip(table.index, reserved["radiologist_score"], scores, strict=True)
            if np.isnan(s) and not (pd.isna(v) or str(v).strip() == "")
        ]
    return reads, scores, problems


def _perturbed(path: Path, id_column: str) -> pd.DataFrame | None:
    """Extraction's per-lesion mask perturbations beside the table, for ICC filtering."""
    from rnclassifier.features.extract import perturb_path

    if not perturb_path(path).is_file():
        return None
    perturbed = pd.read_parquet(perturb_path(path))
    if id_column not in perturbed:
        raise InputError(f"{perturb_path(path)}: missing column {id_column!r}")
    perturbed[id_column] = perturbed[id_column].astype(str)
    return perturbed


def _unique_ids(path: Path, ids: pd.Series, id_column: str) -> pd.Series:
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise InputError(
            f"{path}: row {i + 2}, column {id_column}: the same ID as an earlier row"
            for i in duplicated.index
        )
    return ids


def _reads(path: Path, column: pd.Series, problems: list[str]) -> tuple[np.ndarray, list[str]]:
    """Radiologist reads as 1 (tumour), 0 (necrosis), NaN (blank: not read)."""
    reads = np.full(len(column), np.nan)
    for j, (i, value) in enumerate(column.items()):
        text = "" if pd.isna(value) else str(value).strip().lower()
        if text in (POSITIVE_CLASS, "1", "1.0"):
            reads[j] = 1.0
        elif text in (NEGATIVE_CLASS, "0", "0.0"):
            reads[j] = 0.0
        elif text:
            problems = [
                *problems,
                f"{path}: row {i + 2}, column radiologist_read: {value!r} is not tumor / "
                "necrosis / blank",
            ]
    return reads, problems


def _technical_failures(
    path: Path, table: pd.DataFrame, provenance: dict[str, Any] | None
) -> list[int]:
    """Rows the sidecar lists as technical failures; each must hold no radiomics value, so
    that a sidecar of another table cannot drop good lesions."""
    failed = [int(f["position"]) for f in (provenance or {}).get("failed_rows", [])]
    radiomics = columns_of_kind(table.columns, ColumnKind.RADIOMICS, ColumnKind.DELTA)
    for position in failed:
        if position >= len(table) or table.iloc[position][radiomics].notna().any():
            raise InputError(
                f"{path}: row {position + 2} is listed as a technical failure in the sidecar but "
                "has radiomics values; the sidecar belongs to another table"
            )
    if failed:
        logger.warning(
            "%s: %d lesion(s) left out of training as technical failures of feature extraction",
            path,
            len(failed),
        )
    return [table.index[p] for p in failed]
