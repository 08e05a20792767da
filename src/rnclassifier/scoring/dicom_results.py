"""A scored case as DICOM objects for PACS and viewers (`score --dicom-out DIR`).

Two files, written together or not at all: `lesion_seg.dcm`, a DICOM SEG of the lesion mask
that was scored, frame for frame on the source T1c slices; and `result_sr.dcm`, a DICOM
Structured Report (TID 1500 measurement report, Comprehensive 3D SR) holding the probability,
the call, the threshold, the model's identity and the intended-use notice, referencing the
source series and the SEG's segment.

These are the one place where patient identifiers leave the tool, in files the user asked for:
a result must name its patient and study to be filed with them. Only the attributes needed for
that are copied from the source (`ATTACHING_ATTRIBUTES`); highdicom would copy the whole Patient
and Study modules and the scanner's institution, so it is given reduced copies of the source
headers holding nothing else (`_derivation_source`). Every UID of the new objects is new.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from rnclassifier.atomic import atomic_directory
from rnclassifier.errors import InputError
from rnclassifier.features.radiomics import ScanInputs, read_scan_mask
from rnclassifier.imaging.dicom import ENHANCED_MR_STORAGE, series_datasets
from rnclassifier.imaging.dicom.objects import quiet_dicom_libraries
from rnclassifier.scoring.case import CaseInputs, case_cohort
from rnclassifier.version import __version__

SEG_NAME = "lesion_seg.dcm"
SR_NAME = "result_sr.dcm"
#: Decimals of the probability and threshold stored in the SR (a DICOM DS holds 16 characters;
#: six decimals are far below the model's own variability and exactly reproducible).
DECIMALS = 6
#: What a result copies from its source: what DICOM needs to file it with its patient and study.
ATTACHING_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
)
#: What a derived object needs of its source image's geometry and identity (no identifiers).
_GEOMETRY_ATTRIBUTES = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "Modality",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SliceThickness",
    "SpacingBetweenSlices",
    "NumberOfFrames",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
)
_SERIES_FLAG = "--t1c-series"
_NOT_A_SERIES = (
    "--dicom-out: needs --t1c to be a DICOM series (a folder, or a study folder with --t1c-series)"
)
SERIES_DESCRIPTION = "rnclassifier (research use only)"
_CALLS = {
    # The lesion holds viable tumour: the positive class ("any viable tumour cells -> tumor").
    "tumor": codes.SCT.RecurrentTumor,
    # Treatment effect; SNOMED's concept is necrosis (radiation is the cause, not the finding).
    "necrosis": codes.SCT.Necrosis,
    "indeterminate": codes.SCT.Indeterminate,
}
_PROBABILITY_UNIT = hd.sr.CodedConcept("{probability}", "UCUM", "probability")


def check_dicom_out(case: CaseInputs, out_dir: Path | None = None) -> None:
    """Refuse a `--dicom-out` request that cannot be met, before the (slow) scoring: the t1c
    must be a DICOM series (its headers are read here, not its pixels), and `out_dir`, when
    given, a new folder or one holding only an earlier run's results."""
    t1c = case.images.get("t1c")
    if not t1c or not Path(t1c).is_dir():
        raise InputError(_NOT_A_SERIES)
    series_datasets(Path(t1c), case.series.get("t1c"), column=_SERIES_FLAG)
    if out_dir is not None:
        _check_out_dir(Path(out_dir))


def write_dicom_results(result: dict[str, Any], case: CaseInputs, out_dir: Path) -> list[Path]:
    """Write the SEG of the scored lesion and the SR of `result` (what `score_case` returned
    for `case`) into `out_dir`, atomically; returns the two paths."""
    check_dicom_out(case, out_dir)
    out_dir = Path(out_dir)
    sources, mask = _sources_and_mask(case)
    with quiet_dicom_libraries():  # their logs quote UIDs
        seg = _segmentation(sources, mask)
        sr = _report(result, sources, seg)
        with atomic_directory(out_dir, overwrite=out_dir.exists()) as tmp:
            seg.save_as(tmp / SEG_NAME, enforce_file_format=True)
            sr.save_as(tmp / SR_NAME, enforce_file_format=True)
            for name in (SEG_NAME, SR_NAME):
                with (tmp / name).open("rb") as handle:
                    os.fsync(handle.fileno())
    return [out_dir / SEG_NAME, out_dir / SR_NAME]


