"""Read images and lesion masks from the manifest's paths, and check their geometry.

One reader for the whole tool: image files SimpleITK reads (NIfTI, NRRD, MHA, ...), DICOM series
folders, and masks as label images, DICOM SEG or DICOM RTSTRUCT. Messages name the file or
folder, never a header value.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from rnclassifier.errors import InputError

logger = logging.getLogger(__name__)

#: A mask's origin and spacing may differ from its image's by this fraction of the image's voxel
#: size, per axis, and be taken as the image's: float noise from converters (1e-5 mm is common).
GRID_TOLERANCE_VOXELS = 1e-3
#: The same for direction cosines (unitless): headers round them to about 6 digits.
DIRECTION_TOLERANCE = 1e-5


def read_image(
    path: str | Path, *, series: str | None = None, column: str = "<sequence>_series"
) -> sitk.Image:
    """An image file or a DICOM series folder, as a float32 SimpleITK image.

    `series` picks one series of a folder holding several (a PACS study export): its
    SeriesDescription, SeriesNumber or SeriesInstanceUID; `column` is the manifest column that
    does so, for the message that lists the series when none is chosen.
    """
    path = Path(path)
    if path.is_dir():
        from rnclassifier.imaging.dicom import load_series

        image = load_series(path, series, column=column).image
    else:
        image = _read_file(path)
    if image.GetDimension() != 3:
        raise InputError(f"{path}: expected a 3-D image, found {image.GetDimension()}-D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: expected a single-channel image")
    image = sitk.Cast(image, sitk.sitkFloat32)
    bad = int(np.count_nonzero(~np.isfinite(sitk.GetArrayViewFromImage(image))))
    if bad:
        raise InputError(f"{path}: {bad} voxel(s) are not finite (NaN or infinite)")
    return image


def read_mask(
    path: str | Path,
    reference: sitk.Image,
    *,
    reference_path: str | Path | None = None,
    reference_series: str | None = None,
    label: int | None = None,
    roi_name: str | None = None,
    notes: list[str] | None = None,
) -> sitk.Image:
    """The lesion as a UInt8 0/1 mask on the reference image's grid.

    `path` is a label image (choose the value with `label`; required when there are several),
    a 3D Slicer `.seg.nrrd` (choose the segment with `roi_name`), a DICOM SEG or a DICOM
    RTSTRUCT (choose the segment / ROI with `roi_name`), rasterised on the grid of the DICOM
    series at `reference_path` (`reference_series` picks it in a study folder). Every kind then
    passes `onto_image_grid`. What was tolerated or repaired on the way (stale references, a
    cropped mask, a fractional segment) is appended to `notes`, for the sidecar's diagnostics.
    """
    path = Path(path)
    if path.is_file() and _is_dicom(path):
        from rnclassifier.imaging.dicom import dicom_modality, load_series, rtstruct_mask, seg_mask

        modality = dicom_modality(path)
        if reference_path is None or not Path(reference_path).is_dir():
            raise InputError(f"{path}: a DICOM mask needs its image as a DICOM series folder")
        series = load_series(Path(reference_path), reference_series, column="t1c_series")
        if modality == "RTSTRUCT":
            mask = rtstruct_mask(path, series, roi_name, notes)
        elif modality == "SEG":
            mask = seg_mask(path, series, roi_name if label is None else label, notes)
        else:
            raise InputError(f"{path}: a DICOM mask must be an RTSTRUCT or a SEG")
    else:
        from rnclassifier.imaging.slicer import is_slicer_segmentation, slicer_segment_mask

        if path.is_file() and is_slicer_segmentation(path):
            mask = slicer_segment_mask(path, roi_name)
        else:
            mask = _label_mask(path, label)
    mask = onto_image_grid(mask, reference, path, notes)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise InputError(f"{path}: the lesion mask is empty")
    return mask


def onto_image_grid(
    mask: sitk.Image, image: sitk.Image, where: str | Path, notes: list[str] | None = None
) -> sitk.Image:
    """The mask on the image's grid, by the one geometry rule of the tool.

    - Origin and spacing within `GRID_TOLERANCE_VOXELS` of a voxel per axis, and direction cosines
      within `DIRECTION_TOLERANCE`: float noise from a converter; the mask takes the image's
      geometry exactly (pyradiomics would otherwise skip a mask 1e-5 mm off).
    - The same voxel lattice with another extent (a mask cropped to the segment, or padded): the
      voxels are pasted onto the image grid exactly, without interpolation. Padding must be
      empty; a labelled voxel outside the image is an error.
    - Anything else is refused, saying what differs and by how much: resampling a mask here
      would change the lesion silently.
    """
    spacing = np.array(image.GetSpacing(), dtype=float)
    problems = []
    mask_direction = np.array(mask.GetDirection(), dtype=float)
    turn = float(np.abs(mask_direction - np.array(image.GetDirection(), dtype=float)).max())
    if turn > DIRECTION_TOLERANCE:
        problems.append(f"direction cosines differ by up to {turn:.3g}")
    ratio = np.array(mask.GetSpacing(), dtype=float) / spacing
    if np.abs(ratio - 1).max() > GRID_TOLERANCE_VOXELS:
        problems.append(
            f"spacing {_mm(mask.GetSpacing())} mm differs from the image's {_mm(spacing)} mm"
        )
    offset = np.zeros(3)
    moved = float(np.linalg.norm(np.subtract(mask.GetOrigin(), image.GetOrigin())))
    if not problems:
        offset = _index_offset(mask, image)
        off = float(np.abs(offset - np.rint(offset)).max())
        if off > GRID_TOLERANCE_VOXELS:
            problems.append(
                f"origin {_mm(mask.GetOrigin())} differs from the image's {_mm(image.GetOrigin())} "
                f"by {moved:.4g} mm, {off:.3g} of a voxel off the image's voxel lattice"
            )
    elif moved > GRID_TOLERANCE_VOXELS * float(spacing.min()):
        problems.append(
            f"origin {_mm(mask.GetOrigin())} differs from the image's {_mm(image.GetOrigin())} "
            f"by {moved:.4g} mm"
        )
    if problems and mask.GetSize() != image.GetSize():
        problems.append(f"size {mask.GetSize()} differs from the image's {image.GetSize()}")
    if problems:
        raise InputError(
            f"{where}: mask is not on the image grid: {'; '.join(problems)}; resample the mask "
            "onto the image in the segmentation tool (nearest neighbour), or export it on the "
            "image's grid"
        )
    shift = np.rint(offset).astype(int)
    if not shift.any() and mask.GetSize() == image.GetSize():
        snapped = sitk.Image(mask)
        snapped.CopyInformation(image)
        return snapped
    return _paste(mask, image, shift, where, notes)


def _index_offset(mask: sitk.Image, image: sitk.Image) -> np.ndarray:
    """The mask's first voxel in the image's continuous index (i, j, k)."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    to_index = np.linalg.inv(direction * np.array(image.GetSpacing(), dtype=float))
    return to_index @ (np.array(mask.GetOrigin(), dtype=float) - image.GetOrigin())


