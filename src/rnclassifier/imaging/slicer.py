"""3D Slicer segmentations (`.seg.nrrd`): one named segment as a lesion mask.

Slicer stores every segment of a segmentation in one NRRD: a 3-D label map when no two segments
overlap, else 4-D with a leading `list` axis, one layer per group of non-overlapping segments.
Which label value in which layer is which segment is only in the `SegmentN_*` header fields, so
the file cannot be read as a plain label image. slicerio (Slicer's own package) parses those
fields and the geometry; this module chooses the segment and checks what slicerio takes on
trust. The mask keeps the file's own grid: Slicer saves only the segments' extent, so it is
usually a crop of the MRI, and the caller pastes it onto the image grid.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nrrd
import numpy as np
import SimpleITK as sitk
import slicerio

from rnclassifier.errors import InputError

#: The physical spaces slicerio converts to LPS (the only ones Slicer writes).
_SPACES = ("left-posterior-superior", "right-anterior-superior")
_KINDS = (["domain"] * 3, ["list", "domain", "domain", "domain"])
#: How far the voxel axes may be from perpendicular (direction cosines) before they count as
#: sheared, which the rest of the pipeline, like the DICOM reader, does not accept.
_ORTHOGONALITY_TOLERANCE = 1e-4
_NRRD_ERRORS = (nrrd.NRRDError, OSError, ValueError, EOFError, zlib.error, KeyError, IndexError)


def is_slicer_segmentation(path: Path) -> bool:
    """Whether `path` is a Slicer segmentation: by its `.seg.nrrd` name, else by its header, so
    a segmentation renamed to `.nrrd` is not mistaken for a label image (its label values mean
    nothing without the header). Reads at most the header."""
    path = Path(path)
    if path.name.lower().endswith(".seg.nrrd"):
        return True
    if not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            if not handle.read(8).startswith(b"NRRD000"):
                return False
        return "Segment0_Name" in nrrd.read_header(str(path))
    except _NRRD_ERRORS:
        return False


def slicer_segment_mask(path: Path, roi_name: str | None) -> sitk.Image:
    """The segment named `roi_name` (or the only one) as a UInt8 0/1 image on the file's grid.

    The segment's layer and label value come from the file's metadata; the geometry is the
    file's own, in LPS like SimpleITK's, possibly cropped to the segments' extent.
    """
    path = Path(path)
    _check_header(path)
    try:
        segmentation = slicerio.read_segmentation(str(path))
    except _NRRD_ERRORS as exc:
        raise InputError(
            f"{path}: cannot read its voxels ({type(exc).__name__}; truncated or corrupt?)"
        ) from None
    voxels = np.asarray(segmentation["voxels"])
    segments: list[dict[str, Any]] = segmentation.get("segments", [])
    names = [str(segment.get("name", segment.get("id", ""))) for segment in segments]
    index = _choose(path, names, roi_name)
    layer, label = _layer_and_label(path, segments, index, voxels)

    if label is None:  # the legacy layout: one segment per layer, any non-zero value
        selected = (voxels[layer] if voxels.ndim == 4 else voxels) != 0
    else:
        segment = {**segments[index], "layer": layer, "labelValue": label}
        selected = slicerio.segment_mask(segmentation, segment)
    if not selected.any():
        raise InputError(f"{path}: segment {names[index]!r} is empty")

    # slicerio reads in NRRD (Fortran) order, i fastest: (i, j, k); SimpleITK wants (k, j, i).
    mask = sitk.GetImageFromArray(np.ascontiguousarray(selected.transpose(2, 1, 0), np.uint8))
    origin, spacing, direction = _geometry(path, segmentation["ijkToLPS"])
    mask.SetOrigin(origin)
    mask.SetSpacing(spacing)
    mask.SetDirection(direction)
    return mask


def _check_header(path: Path) -> None:
    """The NRRD header, refused unless slicerio can place it in LPS; slicerio's own refusals are
    `IOError`s that do not say which file, and it takes a missing `space` for LPS."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        header = nrrd.read_header(str(path))
    except _NRRD_ERRORS:
        raise InputError(f"{path}: not a readable NRRD file (bad header)") from None
    if not any(key.startswith("Segment") and key.endswith("_Name") for key in header):
        raise InputError(f"{path}: not a 3D Slicer segmentation (no Segment0_Name in its header)")
    if header.get("space") not in _SPACES:
        raise InputError(
            f"{path}: its space must be left-posterior-superior or right-anterior-superior, as "
            "3D Slicer writes it; cannot place the segmentation in patient coordinates"
        )
    if "space directions" not in header:
        raise InputError(f"{path}: has no space directions; cannot place it in patient space")
    if header.get("kinds") not in _KINDS:
        raise InputError(
            f"{path}: expected a 3-D label map or a layered 4-D one (kinds 'domain domain domain' "
            "or 'list domain domain domain'), as 3D Slicer writes them"
        )


