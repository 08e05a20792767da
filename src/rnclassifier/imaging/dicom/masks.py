"""Lesion masks from DICOM: one ROI of an RTSTRUCT or one segment of a SEG, on an image's grid.

A clinic sends the radiosurgery plan's RTSTRUCT; research pipelines send DICOM SEG. Both masks
are returned on the series' own grid (UInt8, 0/1, the series' geometry), so that everything
downstream works on SimpleITK images in physical space.

RTSTRUCT contours are rasterised here rather than with rt-utils, which pulls in OpenCV (188 MB)
and assumes axial series: contour points are mapped into the image's continuous index space with
the full direction matrix (oblique series work) and filled with matplotlib's point-in-polygon
test at voxel centres, with the even-odd rule so that a contour inside another is a hole.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from matplotlib.path import Path as PolygonPath
from pydicom.dataset import Dataset
from pydicom.uid import RTStructureSetStorage, SegmentationStorage

from rnclassifier.errors import InputError
from rnclassifier.imaging.dicom.objects import (
    CONTOUR_OUTSIDE_TOLERANCE_PX,
    CONTOUR_PLANE_TOLERANCE_MM,
    COPLANAR_TOLERANCE,
    LABEL_MAP_SEGMENTATION_STORAGE,
    DicomSeries,
    quiet_dicom_libraries,
    read_object,
)

logger = logging.getLogger(__name__)


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
    ds = read_object(rtstruct, "RTSTRUCT", {RTStructureSetStorage}, stop_before_pixels=False)
    _check_rtstruct_references(rtstruct, ds, reference, notes)
    number, where = _choose_roi(rtstruct, ds, reference, roi_name, notes)
    contours = [
        c
        for item in ds.get("ROIContourSequence", [])
        if int(item.get("ReferencedROINumber", -1)) == number
        for c in item.get("ContourSequence", [])
    ]
    _note_contour_references(contours, reference, where, notes)
    mask = _rasterise(_closed_contours(contours, where), reference.image, where)
    if not mask.any():
        raise InputError(
            f"{where}: encloses no voxel centre of the image (contours smaller than a voxel?)"
        )
    return _on_grid(mask, reference.image)


def _check_rtstruct_references(
    rtstruct: Path, ds: Dataset, reference: DicomSeries, notes: list[str] | None
) -> None:
    """The structure set's referenced frames of reference and series, against the image's."""
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


def _choose_roi(
    rtstruct: Path,
    ds: Dataset,
    reference: DicomSeries,
    roi_name: str | None,
    notes: list[str] | None,
) -> tuple[int, str]:
    """The number of the ROI that `roi_name` names, and the prefix of messages about it.

    An ROI that names another frame of reference than the image's is noted, not refused.
    """
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
    return number, where


def _note_contour_references(
    contours: list[Dataset], reference: DicomSeries, where: str, notes: list[str] | None
) -> None:
    """Note contours whose image references are stale or absent: they are placed by geometry."""
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


def _closed_contours(contours: list[Dataset], where: str) -> list[np.ndarray]:
    """The closed planar contours' points (patient mm, one row per point); point and open
    contours are skipped, and a contour too short to enclose an area is dropped."""
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
    return closed


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
    header = read_object(
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
    with quiet_dicom_libraries():
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


def _note(notes: list[str] | None, where: str, note: str) -> None:
    """A tolerated quirk of an input: warned about, and kept for the sidecar's diagnostics."""
    logger.warning("%s%s", where, note)
    if notes is not None:
        notes.append(note)


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