def _check_out_dir(out_dir: Path) -> None:
    """A new folder, or one holding only this writer's files (replaced as a whole)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: --dicom-out must be a folder, and this is a file")
    others = [p.name for p in out_dir.iterdir() if p.name not in (SEG_NAME, SR_NAME)]
    if others:
        raise InputError(
            f"{out_dir}: --dicom-out holds {len(others)} other file(s); give a new folder or "
            f"one holding only {SEG_NAME} and {SR_NAME} of an earlier run"
        )


def _sources_and_mask(case: CaseInputs) -> tuple[list[Dataset], sitk.Image]:
    """The reduced source headers in slice order, and the scored mask on their grid.

    The mask is read by the extraction's own reader from the validated case, so it is the
    mask that was scored, on the t1c grid, voxel for voxel.
    """
    row = case_cohort(case).lesions.iloc[0]
    t1c = Path(row["t1c"])
    selector = case.series.get("t1c")
    scan = ScanInputs(
        images={"t1c": str(t1c)},
        mask=str(row["mask"]),
        mask_label=case.mask_label,
        roi_name=case.roi_name,
        series={"t1c": selector} if selector else {},
    )
    _, mask_image = read_scan_mask(scan)
    mask = sitk.GetArrayFromImage(mask_image).astype(bool)
    headers = series_datasets(t1c, selector, column=_SERIES_FLAG)
    frames = (
        int(headers[0].get("NumberOfFrames", 1) or 1)
        if str(headers[0].SOPClassUID) in ENHANCED_MR_STORAGE
        else len(headers)
    )
    rows, columns = int(headers[0].Rows), int(headers[0].Columns)
    if mask.shape != (frames, rows, columns):
        raise InputError(
            f"{case.mask}: the mask ({mask.shape[0]} x {mask.shape[1]} x {mask.shape[2]}) is "
            f"not on the t1c series' grid ({frames} x {rows} x {columns} slices, rows, columns)"
        )
    if not mask.any():
        raise InputError(f"{case.mask}: the lesion mask is empty")
    return [_derivation_source(h) for h in headers], mask_image


def _derivation_source(header: Dataset) -> Dataset:
    """A copy of a source header with only what a derived object may take from it: the
    attaching patient and study attributes and the image's geometry and UIDs."""
    reduced = Dataset()
    for keyword in (*ATTACHING_ATTRIBUTES, *_GEOMETRY_ATTRIBUTES):
        if keyword in header:
            reduced[keyword] = header[keyword]
        elif keyword in ATTACHING_ATTRIBUTES:  # type 2 in DICOM: present, may be empty
            setattr(reduced, keyword, "")
    return reduced


def _segmentation(sources: list[Dataset], mask_image: sitk.Image) -> hd.seg.Segmentation:
    """The scored mask as a BINARY SEG with one segment, 'lesion', on the source slices."""
    mask = sitk.GetArrayFromImage(mask_image).astype(np.uint8)  # (slice, row, column)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="rnclassifier",
        # The delineation is the user's (drawn, or made by a tool of their choice); what
        # rnclassifier did is place it on the source slices (rasterise an RTSTRUCT, read a
        # SEG or label image) without changing it. CID 7162 has no family for that; the
        # delineation's own is "manual processing" as far as this tool can know.
        family=codes.cid7162.ManualProcessing,
        version=__version__,
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        # A lesion, not a neoplasm: whether it is tumour or necrosis is what the SR says.
        segmented_property_type=codes.SCT.Lesion,
        # DICOM allows MANUAL, SEMIAUTOMATIC or AUTOMATIC. AUTOMATIC would claim the tool
        # found the lesion, and MANUAL that a person drew this object (no software named);
        # SEMIAUTOMATIC ("calculated with user assistance") is the honest one: software
        # wrote these pixels from a delineation the user supplied.
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=algorithm,
        anatomic_regions=[codes.SCT.Brain],
    )
    description.SegmentDescription = "lesion mask as given to rnclassifier and scored"
    enhanced = str(sources[0].SOPClassUID) in ENHANCED_MR_STORAGE
    return hd.seg.Segmentation(
        source_images=sources,
        # Single-frame slices: frame i is source slice i (both in slice order). An enhanced
        # object's frames may be stored in any order: highdicom places the volume by position.
        pixel_array=_volume(mask, mask_image, sources[0]) if enhanced else mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=_SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="rnclassifier",
        manufacturer_model_name="rnclassifier",
        software_versions=__version__,
        device_serial_number="0",
        series_description=SERIES_DESCRIPTION,
        content_description="Lesion mask scored by rnclassifier",
        content_label="LESION",
    )


#: Series numbers of the new series: high, so that viewers list them after the acquisitions.
_SEG_SERIES_NUMBER = 9901
_SR_SERIES_NUMBER = 9902


def _volume(mask: np.ndarray, mask_image: sitk.Image, enhanced: Dataset) -> hd.Volume:
    """The mask with its own (the t1c's) geometry, for highdicom to match to the frames."""
    direction = np.array(mask_image.GetDirection(), dtype=float).reshape(3, 3)
    affine = np.eye(4)
    # Array axes (slice, row, column) are the image's k, j, i axes.
    affine[:3, :3] = (direction * np.array(mask_image.GetSpacing(), dtype=float))[:, ::-1]
    affine[:3, 3] = mask_image.GetOrigin()
    return hd.Volume(
        mask,
        affine,
        coordinate_system="PATIENT",
        frame_of_reference_uid=str(enhanced.FrameOfReferenceUID),
    )


