"""Enhanced (multi-frame) MR objects, and compressed transfer syntaxes through both readers.

The enhanced objects are made with highdicom's legacy converter from a single-frame series of
`dicom_factory`, so the single-frame reader (`load_series`, GDCM) on the same slices is the
reference: same voxels exactly, same geometry. The compressed files are pydicom's own lossless
re-encodings of `MR_small.dcm`, so the uncompressed file is the reference for every codec.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_factory import (
    WrittenSeries,
    ds_values,
    edit_dicom,
    fake_uid,
    oblique_grid,
    rotation,
    write_mr_series,
)
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from rnclassifier.errors import InputError
from rnclassifier.imaging.dicom import DicomSeries, load_enhanced, load_series

#: Small, oblique, anisotropic, rows != columns: a transposed or flipped volume shows. At least
#: 32 pixels a side: openjpeg's default 6 resolution levels need it to encode JPEG 2000.
GRID = oblique_grid(size=(36, 32, 8))


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 200, size=GRID.size[::-1])
    ramp = np.arange(GRID.size[2])[:, None, None] * 100 + np.arange(GRID.size[1])[None, :, None]
    return (noise + ramp - 300).astype(np.int16)  # negative values too: signed pixels


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, volume: np.ndarray) -> WrittenSeries:
    return write_mr_series(tmp_path_factory.mktemp("single") / "t1c", volume, GRID)


@pytest.fixture(scope="module")
def reference(written: WrittenSeries) -> DicomSeries:
    return load_series(written.folder)


def convert(
    datasets: Sequence[Dataset], path: Path, transfer_syntax: str = ExplicitVRLittleEndian
) -> Path:
    """A Legacy Converted Enhanced MR Image of `datasets`, written by highdicom."""
    # It logs that it cannot fill the frames' Window Center / Width: harmless here.
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=list(datasets),
        series_instance_uid=fake_uid("enhanced-series", path.name),
        series_number=7,
        sop_instance_uid=fake_uid("enhanced", path.name),
        instance_number=1,
        transfer_syntax_uid=transfer_syntax,
    )
    enhanced.save_as(path)
    return path


@pytest.fixture(scope="module")
def enhanced(tmp_path_factory: pytest.TempPathFactory, written: WrittenSeries) -> Path:
    return convert(written.datasets(), tmp_path_factory.mktemp("enhanced") / "enhanced.dcm")


def rewrite_frames(
    source: Path,
    target: Path,
    keep: Sequence[int],
    edit: Callable[[Dataset], None] | None = None,
) -> Path:
    """Copy an uncompressed enhanced object with its frames `keep` (indices, in this order)."""
    ds = pydicom.dcmread(source)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    size = int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8
    frames = [ds.PixelData[i * size : (i + 1) * size] for i in range(int(ds.NumberOfFrames))]
    groups = list(ds.PerFrameFunctionalGroupsSequence)
    ds.PixelData = b"".join(frames[i] for i in keep)
    ds.PerFrameFunctionalGroupsSequence = [copy.deepcopy(groups[i]) for i in keep]
    ds.NumberOfFrames = len(keep)
    if edit is not None:
        edit(ds)
    ds.save_as(target)
    return target


def frame_positions(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return np.array(
        [
            [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]
            for f in ds.PerFrameFunctionalGroupsSequence
        ]
    )


def same_geometry(a: sitk.Image, b: sitk.Image, tol: float = 1e-6) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=0, atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=tol)
        and np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=tol)
    )


def check_refusal(excinfo: pytest.ExceptionInfo[InputError], path: Path, written: WrittenSeries):
    """One line naming the file, and no header value (names, IDs, UIDs) of either object."""
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(path) in message
    header = pydicom.dcmread(path, stop_before_pixels=True)
    for identifier in [*written.identifiers(), header.SOPInstanceUID, header.SeriesInstanceUID]:
        assert str(identifier) not in message, f"header value leaked: {message}"


# --- enhanced objects against the single-frame reader -----------------------------------------


def test_enhanced_object_reads_as_its_single_frame_series(
    enhanced: Path, reference: DicomSeries, volume: np.ndarray
):
    header = pydicom.dcmread(enhanced, stop_before_pixels=True)
    assert header.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4.4"  # Legacy Converted Enhanced MR
    assert int(header.NumberOfFrames) == GRID.size[2]

    series = load_enhanced(enhanced)
    values = sitk.GetArrayFromImage(series.image)
    assert series.image.GetPixelID() == sitk.sitkFloat32
    assert np.array_equal(values, sitk.GetArrayFromImage(reference.image))
    assert np.array_equal(values, volume)
    assert same_geometry(series.image, reference.image)
    assert np.allclose(series.image.GetOrigin(), GRID.origin, atol=1e-6)
    assert np.allclose(series.image.GetSpacing(), GRID.spacing, atol=1e-6)
    assert np.allclose(np.reshape(series.image.GetDirection(), (3, 3)), GRID.direction, atol=1e-6)
    assert series.series_instance_uid == header.SeriesInstanceUID
    assert series.frame_of_reference_uid == reference.frame_of_reference_uid
    assert series.sop_instance_uids == (header.SOPInstanceUID,) * GRID.size[2]
    assert "UIDs not shown" in repr(series)


def test_shuffled_frames_are_sorted_by_position(
    tmp_path: Path, enhanced: Path, reference: DicomSeries
):
    order = [int(i) for i in np.random.default_rng(3).permutation(GRID.size[2])]
    shuffled = rewrite_frames(enhanced, tmp_path / "shuffled.dcm", order)
    along = frame_positions(shuffled) @ GRID.direction[:, 2]
    assert not np.all(np.diff(along) > 0)  # really shuffled
    assert not np.all(np.diff(along) < 0)

    series = load_enhanced(shuffled)
    assert np.array_equal(
        sitk.GetArrayFromImage(series.image), sitk.GetArrayFromImage(reference.image)
    )
    assert same_geometry(series.image, reference.image)


def test_per_frame_rescale_is_applied_like_gdcm(
    tmp_path: Path, written: WrittenSeries, volume: np.ndarray
):
    # Binary fractions, so that float32 holds every rescaled value exactly in both readers.
    slopes = [0.5, 1.0, 2.0, 1.5, 0.25, 1.0, 3.0, 0.75]
    intercepts = [-100.25 * k for k in range(GRID.size[2])]
    folder = tmp_path / "rescaled"
    folder.mkdir()
    for k, path in enumerate(written.files):
        target = folder / path.name
        target.write_bytes(path.read_bytes())
        edit_dicom(target, RescaleSlope=slopes[k], RescaleIntercept=intercepts[k], RescaleType="US")
    single = load_series(folder)
    rescaled = convert(
        [pydicom.dcmread(folder / p.name) for p in written.files], tmp_path / "e.dcm"
    )
    header = pydicom.dcmread(rescaled, stop_before_pixels=True)
    per_frame = {
        float(f.PixelValueTransformationSequence[0].RescaleSlope)
        for f in header.PerFrameFunctionalGroupsSequence
    }
    assert per_frame == set(slopes)  # the rescale really is per frame

    series = load_enhanced(rescaled)
    expected = volume * np.array(slopes)[:, None, None] + np.array(intercepts)[:, None, None]
    values = sitk.GetArrayFromImage(series.image)
    assert np.array_equal(values, expected.astype(np.float32))
    assert np.array_equal(values, sitk.GetArrayFromImage(single.image))
    assert same_geometry(series.image, single.image)


# --- refusals ---------------------------------------------------------------------------------


def test_missing_frame_is_refused(tmp_path: Path, enhanced: Path, written: WrittenSeries):
    n = GRID.size[2]
    path = rewrite_frames(enhanced, tmp_path / "gap.dcm", [i for i in range(n) if i != n // 2])
    with pytest.raises(InputError, match=r"missing slice: a gap of 5 mm") as excinfo:
        load_enhanced(path)
    check_refusal(excinfo, path, written)


def test_two_frames_at_one_position_are_refused(
    tmp_path: Path, enhanced: Path, written: WrittenSeries
):
    # Two echoes of one stack in one object: every position twice.
    n = GRID.size[2]
    path = rewrite_frames(enhanced, tmp_path / "echoes.dcm", [*range(n), *range(n)])
    with pytest.raises(
        InputError, match=rf"{2 * n} frames at only {n} distinct positions \(several echoes"
    ) as excinfo:
        load_enhanced(path)
    check_refusal(excinfo, path, written)


def test_frames_with_different_orientations_are_refused(
    tmp_path: Path, enhanced: Path, written: WrittenSeries
):
    tilted = rotation(GRID.direction[:, 0], 2.0) @ GRID.direction

    def tilt_one_frame(ds: Dataset) -> None:
        # A functional group is shared or per-frame: move the orientation to every frame.
        shared = ds.SharedFunctionalGroupsSequence[0]
        cosines = list(shared.PlaneOrientationSequence[0].ImageOrientationPatient)
        del shared.PlaneOrientationSequence
        for n, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
            item = Dataset()
            item.ImageOrientationPatient = (
                ds_values(np.concatenate([tilted[:, 0], tilted[:, 1]])) if n == 3 else cosines
            )
            frame.PlaneOrientationSequence = [item]

    path = rewrite_frames(enhanced, tmp_path / "tilted.dcm", range(GRID.size[2]), tilt_one_frame)
    with pytest.raises(InputError, match=r"inconsistent orientation between slices") as excinfo:
        load_enhanced(path)
    check_refusal(excinfo, path, written)


def test_a_single_frame_file_is_refused(written: WrittenSeries):
    path = written.files[0]
    with pytest.raises(
        InputError, match=r"not a DICOM enhanced MR image: it is an MR image"
    ) as excinfo:
        load_enhanced(path)
    check_refusal(excinfo, path, written)


# --- compressed transfer syntaxes -------------------------------------------------------------

#: pydicom's MR_small.dcm (64 x 64, signed 16 bit) and its lossless re-encodings.
MR_SMALL = {
    "MR_small.dcm": ExplicitVRLittleEndian,
    "MR_small_RLE.dcm": RLELossless,
    "MR_small_jpeg_ls_lossless.dcm": JPEGLSLossless,
    "MR_small_jp2klossless.dcm": JPEG2000Lossless,
    "MR_small_bigendian.dcm": ExplicitVRBigEndian,
    "MR_small_implicit.dcm": ImplicitVRLittleEndian,
}
N_SLICES = 3
SLICE_STEP_MM = 1.5


def mr_small_series(folder: Path, name: str) -> Path:
    """Three copies of one MR_small file stepped along its slice normal, pixel data untouched."""
    source = pydicom.dcmread(get_testdata_file(name, download=False))
    cosines = np.array([float(v) for v in source.ImageOrientationPatient])
    normal = np.cross(cosines[:3], cosines[3:])
    first = np.array([float(v) for v in source.ImagePositionPatient])
    folder.mkdir(parents=True)
    for k in range(N_SLICES):
        ds = copy.deepcopy(source)
        ds.SeriesInstanceUID = fake_uid("mr-small-series", name)
        ds.SOPInstanceUID = fake_uid("mr-small", name, k)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = ds_values(first + k * SLICE_STEP_MM * normal)
        ds.InstanceNumber = k + 1
        ds.save_as(folder / f"IM{N_SLICES - k:04d}.dcm")  # names against the slice order
    return folder


@pytest.fixture(scope="module")
def mr_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mr_small_series(tmp_path_factory.mktemp("mr_small") / "MR_small", "MR_small.dcm")


@pytest.fixture(scope="module")
def mr_small_reference(mr_small: Path) -> DicomSeries:
    return load_series(mr_small)


def test_uncompressed_mr_small_series_holds_the_file_pixels(mr_small_reference: DicomSeries):
    pixels = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False)).pixel_array
    assert pixels.dtype == np.int16
    assert np.ptp(pixels) > 1000
    values = sitk.GetArrayFromImage(mr_small_reference.image)
    assert np.array_equal(values, np.stack([pixels] * N_SLICES))
    assert np.allclose(mr_small_reference.image.GetSpacing(), (0.3125, 0.3125, SLICE_STEP_MM))


@pytest.mark.parametrize("name", [n for n in MR_SMALL if n != "MR_small.dcm"])
def test_single_frame_reader_decodes_every_lossless_transfer_syntax(
    tmp_path: Path, name: str, mr_small_reference: DicomSeries
):
    folder = mr_small_series(tmp_path / name, name)
    for path in folder.iterdir():  # the copies kept the source's encoding
        assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == MR_SMALL[name]

    series = load_series(folder)
    assert np.array_equal(
        sitk.GetArrayFromImage(series.image), sitk.GetArrayFromImage(mr_small_reference.image)
    )
    assert same_geometry(series.image, mr_small_reference.image)


# Explicit VR Big Endian is retired: highdicom refuses to write it, so big-endian decoding is
# tested through the single-frame reader only. highdicom 0.28 encodes JPEG-LS and JPEG 2000
# only for unsigned pixels (MR_small is signed); pydicom's `Dataset.compress` encodes them
# (JPEG-LS with pyjpegls, a highdicom dependency; JPEG 2000 with pylibjpeg-openjpeg).
ENHANCED_ENCODINGS = [
    ("highdicom", ExplicitVRLittleEndian),
    ("highdicom", ImplicitVRLittleEndian),
    ("highdicom", RLELossless),
    ("pydicom", RLELossless),
    ("pydicom", JPEGLSLossless),
    ("pydicom", JPEG2000Lossless),
]


def encoded(source: Path, target: Path, encoder: str, syntax: str) -> Path:
    """`source` (an uncompressed enhanced object) re-encoded with `syntax` by pydicom."""
    assert encoder == "pydicom"
    ds = pydicom.dcmread(source)
    ds.compress(syntax)
    ds.save_as(target)
    return target


@pytest.mark.parametrize(("encoder", "syntax"), ENHANCED_ENCODINGS)
def test_enhanced_reader_decodes_compressed_frames(
    tmp_path: Path, mr_small: Path, mr_small_reference: DicomSeries, encoder: str, syntax: str
):
    datasets = [pydicom.dcmread(p) for p in sorted(mr_small.iterdir())]
    if encoder == "highdicom":
        path = convert(datasets, tmp_path / "enhanced.dcm", transfer_syntax=syntax)
    else:
        plain = convert(datasets, tmp_path / "plain.dcm")
        path = encoded(plain, tmp_path / "enhanced.dcm", encoder, syntax)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    assert header.file_meta.TransferSyntaxUID == syntax
    assert int(header.NumberOfFrames) == N_SLICES

    series = load_enhanced(path)
    assert np.array_equal(
        sitk.GetArrayFromImage(series.image), sitk.GetArrayFromImage(mr_small_reference.image)
    )
    assert same_geometry(series.image, mr_small_reference.image)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_shuffled_oblique_object_matches_single_frame_series(
    tmp_path: Path, enhanced: Path, reference: DicomSeries, syntax: str
):
    order = [int(i) for i in np.random.default_rng(5).permutation(GRID.size[2])]
    shuffled = rewrite_frames(enhanced, tmp_path / "shuffled.dcm", order)
    path = encoded(shuffled, tmp_path / "compressed.dcm", "pydicom", syntax)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax

    series = load_enhanced(path)
    assert np.array_equal(
        sitk.GetArrayFromImage(series.image), sitk.GetArrayFromImage(reference.image)
    )
    assert same_geometry(series.image, reference.image)
