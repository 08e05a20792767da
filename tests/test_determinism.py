"""The same inputs and seed give the same bytes, with 1 or 2 jobs: feature tables, out-of-fold
predictions, bundles (apart from the time stamp in bundle.json, and so its hash line) and
scores. Compared as files, not as numbers within a tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SMALL_CV, make_spec
from rnclassifier.bundle import BUNDLE_FILE, MANIFEST_FILE
from rnclassifier.cli import main
from rnclassifier.config import LIGHT_EXTRACTION_CONFIG
from rnclassifier.scoring import score_case
from rnclassifier.training import read_feature_table, train_on
from test_scoring import case_from_row


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_feature_tables_are_the_same_bytes_with_1_or_2_jobs(trained, tmp_path, capsys):
    # The fixture's first 10 lesions (for speed), beside its manifest so relative paths resolve.
    folder = trained["folder"] / "cohort"
    cohort = folder / "first-10.csv"
    cohort.write_text("".join((folder / "cohort.csv").read_text().splitlines(True)[:11]))
    for jobs in (1, 2):
        out, cache = tmp_path / f"{jobs}.parquet", tmp_path / f"cache{jobs}"
        status = main(["extract", "--cohort", str(cohort), "--params",
                       str(LIGHT_EXTRACTION_CONFIG), "--out", str(out), "--jobs", str(jobs),
                       "--cache-dir", str(cache)])  # fmt: skip
        assert status == 0, capsys.readouterr().err
    one, two = (tmp_path / "1.parquet").read_bytes(), (tmp_path / "2.parquet").read_bytes()
    assert one == two
    sidecars = [(tmp_path / f"{j}.parquet.json").read_bytes() for j in (1, 2)]
    assert sidecars[0] == sidecars[1]


@pytest.fixture(scope="module")
def two_runs(trained, tmp_path_factory) -> Path:
    """The same training experiment run with 1 job (out1, bundle1) and with 2 (out2, bundle2)."""
    folder = tmp_path_factory.mktemp("determinism")
    data = read_feature_table(trained["folder"] / "features.parquet")
    for jobs in (1, 2):
        spec = make_spec(
            models=("xgboost",),
            feature_sets=("combined",),
            cv=SMALL_CV,
            seed=5,
            synthetic=True,
            bundle={"build": True, "path": str(folder / f"bundle{jobs}")},
        )
        train_on(data, spec, folder / f"out{jobs}", jobs=jobs)
    return folder


def test_predictions_and_bundles_are_the_same_bytes(two_runs):
    folder = two_runs
    assert (folder / "out1" / "predictions.csv").read_bytes() == (
        folder / "out2" / "predictions.csv"
    ).read_bytes()
    one, two = files(folder / "bundle1"), files(folder / "bundle2")
    assert one.keys() == two.keys()
    differ = sorted(name for name in one if one[name] != two[name])
    assert differ == sorted([BUNDLE_FILE, MANIFEST_FILE])  # the time stamp, and its hash line
    meta = [json.loads(b[BUNDLE_FILE]) for b in (one, two)]
    assert meta[0]["created"]["utc"] != meta[1]["created"]["utc"] or meta[0] == meta[1]
    for document in meta:
        document["created"].pop("utc")
    assert meta[0] == meta[1]
    manifests = [dict(line.split("  ")[::-1] for line in b[MANIFEST_FILE].decode().splitlines())
                 for b in (one, two)]  # fmt: skip
    assert {k for k in manifests[0] if manifests[0][k] != manifests[1][k]} <= {BUNDLE_FILE}


def test_scores_are_identical(two_runs, trained, tmp_path):
    folder = two_runs
    case = case_from_row(trained, 3)
    results = [
        score_case(folder / f"bundle{jobs}", case, cache_dir=tmp_path / str(jobs))
        for jobs in (1, 2)
    ]
    for result in results:
        result.pop("model")  # the bundle by its manifest hash, which covers the time stamp
    assert json.dumps(results[0], sort_keys=True) == json.dumps(results[1], sort_keys=True)
