"""Inputs as other software writes them, through the real `extract` command, each compared with
its NIfTI equivalent: masks cropped, padded or with float noise in their geometry; DICOM study
folders; enhanced MR; 3D Slicer `.seg.nrrd`; RTSTRUCT and SEG files written by rt-utils and
highdicom (`../shared/real-dicom/`, read in place, never copied into the repository); and
lesions whose features pyradiomics does not return.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
import slicerio
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "imaging"))

from dicom_factory import (
    edit_dicom,
    fake_uid,
    oblique_grid,
    sitk_image,
    write_mr_series,
    write_sphere_study,
)

from conftest import write_csv
from rnclassifier.cli import main
from rnclassifier.errors import InputError
from rnclassifier.imaging.dicom import load_series
from rnclassifier.imaging.read import DIRECTION_TOLERANCE, GRID_TOLERANCE_VOXELS, onto_image_grid

REAL_DICOM = Path(__file__).resolve().parents[2] / "shared" / "real-dicom"
needs_real_dicom = pytest.mark.skipif(
    not REAL_DICOM.is_dir(), reason="../shared/real-dicom is not beside the checkout"
)
GRID = oblique_grid()
CENTRE = GRID.to_physical(np.array([31.37, 27.81, 11.42]))
RADIUS = 8.0
PARAMS = {
    "setting": {"binWidth": 25, "label": 1},
    "imageType": {"Original": {}},
    "featureClass": {"shape": None, "firstorder": None, "glcm": None},
}
COLUMNS = ["patient_id", "lesion_id", "t1c", "mask", "roi_name", "mask_label", "t1c_series"]


@dataclasses.dataclass
class Clinic:
    folder: Path
    inside: np.ndarray
    image: sitk.Image  # the T1c with the DICOM series' exact geometry
    params: Path


@pytest.fixture(scope="module")
def clinic(tmp_path_factory) -> Clinic:
    folder = tmp_path_factory.mktemp("clinic")
    made = write_sphere_study(folder, GRID, CENTRE, RADIUS)
    image = sitk_image(made.volume, GRID)
    sitk.WriteImage(image, str(folder / "t1c.nii.gz"))
    sitk.WriteImage(sitk_image(made.inside.astype(np.uint8), GRID), str(folder / "mask.nii.gz"))
    (folder / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return Clinic(folder, made.inside, image, folder / "params.yaml")


def run_extract(
    capsys, folder: Path, rows: list[dict], params: Path, *flags: str
) -> tuple[int, str, Path]:
    """`rnclassifier extract` on the rows; (exit status, stderr + stdout, table path)."""
    manifest = write_csv(folder / "cohort.csv", rows, COLUMNS)
    out = folder / "out" / "features.parquet"
    status = main(["extract", "--cohort", str(manifest), "--params", str(params), "--out",
                   str(out), "--no-cache", *flags])  # fmt: skip
    captured = capsys.readouterr()
    return status, captured.err + captured.out, out


def row(lesion: str, t1c: str | Path, mask: str | Path, **more: str) -> dict:
    return {"patient_id": "P1", "lesion_id": lesion, "t1c": str(t1c), "mask": str(mask), **more}


def features(out: Path) -> pd.DataFrame:
    table = pd.read_parquet(out).set_index("lesion_id")
    return table.drop(columns=["patient_id"]).astype(float)


def assert_same_features(table: pd.DataFrame, a: str, b: str, rel: float = 1e-6) -> None:
    assert table.shape[1] > 30
    np.testing.assert_allclose(table.loc[a].to_numpy(), table.loc[b].to_numpy(), rtol=rel)


def assert_refused(status: int, output: str, out: Path, *words: str) -> None:
    lines = [line for line in output.strip().splitlines() if line]
    assert status == 2, output
    assert lines, "no message"
    assert all(line.startswith("error: ") for line in lines), output
    for word in words:
        assert word in output, f"{word!r} not in {output}"
    assert not out.exists()
    assert not out.with_name(out.name + ".json").exists()


# --- one geometry rule -------------------------------------------------------------------------


def mask_image(clinic: Clinic) -> sitk.Image:
    mask = sitk.GetImageFromArray(clinic.inside.astype(np.uint8))
    mask.CopyInformation(clinic.image)
    return mask


def test_float_noise_in_the_geometry_takes_the_images(clinic, tmp_path, capsys):
    """A converter's 1e-5 mm: formerly pyradiomics skipped every feature and extract exited 0."""
    noisy = mask_image(clinic)
    noisy.SetOrigin(tuple(np.add(noisy.GetOrigin(), [1e-5, -1e-5, 1e-5])))
    noisy.SetSpacing(tuple(np.multiply(noisy.GetSpacing(), 1 + 1e-6)))
    direction = np.array(noisy.GetDirection()) + 1e-7
    noisy.SetDirection(tuple(direction))
    path = tmp_path / "noisy.nrrd"  # NRRD keeps float64 geometry: the noise survives the file
    sitk.WriteImage(noisy, str(path))
    assert sitk.ReadImage(str(path)).GetOrigin() != clinic.image.GetOrigin()
    rows = [row("clean", clinic.folder / "t1c.nii.gz", clinic.folder / "mask.nii.gz"),
            row("noisy", clinic.folder / "t1c.nii.gz", path)]  # fmt: skip
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert status == 0, output
    assert_same_features(features(out), "clean", "noisy", rel=0)


