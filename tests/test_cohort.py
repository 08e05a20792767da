"""The manifest contract: every fault is reported with its row, column and value."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import GOOD_ROWS, write_csv
from rnclassifier.cohort import load_cohort
from rnclassifier.errors import InputError


def problems_of(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_cohort(path, **kwargs)
    return caught.value.problems


def with_change(row: int, **changes: str) -> list[dict[str, str]]:
    rows = [dict(r) for r in GOOD_ROWS]
    rows[row].update(changes)
    return rows


def test_good_manifest_is_normalised(make_manifest, tmp_path):
    cohort = load_cohort(make_manifest(), require_pathology=True)
    lesions = cohort.lesions
    assert (cohort.n_lesions, cohort.n_patients) == (3, 2)
    assert cohort.sequences == ("t1c",)
    assert list(lesions["sex"]) == ["f", "m", "m"]
    assert list(lesions["histology"]) == ["breast", "nsclc", "nsclc"]
    assert list(lesions["location"]) == ["frontal", "cerebellum", "deep"]
    assert lesions["age_years"].tolist() == [61.5, 48.0, 48.0]
    assert str(lesions["srs_fractions"].dtype) == "Int64"
    assert lesions["srs_fractions"].isna().tolist() == [False, False, True]
    assert lesions["radiologist_read"].tolist() == ["tumor", None, "necrosis"]
    assert Path(lesions["t1c"].iloc[0]) == tmp_path / "img" / "l1_t1c.nii.gz"
    assert cohort.label().tolist() == [1, 0, 1]


def test_absolute_paths_work(make_manifest, tmp_path):
    rows = with_change(0, t1c=str(tmp_path / "img" / "l1_t1c.nii.gz"))
    cohort = load_cohort(make_manifest(rows))
    assert Path(cohort.lesions["t1c"].iloc[0]) == tmp_path / "img" / "l1_t1c.nii.gz"


@pytest.mark.parametrize("column", ["patient_id", "lesion_id", "t1c", "mask"])
def test_missing_required_column(make_manifest, column):
    columns = [c for c in GOOD_ROWS[0] if c != column]
    path = make_manifest(columns=columns)
    assert problems_of(path) == [f"{path}: missing required column {column!r}"]


def test_missing_pathology_column_only_when_required(make_manifest):
    path = make_manifest(
        columns=[c for c in GOOD_ROWS[0] if c != "pathology_detail" and c != "pathology"]
    )
    assert load_cohort(path).has_pathology is False
    problems = problems_of(path, require_pathology=True)
    assert len(problems) == 1
    assert "missing required column 'pathology'" in problems[0]


def test_empty_pathology_when_required(make_manifest):
    path = make_manifest(with_change(1, pathology="", pathology_detail=""))
    load_cohort(path)  # allowed for scoring
    (problem,) = problems_of(path, require_pathology=True)
    assert "row 3, column pathology: empty" in problem


def test_duplicate_lesion_id_names_rows_not_values(make_manifest):
    path = make_manifest(with_change(2, lesion_id="L01"))
    (problem,) = problems_of(path)
    assert "rows 2, 4, column lesion_id" in problem
    assert "L01" not in problem


def test_empty_patient_id(make_manifest):
    (problem,) = problems_of(make_manifest(with_change(1, patient_id="")))
    assert problem.endswith("row 3, column patient_id: empty")


def test_missing_file_is_reported_without_the_path(make_manifest):
    (problem,) = problems_of(make_manifest(with_change(0, mask="img/nowhere.nii.gz")))
    assert "row 2, column mask: file or folder not found" in problem
    assert "nowhere" not in problem


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("pathology", "tumour"),
        ("pathology_detail", "partial"),
        ("reference_standard", "biopsy"),
        ("radiologist_read", "maybe"),
        ("sex", "x"),
        ("histology", "lung"),
        ("location", "insula"),
        ("immunotherapy", "triple"),
        ("prior_wbrt", "yes"),
    ],
)
def test_unknown_vocabulary(make_manifest, column, value):
    rows = with_change(0, **{column: value})
    if column == "reference_standard":
        rows = [dict(r, reference_standard="pathology") for r in rows]
        rows[0][column] = value
    problems = problems_of(make_manifest(rows))
    assert f"row 2, column {column}: unknown value {value!r}; allowed:" in problems[0]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("age_years", "sixty", "'sixty' is not a number"),
        ("age_years", "130", "130 is out of range (expected >= 0 and <= 120)"),
        ("srs_dose_gy", "0", "0 is out of range (expected > 0 and <= 60)"),
        ("srs_dose_gy", "nan", "'nan' is not a finite number"),
        ("srs_fractions", "1.5", "'1.5' is not a whole number"),
        ("srs_fractions", "0", "0 is out of range (expected >= 1 and <= 30)"),
        ("months_since_srs", "-2", "-2 is out of range (expected >= 0 and <= 360)"),
        ("ptv_cc", "-1", "-1 is out of range (expected > 0 and <= 1000)"),
        ("radiologist_score", "6", "6 is out of range (expected >= 1 and <= 5)"),
        ("radiologist_score", "2.5", "'2.5' is not a whole number"),
    ],
)
def test_bad_numbers(make_manifest, column, value, expected):
    (problem,) = problems_of(make_manifest(with_change(0, **{column: value})))
    assert problem.endswith(f"row 2, column {column}: {expected}")


def test_fractions_without_dose(make_manifest):
    (problem,) = problems_of(make_manifest(with_change(2, srs_fractions="3")))
    assert "row 4, column srs_dose_gy: empty, but srs_fractions is given" in problem


def test_pathology_contradicting_detail(make_manifest):
    (problem,) = problems_of(make_manifest(with_change(2, pathology="necrosis")))
    assert "row 4, column pathology: 'necrosis' contradicts pathology_detail 'mixed'" in problem


def test_prior_scan_needs_its_mask_and_interval(make_manifest, tmp_path):
    path = make_manifest(with_change(0, t1c_prior="img/l1_t1c.nii.gz"))
    problems = problems_of(path)
    assert len(problems) == 2
    assert "row 2, column mask_prior: empty, but the prior scan's t1c_prior is given" in problems[0]
    assert "row 2, column months_between_scans: empty" in problems[1]


def test_any_prior_needs_t1c_prior(make_manifest):
    rows = with_change(
        0,
        flair_prior="img/l1_t1c.nii.gz",
        mask_prior="img/l1_mask.nii.gz",
        months_between_scans="2.5",
    )
    (problem,) = problems_of(make_manifest(rows))
    assert "row 2, column t1c_prior: empty, but the prior scan's flair_prior is given" in problem


def test_mask_prior_alone(make_manifest):
    problems = problems_of(make_manifest(with_change(0, mask_prior="img/l1_mask.nii.gz")))
    assert any("column t1c_prior: empty, but the prior scan's mask_prior" in p for p in problems)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("months_between_scans", "0", "0 is out of range (expected > 0 and <= 120)"),
        ("days_scan_to_surgery", "-3", "-3 is out of range (expected >= 0 and <= 3650)"),
        ("mask_label", "0", "0 is out of range (expected >= 1 and <= 65535)"),
        ("mask_label", "1.5", "'1.5' is not a whole number"),
        ("age_years", "6_0", "'6_0' is not a number"),
    ],
)
def test_more_bad_numbers(make_manifest, column, value, expected):
    rows = [dict(r) for r in GOOD_ROWS]
    rows[0][column] = value
    (problem,) = problems_of(
        make_manifest(rows, columns=list(dict.fromkeys([*GOOD_ROWS[0], column])))
    )
    assert problem.endswith(f"row 2, column {column}: {expected}")


def test_binary_columns_accept_spreadsheet_floats(make_manifest):
    cohort = load_cohort(make_manifest(with_change(0, prior_wbrt="1.0", steroids="0.0")))
    assert cohort.lesions["prior_wbrt"].iloc[0] == "1"
    assert cohort.lesions["steroids"].iloc[0] == "0"


def test_invalid_dose_is_not_reported_twice(make_manifest):
    (problem,) = problems_of(make_manifest(with_change(2, srs_dose_gy="abc")))
    assert problem.endswith("row 4, column srs_dose_gy: 'abc' is not a number")


def test_headerless_file_leaks_no_cell_values(tmp_path, caplog):
    path = tmp_path / "cohort.csv"
    path.write_text("JOHN-SMITH-123,L1,a.nii,b.nii\nJANE-DOE-456,L2,c.nii,d.nii\n")
    with caplog.at_level(logging.WARNING):
        problems = problems_of(path)
    assert len(problems) == 4
    assert all("missing required column" in p for p in problems)
    assert "JOHN" not in caplog.text + "".join(problems)


def test_rows_numbered_as_records(tmp_path, make_manifest):
    path = make_manifest()
    lines = path.read_text().splitlines()
    # A quoted cell spanning two lines in the first data row; a bad value in the second.
    lines[1] = lines[1].replace("P01", '"P01\nsecond line"')
    lines[2] = lines[2].replace(",M,", ",X,").replace(", m ,", ",X,")
    path.write_text("\n".join(lines) + "\n")
    (problem,) = problems_of(path)
    assert "row 3, column sex" in problem


@pytest.mark.parametrize("name", ["mask", "T2_Star", "age_years"])
def test_reserved_or_bad_sequence_names(make_manifest, name):
    with pytest.raises(InputError, match="sequence name"):
        load_cohort(make_manifest(), sequences=[name])


def test_all_problems_reported_at_once(make_manifest):
    rows = with_change(0, sex="x", age_years="old")
    rows[1]["histology"] = "lung"
    problems = problems_of(make_manifest(rows))
    assert len(problems) == 3


def test_problem_list_is_capped(make_manifest):
    rows = [dict(GOOD_ROWS[0], lesion_id=f"L{i}", sex="q") for i in range(80)]
    with pytest.raises(InputError) as caught:
        load_cohort(make_manifest(rows))
    lines = str(caught.value).splitlines()
    assert len(caught.value.problems) == 80
    assert len(lines) == 51
    assert lines[-1] == "... and 30 more problems"


def test_unknown_column_warns_with_name_not_values(make_manifest, caplog):
    rows = [dict(r, mrn="SECRET-123") for r in GOOD_ROWS]
    with caplog.at_level(logging.WARNING):
        load_cohort(make_manifest(rows))
    assert "ignoring unknown column 'mrn'" in caplog.text
    assert "SECRET" not in caplog.text


def test_second_course_column_is_flagged_as_leakage(make_manifest, caplog):
    rows = [dict(r, bed2_gy="43.2") for r in GOOD_ROWS]
    with caplog.at_level(logging.WARNING):
        cohort = load_cohort(make_manifest(rows))
    assert "only tumours received" in caplog.text
    assert "bed2_gy" not in cohort.lesions


def test_empty_file(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text("\n  \n")
    assert problems_of(path) == [f"{path}: the file is empty"]


def test_header_without_rows(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text("patient_id,lesion_id,t1c,mask\n")
    assert problems_of(path) == [f"{path}: has a header but no rows"]


def test_binary_file_is_not_csv(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")
    assert problems_of(path) == [f"{path}: not a CSV file (binary content)"]


def test_non_utf8_file_is_not_csv(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_bytes(b"patient_id,lesion_id\n\xff\xfe,\xe9\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: not a CSV file (not UTF-8 text")


def test_semicolon_file_is_explained(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text("patient_id;lesion_id;t1c;mask\nP1;L1;a;b\n")
    (problem,) = problems_of(path)
    assert "not a comma-separated file" in problem
    assert "';'" in problem


def test_ragged_row(make_manifest):
    path = make_manifest()
    with path.open("a") as handle:
        handle.write("P9,L9,img/l1_t1c.nii.gz\n")
    (problem,) = problems_of(path)
    assert "row 5: has 3 fields, the header has 20" in problem


def test_duplicate_header(tmp_path):
    path = write_csv(tmp_path / "c.csv", [{"patient_id": "1", "lesion_id": "2"}])
    path.write_text("patient_id,lesion_id,Lesion_ID\n1,2,3\n")
    (problem,) = problems_of(path)
    assert "column 'lesion_id' appears more than once" in problem


def test_missing_file(tmp_path):
    assert problems_of(tmp_path / "nope.csv") == [f"{tmp_path / 'nope.csv'}: file not found"]


def test_extra_sequences_are_path_columns(make_manifest, tmp_path):
    rows = [dict(r, perf=r["t1c"]) for r in GOOD_ROWS]
    cohort = load_cohort(make_manifest(rows), sequences=["perf"])
    assert cohort.sequences == ("t1c", "perf")
    assert Path(cohort.lesions["perf"].iloc[1]).is_absolute()
