"""`rnclassifier serve` as a REST client meets it: one running service (conftest), the same
answer as `score --out result.json` to the last bit, the command line's refusals in the same
words, the token, the upload limit, 20 concurrent requests none mixed up, and nothing left on
disk or in the log that names a file or a patient."""

from __future__ import annotations

import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from rnclassifier.bundle import load_bundle
from rnclassifier.cli import main

from .service_client import CLIENT_NAME, TOKEN, post_case, row_clinical, row_files

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def cli_score(trained: dict, files: dict[str, Path], clinical: dict[str, str], tmp: Path,
              extra: tuple[str, ...] = ()) -> tuple[int, dict | None, list[str]]:  # fmt: skip
    """`rnclassifier score` on the same inputs: exit status, result.json, error lines."""
    import contextlib
    import io

    out = tmp / "result.json"
    args = ["score", "--model", str(trained["bundle"]), "--out", str(out)]
    for name, path in files.items():
        args += [f"--{name.replace('_', '-')}", str(path)]
    for key, value in clinical.items():
        args += ["--clinical", f"{key}={value}"]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = main([*args, *extra])
    lines = [
        line.removeprefix("error: ")
        for line in stderr.getvalue().splitlines()
        if line.startswith("error: ")
    ]
    return status, json.loads(out.read_text()) if status == 0 else None, lines


def without_service(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "service"}


def test_health_is_open_and_everything_else_needs_the_token(service):
    health = httpx.get(f"{service['url']}/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    for path in ("/v1/model", "/openapi.json", "/v1/results/x/report.html"):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            answer = httpx.get(f"{service['url']}{path}", headers=headers)
            assert answer.status_code == 401, path
            assert "bearer token is required" in answer.json()["error"]
    page = httpx.get(f"{service['url']}/")
    assert page.status_code == 401
    assert 'name="token"' in page.text
    assert 'id="case"' not in page.text  # the form only after signing in
    login = httpx.post(f"{service['url']}/login", data={"token": TOKEN}, follow_redirects=False)
    assert login.status_code == 303
    cookie = login.cookies.get("rnclassifier_token")
    assert cookie == TOKEN
    assert "httponly" in login.headers["set-cookie"].lower()
    assert "samesite=strict" in login.headers["set-cookie"].lower()
    page = httpx.get(f"{service['url']}/", cookies={"rnclassifier_token": cookie})
    assert page.status_code == 200
    assert 'id="case"' in page.text
    refused = httpx.post(f"{service['url']}/login", data={"token": "guess"})
    assert refused.status_code == 401


def test_the_model_description_lists_what_a_case_needs(service, trained):
    bundle = load_bundle(trained["bundle"])
    described = httpx.get(f"{service['url']}/v1/model", headers=AUTH).json()
    assert described["name"] == bundle.meta.name
    assert described["manifest_sha256"] == bundle.manifest_sha256
    assert described["synthetic"] is True
    needs = bundle.requirements
    assert [c["name"] for c in described["inputs"]["clinical"]] == list(needs.covariates)
    assert described["inputs"]["files"]["required"][: len(needs.sequences)] == list(needs.sequences)
    for covariate in described["inputs"]["clinical"]:
        if covariate["name"] == "histology":
            assert "nsclc" in covariate["allowed"]
    assert described["threshold"]["value"] == bundle.threshold
    assert "Research use only" in described["intended_use"]
    schema = httpx.get(f"{service['url']}/openapi.json", headers=AUTH).json()
    form = schema["paths"]["/v1/score"]["post"]["requestBody"]["content"]
    assert form["multipart/form-data"]["schema"]["required"] == ["t1c", "mask"]


def test_a_case_gets_the_command_lines_answer_to_the_last_bit(service, trained, tmp_path):
    files, clinical = row_files(trained, 3), row_clinical(trained, 3)
    status, expected, _ = cli_score(trained, files, clinical, tmp_path)
    assert status == 0
    answer = post_case(service, files, clinical, names={"t1c": CLIENT_NAME})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert without_service(body) == expected  # floats compared exactly
    assert body["probability"] == expected["probability"]
    report = httpx.get(f"{service['url']}{body['service']['case_report_url']}", headers=AUTH)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert f"{expected['probability']:.2f}" in report.text
    assert body["service"]["kept_for_seconds"] == 3600
    assert body["service"]["dicom_results"] == []
    # No client file name, upload path or identifier in the answer or the report.
    for text in (answer.text, report.text):
        assert "SMITH" not in text
        assert "MRN0042" not in text
        assert str(service["uploads"]) not in text
        assert "rnclassifier-upload" not in text
    # The upload folder is gone once answered.
    assert list(service["uploads"].iterdir()) == []


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "t1c.nii.gz"
    path.write_bytes(b"this is not an image")
    return path


@pytest.mark.parametrize(
    "change",
    ["missing covariate", "unknown and invalid covariates", "unreadable image", "no mask"],
)
def test_refusals_are_the_command_lines_in_json(service, trained, tmp_path, change):
    files, clinical = row_files(trained, 5), row_clinical(trained, 5)
    if change == "missing covariate":
        clinical.pop(next(iter(load_bundle(trained["bundle"]).requirements.covariates)))
    elif change == "unknown and invalid covariates":
        clinical |= {"eye_colour": "blue", "histology": "glioma"}
    elif change == "unreadable image":
        files["t1c"] = _garbage(tmp_path)
    else:
        files.pop("mask")
    status, _, lines = cli_score(trained, files, clinical, tmp_path)
    assert status == 2
    assert lines
    answer = post_case(service, files, clinical)
    assert answer.status_code == 400
    problems = answer.json()["problems"]
    # The command line names the file it was given; the service names its own upload.
    expected = [line.replace(f"{tmp_path}/", "").replace(f"{files['t1c'].parent}/", "")
                for line in lines]  # fmt: skip
    if change == "unreadable image":
        assert problems == ["t1c.nii.gz: not an image SimpleITK can read (NIfTI, NRRD, MHA, ...)"]
        assert any(line.endswith(problems[0]) for line in lines)
    else:
        assert problems == expected
    assert answer.json()["error"] == "\n".join(problems)
    assert list(service["uploads"].iterdir()) == []


def test_a_request_over_the_limit_is_413_and_the_service_goes_on(service, tmp_path):
    big = tmp_path / "big.nii.gz"
    big.write_bytes(b"\0" * (65 * 1024**2))
    answer = httpx.post(
        f"{service['url']}/v1/score",
        files={"t1c": ("t1c.nii.gz", big.read_bytes())},
        headers=AUTH,
        timeout=120,
    )
    assert answer.status_code == 413
    assert "larger than the service's limit of 64 MiB" in answer.json()["error"]
    assert httpx.get(f"{service['url']}/health").status_code == 200
    assert list(service["uploads"].iterdir()) == []


def test_twenty_concurrent_requests_are_all_answered_none_mixed_up(service, trained):
    rows = [0, 1, 2, 4, 6]
    single = {}
    for i in rows:  # each case alone first
        answer = post_case(service, row_files(trained, i), row_clinical(trained, i))
        assert answer.status_code == 200, answer.text
        single[i] = without_service(answer.json())
    assert len({single[i]["probability"] for i in rows}) == len(rows)
    order = rows * 4
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(
                lambda i: post_case(service, row_files(trained, i), row_clinical(trained, i)),
                order,
            )
        )
    assert [a.status_code for a in answers] == [200] * 20
    for i, answer in zip(order, answers, strict=True):
        assert without_service(answer.json()) == single[i]
    assert len({a.json()["service"]["case_report_url"] for a in answers}) == 20
    assert httpx.get(f"{service['url']}/health").json()["status"] == "ok"
    assert service["process"].poll() is None
    assert list(service["uploads"].iterdir()) == []