def test_cropped_and_padded_masks_are_pasted_exactly(clinic, tmp_path, capsys):
    mask = mask_image(clinic)
    voxels = np.argwhere(clinic.inside)  # (k, j, i)
    low, high = voxels.min(axis=0)[::-1] - 2, voxels.max(axis=0)[::-1] + 3
    cropped = sitk.RegionOfInterest(mask, [int(v) for v in high - low], [int(v) for v in low])
    padded = sitk.ConstantPad(mask, [3, 1, 2], [2, 4, 1], 0)
    assert cropped.GetSize() != mask.GetSize()
    assert padded.GetSize() != mask.GetSize()
    notes: list[str] = []
    for variant, kind in ((cropped, "cropped"), (padded, "padded")):
        placed = onto_image_grid(variant, clinic.image, "mask", notes)
        assert np.array_equal(sitk.GetArrayFromImage(placed), clinic.inside)
        assert placed.GetOrigin() == clinic.image.GetOrigin()
        assert any(kind in n for n in notes), notes
    for variant, name in ((cropped, "cropped.nii.gz"), (padded, "padded.nii.gz")):
        sitk.WriteImage(variant, str(tmp_path / name))
    rows = [row("nifti", clinic.folder / "t1c.nii.gz", clinic.folder / "mask.nii.gz"),
            row("cropped", clinic.folder / "t1c.nii.gz", tmp_path / "cropped.nii.gz"),
            row("padded", clinic.folder / "t1c.nii.gz", tmp_path / "padded.nii.gz")]  # fmt: skip
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert status == 0, output
    table = features(out)
    assert_same_features(table, "nifti", "cropped")
    assert_same_features(table, "nifti", "padded")
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert "cropped" in " ".join(sidecar["lesions"][1]["current"]["input_notes"])


def test_a_labelled_voxel_outside_the_image_is_refused(clinic, tmp_path, capsys):
    padded = sitk.ConstantPad(mask_image(clinic), [3, 0, 0], [0, 0, 0], 0)
    padded[0, 5, 5] = 1  # in the padding: outside the image
    sitk.WriteImage(padded, str(tmp_path / "padded.nii.gz"))
    rows = [row("bad", clinic.folder / "t1c.nii.gz", tmp_path / "padded.nii.gz")]
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert_refused(status, output, out, "manifest row 2", "padded.nii.gz",
                   "1 labelled voxel(s) outside the image")  # fmt: skip


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("half a voxel", ("origin", "0.5 of a voxel off the image's voxel lattice")),
        ("spacing", ("spacing", "differs from the image's")),
        ("direction", ("direction cosines differ by up to",)),
    ],
)
def test_masks_off_the_image_grid_are_refused_with_what_differs(
    clinic, tmp_path, capsys, change, words
):
    mask = mask_image(clinic)
    if change == "half a voxel":
        mask.SetOrigin(mask.TransformContinuousIndexToPhysicalPoint([0.5, 0.0, 0.0]))
    elif change == "spacing":
        mask.SetSpacing(tuple(np.multiply(mask.GetSpacing(), 1 + 20 * GRID_TOLERANCE_VOXELS)))
    else:
        turned = np.reshape(mask.GetDirection(), (3, 3)) @ np.array(
            [[1, 0, 0], [0, np.cos(0.02), -np.sin(0.02)], [0, np.sin(0.02), np.cos(0.02)]]
        )
        assert np.abs(turned.ravel() - mask.GetDirection()).max() > 100 * DIRECTION_TOLERANCE
        mask.SetDirection(tuple(turned.ravel()))
    sitk.WriteImage(mask, str(tmp_path / "off.nrrd"))
    rows = [row("off", clinic.folder / "t1c.nii.gz", tmp_path / "off.nrrd")]
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert_refused(status, output, out, "manifest row 2", "off.nrrd",
                   "mask is not on the image grid", "resample the mask onto the image",
                   *words)  # fmt: skip
    assert len(output.strip().splitlines()) == 1


