"""Write synthetic DICOM test data: an MR series, an RTSTRUCT with analytic contours, a SEG.

The geometry is given in physical space (a `Grid`), and contours are computed from exact shapes
in patient coordinates, never from a voxel grid: so a reader that gets the voxel-to-patient
mapping wrong by half a voxel cannot agree with this writer by sharing the mistake.

Every identifier is obviously fake (`FAKE_PATIENT_NAME`, …): tests look for these strings in
error messages to prove that no header value leaks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RTStructureSetStorage
from pydicom.valuerep import format_number_as_ds

FAKE_PATIENT_NAME = "FAKE^SENTINELNAME"
FAKE_PATIENT_ID = "FAKEPID0000"
FAKE_ACCESSION = "FAKEACC0000"


def fake_uid(*parts: object) -> str:
    """A valid, deterministic UID made from `parts`: same parts, same UID in every run."""
    return str(pydicom.uid.generate_uid(entropy_srcs=["rnclassifier-test", *map(str, parts)]))


@dataclass(frozen=True)
class Grid:
    """Image geometry in ITK's convention: index (i, j, k) → origin + direction · (spacing · index).

    `direction` columns are the unit vectors of the i (along a row), j (down a column) and k
    (slice normal) axes; `origin` is the centre of the first voxel.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray

    def to_physical(self, index: np.ndarray) -> np.ndarray:
        """Continuous indices (…, 3) as patient coordinates (mm)."""
        scaled = self.direction * np.asarray(self.spacing)
        return np.asarray(self.origin) + np.asarray(index, dtype=float) @ scaled.T

    def to_index(self, point: np.ndarray) -> np.ndarray:
        """Patient coordinates (…, 3) as continuous indices."""
        scaled = self.direction * np.asarray(self.spacing)
        return (np.asarray(point, dtype=float) - np.asarray(self.origin)) @ np.linalg.inv(scaled).T

    def slice_position(self, k: float) -> np.ndarray:
        return self.to_physical(np.array([0.0, 0.0, k]))


def grid_of(image: sitk.Image) -> Grid:
    """The grid of an image, to write it as a DICOM series slice for slice."""
    return Grid(
        image.GetSize(),
        image.GetSpacing(),
        image.GetOrigin(),
        np.array(image.GetDirection()).reshape(3, 3),
    )


def rotation(axis: Sequence[float], degrees: float) -> np.ndarray:
    """Rotation matrix about `axis` (Rodrigues' formula)."""
    u = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    theta = np.deg2rad(degrees)
    cross = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return np.cos(theta) * np.eye(3) + np.sin(theta) * cross + (1 - np.cos(theta)) * np.outer(u, u)


def oblique_grid(
    size: tuple[int, int, int] = (64, 56, 24),
    spacing: tuple[float, float, float] = (0.8, 0.9, 2.5),
    origin: tuple[float, float, float] = (-21.3, -30.7, -18.9),
    degrees: float = 20.0,
    axis: Sequence[float] = (1.0, 2.0, 3.0),
) -> Grid:
    """An oblique, anisotropic grid: 20° about a tilted axis, 0.8 x 0.9 x 2.5 mm.

    The two in-plane spacings differ so that swapping DICOM's (row, column) order shows.
    """
    return Grid(size, spacing, origin, rotation(axis, degrees))


def sitk_image(volume: np.ndarray, grid: Grid) -> sitk.Image:
    """`volume` (z, y, x as SimpleITK arrays are) with the geometry of `grid`."""
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(tuple(grid.direction.flatten()))
    return image


def ds_values(values: Sequence[float] | np.ndarray) -> list[str]:
    """Numbers as DICOM decimal strings (at most 16 characters, as precise as that allows)."""
    return [format_number_as_ds(float(v)) for v in np.ravel(values)]


@dataclass(frozen=True)
class WrittenSeries:
    folder: Path
    files: list[Path]
    grid: Grid
    study_uid: str
    series_uid: str
    frame_uid: str
    sop_uids: list[str]

    def datasets(self) -> list[Dataset]:
        return [pydicom.dcmread(f) for f in self.files]

    def identifiers(self) -> list[str]:
        """Every header value a message must never show."""
        return [
            FAKE_PATIENT_NAME,
            FAKE_PATIENT_NAME.replace("^", " "),
            "SENTINELNAME",
            FAKE_PATIENT_ID,
            FAKE_ACCESSION,
            self.study_uid,
            self.series_uid,
            self.frame_uid,
            *self.sop_uids,
        ]


