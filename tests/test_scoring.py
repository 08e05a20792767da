"""Scoring against a frozen bundle: exactly the bundle's own prediction for a training lesion,
the same lesion from raw DICOM + RTSTRUCT within rasterisation loss, clear errors, and an
out-of-distribution flag that the images (not the site label) trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import contourpy
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent / "imaging"))

from dicom_factory import (
    FAKE_PATIENT_ID,
    FAKE_PATIENT_NAME,
    Grid,
    grid_of,
    write_mr_series,
    write_rtstruct,
)

from rnclassifier.bundle import load_bundle
from rnclassifier.cli import main
from rnclassifier.cohort import CLINICAL_COLUMNS as CLINICAL
from rnclassifier.errors import InputError
from rnclassifier.scoring import CaseInputs, score_case, score_cohort
from rnclassifier.synthetic.write import write_synthetic_cohort


def case_from_row(trained: dict, i: int) -> CaseInputs:
    row = trained["manifest"].iloc[i]
    base = trained["folder"] / "cohort"
    return CaseInputs(
        images={"t1c": str(base / row["t1c"]), "flair": str(base / row["flair"])},
        mask=str(base / row["mask"]),
        brain_mask=str(base / row["brain_mask"]),
        site=row["site"],
        clinical={k: row[k] for k in CLINICAL if isinstance(row[k], str)},
    )


def test_a_training_lesion_scores_exactly_as_the_bundle_predicts_it(trained, tmp_path):
    bundle = load_bundle(trained["bundle"])
    table = pd.read_parquet(trained["folder"] / "features.parquet")
    for i in (0, 7):
        result = score_case(trained["bundle"], case_from_row(trained, i), cache_dir=tmp_path)
        assert result["probability"] == bundle.probability(table.iloc[[i]])[0]
        low, high = bundle.zone
        assert low == bundle.threshold
        assert low <= high
        zone = result["indeterminate_zone"]
        assert (zone["low"], zone["high"]) == (low, high)
        p = result["probability"]
        expected = "tumor" if p >= high else "necrosis" if p < low else "indeterminate"
        assert result["call"] == expected
        spread = result["model_variability"]
        assert spread["n_models"] == 5
        assert spread["min"] <= spread["median"] <= spread["max"]
        assert result["research_use_only"] is True
        # The top SHAP contributions, largest first.
        shap = [abs(c["shap"]) for c in result["top_contributions"]]
        assert shap == sorted(shap, reverse=True)


def test_prevalence_shift_is_bayes_rule_on_the_odds(trained):
    result = score_case(trained["bundle"], case_from_row(trained, 1), prevalence=0.3)
    p, q = result["probability"], result["probability_at_prevalence"]["probability"]
    prior = result["training_prevalence"]
    ratio = (q / (1 - q)) / (p / (1 - p))
    assert ratio == pytest.approx((0.3 / 0.7) / (prior / (1 - prior)), rel=1e-9)
    assert "intercept shifted" in result["probability_at_prevalence"]["flag"]
    # The threshold moves with the odds, so the shifted probability never contradicts the call.
    t, t_shifted = result["threshold"]["value"], result["probability_at_prevalence"]["threshold"]
    assert (t_shifted / (1 - t_shifted)) / (t / (1 - t)) == pytest.approx(ratio, rel=1e-9)
    assert (q >= t_shifted) == (result["call"] != "necrosis") == (p >= t)
    low, high = result["probability_at_prevalence"]["indeterminate_zone"]
    assert low == pytest.approx(t_shifted, rel=1e-12)
    assert (q >= high) == (result["call"] == "tumor")


def _contours(mask: sitk.Image, grid: Grid) -> list[tuple[int, np.ndarray]]:
    """Each slice's mask outline at the 0.5 level (what a planning system would store)."""
    array = np.pad(sitk.GetArrayFromImage(mask).astype(float), ((0, 0), (1, 1), (1, 1)))
    out = []
    for k in range(array.shape[0]):
        if not array[k].any():
            continue
        for line in contourpy.contour_generator(z=array[k]).lines(0.5):
            ij = np.column_stack([line[:, 0] - 1, line[:, 1] - 1, np.full(len(line), k)])
            out.append((k, grid.to_physical(ij)))
    return out