def test_a_cropped_brain_mask_follows_the_same_rule(clinic, tmp_path, capsys):
    brain = sitk.GetArrayFromImage(mask_image(clinic)) * 0
    brain[2:-2, 4:-4, 4:-4] = 1
    whole = sitk.GetImageFromArray(brain)
    whole.CopyInformation(clinic.image)
    sitk.WriteImage(whole, str(tmp_path / "brain.nii.gz"))
    sitk.WriteImage(sitk.RegionOfInterest(whole, [58, 50, 22], [3, 3, 1]),
                    str(tmp_path / "brain_cropped.nii.gz"))  # fmt: skip
    config = {
        "pyradiomics": {"setting": {"binWidth": 0.25, "label": 1}, "imageType": {"Original": {}},
                        "featureClass": {"firstorder": None}},
        "rnclassifier": {"sequences": ["t1c"], "regions": ["lesion", "shell"],
                         "n4_bias_correction": False, "delta": False},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [row("whole", clinic.folder / "t1c.nii.gz", clinic.folder / "mask.nii.gz",
                brain_mask=str(tmp_path / "brain.nii.gz")),
            row("cropped", clinic.folder / "t1c.nii.gz", clinic.folder / "mask.nii.gz",
                brain_mask=str(tmp_path / "brain_cropped.nii.gz"))]  # fmt: skip
    manifest = write_csv(tmp_path / "cohort.csv", rows, [*COLUMNS, "brain_mask"])
    out = tmp_path / "features.parquet"
    status = main(["extract", "--cohort", str(manifest), "--params", str(tmp_path / "config.yaml"),
                   "--out", str(out), "--no-cache"])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    table = features(out)
    assert any("__shell__" in c for c in table.columns)
    assert_same_features(table, "whole", "cropped", rel=1e-9)


# --- never exit 0 with a feature missing -------------------------------------------------------


def test_a_feature_pyradiomics_does_not_return_is_an_error_or_a_counted_failure(
    clinic, tmp_path, capsys
):
    tiny = np.zeros_like(clinic.inside, dtype=np.uint8)
    tiny[11, 27:29, 31:33] = 1  # 4 voxels: under pyradiomics' minimumROISize
    tiny_mask = sitk.GetImageFromArray(tiny)
    tiny_mask.CopyInformation(clinic.image)
    sitk.WriteImage(tiny_mask, str(tmp_path / "tiny.nii.gz"))
    params = dict(PARAMS, setting={**PARAMS["setting"], "minimumROISize": 20})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rows = [row("good", clinic.folder / "t1c.nii.gz", clinic.folder / "mask.nii.gz"),
            row("tiny", clinic.folder / "t1c.nii.gz", tmp_path / "tiny.nii.gz")]  # fmt: skip
    status, output, out = run_extract(capsys, tmp_path, rows, tmp_path / "params.yaml")
    assert_refused(status, output, out, "manifest row 3", "pyradiomics skipped t1c/lesion",
                   "too small", "--allow-failures")  # fmt: skip

    status, output, out = run_extract(
        capsys, tmp_path, rows, tmp_path / "params.yaml", "--allow-failures"
    )
    assert status == 0, output
    table = features(out)
    assert table.loc["tiny"].isna().all()
    assert table.loc["good"].notna().all()
    assert f"2 lesions x {table.shape[1]} features" in output
    assert "1 technical failure(s)" in output
    assert "manifest row(s) 3" in output
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    (failed,) = sidecar["failed_rows"]
    assert failed["position"] == 1
    assert failed["manifest_row"] == 3
    assert "too small" in failed["reason"]


def test_a_lesion_with_no_features_at_all_is_never_a_success(clinic, tmp_path, capsys):
    """The single-lesion case of the issue: nothing to compare with, still refused."""
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump(dict(PARAMS, setting={**PARAMS["setting"], "minimumROISize": 10**6}))
    )
    rows = [row("only", clinic.folder / "t1c.nii.gz", clinic.folder / "mask.nii.gz")]
    status, output, out = run_extract(capsys, tmp_path, rows, tmp_path / "params.yaml")
    assert_refused(status, output, out, "manifest row 2", "pyradiomics skipped")
    assert " -1 features" not in output


