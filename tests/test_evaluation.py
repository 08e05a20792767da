"""`rnclassifier evaluate`: metrics equal the statistics package's, the report is self-contained,
and bad input is refused with one line per problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnclassifier.cli import main
from rnclassifier.errors import InputError
from rnclassifier.evaluation import evaluate_predictions, read_predictions
from rnclassifier.stats.discrimination import auc, delong_interval
from rnclassifier.synthetic.presets import SEED
from rnclassifier.synthetic.sampler import sample_lesions


@pytest.fixture(scope="module")
def predictions(tmp_path_factory) -> Path:
    frame = sample_lesions(SEED, n_lesions=160, seed=8)
    rng = np.random.default_rng(1)
    logit = np.log(frame["oracle_p_tumor"] / (1 - frame["oracle_p_tumor"]))
    p = 1 / (1 + np.exp(-(logit + rng.normal(0, 1, len(frame)))))
    table = pd.DataFrame(
        {
            "lesion_id": frame["lesion_id"],
            "patient_id": frame["patient_id"],
            "pathology": frame["pathology"],
            "probability": p.round(5),
            "radiologist_read": frame["radiologist_read"].fillna(""),
            "radiologist_score": frame["radiologist_score"],
        }
    )
    path = tmp_path_factory.mktemp("preds") / "predictions.csv"
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def evaluated(predictions, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "report"
    code = main(
        [
            "evaluate",
            "--predictions",
            str(predictions),
            "--threshold",
            "0.4",
            "--threshold",
            "0.6",
            "--resamples",
            "400",
            "--synthetic",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_metrics_equal_the_statistics_package(predictions, evaluated):
    metrics = json.loads((evaluated / "metrics.json").read_text())
    table = pd.read_csv(predictions)
    y = (table["pathology"] == "tumor").to_numpy()
    p = table["probability"].to_numpy()
    assert metrics["discrimination"]["auc"]["estimate"] == pytest.approx(auc(y, p))
    delong = delong_interval(y, p)
    assert metrics["discrimination"]["auc_delong_lesion_level"]["low"] == pytest.approx(delong.low)
    tp = int(((p >= 0.6) & y).sum())
    called_tumours = int((((p >= 0.6) | (p < 0.4)) & y).sum())
    assert metrics["model_at_threshold"]["sensitivity"]["count"] == [tp, called_tumours]
    undetermined = ((p >= 0.4) & (p < 0.6)).mean()
    assert metrics["model_at_threshold"]["indeterminate_fraction"] == pytest.approx(undetermined)
    readers = metrics["radiologists"]
    read = table["radiologist_read"].notna()
    assert readers["read_fraction"] == pytest.approx(read.mean())
    spec = (table.loc[read & ~y, "radiologist_read"] == "necrosis").mean()
    assert readers["on_read_lesions"]["specificity"]["estimate"] == pytest.approx(spec)
    assert metrics["flow"] == {
        "lesions": 160,
        "technical_failures": 0,
        "scored": 160,
        "read_by_radiologists": int(read.sum()),
    }
    low, high = metrics["discrimination"]["auc"]["low"], metrics["discrimination"]["auc"]["high"]
    assert low < metrics["discrimination"]["auc"]["estimate"] < high


def test_report_is_self_contained(evaluated):
    html = (evaluated / "report.html").read_text()
    assert not re.search(
        r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|<script|<link|@import", html, flags=re.IGNORECASE
    )
    assert html.count("data:image/png;base64,") == 3
    assert "SYNTHETIC DATA" in html
    assert "Intended use" in html
    assert "patient-cluster bootstrap" in html


def test_technical_failures_are_counted_not_dropped(predictions, tmp_path):
    table = pd.read_csv(predictions)
    table.loc[:4, "probability"] = np.nan
    path = tmp_path / "p.csv"
    table.to_csv(path, index=False)
    metrics = evaluate_predictions(read_predictions(path), n_resamples=200)
    assert metrics["flow"]["technical_failures"] == 5
    assert metrics["model_at_threshold"]["indeterminate_fraction"] == pytest.approx(5 / 160)


def test_scores_that_are_not_probabilities(predictions, tmp_path):
    table = pd.read_csv(predictions)
    table["probability"] = np.log(table["probability"] / (1 - table["probability"]))
    path = tmp_path / "p.csv"
    table.to_csv(path, index=False)
    metrics = evaluate_predictions(read_predictions(path), (0.0,), n_resamples=200)
    assert "calibration" not in metrics
    assert any("not probabilities" in note for note in metrics["notes"])


def bad(predictions: Path, tmp_path: Path, change) -> list[str]:
    table = pd.read_csv(predictions, dtype=str, keep_default_na=False)
    change(table)
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    with pytest.raises(InputError) as caught:
        read_predictions(path)
    return caught.value.problems


def test_bad_inputs_name_row_and_column(predictions, tmp_path):
    def change(table):
        table.loc[0, "pathology"] = "maybe"
        table.loc[1, "probability"] = "high"
        table.loc[2, "patient_id"] = ""
        table.loc[3, "radiologist_read"] = "unsure"

    problems = bad(predictions, tmp_path, change)
    assert problems == [
        f"{tmp_path / 'bad.csv'}: row 2, column pathology: 'maybe' is not tumor / necrosis / 1 / 0",
        f"{tmp_path / 'bad.csv'}: row 3, column probability: 'high' is not a number",
        f"{tmp_path / 'bad.csv'}: row 4, column patient_id: empty",
        f"{tmp_path / 'bad.csv'}: row 5, column radiologist_read: 'unsure' is not tumor / "
        "necrosis / blank",
    ]


def test_missing_column_and_one_class(predictions, tmp_path):
    assert bad(predictions, tmp_path, lambda t: t.pop("patient_id")) == [
        f"{tmp_path / 'bad.csv'}: missing column 'patient_id'"
    ]

    def tumours_only(table):
        table["pathology"] = "tumor"

    (problem,) = bad(predictions, tmp_path, tumours_only)
    assert "needs both tumour and necrosis lesions" in problem


def test_cli_bad_input_exits_2_and_writes_nothing(predictions, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["evaluate", "--predictions", str(predictions), "--score", "p", "--out", str(out)])
    assert code == 2
    assert "missing column 'p'" in capsys.readouterr().err
    assert not out.exists()
    code = main(
        [
            "evaluate",
            "--predictions",
            str(predictions),
            "--threshold",
            "0.7",
            "--threshold",
            "0.3",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert not out.exists()


def test_compare_two_models(predictions, tmp_path):
    table = pd.read_csv(predictions)
    rng = np.random.default_rng(4)
    table["coin"] = rng.random(len(table))
    path = tmp_path / "p.csv"
    table.to_csv(path, index=False)
    metrics = evaluate_predictions(read_predictions(path, compare="coin"), n_resamples=400)
    versus = metrics["discrimination"]["versus"]
    y = (table["pathology"] == "tumor").to_numpy()
    assert versus["bootstrap"]["auc_b"] == pytest.approx(auc(y, table["coin"].to_numpy()))
    assert versus["bootstrap"]["difference"]["low"] > 0
    assert versus["bootstrap"]["p_value"] <= 1 / 400 + 1e-12
    assert versus["delong_lesion_level"]["p_value"] < 0.001
