"""DICOM input: image series (a folder of slices or one enhanced MR object) and lesion masks.

What lives where (imports go one way: `objects` <- `enhanced` <- `series`, `objects` <- `masks`):

- `objects`: what the readers share: tolerances, SOP classes, `DicomSeries`, file checks
  (`is_dicom_file`, `dicom_modality`, `read_object`) and the stack geometry check;
- `series`: `load_series`, finding and choosing the series in a folder; `series_datasets`,
  its headers in slice order (the source images of a derived SEG or SR);
- `enhanced`: `load_enhanced`, one enhanced (multi-frame) MR object as a series;
- `masks`: `rtstruct_mask` and `seg_mask`, a lesion mask on a series' grid.
"""

from rnclassifier.imaging.dicom.enhanced import load_enhanced
from rnclassifier.imaging.dicom.masks import rtstruct_mask, seg_mask
from rnclassifier.imaging.dicom.objects import (
    CONTOUR_OUTSIDE_TOLERANCE_PX,
    CONTOUR_PLANE_TOLERANCE_MM,
    COPLANAR_TOLERANCE,
    ENHANCED_MR_STORAGE,
    LABEL_MAP_SEGMENTATION_STORAGE,
    ORIENTATION_TOLERANCE,
    SLICE_TOLERANCE_FRACTION,
    SLICE_TOLERANCE_MM,
    STACK_DRIFT_TOLERANCE,
    DicomSeries,
    dicom_modality,
    is_dicom_file,
)
from rnclassifier.imaging.dicom.series import load_series, series_datasets

__all__ = [
    "CONTOUR_OUTSIDE_TOLERANCE_PX",
    "CONTOUR_PLANE_TOLERANCE_MM",
    "COPLANAR_TOLERANCE",
    "ENHANCED_MR_STORAGE",
    "LABEL_MAP_SEGMENTATION_STORAGE",
    "ORIENTATION_TOLERANCE",
    "SLICE_TOLERANCE_FRACTION",
    "SLICE_TOLERANCE_MM",
    "STACK_DRIFT_TOLERANCE",
    "DicomSeries",
    "dicom_modality",
    "is_dicom_file",
    "load_enhanced",
    "load_series",
    "rtstruct_mask",
    "seg_mask",
    "series_datasets",
]
