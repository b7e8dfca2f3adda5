"""Hook for the Upstage OCR API (document digitization): sync OCR, async submit, status, results.

Sync methods use one ``requests.Session`` per hook (workers); ``a...`` methods use ``httpx``
with the connection read asynchronously (triggers). Every call goes through the one retry policy
of ``upstage_provider.retry``: connection errors, timeouts, 429 (``Retry-After`` honoured) and
5xx back off exponentially with jitter (a 429 is waited out within ``rate_limit_budget`` seconds,
spending none of the ``max_retries``); any other 4xx fails at once with the API's own message
(``upstage_provider.api_errors``). Batch downloads are ``hooks.downloads``. The API key is sent
only to the API's host, never to pre-signed download URLs, and never appears in logs or exceptions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload
from urllib.parse import urlsplit

import requests
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter

from upstage_provider.api_errors import connection_error, json_object, status_error
from upstage_provider.api_errors import json_or_none as _json_or_none
from upstage_provider.columnar import OCRBatch, parse_ocr_batch
from upstage_provider.compat import DECLARATIVE_CONNECTION_FORM
from upstage_provider.cost import PRICE_EXTRA, check_price
from upstage_provider.documents import Document, load_document, prepare_document, validate_document
from upstage_provider.exceptions import (
    InvalidConnectionURLError,
    InvalidRequestIdError,
    MalformedResponseError,
    UpstageAuthError,
    UpstageError,
)
from upstage_provider.get_provider_info import (
    DEFAULT_BASE_URL,
    DEFAULT_DOWNLOAD_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RATE_LIMIT_BUDGET,
    DEFAULT_READ_TIMEOUT,
    legacy_connection_form_widgets,
    legacy_ui_field_behaviour,
)
from upstage_provider.hooks import calls
from upstage_provider.hooks.clients import LOOP_CLIENTS, loop_http, user_agent
from upstage_provider.hooks.downloads import MAX_URL_REFRESHES as MAX_URL_REFRESHES  # re-exported
from upstage_provider.hooks.downloads import BatchDownloader
from upstage_provider.hooks.masking import amask, mask
from upstage_provider.models import OCRResult, Page
from upstage_provider.results import ParsedBatch, pages_of, parse_batch, parse_ocr_result, result_of
from upstage_provider.retry import MAX_RETRY_AFTER as MAX_RETRY_AFTER  # re-exported
from upstage_provider.retry import SYSTEM_CLOCK, Clock, RetryPolicy
from upstage_provider.status import RequestInfo
from upstage_provider.wording import plural

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from upstage_provider.parts import PartRequest

_Parsed = TypeVar("_Parsed", OCRResult, OCRBatch, ParsedBatch)

SYNC_PATH = "/v1/document-digitization"
ASYNC_PATH = "/v1/document-digitization/async"
REQUESTS_PATH = "/v1/document-digitization/requests"
API_KEY_ENV = "UPSTAGE_API_KEY"

DEFAULT_CONNECT_TIMEOUT = 10.0
# The API gives sync OCR up to 5 minutes server-side; the read timeout must outlast that.
DEFAULT_SYNC_READ_TIMEOUT = 330.0

DocumentSource = Any  # a path, URI, ObjectStoragePath, bytes (with name=) or a Document


class UpstageOCRHook(BaseHook):
    """
    Talk to the Upstage OCR API through an ``upstage`` connection.

    The connection's password is the API key (``UPSTAGE_API_KEY`` is the fallback when it has
    none); its host is the base URL, ``https://api.upstage.ai`` when empty. Extras ``timeout``,
    ``max_retries``, ``rate_limit_budget`` and ``download_concurrency`` tune the client; the
    constructor's arguments win. The optional extra ``price_per_page`` (:attr:`price_per_page`)
    adds an estimated cost to what the operators land.

    :param conn_id: the ``upstage`` connection to use.
    :param timeout: read timeout in seconds for API calls (sync OCR gets at least 330 s).
    :param max_retries: retries on connection errors, timeouts and 5xx.
    :param rate_limit_budget: seconds a call keeps waiting while the API answers 429 (rate
        limited), as its ``Retry-After`` asks, before it fails with ``UpstageRateLimitError``;
        default 600. A 429 spends none of ``max_retries``.
    :param backoff_base: first backoff in seconds; doubles per retry, with jitter.
    :param backoff_max: ceiling of one backoff in seconds.
    :param download_concurrency: batch downloads in flight at once in :meth:`iter_results`.
    :param clock: what the retry waits sleep on; the class attribute is the default for every hook.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "upstage_default"
    conn_type = "upstage"
    hook_name = "Upstage OCR"
    #: Where retry waits sleep (and Retry-After dates are read against): the seam for tests.
    clock: Clock = SYSTEM_CLOCK

    if not DECLARATIVE_CONNECTION_FORM:
        # Airflow 3.1 builds the connection form from these two methods only; 3.2+ reads the
        # provider info and warns about them, so they exist only where they are the only way.

        @classmethod
        def get_ui_field_behaviour(cls) -> dict[str, Any]:
            """Labels, placeholders and hidden fields of the form (Airflow 3.1 only)."""
            return legacy_ui_field_behaviour()

        @classmethod
        def get_connection_form_widgets(cls) -> dict[str, Any]:
            """The extra fields of the form (Airflow 3.1 only)."""
            return legacy_connection_form_widgets()

    def __init__(
        self,
        conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        download_concurrency: int | None = None,
        clock: Clock | None = None,
        rate_limit_budget: float | None = None,
    ) -> None:
        super().__init__()
        if clock is not None:
            self.clock = clock
        self.conn_id = conn_id
        self._timeout = timeout
        self._max_retries = max_retries
        self._rate_limit_budget = rate_limit_budget
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._download_concurrency = download_concurrency
        self._conn: Connection | None = None
        self._masked: str | None = None

    # --- connection -----------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.get_connection(self.conn_id)
        return self._conn

    async def _aconnection(self) -> Connection:
        if self._conn is None:
            self._conn = await self.aget_connection(self.conn_id)
        return self._conn

    @property
    def base_url(self) -> str:
        return self._base_url(self.connection)

    @staticmethod
    def _base_url(conn: Connection) -> str:
        host = (conn.host or "").strip() or DEFAULT_BASE_URL
        if "://" not in host:
            host = f"https://{host}"
        _check_base_url(conn.conn_id, host)
        url = _with_port(conn.conn_id, host, conn.port)
        _check_base_url(conn.conn_id, url)  # the Port field's number too
        return url.rstrip("/")

    def _key_of(self, conn: Connection) -> str:
        key = (conn.password or "").strip() or os.environ.get(API_KEY_ENV, "").strip()
        if not key:
            raise UpstageAuthError(
                f"no API key: set the password of the '{self.conn_id}' connection "
                f"(type upstage) or the {API_KEY_ENV} environment variable",
                status_code=None,
            )
        return key

    def _api_key(self, conn: Connection) -> str:
        key = self._key_of(conn)
        if key != self._masked:  # the env fallback is not masked by Airflow on its own
            mask(key)
            self._masked = key
        return key

    async def _aapi_key(self, conn: Connection) -> str:
        key = self._key_of(conn)
        if key != self._masked:
            await amask(key)
            self._masked = key
        return key

    def _extra(self, conn: Connection, key: str) -> Any:
        try:
            extra = conn.extra_dejson
        except Exception:  # a malformed extra must not hide the real error later
            return None
        return extra.get(key) if isinstance(extra, Mapping) else None

    def _setting(self, conn: Connection, explicit: Any, key: str, default: Any, kind: type) -> Any:
        if explicit is not None:
            return kind(explicit)
        value = self._extra(conn, key)
        return default if value in (None, "") else kind(value)

    def _retry(self, conn: Connection, max_retries: int | None = None) -> RetryPolicy:
        explicit = self._max_retries if max_retries is None else max_retries
        retries = self._setting(conn, explicit, "max_retries", DEFAULT_MAX_RETRIES, int)
        budget = self._setting(
            conn, self._rate_limit_budget, "rate_limit_budget", DEFAULT_RATE_LIMIT_BUDGET, float
        )
        return RetryPolicy(retries, self._backoff_base, self._backoff_max, self.clock, max(0.0, budget))

    def _read_timeout(self, conn: Connection, floor: float = 0.0) -> float:
        return max(floor, self._setting(conn, self._timeout, "timeout", DEFAULT_READ_TIMEOUT, float))

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        pool = max(self.download_concurrency, 10)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = user_agent()
        return session

    @property
    def download_concurrency(self) -> int:
        value = self._setting(
            self.connection,
            self._download_concurrency,
            "download_concurrency",
            DEFAULT_DOWNLOAD_CONCURRENCY,
            int,
        )
        return max(1, value)

    @property
    def price_per_page(self) -> float | None:
        """The connection's ``price_per_page`` extra (contract currency), None when unset.

        Raises :class:`InvalidConnectionExtraError` for anything but a non-negative number; the
        operators and the sensor read it when they start, before any OCR call.
        """
        return check_price(self._extra(self.connection, PRICE_EXTRA), self.conn_id)

    def close(self) -> None:
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    # --- the request loop -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        authenticated: bool = True,
        idempotent: bool = True,
        billed: bool = False,
        read_timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """
        One API call with retries; returns a 2xx response or raises an UpstageAPIError.

        ``idempotent=False``: a call that may have reached the API is not repeated at all.
        ``billed``: it is repeated, but the retry's log line says it may be billed again.
        """
        return self._send(
            method, url, what, authenticated, idempotent, billed, read_timeout, False, **kwargs
        )[0]

    def _get_body(self, url: str, *, what: str) -> bytes:
        """An unauthenticated GET's whole body (a batch download), with the retries of :meth:`_call`."""
        body = self._send("GET", url, what, False, True, False, None, True)[1]
        assert body is not None
        return body

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        authenticated: bool,
        idempotent: bool,
        billed: bool,
        read_timeout: float | None,
        read_body: bool,
        **kwargs: Any,
    ) -> tuple[requests.Response, bytes | None]:
        conn = self.connection
        return calls.send(
            self.session,
            self._retry(conn),
            self.log,
            method,
            url,
            what=what,
            headers={"Authorization": f"Bearer {self._api_key(conn)}"} if authenticated else {},
            timeout=(DEFAULT_CONNECT_TIMEOUT, read_timeout or self._read_timeout(conn)),
            authenticated=authenticated,
            idempotent=idempotent,
            billed=billed,
            read_body=read_body,
            **kwargs,
        )

    # --- public API -----------------------------------------------------------------------------------

    @overload
    def ocr(self, document: DocumentSource, model: str = ..., schema: None = None) -> OCRResult: ...

    @overload
    def ocr(self, document: DocumentSource, model: str = ..., *, schema: str) -> dict[str, Any]: ...

    @overload
    def ocr(self, document: DocumentSource, model: str, schema: str) -> dict[str, Any]: ...

    def ocr(
        self, document: DocumentSource, model: str = "ocr", schema: str | None = None
    ) -> OCRResult | dict[str, Any]:
        """
        OCR a document of up to 100 pages synchronously.

        Returns the parsed :class:`OCRResult`; with ``schema`` (``clova`` or ``google``) the API
        answers in that vendor's shape, which is returned as the raw JSON object.
        """
        doc = self._prepare(document, "sync")
        data: dict[str, str] = {"model": model}
        if schema:
            data["schema"] = schema
        self.log.info(
            "Upstage sync OCR: %s (%s, %s pages, %s bytes), model %s",
            doc.name,
            doc.format.value,
            _pages_text(doc),
            f"{doc.size:,}",
            model,
        )
        started = time.monotonic()
        response = self._call(
            "POST",
            self.base_url + SYNC_PATH,
            what="sync OCR",
            files={"document": (doc.name, doc.data, doc.format.mime_type)},
            data=data,
            billed=True,
            read_timeout=self._read_timeout(self.connection, floor=DEFAULT_SYNC_READ_TIMEOUT),
        )
        if schema:
            body = _json_or_none(response)
            if not isinstance(body, dict):
                raise MalformedResponseError(f"sync OCR of {doc.name}: the response is not a JSON object")
            return body
        # With the page count known before upload, an answer that lost or gained pages is
        # refused like a bad async batch is, instead of landing a partial document.
        result = parse_ocr_result(
            response.content,
            end_page=doc.page_count if doc.page_count else None,
            source=f"sync OCR of {doc.name}",
        )
        self.log.info(
            "Upstage sync OCR of %s done in %.1f s: %s, %s, model %s",
            doc.name,
            time.monotonic() - started,
            plural(len(result.pages), "page"),
            plural(result.word_count, "word"),
            result.model_version,
        )
        return result

    def submit(self, document: DocumentSource, model: str = "ocr") -> str:
        """Submit a document of up to 1,000 pages for async OCR; returns the request id."""
        doc = self._prepare(document, "async")
        response = self._call(
            "POST",
            self.base_url + ASYNC_PATH,
            what="async submit",
            idempotent=False,
            files={"document": (doc.name, doc.data, doc.format.mime_type)},
            data={"model": model},
        )
        body = _json_or_none(response)
        request_id = body.get("request_id") if isinstance(body, Mapping) else None
        if not isinstance(request_id, str) or not request_id:
            raise MalformedResponseError(f"async submit of {doc.name}: the response has no 'request_id'")
        self.log.info(
            "Upstage async OCR submitted: %s (%s, %s pages, %s bytes), model %s -> request %s",
            doc.name,
            doc.format.value,
            _pages_text(doc),
            f"{doc.size:,}",
            model,
            request_id,
        )
        return request_id

    def submit_parts(
        self, document: DocumentSource, model: str = "ocr", *, name: str | None = None
    ) -> list[PartRequest]:
        """
        Submit a PDF or TIFF of any length: one async request per part that fits the limits.

        The parts are :func:`~upstage_provider.documents.split.split_document`'s (a document that
        fits is one part); each :class:`~upstage_provider.parts.PartRequest` names its request
        and document page range. No ledger here: the operators add it, so that a retried task
        reattaches to its parts (:mod:`upstage_provider.parts`). ``name`` is for bytes, as in
        :func:`~upstage_provider.documents.load_document`.
        """
        from upstage_provider.documents.split import split_document
        from upstage_provider.parts import submit_parts

        doc = document if isinstance(document, Document) else load_document(document, name=name)
        return submit_parts(self, doc, split_document(doc), model=model)

    def get_request(self, request_id: str) -> RequestInfo:
        """The status of an async request, with fresh download URLs for its completed batches."""
        response = self._call(
            "GET", f"{self.base_url}{REQUESTS_PATH}/{_checked_id(request_id)}", what="status"
        )
        return RequestInfo.from_api(json_object(response, f"status of request {request_id}"))

    def list_requests(self) -> list[dict[str, Any]]:
        """Recent async requests, newest first, as the API lists them."""
        response = self._call("GET", self.base_url + REQUESTS_PATH, what="request list")
        body = json_object(response, "request list")
        requests_ = body.get("requests")
        if not isinstance(requests_, list):
            raise MalformedResponseError("request list: 'requests' is missing or not a list")
        return [r for r in requests_ if isinstance(r, dict)]

    def iter_results(
        self, request_id: str, *, info: RequestInfo | None = None, concurrency: int | None = None
    ) -> Iterator[Page]:
        """
        Yield every page of a completed request in document order.

        Batches download ``concurrency`` at a time while pages are yielded, so memory stays
        bounded by the window, not the document; each waits there as Arrow columns, and a page's
        Words are built as it is yielded. A download URL that has expired (403) is
        refreshed with one status call shared by all downloads that hit it. A batch whose download
        holds other pages than announced (its page count, or page ids that fit neither numbering)
        is fetched once more through a fresh status call, then fails with
        :class:`BatchPagesMismatchError`. Pass ``info`` when a status was just fetched (a sensor's
        last poke) to save a call.
        """
        for batch in self._download_all(request_id, info, concurrency, parse_batch):
            yield from pages_of(batch)

    def iter_batches(
        self, request_id: str, *, info: RequestInfo | None = None, concurrency: int | None = None
    ) -> Iterator[OCRResult]:
        """:meth:`iter_results` one batch at a time, each with its ``model_version``.

        Batches are parsed and checked through Arrow columns (``results``) as they arrive, mostly
        outside the GIL; each one's dataclasses, the same ``parse_ocr_response`` gives, are built
        as it is handed out.
        """
        for batch in self._download_all(request_id, info, concurrency, parse_batch):
            yield result_of(batch)

    def iter_arrow_batches(
        self, request_id: str, *, info: RequestInfo | None = None, concurrency: int | None = None
    ) -> Iterator[OCRBatch]:
        """
        :meth:`iter_batches` as Arrow columns: what the Parquet writer takes.

        Each batch is parsed by pyarrow's JSON reader (``columnar``), outside the GIL, as soon as
        it arrives, so parsing overlaps the downloads still under way instead of following them.
        """
        return self._download_all(request_id, info, concurrency, parse_ocr_batch)

    def _download_all(
        self,
        request_id: str,
        info: RequestInfo | None,
        concurrency: int | None,
        parse: Callable[..., _Parsed],
    ) -> Iterator[_Parsed]:
        """The request's batches through :class:`BatchDownloader`; nothing is fetched until iterated."""
        if info is None or info.id != request_id:
            info = self.get_request(request_id)
        yield from BatchDownloader(self, info, parse, concurrency)

    def test_connection(self) -> tuple[bool, str]:
        """
        Used by the UI's Test button and ``airflow connections test``: one authenticated,
        read-only call, tried once (no retries, no wait on a 429), so a wrong host answers in
        seconds: a person is waiting, and a retry would only delay the same answer.
        """
        saved = self._max_retries, self._rate_limit_budget
        self._max_retries, self._rate_limit_budget = 0, 0.0
        try:
            count = len(self.list_requests())
        except UpstageError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            self._max_retries, self._rate_limit_budget = saved
        return True, f"Connected to Upstage at {self.base_url} ({plural(count, 'recent request')})"

    # --- async (triggers) -------------------------------------------------------------------------------

    async def aget_request(self, request_id: str, *, max_retries: int | None = None) -> RequestInfo:
        """
        :meth:`get_request` for the triggerer's event loop: never blocks it.

        ``max_retries`` overrides the connection's for this call (a trigger riding out an outage
        polls once per wait of its own instead of stacking the hook's retries on top).
        """
        conn = await self._aconnection()
        policy = self._retry(conn, max_retries)
        client, slots = loop_http(MAX_STATUS_CALLS_PER_LOOP)
        url = f"{self._base_url(conn)}{REQUESTS_PATH}/{_checked_id(request_id)}"
        headers = {"Authorization": f"Bearer {await self._aapi_key(conn)}"}
        import httpx

        async def attempt() -> RequestInfo:
            try:
                async with slots:
                    response = await client.get(url, headers=headers, timeout=self._httpx_timeout(conn))
            except httpx.HTTPError as exc:
                raise policy.after_no_answer(connection_error(exc, "status", url)) from None
            if response.status_code >= 400:
                error = status_error(response, "status", authenticated=True)
                raise policy.after_answer(error, response.headers.get("Retry-After"))
            try:
                body = response.json()
            except ValueError:
                raise MalformedResponseError(
                    f"status of request {request_id}: the response is not JSON"
                ) from None
            return RequestInfo.from_api(body)

        return await policy.acall(attempt, what="status", log=self.log)

    def _httpx_timeout(self, conn: Connection) -> Any:
        import httpx

        return httpx.Timeout(self._read_timeout(conn), connect=DEFAULT_CONNECT_TIMEOUT)

    # --- helpers ----------------------------------------------------------------------------------------

    def _prepare(self, document: DocumentSource, mode: Literal["sync", "async"]) -> Document:
        if isinstance(document, Document):
            return validate_document(document, mode=mode)
        return prepare_document(document, mode=mode)