def _choose(path: Path, names: list[str], wanted: str | None) -> int:
    """Index of the segment `wanted` names: exactly, then ignoring case and surrounding spaces,
    then ignoring case and all whitespace (names typed on a command line drift like that)."""
    listing = ", ".join(f"{n} {name!r}" for n, name in enumerate(names, start=1))
    if not names:
        raise InputError(f"{path}: holds no segments")
    if wanted is None:
        if len(names) == 1:
            return 0
        raise InputError(
            f"{path}: holds {len(names)} segments; choose the lesion's with roi_name "
            f"(--roi-name): {listing}"
        )
    rules: tuple[Callable[[str], str], ...] = (
        lambda name: name,
        lambda name: name.strip().casefold(),
        lambda name: re.sub(r"\s+", "", name).casefold(),
    )
    for rule in rules:
        matches = [n for n, name in enumerate(names) if rule(name) == rule(wanted)]
        if len(matches) > 1:
            shown = ", ".join(f"{n + 1} {names[n]!r}" for n in matches)
            raise InputError(
                f"{path}: {len(matches)} segments match roi_name {wanted!r}; cannot tell which "
                f"is the lesion: {shown}"
            )
        if matches:
            return matches[0]
    raise InputError(f"{path}: no segment named {wanted!r}; available: {listing}")


def _layer_and_label(
    path: Path, segments: list[dict[str, Any]], index: int, voxels: np.ndarray
) -> tuple[int, int | None]:
    """Where the segment's voxels are: its layer and label value (None: any non-zero value).

    Slicer before 4.11 wrote no Layer or LabelValue fields, one segment per layer; slicerio
    would then read every segment from layer 0 with value 1.
    """
    segment = segments[index]
    name = str(segment.get("name", segment.get("id", "")))
    n_layers = voxels.shape[0] if voxels.ndim == 4 else 1
    layer, label = segment.get("layer"), segment.get("labelValue")
    if layer is None or label is None:
        legacy = all("layer" not in s and "labelValue" not in s for s in segments)
        if not (legacy and n_layers == len(segments)):
            raise InputError(
                f"{path}: segment {name!r} has no Segment{index}_Layer or "
                f"Segment{index}_LabelValue; cannot tell which voxels are its"
            )
        return (index if voxels.ndim == 4 else 0), None
    if not 0 <= layer < n_layers:
        raise InputError(
            f"{path}: segment {name!r} is on layer {layer}, but the file has {n_layers} "
            f"layer{'s' if n_layers > 1 else ''}"
        )
    return layer, label


def _geometry(
    path: Path, ijk_to_lps: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Origin, spacing and direction (row-major, axes as columns) as SimpleITK takes them."""
    matrix = np.asarray(ijk_to_lps, dtype=float)
    axes = matrix[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if not (np.isfinite(matrix).all() and (spacing > 0).all()):
        raise InputError(f"{path}: its space directions are missing, zero or not finite")
    direction = axes / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=_ORTHOGONALITY_TOLERANCE):
        raise InputError(f"{path}: its voxel axes are not perpendicular (sheared grid)")
    return (
        tuple(float(v) for v in matrix[:3, 3]),
        tuple(float(v) for v in spacing),
        tuple(float(v) for v in direction.ravel()),
    )
