"""What every DICOM reader of the package shares: tolerances, the series record, file checks.

Geometry is checked here, once, for a folder of slices and an enhanced object alike
(`check_stack`): a series with a missing slice, uneven spacing or mixed orientations would
otherwise be read as a plausible but wrong volume. Messages name the file or folder and never
show a header value (names, IDs, UIDs): UIDs can be traced to a patient, and messages reach logs
and reports.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from rnclassifier.errors import InputError

#: Slice positions may deviate from an even stack by this fraction of the spacing, or by
#: `SLICE_TOLERANCE_MM`, whichever is larger (scanners round positions to ~1e-3 mm).
SLICE_TOLERANCE_FRACTION = 0.01
SLICE_TOLERANCE_MM = 0.01
#: Largest difference between direction cosines of two slices of one series.
ORIENTATION_TOLERANCE = 1e-4
#: Largest sideways drift of the slice stack (gantry tilt, shear), as a fraction of a pixel.
STACK_DRIFT_TOLERANCE = 0.05
#: Largest distance of an RTSTRUCT contour point from the nearest slice plane, in mm: planning
#: systems round coordinates to 0.01 mm; a contour further off was drawn on another series.
CONTOUR_PLANE_TOLERANCE_MM = 0.2
#: How far (in pixels, beyond the outermost voxel centre) a contour point may lie outside the
#: slice before the contour is refused as outside the volume.
CONTOUR_OUTSIDE_TOLERANCE_PX = 0.5
#: Largest deviation of a SEG frame from the image's voxel lattice, in voxels.
COPLANAR_TOLERANCE = 0.1

LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
#: SOP classes of enhanced (multi-frame) MR images, read by `enhanced`.
ENHANCED_MR_STORAGE = {
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
}
#: Modalities that may be named in a message (a fixed vocabulary, never a raw header value).
_KNOWN_MODALITIES = {
    "MR": "an MR image",
    "CT": "a CT image",
    "PT": "a PET image",
    "SEG": "a DICOM SEG",
    "RTSTRUCT": "a DICOM RTSTRUCT",
    "RTDOSE": "an RT dose",
    "RTPLAN": "an RT plan",
    "REG": "a registration",
    "SR": "a structured report",
}


@dataclass(frozen=True, eq=False)
class DicomSeries:
    """One image series read from a folder, with the UIDs that masks must reference.

    `sop_instance_uids` has one entry per slice, in the image's slice order. Equality is
    identity (a SimpleITK image compares voxel by voxel), and the repr hides the UIDs.
    """

    image: sitk.Image
    series_instance_uid: str
    frame_of_reference_uid: str
    sop_instance_uids: tuple[str, ...]

    def __repr__(self) -> str:
        return (
            f"DicomSeries(size={self.image.GetSize()}, spacing={self.image.GetSpacing()}, "
            "UIDs not shown)"
        )


def is_dicom_file(path: Path) -> bool:
    """A DICOM Part 10 file: 128-byte preamble, then "DICM". Cheap: reads 132 bytes."""
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def dicom_modality(path: Path) -> str | None:
    """The Modality of a DICOM file (e.g. MR, RTSTRUCT, SEG), or None if it is not DICOM.

    Reads the header only, so that callers can dispatch a mask path to the right reader.
    """
    if not is_dicom_file(path):
        return None
    try:
        with quiet_dicom_libraries():
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None
    modality = str(ds.get("Modality", "")).strip().upper()
    return modality or None


def read_object(path: Path, kind: str, sop_classes: set[str], stop_before_pixels: bool) -> Dataset:
    """Read a mask or enhanced image object, checking it is the expected kind of DICOM object."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a DICOM {kind} file")
    if not is_dicom_file(path):
        raise InputError(f"{path}: not a DICOM file (expected a DICOM {kind})")
    try:
        with quiet_dicom_libraries():
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: DICOM file cannot be read") from exc
    if str(ds.get("SOPClassUID", "")) not in sop_classes:
        modality = str(ds.get("Modality", "")).strip().upper()
        what = _KNOWN_MODALITIES.get(modality, "another kind of DICOM object")
        raise InputError(f"{path}: not a DICOM {kind}: it is {what}")
    return ds


