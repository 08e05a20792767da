"""The bad-input corpus: every fault a clinic's data or a user's command line can carry, through the
real command line, each giving a clear `error:` line that names what and where, exit status 2,
no traceback, and no output file (complete or partial) left behind.

Each fault is built by a fixture from a small valid study (a SYNTHETIC cohort, a DICOM series with
its RTSTRUCT and SEG, a trained bundle), so nothing large is committed. The list of faults is the
`FAULTS` table; `issues` notes quote it.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "imaging"))

from dicom_factory import fake_uid, oblique_grid, write_mr_series, write_sphere_study

from rnclassifier.bundle import MANIFEST_FILE, load_bundle
from rnclassifier.cli import main
from rnclassifier.cohort import CLINICAL_COLUMNS as CLINICAL
from rnclassifier.config import LIGHT_EXTRACTION_CONFIG
from rnclassifier.scoring import bundle_requirements
from rnclassifier.synthetic import write_synthetic_cohort

GRID = oblique_grid()
CENTRE = GRID.to_physical(np.array([31.37, 27.81, 11.42]))
RADIUS = 10.0
PLAIN_PARAMS = {
    "setting": {"binWidth": 25, "label": 1},
    "imageType": {"Original": {}},
    "featureClass": {"shape": None, "firstorder": None},
}


@dataclasses.dataclass
class Study:
    """A small valid study to break: a SYNTHETIC cohort, a DICOM series, a trained bundle."""

    cohort: Path  # folder holding cohort.csv and its images
    dicom: Path  # folder holding t1c_series/, other_series/, rtstruct.dcm, seg.dcm, ...
    bundle: Path = Path()
    score_case: list[str] = dataclasses.field(default_factory=list)  # flags for one good lesion
    covariate: str = ""  # a clinical covariate the bundle's model uses
    tmp: Path = Path()  # this fault's own folder

    def manifest(self) -> pd.DataFrame:
        """The cohort's manifest with absolute paths, as strings."""
        frame = pd.read_csv(self.cohort / "cohort.csv", dtype=str, keep_default_na=False)
        for column in frame.columns:
            frame[column] = [
                str(self.cohort / v) if v and (self.cohort / v).is_file() else v
                for v in frame[column]
            ]
        return frame

    def write(self, frame: pd.DataFrame, **kwargs) -> Path:
        path = self.tmp / "cohort.csv"
        frame.to_csv(path, index=False, **kwargs)
        return path

    def extract(self, manifest: Path, params: Path | None = None) -> Call:
        params = params or self.cohort / "corpus.yaml"
        out = self.tmp / "out" / "features.parquet"
        return Call(
            ["extract", "--cohort", str(manifest), "--params", str(params), "--out", str(out),
             "--no-cache"],
            outputs=[out, out.with_name(out.name + ".json")],
        )  # fmt: skip

    def with_image(self, column: str, image: sitk.Image | bytes, name: str, row: int = 0) -> Path:
        """The manifest with `column` of `row` pointing at a new file."""
        path = self.tmp / name
        if isinstance(image, bytes):
            path.write_bytes(image)
        else:
            sitk.WriteImage(image, str(path))
        frame = self.manifest()
        frame.loc[row, column] = str(path)
        return self.write(frame)

    def image(self, column: str, row: int = 0) -> sitk.Image:
        return sitk.ReadImage(self.manifest().loc[row, column])

    def dicom_manifest(self, **row: str) -> Path:
        fields = {"patient_id": "P1", "lesion_id": "L1", **row}
        frame = pd.DataFrame([fields])
        for column in ("t1c", "mask"):
            frame[column] = str(self.dicom / frame.loc[0, column])
        return self.write(frame)

    def plain_params(self) -> Path:
        return self.dicom / "params.yaml"

    def config(self, change: Callable[[dict], None]) -> Path:
        document = yaml.safe_load(LIGHT_EXTRACTION_CONFIG.read_text())
        change(document)
        path = self.tmp / "config.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    def bundle_copy(self, change: Callable[[Path], None], rehash: bool = False) -> Path:
        copy = self.tmp / "bundle"
        shutil.copytree(self.bundle, copy)
        change(copy)
        if rehash:
            _rehash(copy)
        return copy

    def score(self, *flags: str, model: Path | None = None, case: list[str] | None = None) -> Call:
        out, report = self.tmp / "out" / "result.json", self.tmp / "out" / "case.html"
        argv = ["score", "--model", str(model or self.bundle), *(self.score_case if case is None
                else case), *flags, "--out", str(out), "--report", str(report)]  # fmt: skip
        return Call(argv, outputs=[out, report])