# --- study folders -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study_folder(clinic, tmp_path_factory) -> Path:
    """A PACS export: T1c (#5), FLAIR (#3), a three-plane localiser (#1) and the RTSTRUCT."""
    folder = tmp_path_factory.mktemp("pacs") / "study"
    shutil.copytree(clinic.folder / "t1c_series", folder)
    shutil.copy(clinic.folder / "rtstruct.dcm", folder / "rtstruct.dcm")
    for path in sorted(folder.glob("IM*.dcm")):
        edit_dicom(path, SeriesDescription="AX T1 POST GAD", SeriesNumber=5)
    volume = sitk.GetArrayFromImage(clinic.image).astype(np.int16)
    flair = write_mr_series(tmp_path_factory.mktemp("flair"), volume // 2 + 7, GRID, tag="flair")
    for path in flair.files:
        edit_dicom(path, SeriesDescription="AX FLAIR", SeriesNumber=3)
        shutil.copy(path, folder / f"FL{path.name}")
    scout = write_mr_series(tmp_path_factory.mktemp("scout"), volume[:3], oblique_grid(
        size=(*GRID.size[:2], 3)), tag="scout")  # fmt: skip
    planes = ([1, 0, 0, 0, 1, 0], [1, 0, 0, 0, 0, -1], [0, 1, 0, 0, 0, -1])
    for path, plane in zip(scout.files, planes, strict=True):
        edit_dicom(path, SeriesDescription="LOCALIZER", SeriesNumber=1,
                   ImageOrientationPatient=plane)  # fmt: skip
        shutil.copy(path, folder / f"SC{path.name}")
    return folder


def test_a_study_folder_lists_its_series_until_one_is_chosen(clinic, study_folder, tmp_path,
                                                             capsys):  # fmt: skip
    rows = [row("study", study_folder, study_folder / "rtstruct.dcm", roi_name="GTV")]
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert_refused(status, output, out, "manifest row 2", "3 DICOM image series",
                   "t1c_series", "#1 'LOCALIZER' (3 slices, mixed orientations)",
                   "#3 'AX FLAIR' (24 slices, axial)",
                   "#5 'AX T1 POST GAD' (24 slices, axial)")  # fmt: skip
    series_uid = pydicom.dcmread(next(study_folder.glob("IM*.dcm"))).SeriesInstanceUID
    assert series_uid not in output

    rows = [row("single", clinic.folder / "t1c_series", clinic.folder / "rtstruct.dcm",
                roi_name="GTV")]  # fmt: skip
    rows += [row(f"by {how}", study_folder, study_folder / "rtstruct.dcm", roi_name="GTV",
                 t1c_series=value)
             for how, value in (("description", " ax t1 post gad"), ("number", "5"),
                                ("uid", series_uid))]  # fmt: skip
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert status == 0, output
    table = features(out)
    for how in ("description", "number", "uid"):
        assert_same_features(table, "single", f"by {how}", rel=0)


def test_a_selector_matching_several_series_is_refused(clinic, study_folder, tmp_path, capsys):
    folder = tmp_path / "study"
    shutil.copytree(study_folder, folder)
    for path in folder.glob("SC*.dcm"):
        edit_dicom(path, SeriesDescription="AX FLAIR")
    rows = [row("two", folder, folder / "rtstruct.dcm", roi_name="GTV", t1c_series="AX FLAIR")]
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert_refused(status, output, out, "2 series match t1c_series", "#1 'AX FLAIR'",
                   "#3 'AX FLAIR'")  # fmt: skip
    rows = [row("none", folder, folder / "rtstruct.dcm", roi_name="GTV", t1c_series="SAG T2")]
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert_refused(status, output, out, "no series matches t1c_series", "#5 'AX T1 POST GAD'")


def test_an_enhanced_mr_object_gives_the_features_of_its_slices(clinic, tmp_path, capsys):
    datasets = [pydicom.dcmread(p) for p in sorted((clinic.folder / "t1c_series").glob("*.dcm"))]
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=datasets,
        series_instance_uid=fake_uid("enhanced series"),
        series_number=9,
        sop_instance_uid=fake_uid("enhanced"),
        instance_number=1,
    )
    (tmp_path / "enhanced").mkdir()
    enhanced.save_as(tmp_path / "enhanced" / "MR.dcm")
    rows = [row("slices", clinic.folder / "t1c_series", clinic.folder / "mask.nii.gz"),
            row("enhanced", tmp_path / "enhanced", clinic.folder / "mask.nii.gz"),
            row("enhanced rtstruct", tmp_path / "enhanced", clinic.folder / "rtstruct.dcm",
                roi_name="GTV"),
            row("slices rtstruct", clinic.folder / "t1c_series", clinic.folder / "rtstruct.dcm",
                roi_name="GTV")]  # fmt: skip
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert status == 0, output
    table = features(out)
    assert_same_features(table, "slices", "enhanced", rel=0)
    # The structure set references the single-frame slices: placed by geometry on the object.
    assert_same_features(table, "slices rtstruct", "enhanced rtstruct", rel=0)
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    notes = " ".join(sidecar["lesions"][2]["current"]["input_notes"])
    assert "references another series in the image's frame of reference" in notes
    assert "contours placed by geometry" in notes