@contextmanager
def quiet_dicom_libraries() -> Iterator[None]:
    """Silence pydicom's and highdicom's warnings and logs, which can quote UIDs and values."""
    loggers = [logging.getLogger(name) for name in ("pydicom", "highdicom")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def check_stack(
    folder: Path, headers: list[Dataset]
) -> tuple[tuple[float, float], list[int], float]:
    """Pixel spacing (rows, columns), the slice order and the slice spacing of a valid stack."""
    if len(headers) < 2:
        raise InputError(f"{folder}: the series has a single slice; a 3D series is needed")
    first = headers[0]
    sizes = {(int(h.Rows), int(h.Columns)) for h in headers}
    if len(sizes) > 1:
        raise InputError(f"{folder}: slices of different sizes (rows x columns) in one series")
    if any(int(h.get("SamplesPerPixel", 1)) != 1 for h in headers):
        raise InputError(f"{folder}: not a grey-scale series (colour slices)")
    row, col = cosines(first)
    for h in headers[1:]:
        other_row, other_col = cosines(h)
        deviation = max(np.abs(other_row - row).max(), np.abs(other_col - col).max())
        if deviation > ORIENTATION_TOLERANCE:
            raise InputError(
                f"{folder}: inconsistent orientation between slices (direction cosines differ "
                f"by up to {deviation:.3g}); a series must have one orientation"
            )
    spacing = _pixel_spacing(folder, first)
    for h in headers[1:]:
        other = _pixel_spacing(folder, h)
        if not all(
            math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)
            for a, b in zip(spacing, other, strict=True)
        ):
            raise InputError(
                f"{folder}: inconsistent pixel spacing between slices "
                f"({spacing[0]:g} x {spacing[1]:g} mm and {other[0]:g} x {other[1]:g} mm)"
            )
    if len({str(h.get("FrameOfReferenceUID", "")) for h in headers}) > 1:
        raise InputError(f"{folder}: slices in different frames of reference in one series")

    normal = np.cross(row, col)
    positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    along = positions @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    along, positions = along[order], positions[order]
    drift = positions - positions[0] - np.outer(along - along[0], normal)
    if np.linalg.norm(drift, axis=1).max() > STACK_DRIFT_TOLERANCE * min(spacing):
        raise InputError(
            f"{folder}: slices are not stacked along the slice normal (gantry tilt or sheared "
            "acquisition), which is not supported"
        )
    steps = np.diff(along)
    if steps.min() <= SLICE_TOLERANCE_MM:
        raise InputError(
            f"{folder}: two slices at the same position (several echoes, acquisitions or time "
            "points in one series?); keep one volume per folder"
        )
    step = float(np.median(steps))
    tolerance = max(SLICE_TOLERANCE_FRACTION * step, SLICE_TOLERANCE_MM)
    for i, gap in enumerate(steps, start=1):
        if abs(gap - step) <= tolerance:
            continue
        multiple = round(gap / step)
        if multiple >= 2 and abs(gap - multiple * step) <= tolerance:
            raise InputError(
                f"{folder}: missing slice: a gap of {gap:.3g} mm between slices {i} and {i + 1} "
                f"(in position order) where the spacing is {step:.3g} mm"
            )
        raise InputError(
            f"{folder}: uneven slice spacing: {gap:.3g} mm between slices {i} and {i + 1} "
            f"(in position order) where the spacing is {step:.3g} mm"
        )
    return spacing, order, float((along[-1] - along[0]) / (len(along) - 1))


def cosines(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """A slice's row and column direction cosines (ImageOrientationPatient)."""
    values = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=float)
    return values[:3], values[3:]


def _pixel_spacing(folder: Path, ds: Dataset) -> tuple[float, float]:
    """DICOM PixelSpacing: (between rows, between columns) in mm."""
    values = [float(v) for v in ds.get("PixelSpacing", [])]
    if len(values) != 2 or min(values) <= 0:
        raise InputError(f"{folder}: a slice has no valid pixel spacing")
    return values[0], values[1]


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The orthonormal matrix nearest to `matrix`: direction cosines are rounded in headers."""
    u, _, vt = np.linalg.svd(matrix)
    return u @ vt