def _patient_and_study(ds: Dataset, study_uid: str) -> None:
    ds.PatientName = FAKE_PATIENT_NAME
    ds.PatientID = FAKE_PATIENT_ID
    ds.PatientBirthDate = "19000101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "19000102"
    ds.StudyTime = "120000"
    ds.StudyID = "FAKESTUDY"
    ds.AccessionNumber = FAKE_ACCESSION
    ds.ReferringPhysicianName = "FAKE^DOCTOR"


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def write_mr_series(
    folder: Path,
    volume: np.ndarray,
    grid: Grid,
    *,
    tag: str = "t1c",
    series_uid: str | None = None,
    frame_uid: str | None = None,
    study_uid: str | None = None,
) -> WrittenSeries:
    """Write `volume` (int16, z, y, x) as one MR series of single-frame files in `folder`.

    File names run against the slice order, so a reader that sorts by name instead of by
    position gets the volume upside down.
    """
    assert volume.shape == grid.size[::-1], (volume.shape, grid.size)
    assert volume.dtype == np.int16
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or fake_uid("study")
    series_uid = series_uid or fake_uid("series", tag)
    frame_uid = frame_uid or fake_uid("frame")
    row, col = grid.direction[:, 0], grid.direction[:, 1]
    n = len(volume)
    files, sops = [], []
    for k in range(n):
        sop = fake_uid("sop", tag, series_uid, k)
        ds = Dataset()
        ds.file_meta = _file_meta(MRImageStorage, sop)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop
        _patient_and_study(ds, study_uid)
        ds.Modality = "MR"
        ds.Manufacturer = "FAKE"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.EchoTime = "10"
        ds.RepetitionTime = "500"
        ds.ImagePositionPatient = ds_values(grid.slice_position(k))
        ds.ImageOrientationPatient = ds_values(np.concatenate([row, col]))
        # DICOM PixelSpacing is (between rows, between columns) = (y, x).
        ds.PixelSpacing = ds_values([grid.spacing[1], grid.spacing[0]])
        ds.SliceThickness = format_number_as_ds(float(grid.spacing[2]))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.PixelData = np.ascontiguousarray(volume[k]).tobytes()
        path = folder / f"IM{n - k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
        sops.append(sop)
    return WrittenSeries(folder, files, grid, study_uid, series_uid, frame_uid, sops)


def load_written_series(folder: Path, grid: Grid) -> WrittenSeries:
    """A series written by `write_mr_series`, described again from its files (slice order)."""
    files = sorted(folder.glob("IM*.dcm"), reverse=True)  # names run against the slice order
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    first = headers[0]
    return WrittenSeries(
        folder, files, grid, str(first.StudyInstanceUID), str(first.SeriesInstanceUID),
        str(first.FrameOfReferenceUID), [str(h.SOPInstanceUID) for h in headers],
    )  # fmt: skip


def edit_dicom(path: Path, **attributes: object) -> None:
    """Change header attributes of one file in place (to make broken series)."""
    ds = pydicom.dcmread(path)
    for name, value in attributes.items():
        setattr(ds, name, value)
    ds.save_as(path, enforce_file_format=True)


def circle_contour(
    grid: Grid, k: float, centre: Sequence[float], radius: float, n_points: int = 720
) -> np.ndarray:
    """A circle of `radius` (mm) in the plane of slice `k`, around `centre` projected onto it."""
    row, col, normal = grid.direction.T
    plane_point = grid.slice_position(k)
    centre = np.asarray(centre, dtype=float)
    foot = centre - np.dot(centre - plane_point, normal) * normal
    t = np.linspace(0.0, 2 * np.pi, n_points, endpoint=False)
    return foot + radius * (np.outer(np.cos(t), row) + np.outer(np.sin(t), col))


def sphere_contours(
    grid: Grid, centre: Sequence[float], radius: float, n_points: int = 720
) -> list[tuple[int, np.ndarray]]:
    """The exact cross-sections of a sphere with every slice plane it cuts, as (slice, points)."""
    normal = grid.direction[:, 2]
    contours = []
    for k in range(grid.size[2]):
        distance = float(np.dot(np.asarray(centre) - grid.slice_position(k), normal))
        if abs(distance) < radius:
            r = np.sqrt(radius**2 - distance**2)
            contours.append((k, circle_contour(grid, k, centre, r, n_points)))
    return contours


def sphere_mask(grid: Grid, centre: Sequence[float], radius: float) -> np.ndarray:
    """Voxels (z, y, x) whose centres lie inside the sphere."""
    k, j, i = np.indices(grid.size[::-1])
    points = grid.to_physical(np.stack([i, j, k], axis=-1))
    return (np.linalg.norm(points - np.asarray(centre), axis=-1) < radius).astype(np.uint8)


