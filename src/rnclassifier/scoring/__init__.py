"""Scoring new lesions against a frozen model bundle: one case (`case`), or every lesion of a
cohort manifest (`manifest`), through the same narrowed extraction (`inputs`) and the bundle's
one `predict` (`rnclassifier.bundle.model`); a scored case can also be written as DICOM SEG
and SR for PACS (`dicom_results`).

The result is a calibrated probability at the training prevalence (optionally shifted to
another, flagged), the call with the indeterminate zone fixed in training, the spread of the CV
ensemble, the top SHAP contributions, input-quality facts and out-of-distribution flags.
"""

from rnclassifier.scoring.case import RESEARCH_USE, CaseInputs, case_cohort, check_case, score_case
from rnclassifier.scoring.dicom_results import check_dicom_out, write_dicom_results
from rnclassifier.scoring.inputs import bundle_requirements, extract_for_bundle, scoring_features
from rnclassifier.scoring.manifest import check_manifest, predict_cohort, score_cohort

__all__ = [
    "RESEARCH_USE",
    "CaseInputs",
    "bundle_requirements",
    "case_cohort",
    "check_case",
    "check_dicom_out",
    "check_manifest",
    "extract_for_bundle",
    "predict_cohort",
    "score_case",
    "score_cohort",
    "scoring_features",
    "write_dicom_results",
]
