"""The benchmark command's quick mode as a smoke test: it runs every section end to end and
writes results of the right shape. It asserts structure, never speed (the machine is shared)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("extraction", "scoring", "training", "quality", "scaling", "dask")


# Slow: quick mode still runs the real commands end to end (synth, both extractors, nested CV,
# scoring, a Dask cluster): 5.5-12 minutes on the shared 2-core machine, with its load.
@pytest.mark.slow
def test_quick_benchmark_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    committed = ROOT / "benchmarks" / "RESULTS.md"
    before = committed.stat().st_mtime_ns
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--out",
            str(out),
            "--data",
            str(tmp_path / "data"),
        ],
        cwd=Path.cwd(),
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    record = json.loads((tmp_path / "results.json").read_text())
    assert record["mode"] == "quick"
    machine = record["machine"]
    for key in (
        "cpu",
        "cores",
        "memory_gib",
        "python",
        "packages",
        "git_commit",
        "date_utc",
        "load_1min_start",
        "load_1min_end",
    ):
        assert machine[key] not in (None, ""), key
    assert machine["packages"]["pyradiomics"] != "not installed"

    assert [s["key"] for s in record["sections"]] == list(SECTIONS)
    for section in record["sections"]:
        assert section["error"] is None, section["error"]
        assert section["figures"], section["key"]
        for timing in section["timings"]:
            assert timing["median_s"] > 0, timing["label"]
        for figure in section["figures"]:
            assert math.isfinite(figure["figure"]), figure["name"]
            assert math.isfinite(figure["baseline"]), figure["name"]
            if figure["kind"] == "ratio":
                assert figure["figure"] > 0, figure["name"]
                assert figure["baseline_name"], figure["name"]
    quality = next(s for s in record["sections"] if s["key"] == "quality")
    assert len(quality["data"]["auc"]) >= 2  # the seed's size and a larger cohort
    dask = next(s for s in record["sections"] if s["key"] == "dask")
    assert dask["data"]["identical"]

    text = out.read_text()
    for heading in ("## Machine", "## Headline", *(f"## {i}. " for i in range(1, 7))):
        assert heading in text
    # The committed results are never replaced by a quick run.
    assert committed.stat().st_mtime_ns == before


@pytest.fixture
def benchmarks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


def test_each_feature_set_is_set_against_its_own_ceiling(benchmarks_importable) -> None:
    """Issue #16: `clinical+size` holds growth, so its ceiling is not the clinical-only one."""
    from benchmarks.ceilings import ORACLES, ceiling_of

    from rnclassifier.modeling.feature_sets import FEATURE_SETS

    for feature_set in FEATURE_SETS:
        assert ceiling_of(feature_set) == f"oracle_p_tumor_{feature_set}"
        assert ceiling_of(feature_set) in ORACLES
    assert ceiling_of("clinical+size") != ceiling_of("clinical")


def test_auc_drop_interval_bootstraps_both_cohorts(benchmarks_importable) -> None:
    import numpy as np
    from benchmarks.sections.transportability import auc_drop_interval

    rng = np.random.default_rng(0)

    def cohort(n: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = rng.random(n) < 0.6
        return y, y * shift + rng.standard_normal(n), np.arange(n) // 2

    internal, external = cohort(400, 1.6), cohort(400, 1.0)
    drop = auc_drop_interval(internal, external)
    assert drop["low"] < drop["estimate"] < drop["high"]
    assert 0.05 < drop["estimate"] < 0.2
    # Independent cohorts: the percentile interval and the normal one agree closely.
    assert abs(drop["low"] - drop["normal"]["low"]) < 0.02
    assert abs(drop["high"] - drop["normal"]["high"]) < 0.02
    # Wider than either cohort's own interval: both cohorts' sampling error is in it.
    assert drop["high"] - drop["low"] > 0.1
