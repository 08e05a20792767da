"""A clinic's inputs end to end: a DICOM series with an RTSTRUCT (or a SEG) in the manifest gives
the same features as the NIfTI twin of the same image and mask."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "imaging"))

from dicom_factory import oblique_grid, sitk_image, write_sphere_study

from conftest import write_csv
from rnclassifier.cohort import load_cohort
from rnclassifier.config import load_extraction_config
from rnclassifier.errors import InputError
from rnclassifier.features.extract import extract_features

GRID = oblique_grid()
CENTRE = GRID.to_physical(np.array([31.37, 27.81, 11.42]))
RADIUS = 10.0
PARAMS = {
    "setting": {"binWidth": 25, "label": 1},
    "imageType": {"Original": {}},
    "featureClass": {"shape": None, "firstorder": None, "glcm": None},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clinic")
    made = write_sphere_study(folder, GRID, CENTRE, RADIUS, {"GTV": RADIUS, "Brain": RADIUS + 4})
    sitk.WriteImage(sitk_image(made.volume, GRID), str(folder / "t1c.nii.gz"))
    sitk.WriteImage(sitk_image(made.inside.astype(np.uint8), GRID), str(folder / "mask.nii.gz"))
    (folder / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return folder


def manifest(study: Path, rows: list[dict[str, str]]) -> Path:
    columns = ["patient_id", "lesion_id", "t1c", "mask", "roi_name"]
    return write_csv(study / "cohort.csv", rows, columns)


def test_rtstruct_and_seg_rows_match_the_nifti_twin(study):
    path = manifest(
        study,
        [
            {"patient_id": "P1", "lesion_id": "nifti", "t1c": "t1c.nii.gz", "mask": "mask.nii.gz"},
            {
                "patient_id": "P1",
                "lesion_id": "rtstruct",
                "t1c": "t1c_series",
                "mask": "rtstruct.dcm",
                "roi_name": "GTV",
            },
            {
                "patient_id": "P1",
                "lesion_id": "seg",
                "t1c": "t1c_series",
                "mask": "seg.dcm",
                "roi_name": "lesion",
            },
        ],
    )
    table = extract_features(load_cohort(path), load_extraction_config(study / "params.yaml"))
    frame = table.table.set_index("lesion_id")
    volume = frame["t1c__lesion__original_shape_VoxelVolume"]
    assert volume["nifti"] == pytest.approx(4 / 3 * np.pi * RADIUS**3, rel=0.04)
    assert volume["seg"] == pytest.approx(volume["nifti"], rel=1e-6)  # NIfTI: float32 spacing
    # RTSTRUCT contours differ from the analytic mask only at voxel centres on the surface.
    assert volume["rtstruct"] == pytest.approx(volume["nifti"], rel=0.01)
    for feature in ("original_firstorder_Mean", "original_glcm_Contrast"):
        column = f"t1c__lesion__{feature}"
        assert frame.loc["seg", column] == pytest.approx(frame.loc["nifti", column], rel=1e-6)
        assert frame.loc["rtstruct", column] == pytest.approx(frame.loc["nifti", column], rel=0.02)


def test_rtstruct_with_several_rois_needs_roi_name(study):
    path = manifest(
        study,
        [{"patient_id": "P1", "lesion_id": "L1", "t1c": "t1c_series", "mask": "rtstruct.dcm"}],
    )
    with pytest.raises(InputError) as caught:
        extract_features(load_cohort(path), load_extraction_config(study / "params.yaml"))
    (problem,) = caught.value.problems
    assert problem.startswith("manifest row 2: ")
    assert "Brain" in problem
    assert "GTV" in problem


def test_dicom_mask_needs_a_dicom_series(study):
    path = manifest(
        study,
        [
            {
                "patient_id": "P1",
                "lesion_id": "L1",
                "t1c": "t1c.nii.gz",
                "mask": "rtstruct.dcm",
                "roi_name": "GTV",
            }
        ],
    )
    with pytest.raises(InputError, match="a DICOM mask needs its image as a DICOM series folder"):
        extract_features(load_cohort(path), load_extraction_config(study / "params.yaml"))
