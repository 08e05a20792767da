"""Extraction on a small synthetic cohort: table layout, cache, delta, perturbations, errors."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from rnclassifier.cli import main
from rnclassifier.cohort import load_cohort
from rnclassifier.columns import parse_feature_column
from rnclassifier.config import LIGHT_EXTRACTION_CONFIG, load_extraction_config
from rnclassifier.errors import InputError
from rnclassifier.features import extract as extract_module
from rnclassifier.features.extract import extract_features
from rnclassifier.synthetic import write_synthetic_cohort
from rnclassifier.synthetic.render import MIN_PRIOR_VOLUME_CC


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("extract") / "cohort"
    write_synthetic_cohort(folder, n_lesions=4, seed=3, jobs=1)
    return folder


@pytest.fixture(scope="module")
def light():
    return load_extraction_config(LIGHT_EXTRACTION_CONFIG)


@pytest.fixture(scope="module")
def table(synthetic, light, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return extract_features(load_cohort(synthetic / "cohort.csv"), light, cache_dir=cache)


def config_with(tmp_path: Path, **settings) -> Path:
    document = yaml.safe_load(LIGHT_EXTRACTION_CONFIG.read_text())
    document["rnclassifier"].update(settings)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_table_layout(table):
    frame = table.table
    # Identity, ground truth, site and the radiologists' reads (never predictors) first, then
    # the numeric features.
    carried = ["lesion_id", "patient_id", "pathology", "site", "radiologist_read",
               "radiologist_score"]  # fmt: skip
    assert list(frame.columns[:6]) == carried
    assert len(frame) == 4
    features = frame.columns[6:]
    assert all(pd.api.types.is_numeric_dtype(frame[c]) for c in features)
    radiomics = [parse_feature_column(c) for c in features if parse_feature_column(c)]
    assert {(n.sequence, n.region) for n in radiomics} == {
        ("t1c", "lesion"),
        ("t1c", "shell"),
        ("flair", "lesion"),
        ("flair", "shell"),
    }
    # Shape once per region: from the first sequence only.
    assert {n.sequence for n in radiomics if n.family == "shape"} == {"t1c"}
    assert "t1c__lesion__original_glcm_Contrast" in frame
    assert "bed_ab10_gy" in frame
    assert {"histology_breast", "location_frontal", "sex_m", "immunotherapy_dual"} <= set(frame)
    assert frame["t1c__lesion__original_firstorder_Mean"].notna().all()


def test_clinical_columns_match_manifest(table, synthetic):
    manifest = pd.read_csv(synthetic / "cohort.csv")
    frame = table.table
    bed = manifest["srs_dose_gy"] * (1 + manifest["srs_dose_gy"] / manifest["srs_fractions"] / 10)
    assert np.allclose(frame["bed_ab10_gy"], bed)
    one_hot = frame[[c for c in frame if c.startswith("histology_")]]
    assert (one_hot.sum(axis=1) == 1).all()
    assert (frame["sex_m"] == (manifest["sex"] == "M")).all()


def test_normalised_lesion_is_bright_in_brain_sd_units(table):
    """z-scored within normal brain: an enhancing lesion sits well above 0."""
    assert (table.table["t1c__lesion__original_firstorder_Median"] > 1.0).all()


def test_sidecar_has_settings_and_no_identifiers(table):
    text = json.dumps(table.sidecar)
    for identifier in table.table["lesion_id"].tolist() + table.table["patient_id"].tolist():
        assert identifier not in text
    assert table.sidecar["versions"]["pyradiomics"].lstrip("v").startswith("3.0")
    assert table.sidecar["config"]["plain_pyradiomics"] is False
    steps = table.sidecar["lesions"][0]["current"]["steps"]
    assert any("flair: resampled onto the t1c grid" in s for s in steps)
    assert len(table.sidecar["lesions"][0]["input_hash"]) == 64


def test_warm_run_reads_the_cache(synthetic, light, tmp_path, monkeypatch):
    cohort = load_cohort(synthetic / "cohort.csv")
    cache = tmp_path / "cache"
    first = extract_features(cohort, light, cache_dir=cache)

    def fail(*args, **kwargs):
        raise AssertionError("extracted again despite the cache")

    monkeypatch.setattr(extract_module, "extract_scan", fail)
    second = extract_features(cohort, light, cache_dir=cache)
    pd.testing.assert_frame_equal(first.table, second.table)


def test_interrupted_run_resumes(synthetic, tmp_path, monkeypatch):
    light = load_extraction_config(config_with(tmp_path, delta=False))  # one scan per lesion
    cohort = load_cohort(synthetic / "cohort.csv")
    cache = tmp_path / "cache"
    calls = []
    real = extract_module.extract_scan

    def interrupt_after_two(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_module, "extract_scan", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        extract_features(cohort, light, cache_dir=cache)
    calls.clear()
    monkeypatch.setattr(
        extract_module, "extract_scan", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    extract_features(cohort, light, cache_dir=cache)
    assert len(calls) == 2  # the two lesions done before the interruption came from the cache


def test_parallel_equals_serial(synthetic, light, table):
    parallel = extract_features(load_cohort(synthetic / "cohort.csv"), light, jobs=2)
    pd.testing.assert_frame_equal(parallel.table, table.table)


def test_delta_features_follow_the_growth(synthetic, tmp_path):
    config = load_extraction_config(config_with(tmp_path, delta=True, regions=["lesion"]))
    frame = extract_features(load_cohort(synthetic / "cohort.csv"), config).table
    oracle = pd.read_csv(synthetic / "oracle.csv")
    manifest = pd.read_csv(synthetic / "cohort.csv")
    measured = frame["delta__lesion__log_volume_growth_per_month"]
    assert "delta__t1c__lesion__original_firstorder_Mean" in frame
    assert (measured > 0).all()  # every lesion was enlarging
    # The truth, with the renderer's floor on the prior volume; the rest is segmentation noise
    # (the edge moves by up to ~0.4 mm on each scan, a lot for a 5 mm lesion).
    months = manifest["months_between_scans"]
    prior = np.maximum(
        oracle["lesion_volume_cc"] * np.exp(-oracle["growth_rate_per_month"] * months),
        np.minimum(MIN_PRIOR_VOLUME_CC, oracle["lesion_volume_cc"]),
    )
    truth = np.log(oracle["lesion_volume_cc"] / prior) / months
    assert np.abs(measured - truth).max() < 0.25
    change = frame["delta__t1c__lesion__original_shape_VoxelVolume"]
    volume_now = frame["t1c__lesion__original_shape_VoxelVolume"]
    assert np.all(change > 0)
    assert np.all(np.isfinite(volume_now))


def test_perturbations(synthetic, light, tmp_path):
    result = extract_features(load_cohort(synthetic / "cohort.csv"), light, perturb=3)
    perturbed = result.perturbed
    assert len(perturbed) == 4 * 3
    assert list(perturbed["perturbation_kind"][:3]) == ["erode", "dilate", "contour_noise"]
    volume = "t1c__lesion__original_shape_VoxelVolume"
    merged = perturbed.merge(
        result.table[["lesion_id", volume]], on="lesion_id", suffixes=("", "_original")
    )
    eroded = merged[merged["perturbation_kind"] == "erode"]
    dilated = merged[merged["perturbation_kind"] == "dilate"]
    assert (eroded[volume] < eroded[f"{volume}_original"]).all()
    assert (dilated[volume] > dilated[f"{volume}_original"]).all()
    out = result.write(tmp_path / "features.parquet")
    assert (tmp_path / "features.perturb.parquet").exists()
    assert out.exists()


def test_plain_pyradiomics_is_exactly_pyradiomics(synthetic, tmp_path):
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    # FLAIR is on its own grid at this site: pyradiomics resamples the mask when told to.
    params = {
        "setting": {"binWidth": 25, "label": 1, "correctMask": True},
        "imageType": {"Original": {}},
        "featureClass": {"firstorder": None, "glcm": None},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    cohort = load_cohort(synthetic / "cohort.csv")
    ours = extract_features(cohort, load_extraction_config(path)).table.iloc[0]
    row = cohort.lesions.iloc[0]
    theirs = RadiomicsFeatureExtractor(params).execute(row["t1c"], row["mask"])
    keys = [k for k in theirs if not k.startswith("diagnostics_")]
    assert len(keys) > 30
    for key in keys:
        assert ours[f"t1c__lesion__{key}"] == pytest.approx(float(theirs[key]), rel=1e-9)
    assert not any("shell" in c for c in ours.index)
    assert "bed_ab10_gy" not in ours.index  # nothing added in plain mode
    assert "flair__lesion__original_firstorder_Mean" in ours.index


def test_plain_pyradiomics_without_correct_mask_explains(synthetic, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"setting": {"binWidth": 25}, "imageType": {"Original": {}}}))
    cohort = load_cohort(synthetic / "cohort.csv")
    with pytest.raises(InputError) as caught:
        extract_features(cohort, load_extraction_config(path))
    assert any(
        "flair: image and lesion mask are on different grids" in p for p in caught.value.problems
    )


# --- bad inputs ------------------------------------------------------------------------------


def broken_cohort(synthetic: Path, tmp_path: Path, change) -> Path:
    """A copy of the manifest (absolute paths) with one row changed by `change(row, tmp_path)`."""
    manifest = pd.read_csv(synthetic / "cohort.csv")
    for column in ("t1c", "flair", "mask", "brain_mask", "t1c_prior", "flair_prior", "mask_prior"):
        manifest[column] = [str(synthetic / p) for p in manifest[column]]
    change(manifest, tmp_path)
    path = tmp_path / "cohort.csv"
    manifest.to_csv(path, index=False)
    return path


def extraction_problems(path: Path, light) -> list[str]:
    with pytest.raises(InputError) as caught:
        extract_features(load_cohort(path), light)
    return caught.value.problems


def test_mask_on_another_grid(synthetic, tmp_path, light):
    def change(manifest, folder):
        manifest.loc[1, "mask"] = manifest.loc[1, "mask_prior"]  # the prior scan's grid

    problems = extraction_problems(broken_cohort(synthetic, tmp_path, change), light)
    assert all(p.startswith("manifest row 3: ") for p in problems)
    assert all("mask is not on the image grid" in p for p in problems)
    assert any("origin" in p for p in problems)


def test_empty_mask(synthetic, tmp_path, light):
    def change(manifest, folder):
        mask = sitk.ReadImage(manifest.loc[0, "mask"]) * 0
        sitk.WriteImage(mask, str(folder / "empty.nii.gz"))
        manifest.loc[0, "mask"] = str(folder / "empty.nii.gz")

    (problem,) = extraction_problems(broken_cohort(synthetic, tmp_path, change), light)
    assert problem.endswith("empty.nii.gz: the lesion mask is empty")


def test_several_labels_need_mask_label(synthetic, tmp_path, light):
    def change(manifest, folder):
        mask = sitk.ReadImage(manifest.loc[0, "mask"])
        two = mask + sitk.Cast(sitk.BinaryDilate(mask, [2, 2, 2]) - mask, mask.GetPixelID()) * 2
        sitk.WriteImage(two, str(folder / "two.nii.gz"))
        manifest.loc[0, "mask"] = str(folder / "two.nii.gz")

    path = broken_cohort(synthetic, tmp_path, change)
    (problem,) = extraction_problems(path, light)
    assert "the mask has several labels (1, 2); say which is the lesion with the mask_label" in (
        problem
    )
    fixed = pd.read_csv(path)
    fixed["mask_label"] = [1, None, None, None]
    fixed.to_csv(path, index=False)
    result = extract_features(load_cohort(path), light).table
    assert result["t1c__lesion__original_shape_VoxelVolume"].notna().all()
    fixed["mask_label"] = [3, None, None, None]
    fixed.to_csv(path, index=False)
    (problem,) = extraction_problems(path, light)
    assert "mask_label 3 is not in the mask" in problem


def test_unreadable_image(synthetic, tmp_path, light):
    def change(manifest, folder):
        (folder / "notes.nii.gz").write_text("not an image")
        manifest.loc[2, "t1c"] = str(folder / "notes.nii.gz")

    (problem,) = extraction_problems(broken_cohort(synthetic, tmp_path, change), light)
    assert "notes.nii.gz: not an image SimpleITK can read" in problem


def test_config_sequence_missing_from_manifest(synthetic, tmp_path):
    config = load_extraction_config(config_with(tmp_path, sequences=["t1c", "t2"]))
    with pytest.raises(InputError, match="asks for sequence\\(s\\) t2, which the manifest"):
        extract_features(load_cohort(synthetic / "cohort.csv"), config)


def test_cli_extract_writes_nothing_on_bad_input(synthetic, tmp_path, capsys):
    def change(manifest, folder):
        manifest.loc[1, "mask"] = manifest.loc[1, "mask_prior"]

    cohort = broken_cohort(synthetic, tmp_path, change)
    out = tmp_path / "features.parquet"
    code = main(
        [
            "extract",
            "--cohort",
            str(cohort),
            "--params",
            str(LIGHT_EXTRACTION_CONFIG),
            "--out",
            str(out),
            "--no-cache",
        ]
    )
    assert code == 2
    assert "manifest row 3" in capsys.readouterr().err
    assert not out.exists()
    assert not Path(f"{out}.json").exists()


def test_cli_extract_csv(synthetic, tmp_path, capsys):
    out = tmp_path / "features.csv"
    code = main(
        [
            "extract",
            "--cohort",
            str(synthetic / "cohort.csv"),
            "--params",
            str(LIGHT_EXTRACTION_CONFIG),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    frame = pd.read_csv(out)
    assert len(frame) == 4
    assert "4 lesions x" in capsys.readouterr().out
    assert math.isfinite(frame["bed_ab10_gy"].iloc[0])
    shutil.rmtree(tmp_path / "cache")


def test_bad_input_with_the_cache_on(synthetic, tmp_path, light):
    def change(manifest, folder):
        manifest.loc[1, "mask"] = manifest.loc[1, "mask_prior"]

    cohort = load_cohort(broken_cohort(synthetic, tmp_path, change))
    with pytest.raises(InputError, match="manifest row 3"):
        extract_features(cohort, light, cache_dir=tmp_path / "cache")
    # The good lesions were cached; the bad one was not.
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 3


def test_dask_scheduler_gives_the_same_table(synthetic, light, table):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        result = extract_features(
            load_cohort(synthetic / "cohort.csv"), light, scheduler=cluster.scheduler_address
        )
    pd.testing.assert_frame_equal(result.table, table.table)


def test_unreachable_scheduler(synthetic, light):
    with pytest.raises(InputError, match=re.escape("cannot reach the Dask scheduler at tcp://")):
        extract_features(
            load_cohort(synthetic / "cohort.csv"), light, scheduler="tcp://127.0.0.1:9"
        )


@pytest.mark.slow
def test_full_default_profile_on_one_lesion(synthetic, tmp_path):
    """The default profile (original + LoG + wavelet) runs end to end (~20 s a lesion)."""
    from rnclassifier.config import DEFAULT_EXTRACTION_CONFIG

    cohort = load_cohort(synthetic / "cohort.csv")
    one = type(cohort)(
        cohort.source,
        cohort.lesions.iloc[:1].reset_index(drop=True),
        cohort.sequences,
        cohort.row_numbers[:1],
    )
    frame = extract_features(one, load_extraction_config(DEFAULT_EXTRACTION_CONFIG)).table
    assert frame.shape[1] > 4000
    assert "flair__shell__wavelet-HHH_glszm_ZoneEntropy" in frame
    assert "t1c__lesion__log-sigma-3-0-mm-3D_firstorder_Mean" in frame
    assert "bed_ab2_gy" in frame
    assert frame.iloc[0, 3:].notna().all()


def test_missing_features_names_each_failed_lesion_and_its_reason():
    """Expected are the columns any lesion returned; a skipped region, a skipped perturbation,
    a missing column or no features at all each make a failure; a NaN value does not."""
    full = {"a": 1.0, "b": math.nan}
    outcomes = [
        {"features": full, "diagnostics": {"current": {}}},
        {"features": {"a": 2.0}, "diagnostics": {"current": {}}},
        {"features": full, "diagnostics": {"current": {"skipped": ["t1c/shell: too small"]}}},
        {"features": full, "diagnostics": {"current": {}, "prior": {"skipped": ["t1c/lesion: x"]}}},
        {"features": full, "diagnostics": {"current": {},
                                           "perturbations_skipped": ["perturbation 2 (erode): y"]}},
        {"features": full, "diagnostics": {"current": {}},
         "perturbed": [("erode", {"c": 1.0}), ("dilate", {"a": 1.0, "c": 2.0})]},
    ]  # fmt: skip
    failures = extract_module.missing_features(outcomes, [2, 3, 4, 5, 6, 7])
    assert sorted(failures) == [1, 2, 3, 4, 5]
    assert failures[1] == (3, "1 feature(s) missing, e.g. b")
    assert failures[2] == (4, "pyradiomics skipped t1c/shell: too small")
    assert failures[3] == (5, "pyradiomics skipped prior scan: t1c/lesion: x")
    assert failures[4] == (6, "pyradiomics skipped perturbation 2 (erode): y")
    assert failures[5] == (
        7,
        "pyradiomics skipped perturbation 0 (erode): 1 feature(s) missing, e.g. a",
    )
    only = [{"features": {}, "diagnostics": {"current": {}}}]
    assert extract_module.missing_features(only, [2]) == {
        0: (2, "no features came back (check the mask and the pyradiomics settings)")
    }
