"""No patient identifier reaches any output.

A SYNTHETIC cohort is given DICOM images whose headers carry a patient name, ID, birth date and
accession number, and a free-text manifest column the tool does not know. Every command then runs
(extract with its cache, train with MLflow and a bundle, score with a case report, validate with
MLflow), with debug logging captured to files, and every file written is searched for those
values: as raw bytes, and decoded (gzip, zip members such as skops files, parquet tables, SQLite
databases, JSON with its escapes undone, HTML entities undone). The search first proves it can
see: a canary written in each of those formats is found.
"""

from __future__ import annotations

import contextlib
import gzip
import html
import io
import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent / "imaging"))

from dicom_factory import (
    FAKE_ACCESSION,
    FAKE_PATIENT_ID,
    FAKE_PATIENT_NAME,
    Grid,
    write_mr_series,
)

from rnclassifier.cohort import CLINICAL_COLUMNS as CLINICAL
from rnclassifier.config import LIGHT_EXTRACTION_CONFIG
from rnclassifier.synthetic import write_synthetic_cohort

BIRTH_DATE = "19000101"  # what dicom_factory writes as PatientBirthDate
FREE_TEXT = "Seen by Dr Canarywood re Jane Sentinelle"
IDENTIFIERS = (
    FAKE_PATIENT_NAME, FAKE_PATIENT_NAME.split("^")[1], FAKE_PATIENT_ID, FAKE_ACCESSION,
    BIRTH_DATE, "Canarywood", "Sentinelle",
)  # fmt: skip
CLI = [str(Path(sys.executable).parent / "rnclassifier"), "-vv"]


# --- the search -----------------------------------------------------------------------------------


def texts(data: bytes, name: str, depth: int = 0) -> list[str]:
    """Every readable form of a file: the raw bytes, and what its format decodes to."""
    forms = [data.decode("latin-1")]
    if depth > 3:
        return forms
    if data[:2] == b"\x1f\x8b":
        forms += texts(gzip.decompress(data), name, depth + 1)
    elif data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                forms.append(member)
                forms += texts(archive.read(member), member, depth + 1)
    elif data[:4] == b"PAR1":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        forms.append(table.to_pandas().to_csv())
        forms.append(str(table.schema.metadata))
    elif data[:16] == b"SQLite format 3\x00":
        forms.append(_sqlite_dump(data))
    text = forms[0]
    if name.endswith(".json") or text.lstrip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            forms.append(json.dumps(json.loads(data), ensure_ascii=False))
    if "&" in text:
        forms.append(html.unescape(text))
    return forms


def _sqlite_dump(data: bytes) -> str:
    connection = sqlite3.connect(":memory:")
    connection.deserialize(data)
    dump = "\n".join(connection.iterdump())
    connection.close()
    return dump


def search(root: Path, needles: tuple[str, ...]) -> list[str]:
    """'file: needle' for every needle found in any file (or file name) under `root`."""
    found = []
    lowered = [n.lower() for n in needles]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        haystacks = [str(path.relative_to(root)), *texts(path.read_bytes(), path.name)]
        for needle, low in zip(needles, lowered, strict=True):
            if any(low in h.lower() for h in haystacks):
                found.append(f"{path.relative_to(root)}: {needle}")
    return found


