"""Mask perturbations for feature robustness (Zwanenburg et al. 2019, Sci Rep 9:614).

Each lesion's mask is perturbed K times, cycling through erosion by a voxel, dilation by a voxel
and contour noise (the signed distance to the contour plus smooth noise of about a voxel).
Training computes ICCs from these inside its training folds only; nothing here is fitted.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

KINDS = ("erode", "dilate", "contour_noise")


def perturbed_masks(mask: sitk.Image, k: int, seed: int) -> list[tuple[str, sitk.Image]]:
    """K perturbed copies of a 0/1 mask, deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    out = []
    for j in range(k):
        kind = KINDS[j % len(KINDS)]
        if kind == "erode":
            perturbed = sitk.BinaryErode(mask, [1, 1, 1])
            if not sitk.GetArrayViewFromImage(perturbed).any():
                perturbed = mask  # a lesion of one voxel's thickness cannot shrink further
        elif kind == "dilate":
            perturbed = sitk.BinaryDilate(mask, [1, 1, 1])
        else:
            perturbed = _contour_noise(mask, rng)
        out.append((kind, sitk.Cast(perturbed, sitk.sitkUInt8)))
    return out


def _contour_noise(mask: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    distance = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(
            mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        )
    )
    spacing = min(mask.GetSpacing())
    noise = ndimage.gaussian_filter(rng.standard_normal(distance.shape), 2.0)
    noise *= spacing / max(float(noise.std()), 1e-9)
    array = (distance + noise < 0).astype(np.uint8)
    if not array.any():
        array = sitk.GetArrayFromImage(mask)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(mask)
    return image