# --- 3D Slicer segmentations -------------------------------------------------------------------


def test_slicer_segmentation_cropped_to_its_segments(clinic, tmp_path, capsys):
    """Slicer saves only the segments' extent: pasted onto the image, same features, in a
    single-layer file (disjoint segments) and a layered one (overlapping segments)."""
    voxels = np.argwhere(clinic.inside)
    low, high = voxels.min(axis=0) - 1, voxels.max(axis=0) + 2
    lesion = clinic.inside[tuple(slice(a, b) for a, b in zip(low, high, strict=True))]
    lesion_ijk = np.transpose(lesion, (2, 1, 0))
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.reshape(clinic.image.GetDirection(), (3, 3)) * clinic.image.GetSpacing()
    ijk_to_lps[:3, 3] = clinic.image.TransformIndexToPhysicalPoint([int(v) for v in low[::-1]])
    below = np.zeros_like(lesion_ijk)
    below[:, :, 0] = True  # a slab beside the lesion: disjoint from it
    for name, other in (("single.seg.nrrd", below), ("layered.seg.nrrd", lesion_ijk | below)):
        segmentation = slicerio.create_segmentation(lesion_ijk.shape, ijk_to_lps)
        slicerio.add_segment(segmentation, other, {"name": "Oedema"})  # in place
        slicerio.add_segment(segmentation, lesion_ijk, {"name": "Lesion"})
        slicerio.write_segmentation(str(tmp_path / name), segmentation)
    assert sitk.ReadImage(str(tmp_path / "layered.seg.nrrd")).GetNumberOfComponentsPerPixel() == 2
    rows = [row("nifti", clinic.folder / "t1c.nii.gz", clinic.folder / "mask.nii.gz")]
    rows += [row(name, clinic.folder / "t1c.nii.gz", tmp_path / f"{name}.seg.nrrd",
                 roi_name=" lesion") for name in ("single", "layered")]  # fmt: skip
    status, output, out = run_extract(capsys, tmp_path, rows, clinic.params)
    assert status == 0, output
    assert_same_features(features(out), "nifti", "single", rel=0)
    assert_same_features(features(out), "nifti", "layered", rel=0)
    rows = [row("unnamed", clinic.folder / "t1c.nii.gz", tmp_path / "layered.seg.nrrd")]
    (tmp_path / "again").mkdir()
    status, output, out = run_extract(capsys, tmp_path / "again", rows, clinic.params)
    assert_refused(status, output, out, "layered.seg.nrrd", "2 segments", "'Lesion'", "'Oedema'")


