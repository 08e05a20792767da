"""Read images and lesion masks from the manifest's paths, and check their geometry.

One reader for the whole tool: image files SimpleITK reads (NIfTI, NRRD, MHA, ...), DICOM series
folders, and masks as label images, DICOM SEG or DICOM RTSTRUCT. Messages name the file or
folder, never a header value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from rnclassifier.errors import InputError

#: Geometry agreement needed between a mask and its image (mm, and direction cosines).
GEOMETRY_TOLERANCE = 1e-3


def read_image(path: str | Path) -> sitk.Image:
    """An image file or a DICOM series folder, as a float32 SimpleITK image."""
    path = Path(path)
    if path.is_dir():
        from rnclassifier.imaging.dicom import load_series

        image = load_series(path).image
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
    label: int | None = None,
    roi_name: str | None = None,
) -> sitk.Image:
    """The lesion as a UInt8 0/1 mask on the reference image's grid.

    `path` is a label image (choose the value with `label`; required when there are several),
    a DICOM SEG or a DICOM RTSTRUCT (choose the ROI / segment with `roi_name`), rasterised on the
    grid of the DICOM series at `reference_path`.
    """
    path = Path(path)
    if path.is_file() and _is_dicom(path):
        from rnclassifier.imaging.dicom import dicom_modality, load_series, rtstruct_mask, seg_mask

        modality = dicom_modality(path)
        if reference_path is None or not Path(reference_path).is_dir():
            raise InputError(f"{path}: a DICOM mask needs its image as a DICOM series folder")
        series = load_series(Path(reference_path))
        if modality == "RTSTRUCT":
            mask = rtstruct_mask(path, series, roi_name)
        elif modality == "SEG":
            mask = seg_mask(path, series, roi_name if label is None else label)
        else:
            raise InputError(f"{path}: a DICOM mask must be an RTSTRUCT or a SEG")
    else:
        mask = _label_mask(path, label)
    check_same_grid(reference, mask, path)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise InputError(f"{path}: the lesion mask is empty")
    return mask


def check_same_grid(image: sitk.Image, mask: sitk.Image, where: str | Path) -> None:
    """Fail clearly when a mask is not on its image's grid (size, spacing, origin, direction)."""
    problems = []
    if image.GetSize() != mask.GetSize():
        problems.append(f"size {mask.GetSize()} differs from the image's {image.GetSize()}")
    for name, a, b in (
        ("spacing", image.GetSpacing(), mask.GetSpacing()),
        ("origin", image.GetOrigin(), mask.GetOrigin()),
        ("direction", image.GetDirection(), mask.GetDirection()),
    ):
        if not np.allclose(a, b, atol=GEOMETRY_TOLERANCE, rtol=0):
            shown = tuple(round(v, 4) for v in b)
            problems.append(
                f"{name} {shown} differs from the image's {tuple(round(v, 4) for v in a)}"
            )
    if problems:
        raise InputError(f"{where}: mask is not on the image grid: {p}" for p in problems)


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
