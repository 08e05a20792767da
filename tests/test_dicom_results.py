"""`score --dicom-out`: a DICOM SEG of the scored lesion and a DICOM SR of the result.

One case is scored once (module fixture, through the command line) with its T1c as a DICOM
series whose headers carry identifiers and other facts of the source; the files are read back
with pydicom and highdicom: the SEG's pixels are the scored mask on the source slices, the SR
holds the probability, call, threshold and model identity, both reference the source series,
and only the attributes that attach a result to its study are copied. The same writer is then
given the mask as a NIfTI label image, an RTSTRUCT and a SEG, and must write the same pixels.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent / "imaging"))

from dicom_factory import (
    FAKE_ACCESSION,
    FAKE_PATIENT_ID,
    FAKE_PATIENT_NAME,
    edit_dicom,
    fake_uid,
    grid_of,
    oblique_grid,
    sphere_contours,
    sphere_mask,
    write_mr_series,
    write_rtstruct,
    write_seg,
)

from rnclassifier.cli import main
from rnclassifier.cohort import CLINICAL_COLUMNS as CLINICAL
from rnclassifier.errors import InputError
from rnclassifier.imaging.read import read_image, read_mask
from rnclassifier.scoring import RESEARCH_USE, CaseInputs
from rnclassifier.scoring.dicom_results import (
    ATTACHING_ATTRIBUTES,
    DECIMALS,
    SEG_NAME,
    SR_NAME,
    check_dicom_out,
    write_dicom_results,
)

#: Facts of the source that a result must not copy (beside the patient and study identifiers).
SOURCE_ONLY = {
    "InstitutionName": "FAKE INSTITUTION OF CANARIES",
    "InstitutionAddress": "1 FAKE STREET",
    "StationName": "FAKESTATION9",
    "SeriesDescription": "FAKE AX T1 POST GAD",
    "OperatorsName": "FAKE^OPERATOR",
    "PerformingPhysicianName": "FAKE^PERFORMER",
    "PatientAge": "099Y",
    "PatientComments": "FAKE COMMENT",
    "StudyDescription": "FAKE STUDY DESCRIPTION",
}
#: The planted patient and study values, which only `ATTACHING_ATTRIBUTES` may carry.
PLANTED = (FAKE_PATIENT_NAME, FAKE_PATIENT_ID, FAKE_ACCESSION, "19000101", "FAKE^DOCTOR")


def _plant_source_facts(files: list[Path]) -> None:
    for path in files:
        edit_dicom(path, **SOURCE_ONLY)


def _elements(ds: Dataset, path: str = "") -> list[tuple[str, str]]:
    """(keyword path, value as text) of every element, nested sequences included."""
    found = []
    for element in ds:
        where = f"{path}{element.keyword or element.tag}"
        if element.VR == "SQ":
            for item in element.value:
                found += _elements(item, where + ">")
        elif element.keyword != "PixelData":
            found.append((where, str(element.value)))
    return found


@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory) -> dict:
    """One training lesion scored through the command line with --dicom-out, its T1c given as a
    DICOM series (identifiers and source facts planted) and its NIfTI mask."""
    folder = tmp_path_factory.mktemp("dicom-out")
    row = trained["manifest"].iloc[3]
    base = trained["folder"] / "cohort"
    image = sitk.ReadImage(str(base / row["t1c"]))
    volume = np.round(sitk.GetArrayFromImage(image) * 100).astype(np.int16)
    series = write_mr_series(folder / "t1c", volume, grid_of(image))
    _plant_source_facts(series.files)
    known = [k for k in CLINICAL if isinstance(row[k], str)]
    facts = [a for k in known for a in ("--clinical", f"{k}={row[k]}")]
    argv = [
        "score", "--model", str(trained["bundle"]), "--t1c", str(series.folder),
        "--flair", str(base / row["flair"]), "--mask", str(base / row["mask"]),
        "--brain-mask", str(base / row["brain_mask"]), "--site", row["site"], *facts,
        "--out", str(folder / "result.json"), "--dicom-out", str(folder / "pacs"),
    ]  # fmt: skip
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(argv)
    assert status == 0
    reference = read_image(series.folder)
    mask = read_mask(base / row["mask"], reference)
    return {
        "folder": folder,
        "series": series,
        "result": json.loads((folder / "result.json").read_text()),
        "stdout": stdout.getvalue(),
        "mask": sitk.GetArrayFromImage(mask).astype(bool),
        "seg": pydicom.dcmread(folder / "pacs" / SEG_NAME),
        "sr": pydicom.dcmread(folder / "pacs" / SR_NAME),
    }


def _seg_pixels(seg: Dataset, sop_uids: list[str]) -> np.ndarray:
    """The SEG's one segment on the source slices, placed by each frame's source reference."""
    document = hd.seg.Segmentation.from_dataset(seg, copy=True)
    values = document.get_pixels_by_source_instance(
        sop_uids, segment_numbers=[1], assert_missing_frames_are_empty=True
    )
    return np.asarray(values[..., 0], dtype=bool)


def test_the_summary_names_both_files_and_nothing_else_is_in_the_folder(scored):
    pacs = scored["folder"] / "pacs"
    assert sorted(p.name for p in pacs.iterdir()) == sorted([SEG_NAME, SR_NAME])
    assert str(pacs / SEG_NAME) in scored["stdout"]
    assert str(pacs / SR_NAME) in scored["stdout"]
    assert not [p for p in scored["folder"].iterdir() if p.name.endswith(".partial")]
    # The identifiers go into the DICOM files only: the JSON result and the summary stay clean.
    for text in ((scored["folder"] / "result.json").read_text(), scored["stdout"]):
        for planted in (*PLANTED, *SOURCE_ONLY.values()):
            assert planted not in text


def test_seg_holds_the_scored_mask_frame_for_frame_on_the_source_slices(scored):
    seg, series = scored["seg"], scored["series"]
    assert seg.SOPClassUID == pydicom.uid.SegmentationStorage
    assert seg.SegmentationType == "BINARY"
    pixels = _seg_pixels(seg, series.sop_uids)
    assert pixels.shape == scored["mask"].shape
    assert np.array_equal(pixels, scored["mask"])
    assert scored["mask"].sum() > 50
    # Each frame derives from the source slice at its own position.
    positions = {uid: ds.ImagePositionPatient for uid, ds in
                 zip(series.sop_uids, series.datasets(), strict=True)}  # fmt: skip
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        where = frame.PlanePositionSequence[0].ImagePositionPatient
        assert np.allclose([float(v) for v in where],
                           [float(v) for v in positions[source.ReferencedSOPInstanceUID]],
                           atol=1e-3)  # fmt: skip
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "lesion"
    assert segment.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert segment.SegmentAlgorithmName == "rnclassifier"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"  # SCT Lesion
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    assert seg.FrameOfReferenceUID == series.frame_uid


def _content(sr: Dataset) -> list[Dataset]:
    """Every content item of the SR, depth first."""
    items = []

    def walk(ds: Dataset) -> None:
        for item in ds.get("ContentSequence", []):
            items.append(item)
            walk(item)

    walk(sr)
    return items


def _named(items: list[Dataset], code: str) -> list[Dataset]:
    return [i for i in items if i.ConceptNameCodeSequence[0].CodeValue == code]


def test_sr_holds_probability_call_threshold_and_model(scored):
    sr, result = scored["sr"], scored["result"]
    items = _content(sr)
    (probability,) = _named(items, "111047")  # DCM Probability of cancer
    value = probability.MeasuredValueSequence[0]
    # Stored rounded to DECIMALS (documented), so within half a unit of the last decimal.
    assert float(value.NumericValue) == round(result["probability"], DECIMALS)
    assert abs(float(value.NumericValue) - result["probability"]) <= 0.5 * 10**-DECIMALS
    assert DECIMALS >= 4
    assert value.MeasurementUnitsCodeSequence[0].CodeValue == "{probability}"
    assert value.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
    (threshold,) = _named(items, "122411")  # DCM Threshold Value
    stored = float(threshold.MeasuredValueSequence[0].NumericValue)
    assert stored == round(result["threshold"]["value"], DECIMALS)
    (call,) = _named(items, "111023")  # DCM Differential Diagnosis/Impression
    expected = {"tumor": "25173007", "necrosis": "6574001", "indeterminate": "82334004"}
    assert call.ConceptCodeSequence[0].CodeValue == expected[result["call"]]
    parameters = [i.TextValue for i in _named(items, "111002")]  # DCM Algorithm Parameters
    assert f"model: {result['model']['name']}" in parameters
    assert f"bundle manifest SHA-256: {result['model']['manifest_sha256']}" in parameters
    assert {i.TextValue for i in _named(items, "111001")} == {"rnclassifier"}
    (comment,) = _named(items, "121106")
    assert RESEARCH_USE in comment.TextValue
    assert result["model"]["manifest_sha256"] in comment.TextValue
    assert "SYNTHETIC" in comment.TextValue
    assert sr.VerificationFlag == "UNVERIFIED"


def test_sr_references_the_segment_and_the_source_series(scored):
    sr, seg, series = scored["sr"], scored["seg"], scored["series"]
    report = hd.sr.srread(io.BytesIO(_bytes(sr)))
    (group,) = report.content.get_volumetric_roi_measurement_groups()
    segment = group.referenced_segment
    assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert segment.referenced_segment_numbers == [1]
    assert segment.source_series_for_segmentation.value == series.series_uid
    [measurement] = [m for m in group.get_measurements() if m.name.value == "111047"]
    assert measurement.value == round(scored["result"]["probability"], DECIMALS)
    [call] = group.get_qualitative_evaluations()
    assert call.name.value == "111023"
    assert group.finding_type.value == "52988006"  # SCT Lesion
    evidence = {
        s.SeriesInstanceUID: {i.ReferencedSOPInstanceUID for i in s.ReferencedSOPSequence}
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for s in study.ReferencedSeriesSequence
    }
    assert evidence[series.series_uid] == set(series.sop_uids)
    assert evidence[seg.SeriesInstanceUID] == {seg.SOPInstanceUID}
    assert sr.StudyInstanceUID == seg.StudyInstanceUID == series.study_uid


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_only_the_attaching_patient_and_study_attributes_are_copied(scored):
    series = scored["series"]
    new_uids = set()
    for ds in (scored["seg"], scored["sr"]):
        elements = _elements(ds)
        carriers = {where for where, value in elements for planted in PLANTED if planted in value}
        assert carriers == {"PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                            "ReferringPhysicianName"}  # fmt: skip
        assert carriers <= set(ATTACHING_ATTRIBUTES)
        for keyword, value in SOURCE_ONLY.items():
            assert not [w for w, v in elements if value in v], keyword
        assert ds.SeriesDescription == "rnclassifier (research use only)"
        for keyword in ("InstitutionName", "OperatorsName", "StationName", "PatientAge"):
            assert keyword not in ds
        assert ds.StudyInstanceUID == series.study_uid
        assert ds.StudyID == "FAKESTUDY"
        new_uids |= {ds.SeriesInstanceUID, ds.SOPInstanceUID}
    assert len(new_uids) == 4
    assert not new_uids & {series.series_uid, *series.sop_uids}


def test_dciodvfy_finds_no_error_in_either_file(scored):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    for name in (SEG_NAME, SR_NAME):
        done = subprocess.run(
            ["dciodvfy", str(scored["folder"] / "pacs" / name)], capture_output=True, text=True
        )
        lines = (done.stdout + done.stderr).splitlines()
        print(name, *lines, sep="\n  ")
        assert not [line for line in lines if line.startswith("Error")], lines


# --- the same pixels from every mask format -----------------------------------------------------


@pytest.fixture(scope="module")
def sphere(tmp_path_factory) -> dict:
    """A small oblique DICOM series with a spherical lesion as an RTSTRUCT, and the same voxels
    (as rasterised by the tool) as a NIfTI label image and as a SEG."""
    folder = tmp_path_factory.mktemp("sphere")
    grid = oblique_grid()
    centre = grid.to_physical(np.array([31.3, 27.6, 11.4]))
    inside = sphere_mask(grid, centre, 7.0)
    volume = (400 + 600 * inside.astype(np.int16)).astype(np.int16)
    series = write_mr_series(folder / "t1c", volume, grid, tag="sphere")
    _plant_source_facts(series.files)
    contours = {"GTV": sphere_contours(grid, centre, 7.0)}
    rtstruct = write_rtstruct(folder / "rs.dcm", series, contours)
    reference = read_image(series.folder)
    mask = read_mask(rtstruct, reference, reference_path=series.folder, roi_name="GTV")
    sitk.WriteImage(mask, str(folder / "mask.nii.gz"))
    voxels = sitk.GetArrayFromImage(mask)
    write_seg(folder / "seg.dcm", series, {"lesion": voxels})
    return {"folder": folder, "series": series, "voxels": voxels.astype(bool),
            "masks": {"nifti": folder / "mask.nii.gz", "rtstruct": rtstruct,
                      "seg": folder / "seg.dcm"}}  # fmt: skip


@pytest.mark.parametrize("kind", ["nifti", "rtstruct", "seg"])
def test_every_mask_format_gives_the_same_seg_pixels(scored, sphere, kind, tmp_path):
    series = sphere["series"]
    case = CaseInputs(images={"t1c": str(series.folder)}, mask=str(sphere["masks"][kind]))
    seg_path, sr_path = write_dicom_results(scored["result"], case, tmp_path / "out")
    assert sphere["voxels"].sum() > 20
    seg = pydicom.dcmread(seg_path)
    assert np.array_equal(_seg_pixels(seg, series.sop_uids), sphere["voxels"])
    assert pydicom.dcmread(sr_path).StudyInstanceUID == series.study_uid


def test_an_enhanced_mr_source_is_placed_by_position(scored, sphere, tmp_path):
    series = sphere["series"]
    folder = tmp_path / "enhanced"
    folder.mkdir()
    datasets = series.datasets()[::-1]  # frames stored against the slice order
    hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=datasets, series_instance_uid=fake_uid("enhanced-series"),
        series_number=7, sop_instance_uid=fake_uid("enhanced"), instance_number=1,
    ).save_as(folder / "enhanced.dcm")  # fmt: skip
    case = CaseInputs(images={"t1c": str(folder)}, mask=str(sphere["masks"]["nifti"]))
    seg_path, _ = write_dicom_results(scored["result"], case, tmp_path / "out")
    seg = hd.seg.segread(seg_path)
    frames = seg.get_volume(segment_numbers=[1])
    array = np.asarray(frames.array).reshape(frames.spatial_shape)
    # The same voxels, compared where they are: voxel centres in patient space (mm).
    found = np.argwhere(array > 0) @ np.asarray(frames.affine)[:3, :3].T + frames.affine[:3, 3]
    k, j, i = np.nonzero(sphere["voxels"])
    expected = series.grid.to_physical(np.column_stack([i, j, k]))
    assert len(found) == len(expected)

    def ordered(points: np.ndarray) -> np.ndarray:
        return points[np.lexsort(np.round(points, 2).T)]

    assert np.allclose(ordered(found), ordered(expected), atol=1e-2)
    references = {uids[2] for uids in seg.get_source_image_uids()}
    assert references == {fake_uid("enhanced")}


# --- refusals -----------------------------------------------------------------------------------


def test_a_nifti_t1c_is_refused_before_scoring(sphere, tmp_path, capsys):
    nifti = str(sphere["masks"]["nifti"])
    # No bundle: the request is refused before the bundle is even looked for.
    argv = [
        "score", "--model", str(tmp_path / "no-bundle"), "--t1c", nifti, "--mask", nifti,
        "--out", str(tmp_path / "result.json"), "--dicom-out", str(tmp_path / "pacs"),
    ]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        "error: --dicom-out: needs --t1c to be a DICOM series (a folder, or a study folder "
        "with --t1c-series)"
    ]
    assert not (tmp_path / "pacs").exists()
    assert not (tmp_path / "result.json").exists()


def test_with_cohort_it_is_refused(tmp_path, capsys, make_manifest):
    argv = ["score", "--model", str(tmp_path / "m"), "--cohort", str(make_manifest()),
            "--out", str(tmp_path / "scores.csv"),
            "--dicom-out", str(tmp_path / "pacs")]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["error: --dicom-out: only for one case, not with --cohort"]


def test_a_folder_holding_other_files_is_refused_and_kept(sphere, tmp_path):
    out = tmp_path / "pacs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    case = CaseInputs(images={"t1c": str(sphere["series"].folder)}, mask="unused")
    with pytest.raises(InputError, match="holds 1 other file"):
        check_dicom_out(case, out)
    assert (out / "notes.txt").read_text() == "mine"