def _paste(
    mask: sitk.Image,
    image: sitk.Image,
    shift: np.ndarray,
    where: str | Path,
    notes: list[str] | None,
) -> sitk.Image:
    """A mask on the image's lattice with another extent, placed voxel for voxel."""
    values = sitk.GetArrayViewFromImage(mask)  # (k, j, i)
    size = np.array(image.GetSize())
    start = shift[::-1]
    stop = start + np.array(values.shape)
    low = np.maximum(start, 0)
    high = np.minimum(stop, size[::-1])
    inside = tuple(slice(a - s, b - s) for a, b, s in zip(low, high, start, strict=True))
    outside = int(np.count_nonzero(values)) - (
        int(np.count_nonzero(values[inside])) if (high > low).all() else 0
    )
    if outside:
        raise InputError(
            f"{where}: the mask has {outside} labelled voxel(s) outside the image (it is on the "
            "image's voxel lattice but extends beyond it); export the mask on the image's grid"
        )
    placed = np.zeros(tuple(size[::-1]), dtype=values.dtype)
    if (high > low).all():
        placed[tuple(slice(a, b) for a, b in zip(low, high, strict=True))] = values[inside]
    pasted = sitk.GetImageFromArray(placed)
    pasted.CopyInformation(image)
    kind = "cropped" if (start >= 0).all() and (stop <= size[::-1]).all() else "padded"
    note = (
        f"mask {kind} to {tuple(int(v) for v in mask.GetSize())} voxels of the image's lattice, "
        "pasted onto the image grid"
    )
    logger.info("%s: %s", where, note)
    if notes is not None:
        notes.append(note)
    return pasted


