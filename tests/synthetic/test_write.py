"""The synthetic cohort folder: contract, determinism, labelling, atomicity, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from rnclassifier.cli import main
from rnclassifier.cohort import load_cohort
from rnclassifier.errors import InputError
from rnclassifier.synthetic import write as write_module
from rnclassifier.synthetic import write_synthetic_cohort
from rnclassifier.synthetic.sampler import ORACLE_COLUMNS


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    write_synthetic_cohort(out, n_lesions=5, seed=7, jobs=1)
    return out


def test_folder_layout_and_manifest_contract(small):
    assert sorted(p.name for p in small.iterdir()) == [
        "README.md",
        "cohort.csv",
        "images",
        "oracle.csv",
        "synthesis.json",
    ]
    settings = json.loads((small / "synthesis.json").read_text())
    assert settings["synthetic"] is True
    assert (settings["n_lesions"], settings["seed"]) == (5, 7)
    cohort = load_cohort(small / "cohort.csv", require_pathology=True)
    assert cohort.n_lesions == 5
    assert cohort.sequences == ("t1c", "flair")
    assert len(list((small / "images").iterdir())) == 5 * 7
    for column in ("t1c_prior", "flair_prior", "mask_prior", "brain_mask"):
        assert cohort.lesions[column].notna().all()


def test_labelled_synthetic_everywhere(small):
    readme = (small / "README.md").read_text()
    assert readme.startswith("# SYNTHETIC cohort")
    manifest = pd.read_csv(small / "cohort.csv")
    assert manifest["patient_id"].str.startswith("SYN-").all()
    assert manifest["lesion_id"].str.startswith("SYN-").all()
    image = sitk.ReadImage(str(small / manifest["t1c"].iloc[0]))
    assert image.GetMetaData("descrip").startswith("SYNTHETIC")


def test_oracle_is_separate_and_complete(small):
    oracle = pd.read_csv(small / "oracle.csv")
    manifest = pd.read_csv(small / "cohort.csv")
    assert list(oracle["lesion_id"]) == list(manifest["lesion_id"])
    assert oracle["oracle_p_tumor"].between(0, 1).all()
    assert not any(c.startswith(("latent_", "oracle")) for c in manifest.columns)
    # One matched ceiling per feature set beside the full and image-only oracles.
    for column in ORACLE_COLUMNS:
        assert oracle[column].between(0, 1).all(), column
    assert {"oracle_p_tumor_combined", "oracle_p_tumor_clinical+size"} <= set(oracle.columns)
    assert "what `combined` sees" in (small / "README.md").read_text()


def test_masks_inside_brain_masks_on_their_grids(small):
    manifest = pd.read_csv(small / "cohort.csv")
    for _, row in manifest.iterrows():
        for image_col, mask_col in (
            ("t1c", "mask"),
            ("t1c", "brain_mask"),
            ("t1c_prior", "mask_prior"),
        ):
            image = sitk.ReadImage(str(small / row[image_col]))
            mask = sitk.ReadImage(str(small / row[mask_col]))
            assert mask.GetSize() == image.GetSize()
            assert np.allclose(mask.GetOrigin(), image.GetOrigin())
            assert np.allclose(mask.GetDirection(), image.GetDirection())
        lesion = sitk.GetArrayFromImage(sitk.ReadImage(str(small / row["mask"]))) > 0
        brain = sitk.GetArrayFromImage(sitk.ReadImage(str(small / row["brain_mask"]))) > 0
        assert lesion.any()
        assert not (lesion & ~brain).any()


def test_byte_identical_whatever_the_parallelism(small, tmp_path):
    again = tmp_path / "again"
    write_synthetic_cohort(again, n_lesions=5, seed=7, jobs=2)
    assert digest(again) == digest(small)


def test_other_seed_other_images(small, tmp_path):
    other = tmp_path / "other"
    write_synthetic_cohort(other, n_lesions=5, seed=8, jobs=1)
    assert digest(other)["cohort.csv"] != digest(small)["cohort.csv"]


def test_existing_output_needs_force(small):
    with pytest.raises(InputError, match="already exists"):
        write_synthetic_cohort(small, n_lesions=5, seed=7, jobs=1)


def test_failure_leaves_no_folder(tmp_path, monkeypatch):
    def broken(task):
        raise RuntimeError("disk full")

    monkeypatch.setattr(write_module, "_render_and_write", broken)
    with pytest.raises(RuntimeError):
        write_synthetic_cohort(tmp_path / "out", n_lesions=3, jobs=1)
    assert list(tmp_path.iterdir()) == []


def test_cli_synth_external_preset(tmp_path, capsys):
    out = tmp_path / "ext"
    assert (
        main(["synth", "--preset", "external", "--out", str(out), "--n", "3", "--jobs", "1"]) == 0
    )
    assert "SYNTHETIC cohort written" in capsys.readouterr().out
    sites = set(pd.read_csv(out / "cohort.csv")["site"])
    assert sites <= {"ext-1", "ext-2"}


def test_cli_synth_shift_is_recorded_and_changes_the_signs(tmp_path, capsys):
    out = tmp_path / "shifted"
    argv = ["synth", "--preset", "external", "--n", "3", "--jobs", "1", "--shift", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    settings = json.loads((out / "synthesis.json").read_text())
    assert (settings["preset"], settings["shift"]) == ("external", 0.0)
    assert "biology shift 0 " in (out / "README.md").read_text()
    default = tmp_path / "default"
    assert main([*argv[:-2], "--out", str(default)]) == 0
    assert json.loads((default / "synthesis.json").read_text())["shift"] is None
    assert "biology shift 1 " in (default / "README.md").read_text()
    assert "Shifted here" in (default / "README.md").read_text()
    assert main(["synth", "--out", str(tmp_path / "bad"), "--shift", "1.5"]) == 2
    assert "--shift" in capsys.readouterr().err
    assert "--shift" in _help("synth")


def _help(command: str) -> str:
    from click.testing import CliRunner

    from rnclassifier.cli import app

    return CliRunner().invoke(app, [command, "--help"]).output


def test_cli_synth_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "x"), "--rn-fraction", "1.0"]) == 2
    assert "--rn-fraction must be strictly between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
