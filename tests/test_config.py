"""Extraction configs: the shipped ones load; every wrong key or type names the key and file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rnclassifier.config import ExtractionSettings, load_extraction_config
from rnclassifier.errors import InputError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["default.yaml", "light.yaml"])
def test_shipped_configs_load(name):
    config = load_extraction_config(CONFIGS / "extraction" / name)
    assert not config.plain
    assert config.settings.sequences[0] == "t1c"
    assert "Original" in config.pyradiomics["imageType"]
    assert len(config.fingerprint()) == 64


def write(tmp_path: Path, document: object, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return path


def base_document() -> dict:
    return {
        "pyradiomics": {"setting": {"binWidth": 0.1}, "imageType": {"Original": {}}},
        "rnclassifier": {"sequences": ["t1c"], "regions": ["lesion"]},
    }


def problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_extraction_config(path)
    return caught.value.problems


def test_defaults_fill_missing_settings(tmp_path):
    document = base_document()
    del document["rnclassifier"]
    config = load_extraction_config(write(tmp_path, document))
    assert config.settings == ExtractionSettings()
    assert config.settings.shell_width_mm == 5.0


def test_unknown_rnclassifier_key(tmp_path):
    document = base_document()
    document["rnclassifier"]["shell_widht_mm"] = 3
    path = write(tmp_path, document)
    assert problems(path) == [f"{path}: rnclassifier.shell_widht_mm: unknown key"]


def test_wrong_type_names_key_and_value(tmp_path):
    document = base_document()
    document["rnclassifier"]["shell_width_mm"] = "wide"
    document["rnclassifier"]["perturbations"] = {"n": -1}
    path = write(tmp_path, document)
    found = problems(path)
    assert len(found) == 2
    assert found[0].startswith(f"{path}: rnclassifier.shell_width_mm: ")
    assert "'wide'" in found[0]
    assert found[1].startswith(f"{path}: rnclassifier.perturbations.n: ")
    assert "greater than or equal to 0" in found[1]


def test_strict_types_do_not_coerce_strings(tmp_path):
    document = base_document()
    document["rnclassifier"]["n4_bias_correction"] = "yes"
    (problem,) = problems(write(tmp_path, document))
    assert "rnclassifier.n4_bias_correction" in problem


def test_first_sequence_must_be_t1c(tmp_path):
    document = base_document()
    document["rnclassifier"]["sequences"] = ["flair", "t1c"]
    (problem,) = problems(write(tmp_path, document))
    assert "rnclassifier.sequences" in problem
    assert "'t1c'" in problem


def test_unknown_region(tmp_path):
    document = base_document()
    document["rnclassifier"]["regions"] = ["lesion", "halo"]
    (problem,) = problems(write(tmp_path, document))
    assert "rnclassifier.regions.1" in problem


def test_pyradiomics_block_validated_by_pyradiomics_schema(tmp_path):
    document = base_document()
    document["pyradiomics"]["setting"]["binWidth"] = "abc"
    document["pyradiomics"]["setting"]["binwidth"] = 5
    path = write(tmp_path, document)
    found = problems(path)
    assert f"{path}: pyradiomics parameters: Value 'abc' is not of type 'float'" in found[0]
    assert "Key 'binwidth' was not defined" in found[1]


def test_pyradiomics_unknown_image_type(tmp_path):
    document = base_document()
    document["pyradiomics"]["imageType"] = {"Wavelett": {}}
    (problem,) = problems(write(tmp_path, document))
    assert "Image Type Wavelett is not recognized" in problem


def test_pyradiomics_block_may_be_a_path(tmp_path):
    params = write(tmp_path, {"setting": {"binWidth": 25}, "imageType": {"Original": {}}}, "p.yaml")
    document = base_document()
    document["pyradiomics"] = params.name
    config = load_extraction_config(write(tmp_path, document))
    assert config.pyradiomics == {"setting": {"binWidth": 25}, "imageType": {"Original": {}}}


def test_missing_parameter_file(tmp_path):
    document = base_document()
    document["pyradiomics"] = "absent.yaml"
    (problem,) = problems(write(tmp_path, document))
    assert problem == f"{(tmp_path / 'absent.yaml').resolve()}: file not found"


def test_unknown_top_level_key(tmp_path):
    document = base_document()
    document["radiomics"] = {}
    path = write(tmp_path, document)
    (problem,) = problems(path)
    assert problem.startswith(f"{path}: unknown top-level key 'radiomics' (expected")


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("pyradiomics:\n  setting: [unclosed\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}: not valid YAML (line ")


def test_fingerprint_changes_with_settings(tmp_path):
    first = load_extraction_config(write(tmp_path, base_document(), "a.yaml"))
    document = base_document()
    document["rnclassifier"]["shell_width_mm"] = 3.0
    second = load_extraction_config(write(tmp_path, document, "b.yaml"))
    same = load_extraction_config(write(tmp_path, base_document(), "c.yaml"))
    assert first.fingerprint() != second.fingerprint()
    assert first.fingerprint() == same.fingerprint()


def test_plain_pyradiomics_parameter_file(tmp_path):
    params = {"setting": {"binWidth": 25, "label": 1}, "imageType": {"Original": {}}}
    config = load_extraction_config(write(tmp_path, params))
    assert config.plain
    assert config.pyradiomics == params
    assert config.settings.regions == ("lesion",)
    assert config.settings.normalisation == "none"
    assert config.settings.n4_bias_correction is False


def test_plain_parameter_file_validated_by_pyradiomics(tmp_path):
    path = write(tmp_path, {"setting": {"binWidth": "wide"}})
    (problem,) = problems(path)
    assert problem.startswith(f"{path}: pyradiomics parameters: Value 'wide'")
