"""MRI preprocessing before feature extraction: alignment of same-session sequences, N4 bias
correction, intensity normalisation within the brain, and the peritumoural shell.

Why not pyradiomics' `normalize`: it standardises over the whole image, so the result depends on
the field of view (how much air and skull the slab holds). Here statistics come from brain tissue.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from rnclassifier.errors import InputError


def resample_onto(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """A same-session sequence (FLAIR, T2) onto the T1c grid, in physical space (B-spline)."""
    return sitk.Resample(
        image, reference, sitk.Transform(), sitk.sitkBSpline, 0.0, sitk.sitkFloat32
    )


def resample_mask_onto(mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
    return sitk.Resample(
        mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )


def foreground_mask(image: sitk.Image) -> sitk.Image:
    """The head when no brain mask is given: Otsu threshold, largest component, holes filled."""
    foreground = sitk.OtsuThreshold(image, 0, 1)
    components = sitk.RelabelComponent(sitk.ConnectedComponent(foreground), sortByObjectSize=True)
    largest = components == 1
    filled = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(largest, [2, 2, 2]))
    return sitk.Cast(filled, sitk.sitkUInt8)


def n4_correct(image: sitk.Image, mask: sitk.Image, shrink: int = 4) -> sitk.Image:
    """N4 bias-field correction fitted on a shrunk image, applied at full resolution."""
    small = sitk.Shrink(image, [shrink] * 3)
    small_mask = sitk.Shrink(mask, [shrink] * 3)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([20, 20, 10])
    corrector.Execute(sitk.Cast(small, sitk.sitkFloat32), small_mask)
    log_field = corrector.GetLogBiasFieldAsImage(image)
    return sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)


def zscore_within(image: sitk.Image, reference_region: sitk.Image) -> tuple[sitk.Image, dict]:
    """(image - mean) / SD over the reference region (brain tissue outside the lesion)."""
    values = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(reference_region) > 0]
    if values.size < 100:
        raise InputError("too few voxels in the brain mask to normalise intensities (< 100)")
    mean, sd = float(values.mean()), float(values.std())
    if sd <= 0:
        raise InputError("the brain region has constant intensity; cannot normalise")
    return sitk.Cast((image - mean) / sd, sitk.sitkFloat32), {"mean": mean, "sd": sd}


def peritumoural_shell(mask: sitk.Image, brain: sitk.Image, width_mm: float) -> sitk.Image:
    """Voxels within `width_mm` outside the lesion and inside the brain (where oedema lives)."""
    distance = sitk.SignedMaurerDistanceMap(
        mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    shell = (distance > 0) & (distance <= width_mm) & (brain > 0)
    return sitk.Cast(shell, sitk.sitkUInt8)


def normal_tissue_reference(brain: sitk.Image, mask: sitk.Image, margin_mm: float) -> sitk.Image:
    """Brain outside the lesion and a margin around it: the reference for normalisation."""
    distance = sitk.SignedMaurerDistanceMap(
        mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.Cast((brain > 0) & (distance > margin_mm), sitk.sitkUInt8)


def voxel_volume_cc(mask: sitk.Image) -> float:
    return float(
        np.count_nonzero(sitk.GetArrayViewFromImage(mask)) * np.prod(mask.GetSpacing()) / 1000.0
    )
