"""The emulator's HTTP surface: Upstage's OCR endpoints, signed downloads and admin routes.

Cross-cutting behaviour (bearer auth, the request-body cap, injected faults and latency,
counting and the one-line access log) sits in one ASGI middleware in front of every route, so
each route only does its own work and a fault never depends on which handler it hits.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from upstage_provider.emulator.config import EmulatorConfig, FaultConfig
from upstage_provider.emulator.engine import (
    EnginePage,
    OCREngine,
    UnreadableDocumentError,
    UnsupportedFormatError,
)
from upstage_provider.emulator.errors import ApiError, error_response
from upstage_provider.emulator.faults import BodyFault, FaultInjector
from upstage_provider.emulator.jobs import JobManager
from upstage_provider.emulator.limits import MAX_BODY_BYTES, check_page_count, check_pages, check_upload
from upstage_provider.emulator.ratelimit import RateLimiter, billed_pages
from upstage_provider.emulator.responses import SCHEMAS, build_ocr_response, build_schema_response
from upstage_provider.emulator.signing import SignatureError, URLSigner

log = logging.getLogger("upstage_provider.emulator")

SYNC_PATH = "/v1/document-digitization"
ASYNC_PATH = "/v1/document-digitization/async"
REQUESTS_PATH = "/v1/document-digitization/requests"
RESULTS_PATH = "/v1/document-digitization/results"
ADMIN_PATH = "/_emulator"
#: Pinned model names accepted besides the ``ocr`` alias and the configured ``model_version``.
PINNED_MODELS = ("ocr-250904", "ocr-260930", "ocr-2.2.1")


def classify(method: str, path: str) -> str:
    """The endpoint name a request counts under (and that fault configs name)."""
    path = path.rstrip("/") or "/"
    if path == SYNC_PATH and method == "POST":
        return "sync"
    if path == ASYNC_PATH and method == "POST":
        return "submit"
    if path == REQUESTS_PATH and method == "GET":
        return "list"
    if path.startswith(REQUESTS_PATH + "/") and method == "GET":
        return "status"
    if path.startswith(RESULTS_PATH + "/") and method == "GET":
        return "download"
    if path.startswith(ADMIN_PATH + "/"):
        return "admin"
    return "other"


class Stats:
    """Counters for tests and benchmarks: calls per endpoint and status, submissions, pages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._endpoints: dict[str, dict[str, Any]] = {}
            self._submissions = 0
            self._pages = 0
            self._injected: dict[str, int] = {}
            self._rate_limited: dict[str, int] = {}
            self._started = time.time()

    def record(self, endpoint: str, status: int) -> None:
        with self._lock:
            entry = self._endpoints.setdefault(endpoint, {"total": 0, "by_status": {}})
            entry["total"] += 1
            entry["by_status"][str(status)] = entry["by_status"].get(str(status), 0) + 1

    def injected(self, kind: str) -> None:
        """One fault injected: ``429``, ``5xx``, ``reset`` or ``stall``."""
        with self._lock:
            self._injected[kind] = self._injected.get(kind, 0) + 1

    def rate_limited(self, scope: str) -> None:
        """One call answered 429 by a rate limit (``rps``, ``rpm`` or ``ppm``), not by a fault."""
        with self._lock:
            self._rate_limited[scope] = self._rate_limited.get(scope, 0) + 1

    def submitted(self) -> None:
        with self._lock:
            self._submissions += 1

    def pages(self, count: int) -> None:
        with self._lock:
            self._pages += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "endpoints": {
                    name: {"total": entry["total"], "by_status": dict(entry["by_status"])}
                    for name, entry in self._endpoints.items()
                },
                "submissions": self._submissions,
                "pages_processed": self._pages,
                "injected": dict(self._injected),
                "rate_limited": dict(self._rate_limited),
                "since": self._started,
            }


