"""3D Slicer `.seg.nrrd` segmentations: segment choice, layers, geometry, refusals.

Files come from slicerio's writer (third-party code writing the format as Slicer does) and from
one header written field by field in Slicer's own layout with pynrrd. Expected masks are the
boxes the tests drew, in SimpleITK's (k, j, i) order; expected geometry is the IJK-to-LPS matrix
the tests built, and SimpleITK's own NRRD reader of the same file is a second opinion.
"""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

from rnclassifier.errors import InputError
from rnclassifier.imaging.slicer import is_slicer_segmentation, slicer_segment_mask

SHAPE = (12, 10, 8)  # i, j, k


def rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """Rodrigues' rotation: an oblique direction matrix with no zero entries."""
    u = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def ijk_to_lps(
    direction: np.ndarray | None = None,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = (np.eye(3) if direction is None else direction) @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


def box(lo: tuple[int, int, int], hi: tuple[int, int, int]) -> np.ndarray:
    """A boolean (i, j, k) box, ends exclusive."""
    out = np.zeros(SHAPE, dtype=bool)
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return out


def sitk_order(mask_ijk: np.ndarray) -> np.ndarray:
    return mask_ijk.transpose(2, 1, 0).astype(np.uint8)


def geometry(image: sitk.Image) -> tuple[tuple[float, ...], ...]:
    return image.GetOrigin(), image.GetSpacing(), image.GetDirection()


def assert_geometry(image: sitk.Image, matrix: np.ndarray) -> None:
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    np.testing.assert_allclose(image.GetOrigin(), matrix[:3, 3], atol=1e-6, rtol=0)
    np.testing.assert_allclose(image.GetSpacing(), spacing, atol=1e-6, rtol=0)
    np.testing.assert_allclose(
        image.GetDirection(), (matrix[:3, :3] / spacing).ravel(), atol=1e-6, rtol=0
    )


def assert_same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    for x, y in zip(geometry(a), geometry(b), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)


def write_labelmap(
    path: Path, segments: list[tuple[str, int, np.ndarray]], matrix: np.ndarray
) -> Path:
    """A single-layer file with explicit label values, through slicerio's writer."""
    voxels = np.zeros(SHAPE, dtype=np.uint8)
    for _, value, mask in segments:
        voxels[mask] = value
    slicerio.write_segmentation(
        str(path),
        {
            "voxels": voxels,
            "ijkToLPS": matrix,
            "segments": [
                {"id": f"Segment_{value}", "name": name, "labelValue": value, "layer": 0}
                for name, value, _ in segments
            ],
        },
    )
    return path


GTV = box((2, 2, 2), (6, 5, 4))
OEDEMA = box((6, 1, 1), (11, 9, 7))
NECROSIS = box((3, 3, 5), (5, 6, 7))
THREE = [("GTV", 2, GTV), ("Oedema", 5, OEDEMA), ("Necrotic core", 7, NECROSIS)]
LISTING = "1 'GTV', 2 'Oedema', 3 'Necrotic core'"


@pytest.fixture
def three(tmp_path: Path) -> Path:
    return write_labelmap(tmp_path / "lesion.seg.nrrd", THREE, ijk_to_lps())


@pytest.mark.parametrize(
    ("roi_name", "expected"),
    [
        ("GTV", GTV),
        ("Oedema", OEDEMA),
        ("Necrotic core", NECROSIS),
        (" gtv ", GTV),
        ("OEDEMA", OEDEMA),
        ("  necrotic CORE", NECROSIS),
        ("NecroticCore", NECROSIS),
        ("necrotic   core", NECROSIS),
    ],
)
def test_single_layer_segment_by_name(three: Path, roi_name: str, expected: np.ndarray) -> None:
    mask = slicer_segment_mask(three, roi_name)
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert mask.GetSize() == SHAPE
    assert np.array_equal(sitk.GetArrayFromImage(mask), sitk_order(expected))
    assert_same_geometry(mask, sitk.ReadImage(str(three)))


def test_exact_name_wins_over_loose_matches(tmp_path: Path) -> None:
    # (pynrrd strips a header value's surrounding spaces, so a stored name cannot keep them.)
    path = write_labelmap(
        tmp_path / "s.seg.nrrd", [("GTV", 1, GTV), ("gtv", 2, OEDEMA)], ijk_to_lps()
    )
    assert np.array_equal(sitk.GetArrayFromImage(slicer_segment_mask(path, "GTV")), sitk_order(GTV))
    with pytest.raises(InputError) as caught:
        slicer_segment_mask(path, "Gtv")
    assert str(caught.value) == (
        f"{path}: 2 segments match roi_name 'Gtv'; cannot tell which is the lesion: "
        "1 'GTV', 2 'gtv'"
    )


def test_one_segment_needs_no_name(tmp_path: Path) -> None:
    path = write_labelmap(tmp_path / "s.seg.nrrd", [("Lesion", 3, NECROSIS)], ijk_to_lps())
    mask = slicer_segment_mask(path, None)
    assert np.array_equal(sitk.GetArrayFromImage(mask), sitk_order(NECROSIS))


def test_layered_file_overlapping_segments(tmp_path: Path) -> None:
    matrix = ijk_to_lps(spacing=(0.5, 0.75, 2.0), origin=(10.0, -20.0, 30.0))
    segmentation = slicerio.create_segmentation(SHAPE, matrix)
    first = box((1, 1, 1), (7, 6, 5))
    second = box((4, 3, 2), (11, 9, 7))
    overlap = first & second
    assert overlap.sum() == 3 * 3 * 3
    a = slicerio.add_segment(segmentation, first, {"id": "a", "name": "Enhancing"})
    b = slicerio.add_segment(segmentation, second, {"id": "b", "name": "Oedema"})
    assert (a["layer"], a["labelValue"], b["layer"], b["labelValue"]) == (0, 1, 1, 1)
    path = tmp_path / "layers.seg.nrrd"
    slicerio.write_segmentation(str(path), segmentation)
    assert nrrd.read_header(str(path))["kinds"] == ["list", "domain", "domain", "domain"]

    for name, expected in (("Enhancing", first), ("Oedema", second)):
        mask = slicer_segment_mask(path, name)
        values = sitk.GetArrayFromImage(mask)
        assert np.array_equal(values, sitk_order(expected))
        assert values[sitk_order(overlap).astype(bool)].all()
        assert_geometry(mask, matrix)
        # SimpleITK reads the 4-D file as a 2-component image on the same 3-D grid.
        reference = sitk.ReadImage(str(path))
        assert reference.GetNumberOfComponentsPerPixel() == 2
        assert_same_geometry(mask, reference)


def test_oblique_direction_and_origin(tmp_path: Path) -> None:
    direction = rotation((1.0, 2.0, 3.0), 27.0)
    matrix = ijk_to_lps(direction, spacing=(0.7, 0.9, 3.0), origin=(-91.3, 12.5, 40.2))
    path = write_labelmap(tmp_path / "oblique.seg.nrrd", THREE, matrix)
    mask = slicer_segment_mask(path, "Oedema")
    assert_geometry(mask, matrix)
    np.testing.assert_allclose(
        mask.TransformIndexToPhysicalPoint((5, 7, 3)), (matrix @ [5, 7, 3, 1])[:3], atol=1e-6
    )
    assert_same_geometry(mask, sitk.ReadImage(str(path)))
    assert np.array_equal(sitk.GetArrayFromImage(mask), sitk_order(OEDEMA))


def write_slicer_header(path: Path, space: str, matrix_lps: np.ndarray) -> Path:
    """Two segments written field by field as 3D Slicer writes a cropped single-layer file."""
    flip = np.diag([-1.0, -1.0, 1.0]) if space == "right-anterior-superior" else np.eye(3)
    voxels = np.zeros(SHAPE, dtype=np.uint8)
    voxels[GTV] = 1
    voxels[NECROSIS] = 2
    header = {
        "space": space,
        "space directions": (flip @ matrix_lps[:3, :3]).T,
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
        "space origin": flip @ matrix_lps[:3, 3],
        "Segment0_Color": "0.501961 0.682353 0.501961",
        "Segment0_ColorAutoGenerated": "1",
        "Segment0_Extent": "2 5 2 4 2 3",
        "Segment0_ID": "Segment_1",
        "Segment0_LabelValue": "1",
        "Segment0_Layer": "0",
        "Segment0_Name": "GTV",
        "Segment0_NameAutoGenerated": "0",
        "Segment0_Tags": "Segmentation.Status:inprogress|TerminologyEntry:Segmentation category "
        "and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue~SCT^85756007^Tissue~^^~"
        "Anatomic codes - DICOM master list~^^~^^|",
        "Segment1_Color": "0.945098 0.839216 0.568627",
        "Segment1_ColorAutoGenerated": "1",
        "Segment1_Extent": "3 4 3 5 5 6",
        "Segment1_ID": "Segment_2",
        "Segment1_LabelValue": "2",
        "Segment1_Layer": "0",
        "Segment1_Name": "Necrotic core",
        "Segment1_NameAutoGenerated": "0",
        "Segment1_Tags": "Segmentation.Status:inprogress|",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|Closed surface|",
        "Segmentation_ConversionParameters": "Collapse labelmaps|1|Merge the labelmaps into as "
        "few shared labelmaps as possible 1 = created labelmaps will be shared if possible "
        "without overwriting each other.&Oversampling factor|1|Determines the oversampling of "
        "the reference image geometry.&",
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ReferenceImageExtentOffset": "41 57 12",
    }
    nrrd.write(str(path), voxels, header)
    return path


def test_slicer_header_ras_and_lps_twins(tmp_path: Path) -> None:
    matrix = ijk_to_lps(rotation((0.0, 1.0, 0.2), -15.0), (0.9375, 0.9375, 1.2), (37.5, 81.2, -6.4))
    lps = write_slicer_header(tmp_path / "lps.seg.nrrd", "left-posterior-superior", matrix)
    ras = write_slicer_header(tmp_path / "ras.seg.nrrd", "right-anterior-superior", matrix)
    assert "Segment0_Name:=GTV" in lps.read_bytes().decode("latin-1")
    assert "space: right-anterior-superior" in ras.read_bytes().decode("latin-1")
    for name, expected in (("GTV", GTV), ("necrotic core", NECROSIS)):
        from_lps, from_ras = slicer_segment_mask(lps, name), slicer_segment_mask(ras, name)
        assert_geometry(from_lps, matrix)
        assert_geometry(from_ras, matrix)
        assert_same_geometry(from_ras, sitk.ReadImage(str(ras)))  # ITK flips RAS to LPS too
        for mask in (from_lps, from_ras):
            assert np.array_equal(sitk.GetArrayFromImage(mask), sitk_order(expected))


def test_legacy_layout_one_segment_per_layer(tmp_path: Path) -> None:
    """Slicer before 4.11: no Layer / LabelValue fields, one binary layer per segment."""
    voxels = np.stack([GTV, OEDEMA]).astype(np.uint8)
    header = {
        "space": "left-posterior-superior",
        "space directions": np.vstack([[np.nan] * 3, np.eye(3)]),
        "kinds": ["list", "domain", "domain", "domain"],
        "space origin": np.zeros(3),
        "Segment0_ID": "Segment_1",
        "Segment0_Name": "GTV",
        "Segment1_ID": "Segment_2",
        "Segment1_Name": "Oedema",
    }
    path = tmp_path / "old.seg.nrrd"
    nrrd.write(str(path), voxels, header)
    for name, expected in (("GTV", GTV), ("Oedema", OEDEMA)):
        values = sitk.GetArrayFromImage(slicer_segment_mask(path, name))
        assert np.array_equal(values, sitk_order(expected))


def refusal(path: Path, roi_name: str | None) -> str:
    with pytest.raises(InputError) as caught:
        slicer_segment_mask(path, roi_name)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_several_segments_and_no_name(three: Path) -> None:
    assert refusal(three, None) == (
        f"{three}: holds 3 segments; choose the lesion's with roi_name (--roi-name): {LISTING}"
    )


def test_unknown_name(three: Path) -> None:
    assert refusal(three, "Tumour") == f"{three}: no segment named 'Tumour'; available: {LISTING}"


def test_empty_segment(tmp_path: Path) -> None:
    path = write_labelmap(
        tmp_path / "s.seg.nrrd",
        [("GTV", 1, GTV), ("Cavity", 4, np.zeros(SHAPE, dtype=bool))],
        ijk_to_lps(),
    )
    assert refusal(path, "Cavity") == f"{path}: segment 'Cavity' is empty"


def test_not_a_segmentation(tmp_path: Path) -> None:
    labels = sitk.GetImageFromArray(sitk_order(GTV))
    path = tmp_path / "labels.nrrd"
    sitk.WriteImage(labels, str(path))
    assert not is_slicer_segmentation(path)
    assert refusal(path, None) == (
        f"{path}: not a 3D Slicer segmentation (no Segment0_Name in its header)"
    )
    text = tmp_path / "notes.seg.nrrd"
    text.write_text("hello\n")
    assert "not a readable NRRD file" in refusal(text, "GTV")


def test_abbreviated_space_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.nrrd"
    nrrd.write(
        str(path),
        GTV.astype(np.uint8),
        {"space": "RAS", "space directions": np.eye(3), "Segment0_Name": "GTV"},
    )
    assert is_slicer_segmentation(path)
    assert "its space must be left-posterior-superior" in refusal(path, "GTV")


def test_is_slicer_segmentation(three: Path, tmp_path: Path) -> None:
    assert is_slicer_segmentation(three)
    assert is_slicer_segmentation(tmp_path / "not-yet-written.SEG.NRRD")
    renamed = three.rename(tmp_path / "lesion.nrrd")
    assert is_slicer_segmentation(renamed)
    assert not is_slicer_segmentation(tmp_path / "missing.nrrd")
    assert not is_slicer_segmentation(tmp_path)
    nifti = tmp_path / "t1c.nii.gz"
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkUInt8), str(nifti))
    assert not is_slicer_segmentation(nifti)