def test_the_search_sees_a_canary_in_every_format(tmp_path):
    canary = "CanaryPositiveControl"
    frame = pd.DataFrame({"note": [canary] * 50, "x": np.arange(50.0)})
    frame.to_parquet(tmp_path / "table.parquet", compression="gzip", write_statistics=False)
    (tmp_path / "run.log").write_text(f"INFO: {canary}\n")
    (tmp_path / "doc.json").write_text(json.dumps({"n": canary.replace("C", "\u0108", 1)}))
    (tmp_path / "page.html").write_text(f"<p>{canary[:6]}&#80;ositiveControl</p>")
    (tmp_path / "data.txt.gz").write_bytes(gzip.compress(canary.encode() * 20))
    with zipfile.ZipFile(tmp_path / "model.skops", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", json.dumps({"name": canary * 20}))
    connection = sqlite3.connect(tmp_path / "mlflow.db")
    connection.execute("create table tags (value text)")
    connection.execute("insert into tags values (?)", (canary,))
    connection.commit()
    connection.close()
    found = search(tmp_path, (canary, "\u0108anaryPositiveControl"))
    for name in ("table.parquet", "run.log", "page.html", "data.txt.gz", "model.skops",
                 "mlflow.db"):  # fmt: skip
        assert f"{name}: {canary}" in found, found
    assert "doc.json: \u0108anaryPositiveControl" in found  # only after the \\u escape is undone
    # The decoders matter: compressed formats hide the canary from a raw byte search.
    for name in ("table.parquet", "data.txt.gz", "model.skops"):
        assert canary.encode() not in (tmp_path / name).read_bytes()


# --- the run ----------------------------------------------------------------------------------


def _dicom_twin(image_path: Path, folder: Path) -> None:
    """The same image as a DICOM series whose headers carry the fake identifiers."""
    image = sitk.ReadImage(str(image_path))
    grid = Grid(
        image.GetSize(),
        image.GetSpacing(),
        image.GetOrigin(),
        np.array(image.GetDirection()).reshape(3, 3),
    )
    volume = np.round(sitk.GetArrayFromImage(image) * 100).astype(np.int16)
    write_mr_series(folder, volume, grid)


def _run(name: str, args: list[str], work: Path) -> None:
    log = work / "logs" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as handle:
        done = subprocess.run(CLI + args, cwd=work, stdout=handle, stderr=subprocess.STDOUT)
    assert done.returncode == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """Every command run on a cohort with identifiers planted; returns the folder of outputs."""
    inputs = tmp_path_factory.mktemp("inputs")
    work = tmp_path_factory.mktemp("work")
    write_synthetic_cohort(inputs / "cohort", n_lesions=36, seed=11, jobs=2)
    manifest = pd.read_csv(inputs / "cohort" / "cohort.csv", dtype=str, keep_default_na=False)
    for i in range(3):
        folder = inputs / "dicom" / f"lesion{i}"
        _dicom_twin(inputs / "cohort" / manifest.loc[i, "t1c"], folder)
        manifest.loc[i, "t1c"] = str(folder)
    manifest["clinician_notes"] = FREE_TEXT
    manifest.to_csv(inputs / "cohort" / "cohort.csv", index=False)
    cohort = str(inputs / "cohort" / "cohort.csv")
    tracking = f"sqlite:///{work / 'mlflow.db'}"

    light = str(LIGHT_EXTRACTION_CONFIG)
    _run("extract", ["extract", "--cohort", cohort, "--params", light, "--out",
                     "features.parquet", "--cache-dir", "cache", "--jobs", "2"], work)  # fmt: skip
    _run("train", ["train", "--features", "features.parquet", "--out", "train", "--model",
                   "xgboost", "--feature-set", "combined", "--outer-folds", "3", "--repeats", "1",
                   "--inner-folds", "2", "--trials", "2", "--tracking-uri", tracking,
                   "--synthetic", "--name", "planted"], work)  # fmt: skip
    row = manifest.iloc[0]
    base = inputs / "cohort"
    # Without --dicom-out: its SEG and SR must name the patient and study to be filed with them
    # (SECURITY.md); tests/test_dicom_results.py checks that they copy nothing more.
    facts = [item for key in CLINICAL if row[key] for item in ("--clinical", f"{key}={row[key]}")]
    _run("score", ["score", "--model", "models/planted", "--t1c", row["t1c"], "--flair",
                   str(base / row["flair"]), "--mask", str(base / row["mask"]), "--brain-mask",
                   str(base / row["brain_mask"]), *facts, "--out", "result.json", "--report",
                   "case.html", "--cache-dir", "cache", "--allow-imputation"], work)  # fmt: skip
    _run("score-cohort", ["score", "--model", "models/planted", "--cohort", cohort, "--out",
                          "scores.csv", "--cache-dir", "cache"], work)  # fmt: skip
    _run("validate", ["validate", "--model", "models/planted", "--cohort", cohort, "--out",
                      "validation", "--cache-dir", "cache", "--tracking-uri", tracking],
         work)  # fmt: skip
    return work


def test_every_output_was_made(outputs):
    """The search below is only meaningful if each kind of output is there to search."""
    names = {p.name for p in outputs.rglob("*") if p.is_file()}
    assert {"features.parquet", "mlflow.db", "result.json", "case.html", "scores.csv"} <= names
    assert {"bundle.json", "pipeline.skops", "MANIFEST.sha256", "report.html"} <= names
    assert any(p.suffix == ".log" for p in outputs.rglob("*"))
    assert any((outputs / "mlruns").rglob("*.skops")), "no MLflow artifacts to search"
    assert any((outputs / "cache").rglob("*")), "no feature cache to search"


def test_no_identifier_in_any_output(outputs):
    assert search(outputs, IDENTIFIERS) == []