def test_a_zipped_dicom_series_gets_dicom_results_for_pacs(service, trained, tmp_path):
    """The T1c as a zipped DICOM series (folder inside, as an archiver writes it): the same
    answer as the command line on that folder, and a SEG and an SR that read back."""
    import sys
    import zipfile

    import numpy as np
    import pydicom
    import SimpleITK as sitk

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "imaging"))
    from dicom_factory import grid_of, write_mr_series

    files, clinical = row_files(trained, 3), row_clinical(trained, 3)
    image = sitk.ReadImage(str(files["t1c"]))
    grid = grid_of(image)
    volume = np.round(sitk.GetArrayFromImage(image) * 100).astype(np.int16)
    series = write_mr_series(tmp_path / "T1 POST", volume, grid)
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in series.files:
            zipped.write(path, f"T1 POST/{path.name}")
    status, expected, _ = cli_score(trained, {**files, "t1c": series.folder}, clinical, tmp_path)
    assert status == 0
    answer = post_case(
        service, {**files, "t1c": archive}, clinical, fields={"dicom_results": "true"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert without_service(body) == expected
    urls = body["service"]["dicom_results"]
    assert [u.rsplit("/", 1)[1] for u in urls] == ["lesion_seg.dcm", "result_sr.dcm"]
    seg, sr = (
        pydicom.dcmread(io.BytesIO(httpx.get(f"{service['url']}{u}", headers=AUTH).content))
        for u in urls
    )
    assert seg.Modality == "SEG"
    assert sr.Modality == "SR"
    source_series = series.datasets()[0].SeriesInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source_series
    assert round(body["probability"], 6) in _numeric_values(sr)
    assert list(service["uploads"].iterdir()) == []


def _numeric_values(ds) -> list[float]:
    values = []
    for item in getattr(ds, "ContentSequence", []):
        if item.ValueType == "NUM":
            values.append(float(item.MeasuredValueSequence[0].NumericValue))
        values += _numeric_values(item)
    return values


def test_the_log_names_no_file_and_no_upload_folder(service):
    """Run last in this module: by now the log holds every request above."""
    log = service["log"].read_text()
    assert re.search(r"POST /v1/score HTTP/1.1\" 200", log)
    assert "SMITH" not in log
    assert "rnclassifier-upload" not in log
    assert str(service["uploads"]) not in log
