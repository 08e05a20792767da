"""Feature tables other tools wrote: pyradiomics' own batch output, and the untidiness of real
tables (inf, constant and empty columns, names written twice, IDs that look like numbers,
labels that are words), each cleaned with a count or refused with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rnclassifier.errors import InputError
from rnclassifier.modeling.pipeline import make_pipeline
from rnclassifier.training import read_feature_table

PYRADIOMICS_DATA = Path(__file__).parent / "data" / "pyradiomics"
PYRADIOMICS = Path(sys.executable).parent / "pyradiomics"
PUBLIC_TABLES = Path(__file__).resolve().parents[2] / "shared" / "public-tables"


@pytest.fixture(scope="module")
def pyradiomics_batch(tmp_path_factory) -> Path:
    """pyradiomics' batch CLI on its own two test brains, two rows each, with the user's ID and
    label columns in the batch input (pyradiomics copies them into its output)."""
    base = tmp_path_factory.mktemp("pyradiomics-batch")
    rows = []
    for i in range(4):
        case = f"brain{1 + i % 2}"
        rows.append(
            {
                "ID": f"{i:03d}",  # "000": text, not the number 0
                "Target": ["progression", "necrosis"][i % 2],
                "Image": str(PYRADIOMICS_DATA / f"{case}_image.nrrd"),
                "Mask": str(PYRADIOMICS_DATA / f"{case}_label.nrrd"),
                "Label": 1,
            }
        )
    pd.DataFrame(rows).to_csv(base / "batch.csv", index=False)
    params = {"imageType": {"Original": {}}, "featureClass": {"firstorder": [], "shape": []}}
    (base / "params.yaml").write_text(yaml.safe_dump(params))
    out = base / "features.csv"
    run = subprocess.run(
        [str(PYRADIOMICS), str(base / "batch.csv"), "-o", str(out), "-f", "csv",
         "-p", str(base / "params.yaml")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return out


def test_pyradiomics_batch_output_reads_with_its_diagnostics_dropped_and_counted(
    pyradiomics_batch,
):
    written = pd.read_csv(pyradiomics_batch, dtype={"ID": str})
    diagnostics = [c for c in written if c.startswith("diagnostics_")]
    assert len(diagnostics) > 10  # pyradiomics' versions, hashes, spacings, ...
    data = read_feature_table(
        pyradiomics_batch, label="Target", group="ID", id_column="ID", positive_label="progression"
    )
    features = [c for c in written if c.startswith("original_")]
    assert list(data.X.columns) == features
    assert data.cleaning.pyradiomics_columns_dropped == len(diagnostics) + 3  # Image, Mask, Label
    assert list(data.ids) == ["000", "001", "002", "003"]
    assert list(data.groups) == list(data.ids)
    assert list(data.y) == [1, 0, 1, 0]
    # The values are pyradiomics' own, to the last digit.
    np.testing.assert_array_equal(data.X.to_numpy(), written[features].to_numpy(float))
    assert any("pyradiomics diagnostics" in line for line in data.cleaning.lines())


def test_labels_that_are_words_need_the_positive_class_named(pyradiomics_batch, tmp_path):
    with pytest.raises(InputError) as caught:
        read_feature_table(pyradiomics_batch, label="Target", group="ID", id_column="ID")
    assert caught.value.problems == [
        f"{pyradiomics_batch}: column Target: labels 'necrosis' and 'progression' are not tumor "
        "/ necrosis / 1 / 0; name the positive class with --positive-label (data.positive_label "
        "in an experiment config)"
    ]
    with pytest.raises(InputError, match="'grade II' needs two label values"):
        read_feature_table(
            pyradiomics_batch, label="Target", group="ID", id_column="ID", positive_label="grade II"
        )
    frame = pd.read_csv(pyradiomics_batch, dtype={"ID": str})
    frame.loc[2, "Target"] = "unclear"
    three = tmp_path / "three.csv"
    frame.to_csv(three, index=False)
    with pytest.raises(InputError, match="needs two label values, it and one other"):
        read_feature_table(
            three, label="Target", group="ID", id_column="ID", positive_label="progression"
        )


def _untidy(tmp_path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 40
    frame = pd.DataFrame(
        {
            "ID": [f"{10_000 + i}" for i in range(n)],
            "Target": np.tile([0, 1], n // 2),
            "texture": rng.normal(size=n),
            "energy": rng.normal(size=n),
            "constant": 7.0,
            "empty": np.nan,
        }
    )
    frame.loc[[1, 5], "energy"] = np.inf
    frame.loc[9, "texture"] = -np.inf
    return frame


def test_inf_becomes_missing_and_constant_and_empty_columns_are_counted(tmp_path):
    path = tmp_path / "untidy.csv"
    _untidy(tmp_path).to_csv(path, index=False)
    data = read_feature_table(path, label="Target", group="ID", id_column="ID")
    cleaning = data.cleaning
    assert (cleaning.infinite_values, cleaning.infinite_columns) == (3, 2)
    assert (cleaning.constant_columns, cleaning.empty_columns) == (1, 1)
    assert data.X["energy"].isna().sum() == 2
    assert data.X["texture"].isna().sum() == 1
    assert np.isfinite(data.X.to_numpy()[~np.isnan(data.X.to_numpy())]).all()
    assert data.ids[0] == "10000"  # numeric-looking IDs stay text
    # The fold pipeline takes the table as read: it imputes, drops the constant and empty
    # columns, and predicts.
    params = {"select_k": 2, "C": 1.0, "l1_ratio": 0.5}
    pipeline = make_pipeline("elastic_net", params).fit(data.X, data.y)
    assert np.isfinite(pipeline.predict_proba(data.X)).all()
    assert len(cleaning.lines()) == 3


def test_a_column_name_written_twice_is_refused_naming_both_positions(tmp_path):
    path = tmp_path / "twice.csv"
    frame = _untidy(tmp_path).drop(columns=["empty"])
    frame.columns = ["ID", "Target", "texture", "energy", "texture"]
    frame.to_csv(path, index=False)
    with pytest.raises(InputError) as caught:
        read_feature_table(path, label="Target", group="ID", id_column="ID")
    assert caught.value.problems == [
        f"{path}: column 'texture' appears 2 times (columns 3, 5); each column needs its own name"
    ]


def test_ids_that_look_like_numbers_stay_as_written_and_blank_ids_are_refused(tmp_path):
    path = tmp_path / "ids.csv"
    frame = _untidy(tmp_path)
    frame["ID"] = [f"{i:04d}" for i in range(len(frame))]
    frame.to_csv(path, index=False)
    data = read_feature_table(path, label="Target", group="ID", id_column="ID")
    assert list(data.ids[:3]) == ["0000", "0001", "0002"]
    assert len(set(data.ids)) == len(frame)  # "0001" and "001" would be two IDs, not one
    frame.loc[4, "ID"] = None
    frame.to_csv(path, index=False)
    with pytest.raises(InputError) as caught:
        read_feature_table(path, label="Target", group="ID", id_column="ID")
    assert f"{path}: row 6, column ID: empty" in caught.value.problems


@pytest.mark.skipif(not PUBLIC_TABLES.is_dir(), reason="../shared/public-tables is not beside")
@pytest.mark.parametrize(
    ("table", "rows", "features"),
    [("OcanaTienda2023", 67, 1130), ("Ahn2021", 114, 108), ("Song2020", 260, 264)],
)
def test_public_tables_read_as_they_come(table, rows, features):
    """Real tables, as radMLBench ships them: ID as id and group, Target as label."""
    data = read_feature_table(
        PUBLIC_TABLES / f"{table}.csv.gz", label="Target", group="ID", id_column="ID"
    )
    assert data.X.shape == (rows, features)
    assert len(set(data.ids)) == rows
    assert set(data.y) == {0, 1}
    assert all(isinstance(i, str) for i in data.ids)  # OcanaTienda2023's IDs are integers
    assert data.cleaning.lines() == []


STUDY = Path(__file__).resolve().parents[1] / "experiments" / "public-tables"


@pytest.mark.parametrize("config", sorted(STUDY.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_study_reads_each_table_from_the_shared_folder(config):
    from rnclassifier.spec import load_experiment

    spec = load_experiment(config)
    table = Path(spec.data.features).resolve()
    assert table == PUBLIC_TABLES / f"{config.stem}.csv.gz"  # never a copy in the checkout
    assert (spec.data.id, spec.data.group, spec.data.label) == ("ID", "ID", "Target")
    assert not spec.bundle.build


def test_the_study_without_the_shared_folder_fails_with_one_line(tmp_path, capsys):
    from rnclassifier.cli import main

    moved = tmp_path / "experiments" / "public-tables"
    moved.mkdir(parents=True)
    config = moved / "Song2020.yaml"
    config.write_text((STUDY / "Song2020.yaml").read_text())
    code = main(["train", "--config", str(config), "--no-mlflow"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path.parent / 'shared' / 'public-tables'}: folder not found "
                   "(it should hold Song2020.csv.gz)"]  # fmt: skip
    assert not (moved / "results").exists()
