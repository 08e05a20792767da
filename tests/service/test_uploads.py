"""The service's form handling without a server: a multipart body streamed to disk under the
service's own names, zips unpacked safely, and each bad field refused in the command line's
words."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import zipfile
from pathlib import Path

import pytest

from rnclassifier.errors import InputError
from rnclassifier.service.uploads import (
    Limits,
    TooLargeError,
    clinical_flags,
    private_folder,
    receive_form,
    score_request,
    unpack_zips,
)

BOUNDARY = "----rnclassifier-test-boundary"


def multipart(texts: dict[str, str], files: dict[str, tuple[str, bytes]]) -> bytes:
    """A multipart/form-data body as a browser writes it."""
    parts = []
    for name, value in texts.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for name, (file_name, content) in files.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{file_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def receive(body: bytes, folder: Path, limits: Limits | None = None, chunk: int = 7):
    async def chunks():
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return asyncio.run(receive_form(chunks(), content_type, folder, limits or Limits()))


def test_uploads_are_stored_under_the_fields_names_in_a_private_folder(tmp_path):
    folder = private_folder(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    body = multipart(
        {"roi_name": "GTV 1", "clinical": '{"histology": "nsclc"}'},
        {
            "t1c": ("Smith^John T1 post.NII.GZ", b"\x1f\x8b t1c bytes " * 1000),
            "mask": ("RS.1.2.3.dcm", b"mask bytes"),
        },
    )
    texts, files = receive(body, folder)
    assert texts == {"roi_name": "GTV 1", "clinical": '{"histology": "nsclc"}'}
    assert files == {"t1c": folder / "t1c.nii.gz", "mask": folder / "mask.dcm"}
    assert files["t1c"].read_bytes() == b"\x1f\x8b t1c bytes " * 1000
    assert files["mask"].read_bytes() == b"mask bytes"
    # The client's file names are nowhere on disk.
    assert sorted(p.name for p in folder.iterdir()) == ["mask.dcm", "t1c.nii.gz"]


def test_a_request_over_the_limit_stops_while_it_streams(tmp_path):
    body = multipart({}, {"t1c": ("t1c.nii.gz", b"x" * 5000)})
    with pytest.raises(TooLargeError, match="larger than the service's limit"):
        receive(body, tmp_path, Limits(request_bytes=4000), chunk=1000)


def test_bad_file_fields_are_each_one_problem(tmp_path):
    body = multipart(
        {"t1c": "not a file"},
        {
            "flair": ("flair.jpg", b"jpeg"),
            "mask": ("mask.nii.gz", b""),
            "scan": ("scan.nii.gz", b"abc"),
        },
    )
    with pytest.raises(InputError) as caught:
        receive(body, tmp_path)
    problems = [str(p) for p in caught.value.details]
    assert problems[0].startswith("flair: the file name must end with one of .seg.nrrd, .nii.gz")
    assert "mask: the uploaded file is empty" in problems
    assert any(p.startswith("scan: not a field of this form") for p in problems)
    with pytest.raises(InputError, match="not a well-formed multipart"):
        receive(b"--" + BOUNDARY.encode() + b"\r\ngarbage", tmp_path)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_a_zipped_series_folder_is_that_folder(tmp_path):
    upload = tmp_path / "t1c.zip"
    upload.write_bytes(
        _zip(
            {
                "export/MR T1 post/IM0001.dcm": b"a",
                "export/MR T1 post/IM0002.dcm": b"b",
                "__MACOSX/export/._IM0001.dcm": b"fork",
            }
        )
    )
    folder = unpack_zips({"t1c": upload}, Limits())["t1c"]
    assert folder == tmp_path / "t1c" / "export" / "MR T1 post"
    assert sorted(p.name for p in folder.iterdir()) == ["IM0001.dcm", "IM0002.dcm"]
    assert not upload.exists()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"../../etc/evil.dcm": b"x"}, "a path outside its own folder"),
        ({"/abs/evil.dcm": b"x"}, "a path outside its own folder"),
        ({"a/IM1.dcm": b"x", "b/IM1.dcm": b"y"}, "in several folders"),
        ({"big.dcm": b"\0" * 10_000}, "unpacks to more than the service's limit"),
    ],
)
def test_unsafe_or_ambiguous_zips_are_refused(tmp_path, entries, message):
    upload = tmp_path / "t1c.zip"
    upload.write_bytes(_zip(entries))
    with pytest.raises(InputError, match=message):
        unpack_zips({"t1c": upload}, Limits(unzipped_bytes=5_000))
    assert not (tmp_path.parent / "etc").exists()


def test_not_a_zip(tmp_path):
    upload = tmp_path / "t1c.zip"
    upload.write_bytes(b"PK not really")
    with pytest.raises(InputError, match="t1c: not a zip archive that can be read"):
        unpack_zips({"t1c": upload}, Limits())


def test_clinical_json_becomes_the_command_lines_facts():
    assert clinical_flags("") == []
    text = json.dumps({"histology": "nsclc", "srs_dose_gy": 24, "steroids": True, "sex": None})
    assert clinical_flags(text) == ["histology=nsclc", "srs_dose_gy=24", "steroids=1", "sex="]
    with pytest.raises(InputError, match=r"clinical: not valid JSON \(Expecting"):
        clinical_flags("{histology: nsclc}")
    with pytest.raises(InputError, match="expected a JSON object"):
        clinical_flags('["nsclc"]')
    with pytest.raises(InputError, match="--clinical histology: expected a text or a number"):
        clinical_flags('{"histology": ["nsclc"]}')


def test_the_form_becomes_the_same_case_as_the_flags(tmp_path):
    files = {"t1c": tmp_path / "t1c.nii.gz", "mask": tmp_path / "mask.dcm"}
    texts = {
        "clinical": '{"histology": "breast", "months_since_srs": 7.5}',
        "roi_name": " GTV ",
        "months_between_scans": "3",
        "prevalence": "0.4",
        "allow_imputation": "true",
        "dicom_results": "",
        "t1c_series": "T1 POST",
    }
    request = score_request(texts, files, tmp_path)
    case = request.case
    assert case.images == {"t1c": str(files["t1c"])}
    assert case.mask == str(files["mask"])
    assert case.roi_name == "GTV"
    assert case.months_between_scans == 3.0
    assert case.clinical == {"histology": "breast", "months_since_srs": "7.5"}
    assert case.series == {"t1c": "T1 POST"}
    assert (request.prevalence, request.allow_imputation, request.dicom_results) == (
        0.4,
        True,
        False,
    )


def test_bad_text_fields_are_refused_together(tmp_path):
    texts = {
        "months_between_scans": "three",
        "mask_label": "1.5",
        "allow_imputation": "maybe",
        "colour": "red",
    }
    with pytest.raises(InputError) as caught:
        score_request(texts, {}, tmp_path)
    problems = [str(p) for p in caught.value.details]
    assert problems == [
        "colour: not a field of this form (files: t1c, t1, t2, flair, adc, dwi, swi, rcbv, "
        "t1c_prior, t1_prior, t2_prior, flair_prior, adc_prior, dwi_prior, swi_prior, "
        "rcbv_prior, mask, mask_prior, brain_mask)",
        "--months-between-scans: 'three' is not a number",
        "--mask-label: '1.5' is not a whole number",
        "allow_imputation: expected true or false, not 'maybe'",
    ]
    # Without t1c and mask: the command line's own problems.
    with pytest.raises(InputError) as caught:
        score_request({}, {}, tmp_path)
    assert [str(p) for p in caught.value.details] == [
        "--t1c: required to score one lesion",
        "--mask: required to score one lesion",
    ]
