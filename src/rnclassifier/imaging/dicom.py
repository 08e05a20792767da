"""DICOM input: one image series per folder, and a lesion mask from an RTSTRUCT or a SEG on it.

A clinic sends a folder of slices with the radiosurgery plan's RTSTRUCT; research pipelines send
DICOM SEG. Both masks are returned on the series' own grid (UInt8, 0/1, the series' geometry),
so that everything downstream works on SimpleITK images in physical space.

Geometry is checked here, once: a series with a missing slice, uneven spacing, mixed
orientations or two series in one folder would otherwise be read as a plausible but wrong
volume. Messages name the file or folder and never show a header value (names, IDs, UIDs):
UIDs can be traced to a patient, and messages reach logs and reports.

RTSTRUCT contours are rasterised here rather than with rt-utils, which pulls in OpenCV (188 MB)
and assumes axial series: contour points are mapped into the image's continuous index space with
the full direction matrix (oblique series work) and filled with matplotlib's point-in-polygon
test at voxel centres, with the even-odd rule so that a contour inside another is a hole.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from matplotlib.path import Path as PolygonPath
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import RTStructureSetStorage, SegmentationStorage

from rnclassifier.errors import InputError

logger = logging.getLogger(__name__)

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
        with _quiet_dicom_libraries():
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None
    modality = str(ds.get("Modality", "")).strip().upper()
    return modality or None


def load_series(
    folder: Path, series: str | None = None, *, column: str = "<sequence>_series"
) -> DicomSeries:
    """Read one DICOM image series from `folder`, slices sorted along the slice normal.

    A folder may hold a whole study (a PACS export: T1c, FLAIR, localisers, ...): `series`
    picks one by SeriesDescription (case-insensitive, exact), SeriesNumber or
    SeriesInstanceUID, and the others are ignored; without it, several series are an error that
    lists them (`column` names the manifest column that selects). Non-image objects (an
    RTSTRUCT, a SEG, a DICOMDIR) are ignored. An enhanced (multi-frame) MR object is a series of
    its own. Raises `InputError` unless the chosen slices form an evenly spaced stack with one
    orientation and pixel spacing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (a DICOM series is read from a folder of slices)")
    chosen = _select_series(folder, _series_in_folder(folder), series, column)
    if chosen.enhanced:
        from rnclassifier.imaging.enhanced import load_enhanced

        return load_enhanced(chosen.files[0][0])
    slices = chosen.files
    spacing, order, slice_spacing = _check_stack(folder, [ds for _, ds in slices])
    files = [str(slices[i][0]) for i in order]
    headers = [slices[i][1] for i in order]

    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames(files)
    rescales = {
        (float(h.get("RescaleSlope", 1) or 1), float(h.get("RescaleIntercept", 0) or 0))
        for h in headers
    }
    if len(rescales) > 1:
        # GDCM takes the output type from the first slice; other rescales would be truncated.
        reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(
            f"{folder}: the pixel data of the series cannot be read (compressed with a transfer "
            "syntax that GDCM does not support, or damaged)"
        ) from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{folder}: not a grey-scale 3D series")

    # One source of truth for the geometry: the headers checked above.
    row, col = _cosines(headers[0])
    direction = _nearest_rotation(np.column_stack([row, col, np.cross(row, col)]))
    image.SetOrigin(tuple(float(v) for v in headers[0].ImagePositionPatient))
    image.SetSpacing((spacing[1], spacing[0], slice_spacing))
    image.SetDirection(tuple(direction.flatten()))
    return DicomSeries(
        image=image,
        series_instance_uid=str(headers[0].get("SeriesInstanceUID", "")),
        frame_of_reference_uid=str(headers[0].get("FrameOfReferenceUID", "")),
        sop_instance_uids=tuple(str(h.get("SOPInstanceUID", "")) for h in headers),
    )


