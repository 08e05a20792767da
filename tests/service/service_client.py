"""Helpers of the service's tests: the shared bundle's lesions as uploads, and a client."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from rnclassifier.cohort import CLINICAL_COLUMNS

TOKEN = "test-token-0123456789abcdef"
#: A client file name that must never reach an answer, a report or the log.
CLIENT_NAME = "SMITH_JOHN_MRN0042_t1c.nii.gz"


def row_files(trained: dict, i: int) -> dict[str, Path]:
    row = trained["manifest"].iloc[i]
    base = trained["folder"] / "cohort"
    return {k: base / row[k] for k in ("t1c", "flair", "mask", "brain_mask")}


def row_clinical(trained: dict, i: int) -> dict[str, str]:
    row = trained["manifest"].iloc[i]
    return {k: row[k] for k in CLINICAL_COLUMNS if isinstance(row[k], str)}


def post_case(
    service: dict,
    files: dict[str, Path],
    clinical: dict[str, str],
    *,
    names: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
    token: str | None = TOKEN,
    timeout: float = 300,
) -> httpx.Response:
    names = names or {}
    upload = {k: (names.get(k, p.name), p.read_bytes()) for k, p in files.items()}
    data = {"clinical": json.dumps(clinical), **(fields or {})}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(
        f"{service['url']}/v1/score", files=upload, data=data, headers=headers, timeout=timeout
    )