def _mm(values: object) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in values)  # type: ignore[attr-defined]


def _label_mask(path: Path, label: int | None) -> sitk.Image:
    image = read_image(path) if path.is_dir() else _read_file(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: expected a 3-D single-channel label image")
    values = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(values).all() or not np.equal(np.mod(values, 1), 0).all():
        raise InputError(
            f"{path}: mask values must be whole numbers (labels), found fractional or "
            "non-finite values; threshold a probability map before use"
        )
    present = np.unique(values[values != 0])
    if label is None:
        if len(present) > 1:
            shown = ", ".join(f"{v:g}" for v in present[:10])
            raise InputError(
                f"{path}: the mask has several labels ({shown}); say which is the lesion with "
                "the mask_label column"
            )
        selected = values != 0
    else:
        if label not in present:
            raise InputError(f"{path}: mask_label {label} is not in the mask")
        selected = values == label
    mask = sitk.GetImageFromArray(selected.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def _read_file(path: Path) -> sitk.Image:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(
            f"{path}: not an image SimpleITK can read (NIfTI, NRRD, MHA, ...)"
        ) from None
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti(path)
    return image


def _check_nifti(path: Path) -> None:
    """What ITK's NIfTI reader hides: it fills a truncated file's missing voxels with zeros, and
    turns NaN voxels into zeros, both without a word (its NRRD and MetaImage readers do fail, or
    keep the NaN). nibabel reads the header, and the voxels of floating-point files."""
    import nibabel

    try:
        nifti = nibabel.load(path)
        header = nifti.header
        expected = int(header.get_data_offset()) + int(
            np.prod(header.get_data_shape()) * header.get_data_dtype().itemsize
        )
    except Exception:  # nibabel's header errors have no common type
        raise InputError(f"{path}: not a valid NIfTI file (unreadable header)") from None
    if path.name.lower().endswith(".gz"):
        with path.open("rb") as handle:
            handle.seek(-4, 2)
            stored = int.from_bytes(handle.read(4), "little")  # gzip trailer: size mod 2**32
        actual = expected if stored == expected % 2**32 else _gzip_length(path)
    else:
        actual = path.stat().st_size
    if actual < expected:
        raise InputError(
            f"{path}: truncated: the header promises {expected} bytes, the file holds {actual}"
        )
    if header.get_data_dtype().kind in "fc":
        bad = int(np.count_nonzero(~np.isfinite(np.asanyarray(nifti.dataobj.get_unscaled()))))
        if bad:
            raise InputError(f"{path}: {bad} voxel(s) are not finite (NaN or infinite)")


def _gzip_length(path: Path) -> int:
    """Uncompressed length, counted (a cut-off stream is an error)."""
    import gzip
    import zlib

    length = 0
    try:
        with gzip.open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 22), b""):
                length += len(block)
    except (EOFError, OSError, zlib.error):
        raise InputError(f"{path}: the compressed file is cut short (truncated)") from None
    return length


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"