def rtstruct_mask(
    rtstruct: Path,
    reference: DicomSeries,
    roi_name: str | None,
    notes: list[str] | None = None,
) -> sitk.Image:
    """Rasterise one ROI of an RTSTRUCT onto `reference`'s grid: UInt8 0/1, its geometry.

    Decided by geometry, as planning systems write structure sets: the set must reference the
    image's series or, failing that, its frame of reference; per-contour image references that
    are absent or stale (re-export and de-identification renew SOP Instance UIDs) and a frame of
    reference that differs while the series matches (rt-utils writes such files) are noted and
    warned about, not refused. Every contour must lie in one of the series' slice planes
    (`CONTOUR_PLANE_TOLERANCE_MM`) and inside the volume.

    Rasterisation rule: a voxel is inside when its centre is inside the closed contour; several
    contours on a slice combine by the even-odd rule (a contour inside another is a hole); point
    order (clockwise or not) does not matter. `roi_name` is required when the RTSTRUCT holds
    several ROIs (matched exactly, else ignoring case and spaces).
    """
    rtstruct = Path(rtstruct)
    ds = _read_object(rtstruct, "RTSTRUCT", {RTStructureSetStorage}, stop_before_pixels=False)
    _check_references(
        rtstruct,
        "RTSTRUCT",
        reference,
        frame_uids={
            str(f.get("FrameOfReferenceUID", ""))
            for f in ds.get("ReferencedFrameOfReferenceSequence", [])
        },
        series_uids={
            str(series.get("SeriesInstanceUID", ""))
            for f in ds.get("ReferencedFrameOfReferenceSequence", [])
            for study in f.get("RTReferencedStudySequence", [])
            for series in study.get("RTReferencedSeriesSequence", [])
        },
        notes=notes,
    )
    rois = {
        int(r.ROINumber): str(r.get("ROIName", ""))
        for r in ds.get("StructureSetROISequence", [])
        if "ROINumber" in r
    }
    number = _choose(rtstruct, "ROI", "roi_name (--roi-name)", rois, roi_name)
    where = f"{rtstruct}: ROI {rois[number]!r}"
    roi = next(r for r in ds.StructureSetROISequence if int(r.ROINumber) == number)
    roi_frame = str(roi.get("ReferencedFrameOfReferenceUID", ""))
    if (
        roi_frame
        and reference.frame_of_reference_uid
        and roi_frame != reference.frame_of_reference_uid
    ):
        _note(notes, f"{where}: ", "the ROI names another frame of reference than the image's")

    contours = [
        c
        for item in ds.get("ROIContourSequence", [])
        if int(item.get("ReferencedROINumber", -1)) == number
        for c in item.get("ContourSequence", [])
    ]
    known = set(reference.sop_instance_uids)
    references = [
        str(ref.get("ReferencedSOPInstanceUID", ""))
        for c in contours
        for ref in c.get("ContourImageSequence", [])
    ]
    stale = sum(uid not in known for uid in references)
    unreferenced = sum(not c.get("ContourImageSequence") for c in contours)
    if stale:
        _note(
            notes,
            f"{where}: ",
            f"{stale} of {len(references)} contour image references name images that are not "
            "in this series (renewed UIDs?); contours placed by geometry",
        )
    if unreferenced:
        _note(
            notes,
            f"{where}: ",
            f"{unreferenced} of {len(contours)} contours reference no image; placed by geometry",
        )
    closed = []
    for c in contours:
        if str(c.get("ContourGeometricType", "")).upper() not in (
            "CLOSED_PLANAR",
            "CLOSED_PLANAR_XOR",
        ):
            continue
        try:
            data = np.asarray([float(v) for v in c.get("ContourData", [])], dtype=float)
        except (TypeError, ValueError):
            data = np.empty(1)
        if data.size % 3 or not np.isfinite(data).all():
            raise InputError(f"{where}: a contour's point list is not a list of (x, y, z) points")
        if data.size >= 9:
            closed.append(data.reshape(-1, 3))
    if not closed:
        others = f" (only {len(contours)} point or open contours)" if contours else ""
        raise InputError(f"{where}: has no closed planar contours{others}, so encloses no volume")
    mask = _rasterise(closed, reference.image, where)
    if not mask.any():
        raise InputError(
            f"{where}: encloses no voxel centre of the image (contours smaller than a voxel?)"
        )
    return _on_grid(mask, reference.image)


def _note(notes: list[str] | None, where: str, note: str) -> None:
    """A tolerated quirk of an input: warned about, and kept for the sidecar's diagnostics."""
    logger.warning("%s%s", where, note)
    if notes is not None:
        notes.append(note)