def write_rtstruct(
    path: Path,
    series: WrittenSeries,
    rois: Mapping[str, Sequence[tuple[int, np.ndarray]]],
    *,
    referenced_series_uid: str | None = None,
    frame_uid: str | None = None,
) -> Path:
    """An RTSTRUCT with one ROI per entry of `rois`: name → [(slice, points (n, 3) in mm)].

    `referenced_series_uid` and `frame_uid` override the references, to make an RTSTRUCT that
    belongs to another series or frame of reference.
    """
    frame_uid = frame_uid or series.frame_uid
    referenced_series_uid = referenced_series_uid or series.series_uid
    sop = fake_uid("rtstruct", path.name)
    ds = Dataset()
    ds.file_meta = _file_meta(RTStructureSetStorage, sop)
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = sop
    _patient_and_study(ds, series.study_uid)
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = "FAKE"
    ds.SeriesInstanceUID = fake_uid("rtstruct-series", path.name)
    ds.SeriesNumber = 99
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "FAKE"
    ds.StructureSetDate = "19000102"
    ds.StructureSetTime = "120000"

    def image_ref(sop_uid: str) -> Dataset:
        ref = Dataset()
        ref.ReferencedSOPClassUID = MRImageStorage
        ref.ReferencedSOPInstanceUID = sop_uid
        return ref

    referenced_series = Dataset()
    referenced_series.SeriesInstanceUID = referenced_series_uid
    referenced_series.ContourImageSequence = [image_ref(u) for u in series.sop_uids]
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = series.study_uid
    study.RTReferencedSeriesSequence = [referenced_series]
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]

    ds.StructureSetROISequence = []
    ds.ROIContourSequence = []
    ds.RTROIObservationsSequence = []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        ds.StructureSetROISequence.append(roi)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = [255, 0, 0]
        roi_contour.ContourSequence = []
        for k, points in contours:
            contour = Dataset()
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = ds_values(points)
            if 0 <= k < len(series.sop_uids):
                contour.ContourImageSequence = [image_ref(series.sop_uids[k])]
            roi_contour.ContourSequence.append(contour)
        ds.ROIContourSequence.append(roi_contour)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "GTV"
        observation.ROIInterpreter = ""
        ds.RTROIObservationsSequence.append(observation)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_seg(path: Path, series: WrittenSeries, segments: Mapping[str, np.ndarray]) -> Path:
    """A binary DICOM SEG (highdicom) with one segment per entry: label → mask (z, y, x)."""
    masks = np.stack([np.asarray(m, dtype=bool) for m in segments.values()], axis=-1)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number, label in enumerate(segments, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=series.datasets(),
        pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=fake_uid("seg-series", path.name),
        series_number=98,
        sop_instance_uid=fake_uid("seg", path.name),
        instance_number=1,
        manufacturer="FAKE",
        manufacturer_model_name="FAKE",
        software_versions="0",
        device_serial_number="FAKE0",
    )
    seg.save_as(path)
    return path


@dataclass
class SphereStudy:
    """A clinic's lesion: an MR series with a bright sphere, its RTSTRUCT and its SEG."""

    volume: np.ndarray  # (z, y, x) int16
    inside: np.ndarray  # (z, y, x) bool: voxel centres within the sphere
    series: WrittenSeries
    rtstruct: Path
    seg: Path


def write_sphere_study(
    folder: Path,
    grid: Grid,
    centre: np.ndarray,
    radius: float,
    rois: Mapping[str, float] | None = None,
    seed: int = 2,
) -> SphereStudy:
    """`folder`/t1c_series, rtstruct.dcm (`rois`: ROI name → sphere radius; default GTV only)
    and seg.dcm (one segment, "lesion")."""
    rng = np.random.default_rng(seed)
    inside = sphere_mask(grid, centre, radius)
    volume = (rng.normal(400, 40, grid.size[::-1]) + 600.0 * inside).astype(np.int16)
    series = write_mr_series(folder / "t1c_series", volume, grid)
    rois = rois or {"GTV": radius}
    contours = {name: sphere_contours(grid, centre, r) for name, r in rois.items()}
    rtstruct = write_rtstruct(folder / "rtstruct.dcm", series, contours)
    seg = write_seg(folder / "seg.dcm", series, {"lesion": inside.astype(np.uint8)})
    return SphereStudy(volume, inside, series, rtstruct, seg)