def _report(
    result: dict[str, Any], sources: list[Dataset], seg: hd.seg.Segmentation
) -> hd.sr.Comprehensive3DSR:
    """The result as a TID 1500 measurement report about the SEG's segment."""
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device,
                observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                    uid=_DEVICE_UID,
                    name="rnclassifier",
                    manufacturer_name="rnclassifier",
                    model_name=str(result["model"]["name"])[:64],
                ),
            )
        ),
        procedure_reported=codes.cid100.ImagingProcedure,
        imaging_measurements=[_lesion_group(result, sources, seg)],
        title=codes.DCM.ImagingMeasurementReport,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[*sources, seg],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=_SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="rnclassifier",
        # Complete, but neither final nor verified: no person has signed this result.
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=SERIES_DESCRIPTION,
    )


def _lesion_group(
    result: dict[str, Any], sources: list[Dataset], seg: hd.seg.Segmentation
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """The lesion's measurement group (TID 1411): probability, threshold, call and notice,
    about segment 1 of the SEG on the source series."""
    model = result["model"]
    algorithm = hd.sr.AlgorithmIdentification(
        name="rnclassifier",
        version=__version__,
        parameters=[
            f"model: {model['name']}",
            f"bundle manifest SHA-256: {model['manifest_sha256']}",
        ],
    )
    probability = hd.sr.Measurement(
        # DCM 111047 "Probability of cancer": of viable tumour in the lesion, i.e. progression
        # rather than radiation necrosis; calibrated at the training prevalence.
        name=codes.DCM.ProbabilityOfCancer,
        value=round(float(result["probability"]), DECIMALS),
        unit=_PROBABILITY_UNIT,
        algorithm_id=algorithm,
    )
    threshold = hd.sr.Measurement(
        name=codes.DCM.ThresholdValue,
        value=round(float(result["threshold"]["value"]), DECIMALS),
        unit=_PROBABILITY_UNIT,
        algorithm_id=algorithm,
    )
    # The question answered is tumour vs necrosis: a differential diagnosis (DCM "Finding" is
    # taken, by the group's finding type).
    call = hd.sr.QualitativeEvaluation(
        name=codes.DCM.DifferentialDiagnosisImpression, value=_CALLS[result["call"]]
    )
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="lesion"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=1,
            source_series=hd.sr.SourceSeriesForSegmentation(str(sources[0].SeriesInstanceUID)),
        ),
        finding_type=codes.SCT.Lesion,
        finding_sites=[hd.sr.FindingSite(codes.SCT.Brain)],
        measurements=[probability, threshold],
        qualitative_evaluations=[call],
    )
    # TID 1411 is extensible: the notice travels with the numbers it qualifies.
    group[0].ContentSequence.append(
        hd.sr.TextContentItem(
            name=codes.DCM.Comment,
            value=_notice(result),
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
    )
    return group


#: One device, one UID: the same for every result this tool writes (a 2.25 UUID-derived UID).
_DEVICE_UID = generate_uid(prefix=None, entropy_srcs=["rnclassifier device observer"])


def _notice(result: dict[str, Any]) -> str:
    """The intended use and how to read the numbers, as the JSON result states them."""
    zone = result["indeterminate_zone"]
    lines = [
        str(result["intended_use"]),
        f"Call: {result['call']}, at the threshold {result['threshold']['value']:.{DECIMALS}f} "
        f"fixed in training (necrosis below {zone['low']:.{DECIMALS}f}, tumour at or above "
        f"{zone['high']:.{DECIMALS}f}, indeterminate between).",
        f"Model {result['model']['name']}, bundle manifest SHA-256 "
        f"{result['model']['manifest_sha256']}; rnclassifier {__version__}.",
    ]
    if result["model"].get("synthetic"):
        lines.append("The model was trained on SYNTHETIC data: not clinical evidence.")
    shifted = result.get("probability_at_prevalence")
    if shifted:
        lines.append(
            f"At a tumour prevalence of {shifted['prevalence']:.0%} (flagged): probability "
            f"{shifted['probability']:.{DECIMALS}f}, threshold "
            f"{shifted['threshold']:.{DECIMALS}f}."
        )
    flags = result["out_of_distribution"]
    if flags["out_of_distribution"]:
        lines.append("OUT OF DISTRIBUTION: " + "; ".join(map(str, flags["reasons"])))
    if str(result["notice"]) not in lines[0]:
        lines.append(str(result["notice"]))
    return "\n".join(lines)
