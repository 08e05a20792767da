"""The one user error: each problem a line naming where it is; structured problems keep their
parts, so a caller can say them in its own terms without parsing text."""

from __future__ import annotations

import pytest

from rnclassifier.errors import MAX_PROBLEMS_SHOWN, InputError, Problem


def test_a_problem_says_where_it_is():
    assert (
        str(Problem("empty", "cohort.csv", 3, "ptv_cc"))
        == "cohort.csv: row 3, column ptv_cc: empty"
    )
    assert str(Problem("missing required column 't1c'", "cohort.csv")) == (
        "cohort.csv: missing required column 't1c'"
    )
    assert str(Problem("too small", row=13)) == "manifest row 13: too small"  # extraction's rows
    assert str(Problem("just text")) == "just text"


def test_input_error_keeps_the_parts_and_the_lines():
    error = InputError([Problem("empty", "m.csv", 2, "sex"), "m.csv: not UTF-8"])
    assert error.problems == ["m.csv: row 2, column sex: empty", "m.csv: not UTF-8"]
    assert error.details[0].column == "sex"
    assert error.details[1] == Problem("m.csv: not UTF-8")
    assert str(error) == "m.csv: row 2, column sex: empty\nm.csv: not UTF-8"
    with pytest.raises(ValueError, match="at least one problem"):
        InputError([])


def test_a_long_list_is_summarised():
    error = InputError([f"row {i}" for i in range(MAX_PROBLEMS_SHOWN + 7)])
    lines = str(error).splitlines()
    assert len(lines) == MAX_PROBLEMS_SHOWN + 1
    assert lines[-1] == "... and 7 more problems"
    assert len(error.problems) == MAX_PROBLEMS_SHOWN + 7


def test_the_command_line_names_the_flag_of_a_manifest_column(tmp_path):
    """A case's one-row manifest problem, said as the flag that gave it (no text parsed)."""
    from rnclassifier.scoring import CaseInputs, case_cohort

    image = tmp_path / "t1c.nii.gz"
    image.write_bytes(b"")
    case = CaseInputs(
        images={"t1c": str(image)},
        mask=str(tmp_path / "no-mask.nii.gz"),
        clinical={"histology": "banana", "age_years": "old"},
    )
    with pytest.raises(InputError) as caught:
        case_cohort(case)
    problems = caught.value.problems
    assert any(p.startswith("--clinical histology: ") and "banana" in p for p in problems)
    assert any(p.startswith("--clinical age_years: ") for p in problems)
    assert any(p.startswith("--mask: ") for p in problems)
    assert not any("command line" in p for p in problems)