def seg_mask(
    seg: Path,
    reference: DicomSeries,
    segment: str | int | None,
    notes: list[str] | None = None,
) -> sitk.Image:
    """One segment of a DICOM SEG on `reference`'s grid: UInt8 0/1, its geometry.

    `segment` is a label (matched exactly, else ignoring case and spaces) or a segment number,
    required when the SEG has several; overlapping segments are fine, each is read alone. Frames
    are placed by the source image they reference, or, when the SEG has no such references or
    they are stale (renewed UIDs), by position on a grid that must coincide with the image's.
    A FRACTIONAL segment is thresholded at one half, as its definition intends (noted).
    """
    seg = Path(seg)
    header = _read_object(
        seg, "SEG", {SegmentationStorage, LABEL_MAP_SEGMENTATION_STORAGE}, stop_before_pixels=True
    )
    _check_references(
        seg,
        "SEG",
        reference,
        frame_uids={str(header.get("FrameOfReferenceUID", ""))},
        series_uids={
            str(s.get("SeriesInstanceUID", "")) for s in header.get("ReferencedSeriesSequence", [])
        },
        notes=notes,
    )
    segments = {
        int(s.SegmentNumber): str(s.get("SegmentLabel", ""))
        for s in header.get("SegmentSequence", [])
        if "SegmentNumber" in s
    }
    number = _choose(seg, "segment", "mask_label (--mask-label)", segments, segment)
    where = f"{seg}: segment {number} ({segments[number]!r})"
    with _quiet_dicom_libraries():
        try:
            document = hd.seg.segread(seg)
            sources = {str(uids[2]) for uids in document.get_source_image_uids()}
        except (ValueError, KeyError, AttributeError) as exc:
            raise InputError(f"{seg}: not a valid DICOM SEG ({type(exc).__name__})") from exc
        stale = sources - set(reference.sop_instance_uids)
        values = None
        if stale:
            _note(
                notes,
                f"{seg}: ",
                f"{len(stale)} of {len(sources)} source image references name images that are "
                "not in this series (renewed UIDs?); frames placed by position",
            )
        else:
            values = _seg_by_source(document, seg, reference, number)
        if values is None:
            values = _seg_by_position(document, seg, reference, number)
    if str(header.get("SegmentationType", "")).upper() == "FRACTIONAL":
        _note(notes, f"{where}: ", "FRACTIONAL segment thresholded at 0.5")
    mask = (values >= 0.5).astype(np.uint8)
    if not mask.any():
        raise InputError(f"{where}: is empty on this image")
    return _on_grid(mask, reference.image)


# --- series -----------------------------------------------------------------------------------


#: SOP classes of enhanced (multi-frame) MR images, read by `imaging.enhanced`.
ENHANCED_MR_STORAGE = {
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
}


@dataclass
class _FolderSeries:
    """The image objects of one series found in a folder (headers only)."""

    uid: str
    number: str
    description: str
    files: list[tuple[Path, Dataset]]
    enhanced: bool

    def describe(self) -> str:
        """Number, description, slices and orientation: what a user sees in a viewer; no UIDs."""
        frames = sum(int(ds.get("NumberOfFrames", 1) or 1) for _, ds in self.files)
        number = f"#{self.number}" if self.number else "#?"
        description = repr(self.description) if self.description else "(no description)"
        unit = ("frame" if self.enhanced else "slice") + ("s" if frames != 1 else "")
        return f"{number} {description} ({frames} {unit}, {_orientation(self.files)})"


def _series_in_folder(folder: Path) -> list[_FolderSeries]:
    """The image series in `folder`, in series-number order; other DICOM objects skipped."""
    groups: dict[str, _FolderSeries] = {}
    n_dicom = 0
    n_images = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if not is_dicom_file(path):
            continue
        n_dicom += 1
        try:
            with _quiet_dicom_libraries():
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise InputError(f"{folder}: DICOM file {path.name!r} cannot be read") from exc
        sop_class = str(ds.get("SOPClassUID", ""))
        enhanced = sop_class in ENHANCED_MR_STORAGE
        if sop_class in (SegmentationStorage, LABEL_MAP_SEGMENTATION_STORAGE):
            continue
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if not enhanced and (frames > 1 or "PerFrameFunctionalGroupsSequence" in ds):
            raise InputError(
                f"{folder}: holds a multi-frame DICOM image of a kind that is not supported "
                "(enhanced MR objects are); export the series as single-frame slices"
            )
        is_slice = all(
            name in ds for name in ("ImagePositionPatient", "ImageOrientationPatient", "Rows")
        )
        if not (enhanced or is_slice):
            continue
        n_images += 1
        uid = str(ds.get("SeriesInstanceUID", ""))
        key = f"{uid}/{path.name}" if enhanced else uid  # an enhanced object is a series itself
        if key not in groups:
            groups[key] = _FolderSeries(
                uid=uid,
                number=str(ds.get("SeriesNumber", "") or "").strip(),
                description=str(ds.get("SeriesDescription", "") or "").strip(),
                files=[],
                enhanced=enhanced,
            )
        groups[key].files.append((path, ds))
    if not groups:
        found = f" ({n_dicom} DICOM files, none an image slice)" if n_dicom else ""
        raise InputError(f"{folder}: no DICOM image series found{found}")
    skipped = n_dicom - n_images
    if skipped:
        logger.info("%s: ignored %d DICOM files that are not image slices", folder, skipped)

    def number(series: _FolderSeries) -> int:  # unnumbered series last; stable otherwise
        return int(series.number) if series.number.lstrip("-").isdigit() else 10**9

    return sorted(groups.values(), key=number)