class EmulatorState:
    """Everything one emulator instance owns; the in-process helpers of the server use it too."""

    def __init__(self, config: EmulatorConfig, engine: OCREngine) -> None:
        self.config = config
        self.engine = engine
        self.stats = Stats()
        self.faults = FaultInjector(config.faults)
        self.signer = URLSigner()
        self.jobs = JobManager(engine, config, on_pages=self.stats.pages)
        self.limiter = RateLimiter(config.rate_limit_rps, config.rate_limit_rpm, config.rate_limit_ppm)
        self._closed = False

    def models(self) -> dict[str, str]:
        """Accepted ``model`` values and the model version each one runs."""
        accepted = {"ocr": self.config.model_version, self.config.model_version: self.config.model_version}
        accepted.update({name: name for name in PINNED_MODELS})
        return accepted

    def snapshot(self) -> dict[str, Any]:
        data = self.stats.snapshot()
        data["requests"] = self.jobs.counts()
        data["faults"] = self.faults.config.to_dict()
        data["rate_limits"] = self.limiter.to_dict()
        data["engine"] = getattr(self.engine, "name", type(self.engine).__name__)
        return data

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults.replace(faults)
        log.info("faults replaced: %s", faults.to_dict())

    def reset(self, *, requests: bool = False) -> None:
        self.stats.reset()
        self.faults.reseed()
        self.limiter.reset()
        if requests:
            self.jobs.clear()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.jobs.close()


# --- the middleware ------------------------------------------------------------------------------


class _BodyTooLarge(ApiError):
    def __init__(self) -> None:
        super().__init__(
            413,
            f"Request body is over the limit of {MAX_BODY_BYTES:,} bytes (a 50 MB document plus the form)",
            code="file_too_large",
            param="document",
        )


