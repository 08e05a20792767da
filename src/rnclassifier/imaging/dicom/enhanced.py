"""DICOM input: one enhanced (multi-frame) MR object holding a whole 3D series.

Scanners and PACS increasingly export a series as one Enhanced MR Image (or Legacy Converted
Enhanced MR Image) file: every slice is a frame, and the geometry and rescale of each frame sit
in functional groups (shared by all frames, or per frame) instead of in a file per slice.

highdicom decodes the frames (through pydicom and the pylibjpeg plugins, so compressed transfer
syntaxes work), applies each frame's rescale and stacks the frames into a volume. Before that,
the frames' headers go through the same stack checks as a folder of single-frame slices
(`objects.check_stack`), so that a missing slice, uneven spacing, mixed orientations or several
echoes / time points in one object are refused with the same clear messages. The geometry of
the returned image is computed from the headers exactly as `series.load_series` computes it, and
highdicom's own volume geometry must agree with it.

`DicomSeries.sop_instance_uids` repeats the object's one SOP Instance UID for every frame: a
mask that references frames of a multi-frame image (a SEG's Referenced Frame Number) would need
the frame numbers too, which this reader does not return (masks are placed by position).
"""

from __future__ import annotations

import math
from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from rnclassifier.errors import InputError
from rnclassifier.imaging.dicom.objects import (
    ENHANCED_MR_STORAGE,
    SLICE_TOLERANCE_FRACTION,
    SLICE_TOLERANCE_MM,
    DicomSeries,
    check_stack,
    nearest_rotation,
    quiet_dicom_libraries,
    read_object,
)


def load_enhanced(path: Path) -> DicomSeries:
    """Read one enhanced MR object as a float32 3D image, frames sorted along the slice normal.

    Raises `InputError` (naming the file, never a header value) unless the frames form one
    evenly spaced stack with one orientation and pixel spacing, one frame per position.
    """
    path = Path(path)
    document = _read(path)
    headers = _frame_headers(path, document)
    _check_unique_positions(path, headers)
    spacing, order, slice_spacing = check_stack(path, headers)
    first = headers[order[0]]

    row = np.array([float(v) for v in first.ImageOrientationPatient[:3]])
    col = np.array([float(v) for v in first.ImageOrientationPatient[3:]])
    normal = np.cross(row, col)
    origin = np.array([float(v) for v in first.ImagePositionPatient])
    direction = nearest_rotation(np.column_stack([row, col, normal]))

    values = _voxels(path, document, spacing, slice_spacing, origin, row, col, normal)
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetSpacing((spacing[1], spacing[0], slice_spacing))
    image.SetDirection(tuple(float(v) for v in direction.flatten()))
    return DicomSeries(
        image=image,
        series_instance_uid=str(document.get("SeriesInstanceUID", "")),
        frame_of_reference_uid=str(document.get("FrameOfReferenceUID", "")),
        sop_instance_uids=(str(document.get("SOPInstanceUID", "")),) * len(headers),
    )


def _read(path: Path) -> hd.Image:
    """The object, with frames left in the file until they are decoded (large objects)."""
    read_object(path, "enhanced MR image", ENHANCED_MR_STORAGE, stop_before_pixels=True)
    try:
        with quiet_dicom_libraries():
            return hd.imread(path, lazy_frame_retrieval=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, AttributeError) as exc:
        raise InputError(
            f"{path}: DICOM file cannot be read as an image ({type(exc).__name__})"
        ) from exc


