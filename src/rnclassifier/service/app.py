"""The routes of `rnclassifier serve` (FastAPI), around one warm bundle.

- `GET /health`: liveness, without the token.
- `GET /v1/model`: the bundle's description (`describe`).
- `POST /v1/score`: a multipart form (`uploads`) → the JSON `score --out result.json` writes,
  plus a `service` block with the URLs of the case report and, on request, DICOM results.
- `GET /v1/results/{id}/{file}`: those files, kept in memory for `ResultStore.ttl_seconds`.
- `GET /`: the page with the form; `POST /login`: the token as a cookie, for the page.

Every refusal is `{"error": "...", "problems": [...]}` with HTTP 4xx, in the command line's
words; no answer or log line holds a path, a client's file name or an identifier.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from rnclassifier.errors import InputError
from rnclassifier.service.describe import describe
from rnclassifier.service.uploads import (
    Limits,
    TooLargeError,
    private_folder,
    receive_form,
    remove_folder,
    score_request,
    unpack_zips,
)
from rnclassifier.service.worker import ScoringPool

logger = logging.getLogger("rnclassifier.service")

COOKIE = "rnclassifier_token"
OPEN_ROUTES = ("/health",)
#: Media types of the files a result keeps.
MEDIA = {".html": "text/html; charset=utf-8", ".dcm": "application/dicom"}


@dataclass(frozen=True)
class PendingReport:
    """A case report not rendered yet: what `render_case_html` needs."""

    result: dict[str, Any]
    planes: dict[str, Any]


@dataclass
class ResultStore:
    """Reports and DICOM results of recent answers, in memory: each for `ttl_seconds`, the
    oldest dropped beyond `max_results`. Nothing is written to disk. A case report is kept as
    what it is made from (the result and a few image planes) until someone asks for it."""

    ttl_seconds: float = 3600.0
    max_results: int = 200
    _items: OrderedDict[str, tuple[float, dict[str, Any]]] = field(default_factory=OrderedDict)

    def keep(self, files: dict[str, Any]) -> str:
        self._expire()
        key = secrets.token_urlsafe(18)
        self._items[key] = (time.monotonic() + self.ttl_seconds, dict(files))
        while len(self._items) > self.max_results:
            self._items.popitem(last=False)
        return key

    def get(self, key: str, name: str) -> Any:
        self._expire()
        item = self._items.get(key)
        return None if item is None else item[1].get(name)

    def replace(self, key: str, name: str, content: bytes) -> None:
        item = self._items.get(key)
        if item is not None:
            item[1][name] = content

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, (until, _) in self._items.items() if until < now]:
            del self._items[key]


@dataclass
class Settings:
    bundle_dir: Path
    workers: int = 2
    token: str | None = None
    limits: Limits = field(default_factory=Limits)
    upload_parent: Path | None = None
    store: ResultStore = field(default_factory=ResultStore)


def create_app(settings: Settings) -> FastAPI:
    """The service for one bundle; its scoring processes start (and load the bundle) when the
    app starts, and stop with it."""
    from rnclassifier.bundle import load_bundle

    bundle = load_bundle(settings.bundle_dir)  # refused here, before any port is opened
    description = describe(bundle)
    pool: dict[str, ScoringPool] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool["scoring"] = ScoringPool(settings.bundle_dir, settings.workers)
        pool["scoring"].warm()
        yield
        pool["scoring"].close()

    app = FastAPI(
        title="rnclassifier",
        version=description["rnclassifier_version"],
        summary="Tumour progression vs radiation necrosis: score a follow-up MRI (research use).",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads from a CDN; a hospital network may have none
        redoc_url=None,
        openapi_url=None,  # served below, behind the token like every other route
    )

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if settings.token is None or path in OPEN_ROUTES or path == "/login":
            return await call_next(request)
        if _authorised(request, settings.token):
            return await call_next(request)
        if path == "/":
            return HTMLResponse(_page(description, login=True), status_code=401)
        return _error(["a bearer token is required (Authorization: Bearer <token>)"], 401)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": description["name"], "workers": settings.workers}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return description

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.post("/v1/score", openapi_extra=_SCORE_FORM)
    async def score(request: Request) -> Response:
        return await _score(request, settings, pool["scoring"])

    @app.get("/v1/results/{key}/{name}")
    async def result_file(key: str, name: str) -> Response:
        return await _result_file(settings.store, pool["scoring"], key, name)

    _page_routes(app, settings, description)
    app.state.bundle = bundle
    return app


def _page_routes(app: FastAPI, settings: Settings, description: dict[str, Any]) -> None:
    """`GET /`, and `POST /login`, which keeps the token in a cookie for the page's requests."""

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return _page(description, login=False)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", ""))
        if settings.token is None or not hmac.compare_digest(token, settings.token):
            return HTMLResponse(_page(description, login=True, failed=True), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response


async def _result_file(store: ResultStore, pool: ScoringPool, key: str, name: str) -> Response:
    """A kept file of an answer; a case report is rendered the first time it is asked for."""
    content = store.get(key, name)
    if isinstance(content, PendingReport):
        content = await pool.render_report(content.result, content.planes)
        store.replace(key, name, content)
    if content is None:
        minutes = store.ttl_seconds / 60
        return _error([f"no result {name!r} here: results are kept for {minutes:.0f} minutes"], 404)
    media = MEDIA.get(Path(name).suffix, "application/octet-stream")
    headers = (
        {}
        if media.startswith("text/html")
        else {"Content-Disposition": f'attachment; filename="{name}"'}
    )
    return Response(content, media_type=media, headers=headers)


async def _score(request: Request, settings: Settings, pool: ScoringPool) -> Response:
    folder = private_folder(settings.upload_parent)
    try:
        try:
            texts, files = await receive_form(
                request.stream(), request.headers.get("content-type", ""), folder, settings.limits
            )
            case_request = score_request(texts, unpack_zips(files, settings.limits), folder)
        except TooLargeError as error:
            return _error([str(p) for p in error.details], 413)
        except InputError as error:
            return _error([str(p) for p in error.details], 400)
        try:
            answer = await pool.score(
                case_request.case,
                prevalence=case_request.prevalence,
                allow_imputation=case_request.allow_imputation,
                dicom_folder=folder / "dicom-results" if case_request.dicom_results else None,
            )
        except BrokenProcessPool:
            logger.error("a scoring process stopped during a request; the pool was restarted")
            return _error(["internal error: the scoring process stopped; try again"], 500)
        if answer.problems:
            return _error([_without_folder(p, folder) for p in answer.problems], 400)
        assert answer.result is not None
        assert answer.planes is not None
        report = PendingReport(answer.result, answer.planes)
        key = settings.store.keep({"report.html": report, **answer.dicom})
        result = dict(answer.result)
        result["service"] = {
            "case_report_url": f"/v1/results/{key}/report.html",
            "dicom_results": [f"/v1/results/{key}/{name}" for name in answer.dicom],
            "kept_for_seconds": settings.store.ttl_seconds,
        }
        return JSONResponse(result)
    finally:
        remove_folder(folder)


def _authorised(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        given = request.cookies.get(COOKIE, "")
    return bool(given) and hmac.compare_digest(given.strip(), token)


def _error(problems: list[str], status: int) -> JSONResponse:
    return JSONResponse({"error": "\n".join(problems), "problems": problems}, status_code=status)


def _without_folder(problem: str, folder: Path) -> str:
    """A problem about an upload names the form's file (`t1c.nii.gz`), not where it is."""
    for prefix in (f"{folder.resolve()}/", f"{folder}/", str(folder.resolve()), str(folder)):
        problem = problem.replace(prefix, "")
    return problem


def _page(description: dict[str, Any], *, login: bool, failed: bool = False) -> str:
    from rnclassifier.service.page import render_page

    return render_page(description, login=login, failed=failed)


def _file_part(what: str) -> dict[str, Any]:
    return {"type": "string", "format": "binary", "description": what}


#: `POST /v1/score`'s form in the OpenAPI description (the route reads the stream itself).
_SCORE_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["t1c", "mask"],
                    "properties": {
                        "t1c": _file_part(
                            "Post-contrast T1: .nii.gz, .nrrd, .mha, .dcm, or a "
                            ".zip of a DICOM series (or study, with t1c_series)"
                        ),
                        "flair": _file_part("FLAIR, as t1c"),
                        "mask": _file_part("Lesion mask: label image, DICOM SEG or RTSTRUCT"),
                        "t1c_prior": _file_part("t1c of the earlier scan"),
                        "flair_prior": _file_part("flair of the earlier scan"),
                        "mask_prior": _file_part("Lesion mask of the earlier scan"),
                        "brain_mask": _file_part("Brain mask on the t1c grid"),
                        "clinical": {
                            "type": "string",
                            "description": 'JSON object, e.g. {"histology": "NSCLC"}',
                        },
                        "roi_name": {"type": "string"},
                        "mask_label": {"type": "integer"},
                        "months_between_scans": {"type": "number"},
                        "site": {"type": "string"},
                        "prevalence": {"type": "number"},
                        "allow_imputation": {"type": "boolean"},
                        "dicom_results": {
                            "type": "boolean",
                            "description": "DICOM SEG and SR of the result",
                        },
                    },
                }
            }
        },
    }
}
