"""The demo's whole story on a small scale (`demo --quick`): every stage runs and says where
its report is; the bundle lands in ./models/."""

from __future__ import annotations

import json
from pathlib import Path

from rnclassifier.cli import main


def test_quick_demo_runs_every_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNCLASSIFIER_SALT_FILE", str(tmp_path / "salt"))
    assert main(["demo", "--quick"]) == 0
    printed = capsys.readouterr().out
    stages = [line.split(":", 1)[0] for line in printed.splitlines()]
    for stage in ("config", "synth", "check", "extract", "train", "evaluate", "bundle",
                  "validate", "score", "mlflow"):  # fmt: skip
        assert stage in stages, printed
    out = Path("demo-output-quick")
    for report in ("experiment/report.html", "evaluation/report.html",
                   "validation/report.html", "score/case.html"):  # fmt: skip
        assert (out / report).stat().st_size > 10_000, report
    assert "SYNTHETIC" in (out / "validation" / "report.html").read_text()
    result = json.loads((out / "score" / "result.json").read_text())
    assert 0 <= result["probability"] <= 1
    assert (Path("models") / "demo-synthetic" / "MANIFEST.sha256").is_file()
    # A second run reuses the synthetic cohorts and the feature cache.
    assert main(["demo", "--quick"]) == 0
    assert "reusing the SYNTHETIC seed cohort" in capsys.readouterr().out