def _frame_headers(path: Path, document: Dataset) -> list[Dataset]:
    """One single-frame-style header per frame, from the shared and per-frame functional groups.

    The attributes are the ones `check_stack` reads from a slice, so that an enhanced object
    gets exactly the checks (and messages) of a folder of slices.
    """
    frames = document.get("PerFrameFunctionalGroupsSequence", [])
    n_frames = int(document.get("NumberOfFrames", 0) or 0)
    if n_frames < 1 or len(frames) != n_frames:
        raise InputError(
            f"{path}: the per-frame headers do not match the number of frames "
            "(a damaged enhanced object)"
        )
    if "Rows" not in document or "Columns" not in document:
        raise InputError(f"{path}: has no image size (rows x columns)")
    shared_groups = document.get("SharedFunctionalGroupsSequence", [])
    shared = shared_groups[0] if shared_groups else Dataset()

    def group(frame: Dataset, keyword: str) -> Dataset | None:
        """A functional group is either per-frame or shared; per-frame takes precedence."""
        for source in (frame, shared):
            items = source.get(keyword)
            if items:
                return items[0]
        return None

    headers = []
    for number, frame in enumerate(frames, start=1):
        position = group(frame, "PlanePositionSequence")
        orientation = group(frame, "PlaneOrientationSequence")
        if position is None or "ImagePositionPatient" not in position:
            raise InputError(f"{path}: frame {number} has no position (PlanePositionSequence)")
        if orientation is None or "ImageOrientationPatient" not in orientation:
            raise InputError(
                f"{path}: frame {number} has no orientation (PlaneOrientationSequence)"
            )
        measures = group(frame, "PixelMeasuresSequence") or Dataset()
        header = Dataset()
        header.Rows = document.Rows
        header.Columns = document.Columns
        header.SamplesPerPixel = document.get("SamplesPerPixel", 1)
        header.FrameOfReferenceUID = document.get("FrameOfReferenceUID", "")
        try:
            header.ImagePositionPatient = [float(v) for v in position.ImagePositionPatient]
            header.ImageOrientationPatient = [float(v) for v in orientation.ImageOrientationPatient]
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: frame {number} has an unreadable position") from exc
        if len(header.ImagePositionPatient) != 3 or len(header.ImageOrientationPatient) != 6:
            raise InputError(f"{path}: frame {number} has an unreadable position or orientation")
        if "PixelSpacing" in measures:
            header.PixelSpacing = measures.PixelSpacing
        headers.append(header)
    return headers


def _check_unique_positions(path: Path, headers: list[Dataset]) -> None:
    """Refuse several frames at one position: echoes, time points or stacks of one object.

    Checked before `check_stack`, whose message for this case speaks of a folder of slices.
    """
    if len(headers) < 2:
        return
    positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    cosines = np.array([float(v) for v in headers[0].ImageOrientationPatient])
    along = positions @ np.cross(cosines[:3], cosines[3:])
    ordered = positions[np.argsort(along, kind="stable")]
    apart = np.linalg.norm(np.diff(ordered, axis=0), axis=1) > SLICE_TOLERANCE_MM
    distinct = 1 + int(apart.sum())
    if distinct < len(headers):
        raise InputError(
            f"{path}: {len(headers)} frames at only {distinct} distinct positions (several "
            "echoes, time points or stacks in one multi-frame object?); one 3D volume with one "
            "frame per position is needed"
        )


def _voxels(
    path: Path,
    document: hd.Image,
    spacing: tuple[float, float],
    slice_spacing: float,
    origin: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    normal: np.ndarray,
) -> np.ndarray:
    """Rescaled voxel values (slice, row, column) in the headers' slice order, via highdicom.

    Only the modality rescale is applied (as GDCM does for single-frame series): no real-world
    value map, VOI window or presentation inversion. Values are computed in float64 and rounded
    once to float32 by the caller.
    """
    tolerance = max(SLICE_TOLERANCE_FRACTION * slice_spacing, SLICE_TOLERANCE_MM)
    try:
        with quiet_dicom_libraries():
            volume = document.get_volume(
                dtype=np.float64,
                apply_real_world_transform=False,
                apply_modality_transform=None,
                apply_voi_transform=False,
                apply_presentation_lut=False,
                apply_palette_color_lut=False,
                apply_icc_profile=False,
                atol=tolerance,
            )
    except (
        RuntimeError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        NotImplementedError,
    ) as exc:
        raise InputError(
            f"{path}: the frames' pixel data cannot be decoded or stacked (compressed with an "
            f"unsupported transfer syntax, or damaged; {type(exc).__name__})"
        ) from exc
    # highdicom's array axes are (slice, row, column); its slice axis may run against the
    # normal (it keeps the frames' handedness), so turn it to run along the normal as ours does.
    steps = np.asarray(volume.affine, dtype=float)[:3, :3]
    if steps[:, 0] @ normal < 0:
        volume = volume.flip_spatial(0)
        steps = np.asarray(volume.affine, dtype=float)[:3, :3]
    expected = np.column_stack([normal * slice_spacing, col * spacing[0], row * spacing[1]])
    start = np.asarray(volume.affine, dtype=float)[:3, 3]
    error = max(np.abs(steps - expected).max(), np.abs(start - origin).max())
    # Within the stack tolerance: a frame placed one slice off would be a whole step off.
    array = np.asarray(volume.array)
    n_frames = int(document.NumberOfFrames)
    if (
        array.shape != (n_frames, int(document.Rows), int(document.Columns))
        or not math.isfinite(error)
        or error > tolerance
    ):
        raise InputError(
            f"{path}: the frames cannot be placed consistently (the volume built from the frames "
            "does not match their positions)"
        )
    return array