class EmulatorMiddleware:
    """Auth, body cap, faults, latency, stats and the access log, in that order."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        endpoint = classify(method, path)
        status = 500
        response_started = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                # Counted before the client can see the answer, so a test that just got its
                # response always finds it in the stats.
                self.state.stats.record(endpoint, status)
            await send(message)

        try:
            early, body_fault = await self._gate(scope, endpoint)
            if early is not None:
                await early(scope, receive, send_and_watch)
            elif body_fault is not None:
                await self.app(
                    scope,
                    _capped(receive, MAX_BODY_BYTES),
                    _spoiled(send_and_watch, body_fault, self.state.stats.injected),
                )
            else:
                await self.app(scope, _capped(receive, MAX_BODY_BYTES), send_and_watch)
        except _ConnectionCut:
            pass  # returning with the body unfinished makes the server drop the connection
        except ApiError as exc:  # the body cap fires inside whatever reads the body
            if response_started:
                raise
            await error_response(exc, self.state.config.error_style)(scope, receive, send_and_watch)
        finally:
            if not response_started:  # an exception on its way to the server's 500 handler
                self.state.stats.record(endpoint, status)
            log.info("%s %s %d %.1f ms", method, path, status, (time.perf_counter() - started) * 1000)

    async def _gate(self, scope: Scope, endpoint: str) -> tuple[Response | None, BodyFault | None]:
        """An answer to send instead of running the route (or None to run it), and a body fault."""
        style = self.state.config.error_style
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if endpoint != "download":
            problem = _auth_problem(headers.get("authorization"), self.state.config.api_key)
            if problem:
                return error_response(
                    ApiError(401, problem, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}),
                    style,
                ), None
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return error_response(_BodyTooLarge(), style), None
        fault, body_fault = self.state.faults.decide(endpoint)
        if fault is not None:
            code = "rate_limit_exceeded" if fault.status == 429 else "server_error"
            self.state.stats.injected("429" if fault.status == 429 else "5xx")
            return error_response(
                ApiError(fault.status, fault.message, code=code, headers=fault.headers), style
            ), None
        delay = self.state.faults.request_latency(endpoint)
        if delay:
            await asyncio.sleep(delay)
        return None, body_fault


def _spoiled(send: Send, fault: BodyFault, count: Callable[[str], None]) -> Send:
    """
    ``send`` that spoils a successful answer's body: half of it, then the connection is closed
    (``reset``: the app returns with the response unfinished, so the server drops the
    connection) or a pause of ``stall_seconds`` before the rest (``stall``).
    Error answers (a 403 for an expired URL, ...) go through untouched.
    """
    spoil = False

    async def spoiled_send(message: Message) -> None:
        nonlocal spoil
        if message["type"] == "http.response.start":
            spoil = message["status"] < 400
            await send(message)
            return
        if not spoil or message["type"] != "http.response.body":
            await send(message)
            return
        spoil = False
        count(fault.kind)
        body = message.get("body", b"")
        half = len(body) // 2
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        if fault.kind == "reset":
            raise _ConnectionCut()
        await asyncio.sleep(fault.stall_seconds)
        await send(
            {"type": "http.response.body", "body": body[half:], "more_body": message.get("more_body", False)}
        )

    return spoiled_send


class _ConnectionCut(Exception):
    """Raised mid-body so the server closes the connection, as a network reset would."""


def _auth_problem(header: str | None, api_key: str | None) -> str | None:
    """Why a request's credentials are refused, or None if they are fine."""
    if not header:
        return "Missing API key: send 'Authorization: Bearer <key>'"
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return "Malformed Authorization header: expected 'Bearer <key>'"
    if api_key is not None and not hmac.compare_digest(token.encode(), api_key.encode()):
        return "Invalid API key"
    return None


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that refuses a body once it grows past ``limit`` (chunked uploads included)."""
    seen = 0

    async def capped_receive() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge()
        return message

    return capped_receive


# --- the routes ----------------------------------------------------------------------------------


def create_app(config: EmulatorConfig, engine: OCREngine) -> FastAPI:
    """A FastAPI app imitating the Upstage OCR API over ``engine``; its jobs stop with its lifespan."""
    state = EmulatorState(config, engine)
    if config.api_key is None:
        log.warning("no API key configured: any non-empty bearer token is accepted")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await run_in_threadpool(state.close)

    app = FastAPI(
        title="Upstage OCR API emulator",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.emulator = state
    app.add_middleware(EmulatorMiddleware, state=state)
    style = config.error_style

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc, style)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = "not_found" if exc.status_code == 404 else None
        return error_response(ApiError(exc.status_code, str(exc.detail), code=code), style)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: Exception) -> Response:
        return error_response(ApiError(400, f"Invalid request: {exc}"), style)

    @app.post(SYNC_PATH)
    async def sync_ocr(request: Request) -> Response:
        form = await _read_form(request)
        model = _model(form, state)
        schema = _schema(form)
        data, filename = await _document(form)
        fmt = check_upload(data, filename)
        counted = await run_in_threadpool(check_pages, data, fmt, filename, sync=True)
        limits = _admit(state, request, counted or 1)
        pages = await run_in_threadpool(_read_all_pages, engine, data, filename, fmt)
        state.stats.pages(len(pages))
        delay = state.faults.config.latency_per_page * len(pages)
        if delay:
            await asyncio.sleep(delay)
        if schema:
            body = build_schema_response(pages, schema)
        else:
            body = build_ocr_response(pages, model_version=model, snake_case=config.snake_case)
        return JSONResponse(body, headers=limits)

    @app.post(ASYNC_PATH)
    async def submit_ocr(request: Request) -> Response:
        form = await _read_form(request)
        model = _model(form, state)
        _schema(form)  # validated like the sync call's, though results are always Upstage-shaped
        data, filename = await _document(form)
        fmt = check_upload(data, filename)
        pages = (
            await run_in_threadpool(billed_pages, data, fmt, filename) if state.limiter.counts_pages else 1
        )
        limits = _admit(state, request, pages)
        request_id = state.jobs.submit(data, filename, fmt, model, state.faults.config)
        state.stats.submitted()
        return JSONResponse({"request_id": request_id}, headers=limits)

    @app.get(REQUESTS_PATH)
    async def list_requests() -> Response:
        return JSONResponse({"requests": state.jobs.list()})

    @app.get(REQUESTS_PATH + "/{request_id}")
    async def request_status(request_id: str, request: Request) -> Response:
        base = str(request.base_url).rstrip("/")

        def download_url(rid: str, batch: int) -> str:
            return f"{base}{RESULTS_PATH}/{rid}/{batch}?{state.signer.query(rid, batch, config.url_ttl)}"

        body = state.jobs.status(request_id, download_url)
        if body is None:
            raise ApiError(
                404, f"Request {request_id} not found", code="request_not_found", param="request_id"
            )
        return JSONResponse(body)

    @app.get(RESULTS_PATH + "/{request_id}/{batch_id}")
    async def download(request_id: str, batch_id: str, request: Request) -> Response:
        query = request.query_params
        try:
            state.signer.verify(request_id, batch_id, query.get("expires"), query.get("signature"))
        except SignatureError as exc:
            code = "expired_url" if exc.expired else "signature_mismatch"
            raise ApiError(403, exc.message, code=code, error_type="access_denied") from None
        result = state.jobs.result(request_id, int(batch_id)) if batch_id.isdigit() else None
        if result is None:
            raise ApiError(404, f"No result for batch {batch_id} of request {request_id}", code="not_found")
        return Response(result, media_type="application/json")

    @app.get(ADMIN_PATH + "/stats")
    async def admin_stats() -> Response:
        return JSONResponse(state.snapshot())

    @app.put(ADMIN_PATH + "/faults")
    async def admin_faults(request: Request) -> Response:
        try:
            payload = await request.json()
            faults = FaultConfig.from_mapping(payload)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ApiError(400, f"Invalid fault config: {exc}", param="faults") from None
        state.set_faults(faults)
        return JSONResponse({"faults": faults.to_dict()})

    @app.post(ADMIN_PATH + "/reset")
    async def admin_reset(requests: bool = False) -> Response:
        state.reset(requests=requests)
        return JSONResponse({"reset": True, "requests_cleared": requests})

    return app


async def _read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(
            400,
            "Send the document as multipart/form-data with a 'document' file and a 'model' field",
            code="invalid_content_type",
            param="document",
        )
    return await request.form(max_files=4, max_fields=16)


def _model(form: FormData, state: EmulatorState) -> str:
    """The model version the request runs under; 400 for a missing or unknown model."""
    model = form.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ApiError(
            400, "The 'model' field is required (e.g. model=ocr)", code="missing_model", param="model"
        )
    accepted = state.models()
    version = accepted.get(model.strip())
    if version is None:
        raise ApiError(
            400,
            f"Unsupported model '{model}'; use one of: {', '.join(sorted(accepted))}",
            code="invalid_model",
            param="model",
        )
    return version


def _schema(form: FormData) -> str | None:
    schema = form.get("schema")
    if schema is None or (isinstance(schema, str) and not schema.strip()):
        return None
    if not isinstance(schema, str) or schema.strip() not in SCHEMAS:
        raise ApiError(
            400,
            f"Unsupported schema {schema!r}; use one of: {', '.join(SCHEMAS)}",
            code="invalid_schema",
            param="schema",
        )
    return schema.strip()


async def _document(form: FormData) -> tuple[bytes, str]:
    upload = form.get("document")
    if upload is None:
        raise ApiError(400, "The 'document' file is required", code="missing_document", param="document")
    if not isinstance(upload, UploadFile):
        raise ApiError(
            400, "'document' must be sent as a file part", code="missing_document", param="document"
        )
    data = await upload.read()
    await upload.close()
    # The name is a hint for format detection and messages only: it never becomes a path.
    return data, upload.filename or "document"


def _unreadable(exc: UnreadableDocumentError) -> ApiError:
    """415 when the engine says the kind of file is wrong, 400 when this file is damaged."""
    if isinstance(exc, UnsupportedFormatError):
        return ApiError(415, str(exc), code="unsupported_document", param="document")
    return ApiError(400, str(exc), code="invalid_document", param="document")


def _admit(state: EmulatorState, request: Request, pages: int) -> dict[str, str]:
    """
    Count a model call against its key's rate limits, once the document is known to be valid;
    the rate-limit headers of the answer, or a 429 that counts nothing.
    """
    header = request.headers.get("authorization", "")
    refusal, headers = state.limiter.admit(header.partition(" ")[2].strip(), pages)
    if refusal is not None:
        state.stats.rate_limited(refusal.scope)
        raise ApiError(429, refusal.message, code="rate_limit_exceeded", headers=headers)
    return headers


def _read_all_pages(engine: OCREngine, data: bytes, filename: str, fmt: Any) -> list[EnginePage]:
    """The whole sync call's OCR (its pages already checked), in a worker thread so the loop stays free."""
    try:
        document = engine.open(data, filename)
    except UnreadableDocumentError as exc:
        raise _unreadable(exc) from None
    try:
        check_page_count(document.page_count, filename, sync=True)
        return [document.page(index) for index in range(document.page_count)]
    except UnreadableDocumentError as exc:
        raise _unreadable(exc) from None
    finally:
        document.close()


def engine_named(name: str, **options: Any) -> OCREngine:
    """The engine a config names; Tesseract is imported only when it is asked for."""
    if name == "synthetic":
        from upstage_provider.emulator.synthetic import SyntheticEngine

        return SyntheticEngine(**options)
    if name == "tesseract":
        from upstage_provider.emulator.engine import TesseractEngine

        engine: OCREngine = TesseractEngine(**options)
        return engine
    raise ValueError(f"unknown engine {name!r}; choose tesseract or synthetic")


__all__ = ["EmulatorState", "classify", "create_app", "engine_named"]