# --- files that other tools wrote (../shared/real-dicom) ---------------------------------------


def even_odd_rasterise(contours: list[np.ndarray], image: sitk.Image) -> np.ndarray:
    """The stated rule, written independently of the reader: a voxel is inside when its centre
    is inside an odd number of the slice's closed contours (ray casting, axis-aligned image)."""
    size = image.GetSize()
    mask = np.zeros(size[::-1], dtype=bool)
    i, j = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="xy")
    for points in contours:
        index = np.array([image.TransformPhysicalPointToContinuousIndex(p) for p in points])
        k = round(float(index[0, 2]))
        x, y = index[:, 0], index[:, 1]
        x2, y2 = np.roll(x, -1), np.roll(y, -1)
        inside = np.zeros(i.shape, dtype=bool)
        for a, b, c, d in zip(x, y, x2, y2, strict=True):
            crosses = (b > j) != (d > j)
            with np.errstate(divide="ignore", invalid="ignore"):
                at = a + (j - b) * (c - a) / (d - b)
            inside ^= crosses & (i < at)
        mask[k] ^= inside
    return mask


@needs_real_dicom
def test_rt_utils_structure_set_with_its_own_frame_of_reference(tmp_path, capsys):
    """rt-utils writes a FrameOfReferenceUID of its own beside the right series: accepted,
    noted, and rasterised exactly as the stated rule says."""
    folder = REAL_DICOM / "rt-utils" / "mock_data"
    rtstruct = pydicom.dcmread(folder / "rt.dcm")
    contours = [np.reshape(np.array(c.ContourData, dtype=float), (-1, 3))
                for c in rtstruct.ROIContourSequence[0].ContourSequence]  # fmt: skip
    image = load_series(folder).image
    expected = even_odd_rasterise(contours, image)
    assert expected.sum() > 100
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    twin = sitk.GetImageFromArray(expected.astype(np.uint8))
    twin.CopyInformation(image)
    sitk.WriteImage(twin, str(tmp_path / "mask.nrrd"))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(dict(PARAMS, featureClass={"firstorder": None,
                                                               "glcm": None})))  # fmt: skip
    rows = [row("rt-utils", folder, folder / "rt.dcm", roi_name="roi-1"),
            row("twin", tmp_path / "ct.nrrd", tmp_path / "mask.nrrd")]  # fmt: skip
    status, output, out = run_extract(capsys, tmp_path, rows, params)
    assert status == 0, output
    assert_same_features(features(out), "rt-utils", "twin", rel=0)
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    notes = " ".join(sidecar["lesions"][0]["current"]["input_notes"])
    assert "names another frame of reference than the image's while referencing its series" in (
        notes
    )
    assert rtstruct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID not in notes


@needs_real_dicom
@pytest.mark.parametrize("name", ["invalid_reference_rt.dcm", "non_existent_reference_rt.dcm"])
def test_rt_utils_structure_sets_with_contours_beyond_the_series(name, tmp_path, capsys):
    """rt-utils' broken references: their ROI-1 has a contour at z = 70 mm, a slice that the
    two-slice CT (z = 60, 65 mm) does not have."""
    folder = REAL_DICOM / "rt-utils" / "mock_data"
    rows = [row("broken", folder, folder / name, roi_name="ROI-1")]
    status, output, out = run_extract(capsys, tmp_path, rows, PARAMS_FILE(tmp_path))
    assert_refused(status, output, out, name, "'ROI-1'", "lies outside the image volume")


def PARAMS_FILE(folder: Path) -> Path:  # noqa: N802 - reads as the constant it stands for
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(PARAMS))
    return path


@needs_real_dicom
def test_rt_utils_oblique_slices_without_slice_location():
    image = load_series(REAL_DICOM / "rt-utils" / "oriented_data").image
    first = pydicom.dcmread(REAL_DICOM / "rt-utils" / "oriented_data" / "0.dcm")
    last = pydicom.dcmread(REAL_DICOM / "rt-utils" / "oriented_data" / "2.dcm")
    row_cos, col_cos = (
        np.array(first.ImageOrientationPatient[:3], float),
        np.array(first.ImageOrientationPatient[3:], float),
    )
    normal = np.cross(row_cos, col_cos)
    step = (np.array(last.ImagePositionPatient, float) - np.array(first.ImagePositionPatient,
                                                                   float)) @ normal / 2  # fmt: skip
    direction = np.reshape(image.GetDirection(), (3, 3))
    np.testing.assert_allclose(direction[:, 2], normal * np.sign(step), atol=1e-5)
    assert image.GetSize() == (first.Columns, first.Rows, 3)
    assert image.GetSpacing()[2] == pytest.approx(abs(step), abs=1e-6)
    np.testing.assert_allclose(direction[:, 0], row_cos, atol=1e-5)