def _checked_id(request_id: str) -> str:
    # Request ids go into a URL path: refuse anything that could change the path.
    if not isinstance(request_id, str) or not request_id or any(c in request_id for c in "/?#%\\ \n"):
        raise InvalidRequestIdError(f"invalid request id {request_id!r}: not sent to the API")
    return request_id


def _check_base_url(conn_id: str | None, url: str) -> None:
    """Refuse a host that can only fail later, after retries: the connection names the fix."""
    problem = ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in ("http", "https"):
            problem = f"the scheme must be http or https, not {parts.scheme!r}"
        elif not parts.hostname:
            problem = "it names no host"
        elif parts.query or parts.fragment:
            problem = "a base URL has no query or fragment"
    if problem:
        raise InvalidConnectionURLError(
            f"connection '{conn_id}': host {url!r} is not a base URL ({problem}); use e.g. "
            f"{DEFAULT_BASE_URL} or http://127.0.0.1:8765 for a local emulator"
        )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _with_port(conn_id: str | None, url: str, port: int | None) -> str:
    """
    The base URL with the connection's Port field, which the form asks for (the UI's Test button
    needs it, ``get_provider_info``): joined to a URL without a port unless it is the scheme's
    own, and refused when it disagrees with the URL's, rather than one of them silently ignored.
    """
    parts = urlsplit(url)
    if not port or port == parts.port:
        return url
    if parts.port is not None:
        raise InvalidConnectionURLError(
            f"connection '{conn_id}': host {url!r} has port {parts.port}, but its Port field says "
            f"{port}; make them agree, or leave the Port empty"
        )
    if port == _DEFAULT_PORTS.get(parts.scheme):
        return url
    return parts._replace(netloc=f"{parts.netloc}:{port}").geturl()


def _pages_text(doc: Document) -> str:
    return "?" if doc.page_count is None else str(doc.page_count)


# Status calls in flight at once in one event loop, across every trigger in it. httpx's pool
# re-checks every queued request against every connection each time one starts or ends: a
# thousand queued at once (all triggers resuming after a triggerer restart) cost seconds of loop
# time a round (bench_triggerer: p99 lag 5.7 s, 24 calls/s; with the limit 5 ms, 200 calls/s).
# Waiting for a slot costs nothing; the limit is the client's keep-alive pool, and is taken per
# HTTP call, not across retry back-offs, so a bad API day does not hold slots while it sleeps.
MAX_STATUS_CALLS_PER_LOOP = 32

# One HTTP client per event loop, shared by every hook in it (``hooks.clients``).
_LOOP_CLIENTS = LOOP_CLIENTS