@dataclasses.dataclass
class Call:
    argv: list[str]
    outputs: list[Path] = dataclasses.field(default_factory=list)


def _rehash(folder: Path) -> None:
    """Rewrite a bundle's hash manifest so that a deliberate change passes the hash check and
    reaches the check behind it."""
    import hashlib

    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    ]
    (folder / MANIFEST_FILE).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    base = tmp_path_factory.mktemp("corpus")
    write_synthetic_cohort(base / "cohort", n_lesions=3, seed=5, jobs=1)
    # The light profile cut down to what the faults need (T1c lesion, no prior scan), for speed.
    light = yaml.safe_load(LIGHT_EXTRACTION_CONFIG.read_text())
    light["pyradiomics"]["featureClass"] = {"shape": None, "firstorder": None}
    light["rnclassifier"].update(sequences=["t1c"], regions=["lesion"], delta=False)
    (base / "cohort" / "corpus.yaml").write_text(yaml.safe_dump(light))
    dicom = base / "dicom"
    made = write_sphere_study(dicom, GRID, CENTRE, RADIUS)
    # Another series in another frame of reference: a mask of the T1c series cannot be placed.
    write_mr_series(
        dicom / "other_series", made.volume, GRID, tag="other", frame_uid=fake_uid("other frame")
    )
    (dicom / "params.yaml").write_text(yaml.safe_dump(PLAIN_PARAMS))
    return Study(base / "cohort", dicom)


def with_bundle(study: Study, trained: dict) -> Study:
    """The study with the session's trained bundle and one of its lesions' score flags."""
    row = trained["manifest"].iloc[0]
    folder = trained["folder"] / "cohort"
    case = ["--t1c", str(folder / row["t1c"]), "--flair", str(folder / row["flair"]),
            "--mask", str(folder / row["mask"]), "--brain-mask", str(folder / row["brain_mask"]),
            "--site", row["site"]]  # fmt: skip
    for key in CLINICAL:
        if isinstance(row[key], str) and row[key]:
            case += ["--clinical", f"{key}={row[key]}"]
    needs = bundle_requirements(load_bundle(trained["bundle"])).covariates
    return dataclasses.replace(
        study, bundle=trained["bundle"], score_case=case, covariate=sorted(needs)[0]
    )


def _without(case: list[str], key: str) -> list[str]:
    """The score flags without `--clinical key=...`."""
    out: list[str] = []
    skip = False
    for i, item in enumerate(case):
        if skip:
            skip = False
            continue
        if item == "--clinical" and case[i + 1].startswith(f"{key}="):
            skip = True
            continue
        out.append(item)
    return out


def _replace(case: list[str], flag: str, value: str) -> list[str]:
    out = list(case)
    out[out.index(flag) + 1] = value
    return out


# --- the faults: (name, what is broken, expected words in the error) -----------------------------


def manifest_duplicate_lesion_ids(s: Study) -> Call:
    frame = s.manifest()
    frame.loc[1, "lesion_id"] = frame.loc[0, "lesion_id"]
    return s.extract(s.write(frame))


def manifest_missing_column(s: Study) -> Call:
    return s.extract(s.write(s.manifest().drop(columns=["mask"])))


def manifest_pathology_typo(s: Study) -> Call:
    frame = s.manifest()
    frame.loc[2, "pathology"] = "tumr"
    return s.extract(s.write(frame))


def manifest_missing_image(s: Study) -> Call:
    frame = s.manifest()
    frame.loc[1, "t1c"] = str(s.tmp / "nowhere" / "t1c.nii.gz")
    return s.extract(s.write(frame))


def manifest_semicolons(s: Study) -> Call:
    return s.extract(s.write(s.manifest(), sep=";"))