def test_the_same_lesion_from_dicom_and_rtstruct_in_a_fresh_process(trained, tmp_path):
    i = 2
    case = case_from_row(trained, i)
    expected = score_case(trained["bundle"], case)["probability"]
    series = {}
    for sequence in ("t1c", "flair"):
        image = sitk.ReadImage(case.images[sequence])
        volume = np.round(sitk.GetArrayFromImage(image)).astype(np.int16)
        series[sequence] = write_mr_series(
            tmp_path / sequence, volume, grid_of(image), tag=sequence
        )
    mask = sitk.ReadImage(case.mask)
    write_rtstruct(tmp_path / "rtstruct.dcm", series["t1c"],
                   {"GTV": _contours(mask, grid_of(mask))})  # fmt: skip
    out = tmp_path / "result.json"
    report = tmp_path / "case.html"
    command = [
        str(Path(sys.executable).parent / "rnclassifier"), "score",
        "--model", str(trained["bundle"]),
        "--t1c", str(tmp_path / "t1c"), "--flair", str(tmp_path / "flair"),
        "--mask", str(tmp_path / "rtstruct.dcm"), "--roi-name", "GTV",
        "--brain-mask", case.brain_mask, "--site", case.site,
        *[a for k, v in case.clinical.items() for a in ("--clinical", f"{k}={v}")],
        "--out", str(out), "--report", str(report),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert abs(result["probability"] - expected) <= 0.01
    for text in (out.read_text(), report.read_text(), done.stdout, done.stderr):
        for identifier in (FAKE_PATIENT_NAME, FAKE_PATIENT_ID, "19000101"):
            assert identifier not in text
    for text in (out.read_text(), report.read_text()):  # no input path either
        assert str(tmp_path) not in text


def test_missing_inputs_are_listed_with_allowed_values(trained):
    case = case_from_row(trained, 0)
    case.images.pop("flair")
    case.clinical = {}
    with pytest.raises(InputError) as caught:
        score_case(trained["bundle"], case)
    problems = caught.value.problems
    assert "--flair: missing; the model uses features of this sequence" in problems
    needed = load_bundle(trained["bundle"]).meta.features.used
    if any(c.startswith("histology_") for c in needed):
        assert any(p.startswith("--clinical histology=VALUE: missing") and "nsclc" in p
                   for p in problems)  # fmt: skip
    assert all("--allow-imputation" in p for p in problems if p.startswith("--clinical"))


def test_imputation_on_request_lists_what_it_filled(trained):
    case = case_from_row(trained, 0)
    case.clinical = {}
    result = score_case(trained["bundle"], case, allow_imputation=True)
    needs = {c.split("_")[0] for c in load_bundle(trained["bundle"]).used_features}
    assert result["imputed_covariates"] or not needs & {"histology", "location", "age"}
    assert 0 < result["probability"] < 1


def test_an_empty_covariate_is_a_missing_one(trained):
    """As an empty manifest cell: refused, or imputed on request and listed (it used to be
    imputed silently on the case path); imputed, it scores as the covariate left out does."""
    from rnclassifier.features.restrict import Requirements
    from rnclassifier.scoring import check_case

    case = case_from_row(trained, 0)
    case.clinical["age_years"] = ""
    needs = Requirements(("t1c",), (), ("age_years",))
    with pytest.raises(InputError, match=r"--clinical age_years=VALUE: missing"):
        check_case(case, needs, allow_imputation=False)
    assert check_case(case, needs, allow_imputation=True)[0] == ["age_years"]
    case = case_from_row(trained, 0)
    bundle = load_bundle(trained["bundle"])
    # End to end, on a covariate the model reads (not the dose or fractions: with only one of
    # the two, the manifest refuses the row, BED needs both).
    read = [c for c in bundle.requirements.covariates if c not in ("srs_dose_gy", "srs_fractions")]
    for covariate in read[:1]:
        case.clinical[covariate] = ""
        empty = score_case(bundle, case, allow_imputation=True)
        assert covariate in empty["imputed_covariates"]
        del case.clinical[covariate]
        absent = score_case(bundle, case, allow_imputation=True)
        assert empty["probability"] == absent["probability"]


@pytest.mark.parametrize("problem", ["off the image", "empty", "bad value", "changed bundle"])
def test_bad_input_gives_one_clear_line_and_exit_2(trained, tmp_path, capsys, problem):
    case = case_from_row(trained, 0)
    model = trained["bundle"]
    if problem == "off the image":
        mask = sitk.ReadImage(case.mask)
        # 500 mm away on the image's own voxel lattice: pasted, and then beyond the image.
        mask.SetOrigin([v + 500.0 for v in mask.GetOrigin()])
        sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
        case.mask = str(tmp_path / "mask.nii.gz")
    elif problem == "empty":
        mask = sitk.ReadImage(case.mask) * 0
        sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
        case.mask = str(tmp_path / "mask.nii.gz")
    elif problem == "bad value":
        case.clinical["histology"] = "glioma"
    else:
        import shutil

        model = tmp_path / "bundle"
        shutil.copytree(trained["bundle"], model)
        with (model / "MODEL_CARD.md").open("a") as handle:
            handle.write("edited\n")
    argv = [
        "score", "--model", str(model), "--t1c", case.images["t1c"],
        "--flair", case.images["flair"], "--mask", case.mask, "--brain-mask", case.brain_mask,
        *[a for k, v in case.clinical.items() for a in ("--clinical", f"{k}={v}")],
        "--out", str(tmp_path / "result.json"),
    ]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    print(error)
    expected = {
        "off the image": "labelled voxel(s) outside the image",
        "empty": "empty",
        "bad value": "--clinical histology: unknown value 'glioma'",
        "changed bundle": "MODEL_CARD.md: changed",
    }[problem]
    assert expected in error
    assert not (tmp_path / "result.json").exists()


def _shift_acquisition(source: Path, target: Path, manifest: pd.DataFrame) -> Path:
    """The same lesions as from a very different scanner: thick slices (3 mm of through-plane
    blur) and half the signal-to-noise ratio; the site label stays one the model has seen."""
    rng = np.random.default_rng(0)
    (target / "images").mkdir(parents=True)
    for column in ("t1c", "flair", "mask", "brain_mask"):
        for name in manifest[column]:
            image = sitk.ReadImage(str(source / name))
            if column in ("t1c", "flair"):
                image = sitk.SmoothingRecursiveGaussian(
                    sitk.Cast(image, sitk.sitkFloat32), [1.0, 1.0, 3.0]
                )
                array = sitk.GetArrayFromImage(image)
                array += rng.normal(0, 0.6 * array.std(), array.shape).astype(np.float32)
                noisy = sitk.GetImageFromArray(array)
                noisy.CopyInformation(image)
                image = noisy
            sitk.WriteImage(image, str(target / name))
    columns = ["patient_id", "lesion_id", "t1c", "flair", "mask", "brain_mask", "site", *CLINICAL]
    manifest[columns].to_csv(target / "cohort.csv", index=False)
    return target / "cohort.csv"


@pytest.mark.slow  # ~5 min: a shifted cohort synthesised and extracted for two cases
def test_out_of_distribution_flag_follows_the_images(trained, tmp_path):
    """New in-distribution lesions are rarely flagged; the same lesions through a strongly
    shifted acquisition mostly are."""
    write_synthetic_cohort(tmp_path / "new", n_lesions=30, seed=77, jobs=2)
    manifest = pd.read_csv(tmp_path / "new" / "cohort.csv", dtype=str)
    seen = set(load_bundle(trained["bundle"]).meta.sites or manifest["site"])
    assert set(manifest["site"]) <= seen
    same = score_cohort(trained["bundle"], tmp_path / "new" / "cohort.csv", tmp_path / "a.csv")
    assert "30 lesions scored" in same
    shifted = _shift_acquisition(tmp_path / "new", tmp_path / "shifted", manifest)
    score_cohort(trained["bundle"], shifted, tmp_path / "b.csv")
    normal = pd.read_csv(tmp_path / "a.csv")
    strange = pd.read_csv(tmp_path / "b.csv")
    print(
        f"OOD flagged: in-distribution {normal['out_of_distribution'].mean():.2f}, "
        f"shifted {strange['out_of_distribution'].mean():.2f}"
    )
    assert normal["out_of_distribution"].mean() <= 0.10
    # How many shifted lesions cross the cut-off depends on which features the model kept
    # (shape and clinical features do not see the scanner): most do, and the typical shifted
    # lesion lies beyond the cut-off that about 2.5% of training-like lesions cross.
    assert strange["out_of_distribution"].mean() >= 0.5
    cutoff = load_bundle(trained["bundle"]).meta.reference.cutoff
    distance = "mahalanobis_distance"
    assert normal[distance].median() < cutoff < strange[distance].median()


def test_case_and_cohort_share_one_out_of_distribution_check(trained, tmp_path):
    """The case and the cohort path flag a lesion by the bundle's one check (feature distance,
    unseen site). A sequence given that the model does not read is listed as ignored and raises
    no flag (it used to, on the case path only, as a `sequences_unseen` reason)."""
    import shutil

    case = case_from_row(trained, 3)
    t2 = tmp_path / "t2.nii.gz"
    shutil.copy(case.images["flair"], t2)
    case.images["t2"] = str(t2)
    result = score_case(trained["bundle"], case, cache_dir=tmp_path)
    flags = result["out_of_distribution"]
    assert "sequences_unseen" not in flags
    assert result["input_quality"]["sequences_ignored"] == ["t2"]
    manifest = trained["folder"] / "cohort" / "row-3.csv"
    lines = (trained["folder"] / "cohort" / "cohort.csv").read_text().splitlines(True)
    manifest.write_text(lines[0] + lines[4])
    score_cohort(trained["bundle"], manifest, tmp_path / "one.csv", cache_dir=tmp_path)
    row = pd.read_csv(tmp_path / "one.csv").iloc[0]
    assert bool(row["out_of_distribution"]) == flags["out_of_distribution"]
    assert row["mahalanobis_distance"] == flags["mahalanobis_distance"]
    assert bool(row["site_unseen"]) == flags["site_unseen"]
    assert row["probability"] == result["probability"]


def test_series_flags_reach_the_manifest_columns():
    """--t1c-series / --t1c-prior-series become the manifest's t1c_series / t1c_prior_series."""
    from rnclassifier.scoring import CaseInputs, case_cohort

    case = CaseInputs(images={"t1c": "."}, mask=".", series={"t1c": "AX T1 POST", "t1c_prior": "5"})
    lesion = case_cohort(case).lesions.iloc[0]
    assert lesion["t1c_series"] == "AX T1 POST"
    assert lesion["t1c_prior_series"] == "5"
