"""Shared fixtures: small manifests written into a temporary folder."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from rnclassifier.spec import TrainingSpec

GOOD_ROWS = [
    {
        "patient_id": "P01",
        "lesion_id": "L01",
        "t1c": "img/l1_t1c.nii.gz",
        "mask": "img/l1_mask.nii.gz",
        "pathology": "tumor",
        "pathology_detail": "tumor",
        "radiologist_read": "tumor",
        "radiologist_score": "5",
        "age_years": "61.5",
        "sex": "F",
        "histology": "breast",
        "location": "frontal",
        "prior_wbrt": "0",
        "srs_dose_gy": "20",
        "srs_fractions": "1",
        "months_since_srs": "9.2",
        "ptv_cc": "3.1",
        "steroids": "1",
        "immunotherapy": "none",
        "her2_tdm1": "1",
    },
    {
        "patient_id": "P02",
        "lesion_id": "L02",
        "t1c": "img/l2_t1c.nii.gz",
        "mask": "img/l2_mask.nii.gz",
        "pathology": "necrosis",
        "pathology_detail": "necrosis",
        "radiologist_read": "",
        "radiologist_score": "",
        "age_years": "48",
        "sex": " m ",
        "histology": "NSCLC",
        "location": "Cerebellum",
        "prior_wbrt": "1",
        "srs_dose_gy": "27",
        "srs_fractions": "3",
        "months_since_srs": "14",
        "ptv_cc": "12.0",
        "steroids": "0",
        "immunotherapy": "dual",
        "her2_tdm1": "0",
    },
    {
        "patient_id": "P02",
        "lesion_id": "L03",
        "t1c": "img/l3_t1c.nii.gz",
        "mask": "img/l3_mask.nii.gz",
        "pathology": "tumor",
        "pathology_detail": "mixed",
        "radiologist_read": "necrosis",
        "radiologist_score": "2",
        "age_years": "48",
        "sex": "M",
        "histology": "nsclc",
        "location": "deep",
        "prior_wbrt": "1",
        "srs_dose_gy": "",
        "srs_fractions": "",
        "months_since_srs": "",
        "ptv_cc": "",
        "steroids": "",
        "immunotherapy": "",
        "her2_tdm1": "",
    },
]


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def make_manifest(tmp_path: Path) -> Callable[..., Path]:
    """Write a manifest (default: three good rows) with its image files present."""

    def make(rows: list[dict[str, str]] | None = None, columns: list[str] | None = None) -> Path:
        rows = [dict(r) for r in (GOOD_ROWS if rows is None else rows)]
        (tmp_path / "img").mkdir(exist_ok=True)
        for row in GOOD_ROWS:
            for key in ("t1c", "mask"):
                (tmp_path / row[key]).write_bytes(b"not really an image")
        return write_csv(tmp_path / "cohort.csv", rows, columns)

    return make


def make_spec(**changes: object) -> TrainingSpec:
    """A training spec for tests: nothing tracked, no bundle unless asked for (`bundle=
    {"build": True, "path": ...}`); nested settings given as dicts merge into the defaults."""
    base = TrainingSpec().with_changes(tracking={"enabled": False}, bundle={"build": False})
    return base.with_changes(**changes)


#: The CV of the one trained fixture (`trained`), shared by every test that needs a bundle.
TRAINED_CV = {"outer_folds": 5, "repeats": 1, "inner_folds": 3, "trials": 6}
#: The smallest nested CV that still has an inner loop: 3 outer folds, 2 inner, 3 trials.
SMALL_CV = {"outer_folds": 3, "repeats": 1, "inner_folds": 2, "trials": 3}


@pytest.fixture(autouse=True)
def _work_in_a_temporary_folder(tmp_path_factory, monkeypatch) -> None:
    """Commands default to outputs in the working folder (models/, mlflow.db): keep every test's
    out of the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """The one trained fixture: a SYNTHETIC cohort (100 lesions), its light-profile features,
    the training run (`out/`) and the primary's bundle, made once per test session and shared
    by every test that needs a trained model."""
    from rnclassifier.config import LIGHT_EXTRACTION_CONFIG
    from rnclassifier.features.api import run_extraction
    from rnclassifier.synthetic.write import write_synthetic_cohort
    from rnclassifier.training import read_feature_table, train_on

    folder = tmp_path_factory.mktemp("score")
    write_synthetic_cohort(folder / "cohort", n_lesions=100, seed=31, jobs=2)
    run_extraction(
        folder / "cohort" / "cohort.csv",
        folder / "features.parquet",
        params=LIGHT_EXTRACTION_CONFIG,
        jobs=2,
    )
    train_on(
        read_feature_table(folder / "features.parquet"),
        make_spec(
            models=("xgboost",),
            feature_sets=("combined",),
            cv=TRAINED_CV,
            synthetic=True,
            bundle={"build": True, "path": str(folder / "bundle")},
        ),
        folder / "out",
    )
    manifest = pd.read_csv(folder / "cohort" / "cohort.csv", dtype=str)
    return {"folder": folder, "bundle": folder / "bundle", "manifest": manifest}