@needs_real_dicom
@pytest.mark.parametrize(
    ("folder", "words"),
    [
        ("rt-utils/one_slice_data", "a single slice"),
        ("pydicom/dicomdirtests_77654033_CT2", "missing slice"),
    ],
)
def test_third_party_series_that_are_not_a_volume(folder, words, tmp_path, capsys):
    series = REAL_DICOM / folder
    rows = [row("x", series, tmp_path / "mask.nii.gz")]
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkUInt8), str(tmp_path / "mask.nii.gz"))
    status, output, out = run_extract(capsys, tmp_path, rows, PARAMS_FILE(tmp_path))
    assert_refused(status, output, out, str(series), words)


@pytest.fixture(scope="module")
def highdicom_ct(tmp_path_factory) -> Path:
    """The three evenly spaced slices of pydicom's CT2 series that highdicom's SEGs cover
    (the fourth lies 202 mm away); the SEGs reference all four, so one reference is stale."""
    folder = tmp_path_factory.mktemp("ct2") / "ct"
    folder.mkdir()
    for name in ("17136", "17166", "17196"):
        shutil.copy(REAL_DICOM / "pydicom" / "dicomdirtests_77654033_CT2" / name, folder / name)
    return folder


@needs_real_dicom
@pytest.mark.parametrize(
    ("seg", "segment", "note"),
    [
        ("seg_image_ct_binary.dcm", "first segment", None),
        ("seg_image_ct_binary_fractional.dcm", "First Segment", "FRACTIONAL segment thresholded"),
        ("seg_image_ct_true_fractional.dcm", "first segment", "FRACTIONAL segment thresholded"),
    ],
)
def test_highdicom_segs_match_their_nifti_twin(seg, segment, note, highdicom_ct, tmp_path,
                                               capsys):  # fmt: skip
    path = REAL_DICOM / "highdicom" / seg
    document = hd.seg.segread(path)
    image = load_series(highdicom_ct).image
    volume = document.get_volume(segment_numbers=[1])
    values = np.asarray(volume.array, dtype=float).reshape(volume.spatial_shape)
    # highdicom's volume runs along the frames; place it by position, as a NIfTI twin would.
    first = image.TransformPhysicalPointToIndex(tuple(volume.affine[:3, 3]))
    expected = np.zeros(image.GetSize()[::-1], dtype=np.uint8)
    order = 1 if volume.affine[2, 0] > 0 else -1
    expected[first[2] :: order][: values.shape[0]] = values >= 0.5
    assert expected.sum() > 0
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    twin = sitk.GetImageFromArray(expected)
    twin.CopyInformation(image)
    sitk.WriteImage(twin, str(tmp_path / "mask.nrrd"))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(dict(PARAMS, setting={"binWidth": 25, "label": 1,
                                                           "minimumROISize": 1})))  # fmt: skip
    rows = [row("seg", highdicom_ct, path, roi_name=segment),
            row("twin", tmp_path / "ct.nrrd", tmp_path / "mask.nrrd")]  # fmt: skip
    status, output, out = run_extract(capsys, tmp_path, rows, params)
    assert status == 0, output
    assert_same_features(features(out), "seg", "twin", rel=0)
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    notes = " ".join(sidecar["lesions"][0]["current"].get("input_notes", []))
    assert "1 of 4 source image references name images that are not in this series" in notes
    if note:
        assert note in notes


def test_onto_image_grid_refuses_what_it_cannot_paste():
    image = sitk.Image([10, 10, 10], sitk.sitkFloat32)
    mask = sitk.Image([4, 4, 4], sitk.sitkUInt8)
    mask.SetOrigin((0.25, 0.0, 0.0))
    with pytest.raises(InputError, match=r"0\.25 of a voxel off the image's voxel lattice"):
        onto_image_grid(mask, image, "m.nii.gz")
