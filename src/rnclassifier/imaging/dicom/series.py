"""DICOM image series: one per folder, or chosen among several in a study export.

A folder may hold a whole study (a PACS export: T1c, FLAIR, localisers, ...); the series are
listed from the headers alone and one is chosen by description, number or UID. Slices are read
with GDCM; an enhanced (multi-frame) MR object is a series of its own, read by `enhanced`. The
image's geometry is taken from the headers that `objects.check_stack` has checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import SegmentationStorage

from rnclassifier.errors import InputError
from rnclassifier.imaging.dicom.enhanced import load_enhanced
from rnclassifier.imaging.dicom.objects import (
    ENHANCED_MR_STORAGE,
    LABEL_MAP_SEGMENTATION_STORAGE,
    DicomSeries,
    check_stack,
    cosines,
    is_dicom_file,
    nearest_rotation,
    quiet_dicom_libraries,
)

logger = logging.getLogger(__name__)


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
    chosen = _chosen_series(folder, series, column)
    if chosen.enhanced:
        return load_enhanced(chosen.files[0][0])
    slices = chosen.files
    spacing, order, slice_spacing = check_stack(folder, [ds for _, ds in slices])
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
    row, col = cosines(headers[0])
    direction = nearest_rotation(np.column_stack([row, col, np.cross(row, col)]))
    image.SetOrigin(tuple(float(v) for v in headers[0].ImagePositionPatient))
    image.SetSpacing((spacing[1], spacing[0], slice_spacing))
    image.SetDirection(tuple(direction.flatten()))
    return DicomSeries(
        image=image,
        series_instance_uid=str(headers[0].get("SeriesInstanceUID", "")),
        frame_of_reference_uid=str(headers[0].get("FrameOfReferenceUID", "")),
        sop_instance_uids=tuple(str(h.get("SOPInstanceUID", "")) for h in headers),
    )


def series_datasets(
    folder: Path, series: str | None = None, *, column: str = "<sequence>_series"
) -> list[Dataset]:
    """The headers (no pixel data) of the series `load_series` reads, in its slice order: the
    source images that a derived object (a DICOM SEG or SR of a result) must reference, frame
    for frame. An enhanced MR object is one dataset. Same choice and checks as `load_series`.
    """
    folder = Path(folder)
    chosen = _chosen_series(folder, series, column)
    if chosen.enhanced:
        return [chosen.files[0][1]]
    headers = [ds for _, ds in chosen.files]
    _, order, _ = check_stack(folder, headers)
    return [headers[i] for i in order]


def _chosen_series(folder: Path, series: str | None, column: str) -> _FolderSeries:
    """The series of `folder` that `series` selects (headers only)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (a DICOM series is read from a folder of slices)")
    return _select_series(folder, _series_in_folder(folder), series, column)


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
            with quiet_dicom_libraries():
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
            row, col = cosines(ds)
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