def manifest_words_for_numbers(s: Study) -> Call:
    frame = s.manifest()
    frame.loc[0, "srs_dose_gy"] = "twenty"
    return s.extract(s.write(frame))


def manifest_negative_interval(s: Study) -> Call:
    frame = s.manifest()
    frame.loc[0, "months_since_srs"] = "-3"
    return s.extract(s.write(frame))


def manifest_empty_file(s: Study) -> Call:
    path = s.tmp / "cohort.csv"
    path.write_text("")
    return s.extract(path)


def manifest_not_utf8(s: Study) -> Call:
    path = s.write(s.manifest())
    path.write_bytes(path.read_bytes().replace(b"lesion_id", "lésion_id".encode("latin-1")))
    return s.extract(path)


def image_corrupt(s: Study) -> Call:
    return s.extract(s.with_image("t1c", np.random.default_rng(0).bytes(5000), "t1c.nii.gz"))


def image_truncated(s: Study) -> Call:
    whole = gzip.decompress(Path(s.manifest().loc[0, "t1c"]).read_bytes())
    return s.extract(s.with_image("t1c", gzip.compress(whole[: len(whole) // 2]), "t1c.nii.gz"))


def image_cut_short(s: Study) -> Call:
    whole = Path(s.manifest().loc[0, "t1c"]).read_bytes()
    return s.extract(s.with_image("t1c", whole[: len(whole) * 2 // 3], "t1c.nii.gz"))


def image_2d(s: Study) -> Call:
    image = s.image("t1c")
    return s.extract(s.with_image("t1c", image[:, :, image.GetSize()[2] // 2], "t1c.nii.gz"))


def image_nan_voxels(s: Study) -> Call:
    image = s.image("t1c")
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    values[values.shape[0] // 2, :4, :4] = np.nan
    broken = sitk.GetImageFromArray(values)
    broken.CopyInformation(image)
    return s.extract(s.with_image("t1c", broken, "t1c.nii.gz"))


def image_several_channels(s: Study) -> Call:
    image = s.image("t1c")
    return s.extract(s.with_image("t1c", sitk.Compose(image, image), "t1c.nii.gz"))


def mask_on_another_grid(s: Study) -> Call:
    mask = s.image("mask")
    # 7.3 mm: off the image's voxel lattice (a whole number of voxels would be pasted).
    mask.SetOrigin(tuple(o + 7.3 for o in mask.GetOrigin()))
    return s.extract(s.with_image("mask", mask, "mask.nii.gz"))


def mask_labelled_outside_the_image(s: Study) -> Call:
    padded = sitk.ConstantPad(s.image("mask"), [2, 0, 0], [0, 0, 0], 0)
    padded[0, 3, 3] = 1  # in the padding, beyond the image
    return s.extract(s.with_image("mask", padded, "mask.nii.gz"))


def lesion_features_missing(s: Study) -> Call:
    mask = s.image("mask", row=1) * 0
    centre = [v // 2 for v in mask.GetSize()]
    mask[centre] = 1  # one voxel: pyradiomics skips the region (minimumROISize)
    return s.extract(s.with_image("mask", mask, "mask.nii.gz", row=1))


def slicer_segment_unknown(s: Study) -> Call:
    import slicerio

    mask = s.image("mask")
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.reshape(mask.GetDirection(), (3, 3)) * mask.GetSpacing()
    ijk_to_lps[:3, 3] = mask.GetOrigin()
    voxels = np.transpose(sitk.GetArrayFromImage(mask) > 0, (2, 1, 0))
    segmentation = slicerio.create_segmentation(voxels.shape, ijk_to_lps)
    slicerio.add_segment(segmentation, voxels, {"name": "GTV"})
    slicerio.write_segmentation(str(s.tmp / "lesion.seg.nrrd"), segmentation)
    frame = s.manifest()
    frame.loc[0, "mask"] = str(s.tmp / "lesion.seg.nrrd")
    frame["roi_name"] = ["PTV", "", ""]
    return s.extract(s.write(frame))


def mask_empty(s: Study) -> Call:
    return s.extract(s.with_image("mask", s.image("mask") * 0, "mask.nii.gz"))


def mask_several_labels(s: Study) -> Call:
    mask = s.image("mask")
    ring = sitk.Cast(sitk.BinaryDilate(mask, [2, 2, 2]) - mask, mask.GetPixelID())
    return s.extract(s.with_image("mask", mask + ring * 2, "mask.nii.gz"))


def mask_label_absent(s: Study) -> Call:
    frame = s.manifest()
    frame["mask_label"] = ["7", "", ""]
    return s.extract(s.write(frame))


def mask_fractional(s: Study) -> Call:
    mask = sitk.Cast(s.image("mask"), sitk.sitkFloat32) * 0.5
    return s.extract(s.with_image("mask", mask, "mask.nii.gz"))


def brain_mask_on_another_grid(s: Study) -> Call:
    mask = s.image("brain_mask")
    mask.SetSpacing(tuple(v * 1.5 for v in mask.GetSpacing()))
    return s.extract(s.with_image("brain_mask", mask, "brain.nii.gz"))


def dicom_missing_slice(s: Study) -> Call:
    series = s.tmp / "series"
    shutil.copytree(s.dicom / "t1c_series", series)
    sorted(series.iterdir())[10].unlink()
    return s.extract(s.dicom_manifest(t1c=str(series), mask="seg.dcm"), s.plain_params())


def dicom_two_series_mixed(s: Study) -> Call:
    series = s.tmp / "series"
    shutil.copytree(s.dicom / "t1c_series", series)
    shutil.copy(sorted((s.dicom / "other_series").iterdir())[3], series / "stray.dcm")
    return s.extract(s.dicom_manifest(t1c=str(series), mask="seg.dcm"), s.plain_params())


def dicom_series_selector_matches_nothing(s: Study) -> Call:
    manifest = s.dicom_manifest(t1c="t1c_series", mask="seg.dcm", t1c_series="SAG T2")
    return s.extract(manifest, s.plain_params())


def rtstruct_contour_outside_the_volume(s: Study) -> Call:
    from dicom_factory import circle_contour, load_written_series, write_rtstruct

    beyond = GRID.to_physical(np.array([GRID.size[0] + 4.0, 20.0, 8.0]))
    path = write_rtstruct(
        s.tmp / "rtstruct.dcm",
        load_written_series(s.dicom / "t1c_series", GRID),
        {"GTV": [(8, circle_contour(GRID, 8, beyond, 6.0))]},
    )
    manifest = s.dicom_manifest(t1c="t1c_series", mask=str(path), roi_name="GTV")
    return s.extract(manifest, s.plain_params())


def rtstruct_contour_between_slices(s: Study) -> Call:
    from dicom_factory import circle_contour, load_written_series, write_rtstruct

    path = write_rtstruct(
        s.tmp / "rtstruct.dcm",
        load_written_series(s.dicom / "t1c_series", GRID),
        {"GTV": [(-1, circle_contour(GRID, 7.5, CENTRE, 6.0))]},  # half a slice off
    )
    manifest = s.dicom_manifest(t1c="t1c_series", mask=str(path), roi_name="GTV")
    return s.extract(manifest, s.plain_params())


def dicom_folder_without_dicom(s: Study) -> Call:
    (s.tmp / "series").mkdir()
    (s.tmp / "series" / "readme.txt").write_text("exported the wrong folder")
    return s.extract(s.dicom_manifest(t1c=str(s.tmp / "series"), mask="seg.dcm"), s.plain_params())


def rtstruct_without_the_roi(s: Study) -> Call:
    manifest = s.dicom_manifest(t1c="t1c_series", mask="rtstruct.dcm", roi_name="PTV")
    return s.extract(manifest, s.plain_params())


def rtstruct_of_another_series(s: Study) -> Call:
    manifest = s.dicom_manifest(t1c="other_series", mask="rtstruct.dcm", roi_name="GTV")
    return s.extract(manifest, s.plain_params())


def seg_of_another_image(s: Study) -> Call:
    return s.extract(s.dicom_manifest(t1c="other_series", mask="seg.dcm"), s.plain_params())


def dicom_mask_over_a_nifti_image(s: Study) -> Call:
    image = s.tmp / "t1c.nii.gz"
    sitk.WriteImage(sitk.ReadImage(s.manifest().loc[0, "t1c"]), str(image))
    manifest = s.dicom_manifest(t1c=str(image), mask="rtstruct.dcm", roi_name="GTV")
    return s.extract(manifest, s.plain_params())


def config_unknown_key(s: Study) -> Call:
    config = s.config(lambda d: d["rnclassifier"].update(shell_width=5.0))
    return s.extract(s.write(s.manifest()), config)


def config_wrong_type(s: Study) -> Call:
    config = s.config(lambda d: d["rnclassifier"].update(shell_width_mm="five"))
    return s.extract(s.write(s.manifest()), config)


def config_unknown_image_type(s: Study) -> Call:
    config = s.config(lambda d: d["pyradiomics"]["imageType"].update(Sharpened={}))
    return s.extract(s.write(s.manifest()), config)


def config_not_yaml(s: Study) -> Call:
    path = s.tmp / "config.yaml"
    path.write_text("pyradiomics:\n  setting: [binWidth: 25\n")
    return s.extract(s.write(s.manifest()), path)


def config_missing(s: Study) -> Call:
    return s.extract(s.write(s.manifest()), s.tmp / "no-such-config.yaml")


def bundle_incompatible_schema(s: Study) -> Call:
    def change(folder: Path) -> None:
        meta = json.loads((folder / "bundle.json").read_text())
        meta["schema_version"] = 99
        (folder / "bundle.json").write_text(json.dumps(meta))

    return s.score(model=s.bundle_copy(change, rehash=True))


def bundle_changed_file(s: Study) -> Call:
    def change(folder: Path) -> None:
        with (folder / "pipeline.skops").open("ab") as handle:
            handle.write(b"\0")

    return s.score(model=s.bundle_copy(change))


def bundle_missing_file(s: Study) -> Call:
    return s.score(model=s.bundle_copy(lambda f: (f / "ensemble" / "00.skops").unlink()))


def bundle_extra_file(s: Study) -> Call:
    return s.score(model=s.bundle_copy(lambda f: (f / "run.py").write_text("print('hi')\n")))


def bundle_foreign_type(s: Study) -> Call:
    def change(folder: Path) -> None:
        import skops.io as sio

        sio.dump(Foreign(), folder / "pipeline.skops")

    return s.score(model=s.bundle_copy(change, rehash=True))


class Foreign:
    """A type no bundle holds: loading it would import and run this module."""


def bundle_unfitted_pipeline(s: Study) -> Call:
    def change(folder: Path) -> None:
        import skops.io as sio
        from sklearn.linear_model import LogisticRegression

        sio.dump(LogisticRegression(), folder / "pipeline.skops")

    return s.score(model=s.bundle_copy(change, rehash=True))


def bundle_not_a_bundle(s: Study) -> Call:
    (s.tmp / "models" / "empty").mkdir(parents=True)
    return s.score(model=s.tmp / "models" / "empty")


def score_missing_covariate(s: Study) -> Call:
    return s.score(case=_without(s.score_case, s.covariate))


def score_malformed_covariate(s: Study) -> Call:
    return s.score("--clinical", "histology")


def score_unknown_covariate_value(s: Study) -> Call:
    return s.score(case=[*_without(s.score_case, "histology"), "--clinical", "histology=banana"])


def score_without_mask(s: Study) -> Call:
    case = list(s.score_case)
    at = case.index("--mask")
    return s.score(case=case[:at] + case[at + 2 :])


def score_prevalence_out_of_range(s: Study) -> Call:
    return s.score("--prevalence", "1.5")


def score_mask_of_another_lesion_grid(s: Study) -> Call:
    mask = sitk.ReadImage(s.score_case[s.score_case.index("--mask") + 1])
    mask.SetOrigin(tuple(o - 3.4 for o in mask.GetOrigin()))  # off the image's voxel lattice
    sitk.WriteImage(mask, str(s.tmp / "mask.nii.gz"))
    return s.score(case=_replace(s.score_case, "--mask", str(s.tmp / "mask.nii.gz")))


def train_one_outer_fold(s: Study) -> Call:
    out = s.tmp / "train"
    return Call(["train", "--features", str(s.tmp / "f.parquet"), "--out", str(out),
                 "--outer-folds", "1"], outputs=[out])  # fmt: skip


def train_missing_feature_table(s: Study) -> Call:
    out = s.tmp / "train"
    return Call(["train", "--features", str(s.tmp / "f.parquet"), "--out", str(out),
                 "--no-mlflow"], outputs=[out, Path("models")])  # fmt: skip


def train_table_without_labels(s: Study) -> Call:
    out = s.tmp / "train"
    table = pd.DataFrame({"lesion_id": ["a", "b"], "patient_id": ["p", "q"], "x": [1.0, 2.0]})
    table.to_csv(s.tmp / "f.csv", index=False)
    return Call(["train", "--features", str(s.tmp / "f.csv"), "--out", str(out), "--no-mlflow"],
                outputs=[out, Path("models")])  # fmt: skip


def extract_unknown_table_format(s: Study) -> Call:
    call = s.extract(s.write(s.manifest()))
    out = s.tmp / "out" / "features.xlsx"
    call.argv[call.argv.index("--out") + 1] = str(out)
    return Call(call.argv, outputs=[out])


def validate_without_pathology(s: Study) -> Call:
    out = s.tmp / "validation"
    manifest = s.write(s.manifest().drop(columns=["pathology"]))
    return Call(["validate", "--model", str(s.bundle), "--cohort", str(manifest), "--out",
                 str(out), "--no-mlflow"], outputs=[out])  # fmt: skip


def score_cohort_and_case_flags(s: Study) -> Call:
    out = s.tmp / "scores.csv"
    return Call(["score", "--model", str(s.bundle), "--cohort", str(s.write(s.manifest())),
                 "--t1c", "x.nii.gz", "--out", str(out)], outputs=[out])  # fmt: skip


#: (fault, words the error must contain). Grouped by what is broken.
FAULTS: list[tuple[Callable[[Study], Call], tuple[str, ...]]] = [
    # the manifest
    (manifest_duplicate_lesion_ids, ("cohort.csv", "rows 2, 3", "lesion_id")),
    (manifest_missing_column, ("cohort.csv", "mask")),
    (manifest_pathology_typo, ("cohort.csv", "row 4", "pathology")),
    (manifest_missing_image, ("cohort.csv", "row 3", "t1c", "not found")),
    (manifest_semicolons, ("cohort.csv", "comma-separated")),
    (manifest_words_for_numbers, ("cohort.csv", "row 2", "srs_dose_gy")),
    (manifest_negative_interval, ("cohort.csv", "row 2", "months_since_srs")),
    (manifest_empty_file, ("cohort.csv", "empty")),
    (manifest_not_utf8, ("cohort.csv", "UTF-8")),
    # images
    (image_corrupt, ("manifest row 2", "t1c.nii.gz", "not an image")),
    (image_truncated, ("manifest row 2", "t1c.nii.gz", "truncated")),
    (image_cut_short, ("manifest row 2", "t1c.nii.gz", "truncated")),
    (image_2d, ("manifest row 2", "t1c.nii.gz", "3-D")),
    (image_nan_voxels, ("manifest row 2", "t1c.nii.gz", "not finite")),
    (image_several_channels, ("manifest row 2", "t1c.nii.gz", "single-channel")),
    # masks
    (
        mask_on_another_grid,
        (
            "manifest row 2",
            "mask.nii.gz",
            "origin",
            "voxel lattice",
            "resample the mask onto the image",
        ),
    ),
    (mask_labelled_outside_the_image, ("manifest row 2", "mask.nii.gz", "outside the image")),
    (lesion_features_missing, ("manifest row 3", "pyradiomics skipped", "--allow-failures")),
    (slicer_segment_unknown, ("manifest row 2", "lesion.seg.nrrd", "'PTV'", "'GTV'")),
    (mask_empty, ("manifest row 2", "mask.nii.gz", "empty")),
    (mask_several_labels, ("manifest row 2", "mask.nii.gz", "several labels")),
    (mask_label_absent, ("manifest row 2", "mask_label 7")),
    (mask_fractional, ("manifest row 2", "mask.nii.gz", "whole numbers")),
    (brain_mask_on_another_grid, ("manifest row 2", "brain.nii.gz", "spacing")),
    # DICOM
    (dicom_missing_slice, ("manifest row 2", "series", "missing slice")),
    (
        dicom_two_series_mixed,
        ("manifest row 2", "series", "2 DICOM image series are in this", "t1c_series"),
    ),
    (dicom_series_selector_matches_nothing, ("manifest row 2", "no series matches t1c_series")),
    (
        rtstruct_contour_outside_the_volume,
        ("manifest row 2", "rtstruct.dcm", "outside the image volume"),
    ),
    (dicom_folder_without_dicom, ("manifest row 2", "series", "DICOM")),
    (rtstruct_without_the_roi, ("manifest row 2", "rtstruct.dcm", "PTV")),
    (
        rtstruct_of_another_series,
        ("manifest row 2", "rtstruct.dcm", "another image series and another frame of reference"),
    ),
    (seg_of_another_image, ("manifest row 2", "seg.dcm", "another image series and another")),
    (dicom_mask_over_a_nifti_image, ("manifest row 2", "rtstruct.dcm", "DICOM series folder")),
    # configs
    (config_unknown_key, ("config.yaml", "shell_width")),
    (config_wrong_type, ("config.yaml", "shell_width_mm")),
    (config_unknown_image_type, ("config.yaml", "Sharpened")),
    (config_not_yaml, ("config.yaml", "YAML")),
    (config_missing, ("no-such-config.yaml", "not found")),
    # bundles
    (bundle_incompatible_schema, ("bundle", "schema version 99")),
    (bundle_changed_file, ("pipeline.skops", "changed")),
    (bundle_missing_file, ("00.skops", "missing")),
    (bundle_extra_file, ("run.py", "not in the manifest")),
    (bundle_foreign_type, ("pipeline.skops", "allow-list")),
    (bundle_unfitted_pipeline, ("pipeline.skops", "not fitted")),
    (bundle_not_a_bundle, ("empty", "MANIFEST.sha256")),
    # the command line
    (score_missing_covariate, ("--clinical", "missing; the model uses it")),
    (score_malformed_covariate, ("--clinical", "KEY=VALUE")),
    (score_unknown_covariate_value, ("histology", "banana")),
    (score_without_mask, ("--mask", "required")),
    (score_prevalence_out_of_range, ("--prevalence", "1.5")),
    (score_mask_of_another_lesion_grid, ("mask.nii.gz", "origin")),
    (train_one_outer_fold, ("--outer-folds", "1")),
    (train_missing_feature_table, ("f.parquet", "not found")),
    (train_table_without_labels, ("f.csv", "pathology")),
    (extract_unknown_table_format, ("features.xlsx", ".parquet or .csv")),
    (validate_without_pathology, ("cohort.csv", "pathology")),
    (score_cohort_and_case_flags, ("--cohort", "--t1c")),
]


@pytest.mark.parametrize(("fault", "words"), FAULTS, ids=[fault.__name__ for fault, _ in FAULTS])
def test_fault_gives_a_clear_error_and_no_output(fault, words, study, tmp_path, capsys, request):
    case = dataclasses.replace(study, tmp=tmp_path)
    if fault.__name__.startswith(("bundle_", "score_", "validate_")):
        case = with_bundle(case, request.getfixturevalue("trained"))
    call = fault(case)
    status = main(call.argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, captured.err
    assert lines, "no message"
    assert all(line.startswith("error: ") for line in lines), captured.err
    assert "Traceback" not in captured.err
    message = "\n".join(lines)
    print(f"{fault.__name__}: {message}".replace(str(tmp_path), "…"))  # shown by `pytest -rP`
    for word in words:
        assert word in message, f"{word!r} not in:\n{message}"
    for output in call.outputs:
        assert not output.exists(), f"{output} written despite the error"
    leftovers = [p for p in (*tmp_path.rglob("*"), *Path.cwd().rglob("*")) if ".partial" in p.name]
    assert not leftovers, leftovers


def test_the_corpus_is_large_and_every_fault_distinct():
    assert len(FAULTS) >= 30
    assert len({fault.__name__ for fault, _ in FAULTS}) == len(FAULTS)
