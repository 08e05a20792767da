"""The manifest's columns: names, kinds, vocabularies and ranges (DESIGN.md, "Cohort manifest").

The one table of what each manifest column means and which values it may hold; reading and
validation (`rnclassifier.cohort`) and every module that needs a vocabulary ask it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

ID_COLUMNS: tuple[str, ...] = ("patient_id", "lesion_id")
POSITIVE_CLASS = "tumor"
NEGATIVE_CLASS = "necrosis"

#: Image sequences recognised without configuration; an experiment config may name more.
KNOWN_SEQUENCES: tuple[str, ...] = ("t1c", "t1", "t2", "flair", "adc", "dwi", "swi", "rcbv")
PRIOR_SUFFIX = "_prior"
#: `<sequence>_series` (e.g. `t1c_series`, `t1c_prior_series`) picks one series of a DICOM
#: folder that holds a whole study: its SeriesDescription, SeriesNumber or SeriesInstanceUID.
SERIES_SUFFIX = "_series"

#: Columns that describe the second course of treatment. Only tumours received one, so any of
#: them would leak the label; they are refused as predictors wherever they appear.
SECOND_COURSE_PATTERN = re.compile(
    r"bed2|bed_2|re_?irradiat|second_course|brachy|cs131|cs_131|gammatile|salvage", re.IGNORECASE
)
_SEQUENCE_NAME = re.compile(r"^[a-z][a-z0-9]*$")


class Kind(Enum):
    IDENTIFIER = "identifier"
    PATH = "path"
    VOCABULARY = "vocabulary"
    NUMBER = "number"
    INTEGER = "integer"
    TEXT = "text"


@dataclass(frozen=True)
class Column:
    """One manifest column: how to read it and which values are allowed."""

    name: str
    kind: Kind
    meaning: str
    required: bool = False
    vocabulary: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False


def _vocab(name: str, values: Sequence[str], meaning: str) -> Column:
    return Column(name, Kind.VOCABULARY, meaning, vocabulary=tuple(values))


BINARY = ("0", "1")

#: The manifest's non-image columns. Image columns (sequences, masks, priors) are added by
#: `image_columns` since their set depends on the configured sequences.
COLUMNS: dict[str, Column] = {
    c.name: c
    for c in [
        Column("patient_id", Kind.IDENTIFIER, "pseudonymous patient key", required=True),
        Column("lesion_id", Kind.IDENTIFIER, "lesion key, unique in the file", required=True),
        Column("roi_name", Kind.TEXT, "ROI of an RTSTRUCT or segment of a SEG that is the lesion"),
        Column(
            "mask_label",
            Kind.INTEGER,
            "label value of the lesion in a label image",
            minimum=1,
            maximum=65535,
        ),
        Column(
            "months_between_scans",
            Kind.NUMBER,
            "months from the prior scan to the scored scan",
            minimum=0,
            minimum_exclusive=True,
            maximum=120,
        ),
        _vocab("pathology", (POSITIVE_CLASS, NEGATIVE_CLASS), "ground truth from resection"),
        _vocab("pathology_detail", ("tumor", "mixed", "necrosis"), "pathology in more detail"),
        _vocab("reference_standard", ("pathology", "follow_up"), "how the truth was settled"),
        Column(
            "days_scan_to_surgery",
            Kind.INTEGER,
            "days from the scored MRI to surgery",
            minimum=0,
            maximum=3650,
        ),
        _vocab("radiologist_read", (POSITIVE_CLASS, NEGATIVE_CLASS), "blinded read; blank = none"),
        Column("radiologist_score", Kind.INTEGER, "1-5 suspicion of tumour", minimum=1, maximum=5),
        Column("age_years", Kind.NUMBER, "age at the first SRS (years)", minimum=0, maximum=120),
        _vocab("sex", ("m", "f"), "sex"),
        _vocab(
            "histology",
            ("nsclc", "sclc", "breast", "melanoma", "renal", "endometrial", "thyroid", "other"),
            "primary tumour histology",
        ),
        _vocab(
            "location",
            (
                "frontal",
                "parietal",
                "temporal",
                "occipital",
                "cerebellum",
                "brainstem",
                "deep",
                "other",
            ),
            "lesion location",
        ),
        _vocab("prior_wbrt", BINARY, "whole-brain radiotherapy before the first SRS"),
        Column(
            "srs_dose_gy",
            Kind.NUMBER,
            "first-course total dose (Gy)",
            minimum=0,
            minimum_exclusive=True,
            maximum=60,
        ),
        Column(
            "srs_fractions",
            Kind.INTEGER,
            "first-course number of fractions",
            minimum=1,
            maximum=30,
        ),
        Column(
            "months_since_srs",
            Kind.NUMBER,
            "months from the first SRS to the scored MRI",
            minimum=0,
            maximum=360,
        ),
        Column(
            "ptv_cc",
            Kind.NUMBER,
            "first-course PTV (cm3)",
            minimum=0,
            minimum_exclusive=True,
            maximum=1000,
        ),
        _vocab("steroids", BINARY, "on steroids at the scored MRI"),
        _vocab("immunotherapy", ("none", "single", "dual"), "checkpoint immunotherapy"),
        _vocab("her2_tdm1", BINARY, "HER2+ breast cancer treated with T-DM1"),
        Column("site", Kind.TEXT, "scanner or institution; never a predictor"),
    ]
}

#: Clinical covariates that may enter a model: all known on the date of the scored MRI.
CLINICAL_COLUMNS: tuple[str, ...] = (
    "age_years",
    "sex",
    "histology",
    "location",
    "prior_wbrt",
    "srs_dose_gy",
    "srs_fractions",
    "months_since_srs",
    "ptv_cc",
    "steroids",
    "immunotherapy",
    "her2_tdm1",
)


def sequence_name_problem(name: str) -> str | None:
    """Why `name` cannot name an image sequence, or None when it can."""
    if not _SEQUENCE_NAME.match(name):
        return (
            f"sequence name {name!r} must be lower-case letters and digits, starting with a letter"
        )
    if name in ("mask", "brain", "prior") or name in COLUMNS:
        return f"sequence name {name!r} is reserved for another manifest column"
    return None


def image_columns(sequences: Iterable[str] = KNOWN_SEQUENCES) -> dict[str, Column]:
    """Path columns for the given sequences: each sequence, the masks, and their priors."""
    names = list(dict.fromkeys([*sequences, "mask", "brain_mask"]))
    columns: dict[str, Column] = {}
    for name in names:
        columns[name] = Column(name, Kind.PATH, f"{name} image", required=name in ("t1c", "mask"))
        prior = name + PRIOR_SUFFIX
        columns[prior] = Column(prior, Kind.PATH, f"{name} of the earlier scan")
        if name not in ("mask", "brain_mask"):
            for image in (name, prior):
                columns[image + SERIES_SUFFIX] = Column(
                    image + SERIES_SUFFIX,
                    Kind.TEXT,
                    f"which series of a DICOM study folder is the {image} image",
                )
    return columns
