"""Every console entry point runs; exit codes follow the error policy (0 / 2 / 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GOOD_ROWS
from rnclassifier.cli import app, main
from rnclassifier.version import __version__

BIN = Path(sys.executable).parent
COMMANDS = sorted(app.commands)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "rnclassifier"), *args], capture_output=True, text=True, timeout=120
    )


def test_command_set_is_the_documented_one():
    documented = {"synth", "extract", "train", "evaluate", "validate", "score", "demo"}
    assert documented <= set(COMMANDS)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_console_script_help(command):
    result = run(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: rnclassifier")
    assert result.stderr == ""


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"rnclassifier, version {__version__}"


def test_pyradiomics_cli_is_installed_beside_rnclassifier():
    result = subprocess.run(
        [str(BIN / "pyradiomics"), "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    assert "3.0.1" in result.stdout + result.stderr


def test_check_good_manifest(make_manifest, capsys):
    path = make_manifest()
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 lesions of 2 patients; 2 tumour, 1 necrosis" in out


def test_check_bad_manifest_exits_2_one_line_per_problem(make_manifest):
    rows = [dict(r) for r in GOOD_ROWS]
    rows[0]["sex"] = "x"
    rows[1]["srs_fractions"] = "2.5"
    path = make_manifest(rows)
    result = run("check", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {path}: row 2, column sex: unknown value 'x'; allowed: m, f",
        f"error: {path}: row 3, column srs_fractions: '2.5' is not a whole number",
    ]
    assert "Traceback" not in result.stderr


def test_debug_shows_traceback(make_manifest, capsys):
    rows = [dict(r) for r in GOOD_ROWS]
    rows[0]["sex"] = "x"
    path = make_manifest(rows)
    result = run("--debug", "check", str(path))
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_bad_flag_exits_2():
    result = run("check", "--no-such-flag")
    assert result.returncode == 2
    assert "No such option" in result.stderr


def test_internal_error_exits_1(monkeypatch, capsys):
    import rnclassifier.cohort

    def explode(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(rnclassifier.cohort, "load_cohort", explode)
    assert main(["check", "whatever.csv"]) == 1
    assert "internal error: RuntimeError: bug" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("validate", ["--model", "m", "--cohort", "c.csv", "--out", "o"]),
        ("score", ["--model", "m", "--t1c", "a", "--mask", "b", "--out", "r.json"]),
    ],
)
def test_a_missing_bundle_is_a_clear_error(command, args, capsys, tmp_path):
    (tmp_path / "c.csv").write_text("patient_id,lesion_id,t1c,mask,pathology\n")
    args = [str(tmp_path / a) if a == "c.csv" else a for a in args]
    assert main([command, *args]) == 2
    assert capsys.readouterr().err.strip() == "error: m: not a model bundle folder"
