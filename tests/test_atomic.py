"""Atomic outputs: an interrupted write leaves the old file, or nothing, never half a file."""

from __future__ import annotations

import pytest

from rnclassifier.atomic import atomic_directory, atomic_file, write_text
from rnclassifier.errors import InputError


def test_write_text_replaces_content(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    write_text(target, "first")
    write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "new.json"
    with pytest.raises(KeyboardInterrupt), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_temporary_is_a_sibling(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path
        assert not target.exists()
        tmp.write_text("x")
    assert target.read_text() == "x"


def test_directory_appears_only_when_complete(tmp_path):
    target = tmp_path / "cohort"
    with atomic_directory(target) as tmp:
        (tmp / "cohort.csv").write_text("a")
        assert not target.exists()
    assert (target / "cohort.csv").read_text() == "a"


def test_failed_directory_leaves_old_one(tmp_path):
    target = tmp_path / "cohort"
    target.mkdir()
    (target / "old.csv").write_text("old")
    with pytest.raises(ValueError, match="boom"), atomic_directory(target, overwrite=True) as tmp:
        (tmp / "new.csv").write_text("new")
        raise ValueError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]
    assert [p.name for p in target.iterdir()] == ["old.csv"]


def test_directory_overwrite_replaces_whole_folder(tmp_path):
    target = tmp_path / "cohort"
    target.mkdir()
    (target / "old.csv").write_text("old")
    with atomic_directory(target, overwrite=True) as tmp:
        (tmp / "new.csv").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]


def test_existing_directory_needs_force(tmp_path):
    (tmp_path / "cohort").mkdir()
    expected = "already exists; choose another output or pass --force"
    with pytest.raises(InputError, match=expected), atomic_directory(tmp_path / "cohort"):
        pass