def _select_series(
    folder: Path, found: list[_FolderSeries], selector: str | None, column: str
) -> _FolderSeries:
    """The series that `selector` names (SeriesDescription ignoring case, SeriesNumber or
    SeriesInstanceUID); without a selector, the folder's only series."""
    listing = "; ".join(series.describe() for series in found)
    if selector is None:
        if len(found) == 1:
            return found[0]
        return _refuse_several(folder, found, column, listing)
    wanted = str(selector).strip()
    matches = [
        series
        for series in found
        if series.description.casefold() == wanted.casefold()
        or (series.number and series.number == wanted)
        or series.uid == wanted
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(
            f"{folder}: no series matches {column} (by description, number or UID); the "
            f"folder holds: {listing}"
        )
    raise InputError(
        f"{folder}: {len(matches)} series match {column}; give the SeriesInstanceUID or a "
        f"unique number instead: {'; '.join(series.describe() for series in matches)}"
    )


def _refuse_several(
    folder: Path, found: list[_FolderSeries], column: str, listing: str
) -> NoReturn:
    raise InputError(
        f"{folder}: {len(found)} DICOM image series are in this folder; say which with the "
        f"manifest's {column} column (description, number or UID): {listing}"
    )


def _orientation(files: list[tuple[Path, Dataset]]) -> str:
    """Axial, coronal, sagittal or oblique, from the slice normal; mixed for a localiser."""
    names = set()
    for _, ds in files:
        try:
            row, col = _cosines(ds)
        except (AttributeError, ValueError, TypeError):
            functional = ds.get("SharedFunctionalGroupsSequence") or [Dataset()]
            orient = functional[0].get("PlaneOrientationSequence") or [Dataset()]
            values = orient[0].get("ImageOrientationPatient")
            if not values:
                names.add("unknown orientation")
                continue
            cos = np.array([float(v) for v in values])
            row, col = cos[:3], cos[3:]
        normal = np.abs(np.cross(row, col))
        axis = int(np.argmax(normal))
        names.add(("sagittal", "coronal", "axial")[axis] if normal[axis] > 0.9 else "oblique")
    return names.pop() if len(names) == 1 else "mixed orientations"


def _check_stack(
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
    row, col = _cosines(first)
    for h in headers[1:]:
        other_row, other_col = _cosines(h)
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


def _cosines(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=float)
    return values[:3], values[3:]


def _pixel_spacing(folder: Path, ds: Dataset) -> tuple[float, float]:
    """DICOM PixelSpacing: (between rows, between columns) in mm."""
    values = [float(v) for v in ds.get("PixelSpacing", [])]
    if len(values) != 2 or min(values) <= 0:
        raise InputError(f"{folder}: a slice has no valid pixel spacing")
    return values[0], values[1]


def _nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The orthonormal matrix nearest to `matrix`: direction cosines are rounded in headers."""
    u, _, vt = np.linalg.svd(matrix)
    return u @ vt


# --- masks ------------------------------------------------------------------------------------


def _read_object(path: Path, kind: str, sop_classes: set[str], stop_before_pixels: bool) -> Dataset:
    """Read a mask object, checking it is the expected kind of DICOM object."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a DICOM {kind} file")
    if not is_dicom_file(path):
        raise InputError(f"{path}: not a DICOM file (expected a DICOM {kind})")
    try:
        with _quiet_dicom_libraries():
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: DICOM file cannot be read") from exc
    if str(ds.get("SOPClassUID", "")) not in sop_classes:
        modality = str(ds.get("Modality", "")).strip().upper()
        what = _KNOWN_MODALITIES.get(modality, "another kind of DICOM object")
        raise InputError(f"{path}: not a DICOM {kind}: it is {what}")
    return ds


def _check_references(
    path: Path,
    kind: str,
    reference: DicomSeries,
    frame_uids: set[str],
    series_uids: set[str],
    notes: list[str] | None = None,
) -> None:
    """Refuse a mask that is neither on the image's series nor in its frame of reference.

    One matching is enough (geometry decides the rest): re-exports renew one UID and not the
    other, and rt-utils writes a frame of reference of its own beside the right series.
    """
    series_uids.discard("")
    frame_uids.discard("")
    same_series = reference.series_instance_uid in series_uids
    same_frame = bool(reference.frame_of_reference_uid) and (
        reference.frame_of_reference_uid in frame_uids
    )
    if same_series and frame_uids and not same_frame:
        _note(
            notes,
            f"{path}: ",
            f"the {kind} names another frame of reference than the image's "
            "while referencing its series; placed by geometry",
        )
    elif same_frame and series_uids and not same_series:
        _note(
            notes,
            f"{path}: ",
            f"the {kind} references another series in the image's frame "
            "of reference; placed by geometry",
        )
    elif not series_uids and not frame_uids:
        _note(
            notes,
            f"{path}: ",
            f"the {kind} names no series and no frame of reference; placed by geometry alone",
        )
    elif not same_series and not same_frame:
        raise InputError(
            f"{path}: this {kind} references another image series and another frame of "
            "reference than the image it is used with; it must be drawn on that image "
            "(UIDs not shown)"
        )


def _choose(
    path: Path, what: str, option: str, choices: dict[int, str], wanted: str | int | None
) -> int:
    """The number of the ROI or segment that `wanted` names (a name, or a number)."""
    listing = ", ".join(f"{number} {name!r}" for number, name in sorted(choices.items()))
    if not choices:
        raise InputError(f"{path}: holds no {what}s")
    if wanted is None:
        if len(choices) == 1:
            return next(iter(choices))
        raise InputError(
            f"{path}: holds {len(choices)} {what}s; choose the lesion's with {option}: {listing}"
        )
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        if wanted in choices:
            return wanted
        raise InputError(f"{path}: no {what} number {wanted}; available: {listing}")
    text = str(wanted)
    for same in (
        lambda name: name == text,
        lambda name: name.strip().casefold() == text.strip().casefold(),
        lambda name: "".join(name.split()).casefold() == "".join(text.split()).casefold(),
    ):
        matches = [number for number, name in choices.items() if same(name)]
        if len(matches) > 1:
            raise InputError(
                f"{path}: {len(matches)} {what}s are named {text!r}; cannot tell which is the "
                f"lesion ({listing})"
            )
        if matches:
            return matches[0]
    if text.strip().isdigit() and int(text) in choices:
        return int(text)
    raise InputError(f"{path}: no {what} named {text!r}; available: {listing}")


def _rasterise(contours: list[np.ndarray], image: sitk.Image, where: str) -> np.ndarray:
    """Fill closed planar contours (patient mm) at the voxel centres of `image`: (z, y, x)."""
    size = image.GetSize()
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    to_index = np.linalg.inv(direction * np.array(image.GetSpacing(), dtype=float))
    origin = np.array(image.GetOrigin(), dtype=float)

    slice_spacing = float(image.GetSpacing()[2])
    by_slice: dict[int, list[np.ndarray]] = defaultdict(list)
    for n, points in enumerate(contours, start=1):
        index = (points - origin) @ to_index.T
        plane = round(float(np.median(index[:, 2])))
        off = float(np.abs(index[:, 2] - plane).max()) * slice_spacing
        if off > CONTOUR_PLANE_TOLERANCE_MM:
            raise InputError(
                f"{where}: contour {n} lies between the image's slices (up to {off:.2f} mm from "
                f"the nearest slice plane; at most {CONTOUR_PLANE_TOLERANCE_MM} mm): contours "
                "must be drawn on this series' slices"
            )
        in_plane = index[:, :2]
        beyond = np.maximum(-in_plane, in_plane - (np.array(size[:2]) - 1)).max()
        if not 0 <= plane < size[2] or beyond > CONTOUR_OUTSIDE_TOLERANCE_PX:
            raise InputError(f"{where}: contour {n} lies outside the image volume")
        by_slice[plane].append(in_plane)

    mask = np.zeros(size[::-1], dtype=bool)
    for k, polygons in by_slice.items():
        stacked = np.concatenate(polygons)
        low = np.maximum(np.floor(stacked.min(axis=0)).astype(int), 0)
        high = np.minimum(np.ceil(stacked.max(axis=0)).astype(int), np.array(size[:2]) - 1)
        if (high < low).any():
            continue
        i, j = np.meshgrid(
            np.arange(low[0], high[0] + 1), np.arange(low[1], high[1] + 1), indexing="xy"
        )
        centres = np.column_stack([i.ravel(), j.ravel()]).astype(float)
        inside = np.zeros(len(centres), dtype=bool)
        for polygon in polygons:
            path = PolygonPath(np.vstack([polygon, polygon[:1]]), closed=True)
            inside ^= path.contains_points(centres)
        mask[k, low[1] : high[1] + 1, low[0] : high[0] + 1] = inside.reshape(i.shape)
    return mask


def _seg_by_source(
    document: hd.seg.Segmentation, path: Path, reference: DicomSeries, number: int
) -> np.ndarray | None:
    """Segment values (z, y, x) placed by the source slice each frame derives from.

    None when the frames do not say which slice they derive from.
    """
    try:
        values = document.get_pixels_by_source_instance(
            list(reference.sop_instance_uids),
            segment_numbers=[number],
            assert_missing_frames_are_empty=True,
        )
    except RuntimeError:
        return None
    except (ValueError, KeyError) as exc:
        raise InputError(
            f"{path}: its frames cannot be matched to the image's slices ({type(exc).__name__})"
        ) from exc
    size = reference.image.GetSize()
    if values.shape[:3] != size[::-1]:
        raise InputError(
            f"{path}: frames of {values.shape[1]} x {values.shape[2]} pixels, but the image's "
            f"slices are {size[1]} x {size[0]}"
        )
    return np.asarray(values[..., 0], dtype=float)


def _seg_by_position(
    document: hd.seg.Segmentation, path: Path, reference: DicomSeries, number: int
) -> np.ndarray:
    """Segment values (z, y, x) placed by frame position, on a grid that must be the image's."""
    try:
        volume = document.get_volume(segment_numbers=[number])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise InputError(
            f"{path}: its frames do not form a volume that can be placed on the image "
            f"({type(exc).__name__})"
        ) from exc
    values = np.asarray(volume.array, dtype=float).reshape(volume.spatial_shape)
    affine = np.asarray(volume.affine, dtype=float)
    image = reference.image
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    to_index = np.linalg.inv(direction * np.array(image.GetSpacing(), dtype=float))
    # Array index (slice, row, column) of the SEG -> continuous (i, j, k) index of the image.
    steps = to_index @ affine[:3, :3]
    start = to_index @ (affine[:3, 3] - np.array(image.GetOrigin(), dtype=float))
    axes = [a for a in range(3) if values.shape[a] > 1]
    unit = np.round(steps[:, axes])
    aligned = (
        np.abs(start - np.round(start)).max() < COPLANAR_TOLERANCE
        and np.abs(steps[:, axes] - unit).max() < COPLANAR_TOLERANCE
        and (np.abs(unit).sum(axis=0) == 1).all()
        and (np.abs(unit).sum(axis=1) <= 1).all()
    )
    if not aligned:
        raise InputError(f"{path}: its frames are not on the image's voxel grid")
    index = np.indices(values.shape).reshape(3, -1).T.astype(float)
    target = np.rint(index @ steps.T + start).astype(int)
    inside = ((target >= 0) & (target < np.array(image.GetSize()))).all(axis=1)
    flat = values.ravel()
    if (flat[~inside] > 0).any():
        raise InputError(f"{path}: the segment extends beyond the image")
    placed = np.zeros(image.GetSize()[::-1], dtype=float)
    i, j, k = target[inside].T
    placed[k, j, i] = flat[inside]
    return placed


def _on_grid(mask: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(reference)
    return image


@contextmanager
def _quiet_dicom_libraries() -> Iterator[None]:
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
