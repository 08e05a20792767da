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
