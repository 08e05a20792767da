"""One scan of one lesion through preprocessing and pyradiomics.

The scan's sequences are read, same-session sequences are resampled onto the T1c grid, each is
bias-corrected and normalised as configured, and pyradiomics runs per sequence and region.
A plain pyradiomics config skips every rnclassifier step: pyradiomics on the lesion, as is.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from rnclassifier.config import ExtractionConfig
from rnclassifier.errors import InputError
from rnclassifier.imaging import preprocess
from rnclassifier.imaging.read import read_image, read_mask

logger = logging.getLogger(__name__)

#: pyradiomics' default feature classes, used when a parameter file enables "all".
DEFAULT_FEATURE_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm", "shape")


@dataclass(frozen=True)
class ScanInputs:
    """Paths and selections for one scan (the scored one or the prior one). No IDs."""

    images: dict[str, str]  # sequence -> path; the first is the grid of the mask (t1c)
    mask: str
    brain_mask: str | None = None
    mask_label: int | None = None
    roi_name: str | None = None
    #: sequence -> which series of a DICOM study folder it is (`<sequence>_series`)
    series: dict[str, str] = field(default_factory=dict)
    #: the manifest column that names the scan's series, `_series` and `_prior_series`
    series_suffix: str = "_series"

    def read(self, sequence: str) -> sitk.Image:
        """One of the scan's images, its series chosen in a study folder."""
        return read_image(
            self.images[sequence],
            series=self.series.get(sequence),
            column=f"{sequence}{self.series_suffix}",
        )


@dataclass
class ScanFeatures:
    """Feature values keyed by (sequence, region, pyradiomics key), plus diagnostics."""

    values: dict[tuple[str, str, str], float] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)


def read_scan_mask(
    scan: ScanInputs, notes: list[str] | None = None
) -> tuple[sitk.Image, sitk.Image]:
    """The scan's reference image (its first sequence) and its lesion mask on that grid;
    quirks tolerated on the way are appended to `notes`."""
    first = next(iter(scan.images))
    reference = scan.read(first)
    mask = read_mask(
        scan.mask,
        reference,
        reference_path=scan.images[first],
        reference_series=scan.series.get(first),
        label=scan.mask_label,
        roi_name=scan.roi_name,
        notes=notes,
    )
    return reference, mask


def extract_scan(
    scan: ScanInputs, config: ExtractionConfig, *, mask_override: sitk.Image | None = None
) -> ScanFeatures:
    """Features of one scan. `mask_override` replaces the lesion mask (robustness perturbations)."""
    first, *others = scan.images
    result = ScanFeatures()
    notes: list[str] = []
    reference, mask = read_scan_mask(scan, notes)
    if mask_override is not None:
        mask = mask_override
    result.diagnostics["lesion_volume_cc"] = preprocess.voxel_volume_cc(mask)
    components = sitk.ConnectedComponent(mask > 0)  # face-connected pieces of the mask
    result.diagnostics["connected_components"] = int(sitk.GetArrayViewFromImage(components).max())
    result.diagnostics["t1c_spacing_mm"] = [round(v, 4) for v in reference.GetSpacing()]
    if config.plain:
        for sequence in scan.images:
            image = reference if sequence == first else scan.read(sequence)
            _run(config, image, mask, sequence, "lesion", with_shape=True, into=result)
        if notes:
            result.diagnostics["input_notes"] = notes
        return result

    settings = config.settings
    brain = (
        read_mask(scan.brain_mask, reference, notes=notes)
        if scan.brain_mask
        else preprocess.foreground_mask(reference)
    )
    result.diagnostics["brain_mask"] = "given" if scan.brain_mask else "foreground (Otsu)"
    regions = {"lesion": mask}
    if "shell" in settings.regions:
        regions["shell"] = preprocess.peritumoural_shell(mask, brain, settings.shell_width_mm)
    normal = preprocess.normal_tissue_reference(brain, mask, settings.shell_width_mm)
    steps = []
    for sequence in (first, *others):
        image = (
            reference
            if sequence == first
            else preprocess.resample_onto(scan.read(sequence), reference)
        )
        if sequence != first:
            steps.append(f"{sequence}: resampled onto the {first} grid (B-spline)")
        if settings.n4_bias_correction:
            image = preprocess.n4_correct(image, brain)
            steps.append(f"{sequence}: N4 bias-field correction within the brain mask")
        if settings.normalisation == "zscore_brain":
            image, stats = preprocess.zscore_within(image, normal)
            steps.append(
                f"{sequence}: z-score within normal brain (mean {stats['mean']:.4g}, "
                f"SD {stats['sd']:.4g})"
            )
        for region, region_mask in regions.items():
            if region not in settings.regions:
                continue
            _run(
                config,
                image,
                region_mask,
                sequence,
                region,
                with_shape=sequence == first,
                into=result,
            )
    result.diagnostics["steps"] = steps
    if notes:
        result.diagnostics["input_notes"] = notes
    return result


def _run(
    config: ExtractionConfig,
    image: sitk.Image,
    mask: sitk.Image,
    sequence: str,
    region: str,
    *,
    with_shape: bool,
    into: ScanFeatures,
) -> None:
    extractor = _extractor(config, with_shape)
    try:
        output = extractor.execute(image, mask, label=1)
    except RuntimeError as exc:
        if "does not match" not in str(exc):
            raise
        raise InputError(
            f"{sequence}: image and lesion mask are on different grids; pyradiomics needs "
            "`correctMask: true` in its settings to resample the mask"
        ) from None
    except ValueError as exc:  # pyradiomics: ROI too small, empty after resampling, ...
        into.diagnostics.setdefault("skipped", []).append(f"{sequence}/{region}: {exc}")
        logger.warning("features of %s/%s skipped: %s", sequence, region, exc)
        return
    for key, value in output.items():
        if key.startswith("diagnostics_"):
            continue
        number = float(np.asarray(value))
        into.values[(sequence, region, key)] = number if math.isfinite(number) else math.nan


_EXTRACTORS: dict[tuple[str, bool], Any] = {}


def _extractor(config: ExtractionConfig, with_shape: bool) -> Any:
    """A pyradiomics extractor per process, config and shape switch (building one validates
    its parameters, so it is kept)."""
    key = (config.fingerprint(), with_shape)
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = _build_extractor(config.pyradiomics, with_shape)
    return _EXTRACTORS[key]


def _build_extractor(pyradiomics_params: dict[str, Any], with_shape: bool) -> Any:
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    # pyradiomics logs every step at INFO and a GLCM note at WARNING for every lesion; what
    # matters (skipped regions) is recorded in the sidecar's diagnostics instead.
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    params = copy.deepcopy(pyradiomics_params)
    if not with_shape:
        classes = params.get("featureClass") or dict.fromkeys(DEFAULT_FEATURE_CLASSES)
        params["featureClass"] = {k: v for k, v in classes.items() if k not in ("shape", "shape2D")}
        if not params["featureClass"]:
            raise InputError("pyradiomics parameters enable only shape features")
    return RadiomicsFeatureExtractor(params)
