"""The code's shape, checked: the layers written in pyproject.toml (import-linter, function-level
imports included), no import cycle between modules, and size limits that keep a module readable
in one sitting (no source file over 500 lines, no function over 80)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def oversized() -> set[str]:
    """Files over MAX_FILE_LINES and functions over MAX_FUNCTION_LINES, as 'path' and
    'path:function'."""
    found = set()
    for folder in ("src", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            text = path.read_text()
            if len(text.splitlines()) > MAX_FILE_LINES:
                found.add(name)
            for node in ast.walk(ast.parse(text)):
                function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                if function and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    found.add(f"{name}:{node.name}")
    return found


def test_no_file_or_function_over_the_size_limits():
    assert oversized() == set(), "over the limits: split it into parts named for what they do"


def test_modules_import_only_their_own_layer_or_below(tmp_path):
    # In its own process: import-linter's command configures logging (dictConfig), which would
    # silence every logger already made in this one.
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"]
    done = subprocess.run(
        [*command, str(ROOT / "pyproject.toml")], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rnclassifier layers KEPT" in done.stdout


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("rnclassifier", cache_dir=None)


def test_no_module_imports_one_that_imports_it_back(graph):
    cycles = sorted(
        f"{importer} -> {imported} -> ... -> {importer}"
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if graph.chain_exists(importer=imported, imported=importer)
        # A package's __init__ may re-export its own modules, which then import their siblings.
        and not imported.startswith(importer + ".")
    )
    assert cycles == []


def test_the_cycle_check_sees_imports_inside_functions(graph):
    # The case scoring imports SHAP's module inside a function only: the graph must hold it.
    assert graph.direct_import_exists(
        importer="rnclassifier.scoring.case", imported="rnclassifier.explain"
    )
