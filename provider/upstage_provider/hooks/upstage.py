"""Hook for the Upstage OCR API (document digitization): sync OCR, async submit, status, results.

Sync methods use one ``requests.Session`` per hook (workers); ``a...`` methods use ``httpx``
with the connection read asynchronously (triggers). Retries live here: connection errors,
timeouts, 429 (``Retry-After`` honoured) and 5xx back off exponentially with jitter; any other
4xx fails at once with the API's own message. The API key is sent only to the API's host, never
to pre-signed download URLs, and never appears in logs or exceptions.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar, overload
from urllib.parse import urlsplit

import requests
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter

from upstage_provider.columnar import OCRBatch, parse_ocr_batch
from upstage_provider.documents import Document, prepare_document, validate_document
from upstage_provider.exceptions import (
    BatchPagesMismatchError,
    DownloadURLExpiredError,
    MalformedResponseError,
    UpstageAPIError,
    UpstageAuthError,
    UpstageConnectionError,
    UpstageError,
    UpstageRateLimitError,
    UpstageRequestError,
    UpstageServerError,
)
from upstage_provider.get_provider_info import (
    DEFAULT_BASE_URL,
    DEFAULT_DOWNLOAD_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_READ_TIMEOUT,
)
from upstage_provider.models import OCRResult, Page, PageIds
from upstage_provider.results import ParsedBatch, pages_of, parse_batch, parse_ocr_result, result_of
from upstage_provider.status import BatchInfo, BatchState, RequestInfo, RequestState

if TYPE_CHECKING:
    import httpx
    from airflow.sdk import Connection

_Parsed = TypeVar("_Parsed", OCRResult, OCRBatch, ParsedBatch)

SYNC_PATH = "/v1/document-digitization"
ASYNC_PATH = "/v1/document-digitization/async"
REQUESTS_PATH = "/v1/document-digitization/requests"
API_KEY_ENV = "UPSTAGE_API_KEY"

DEFAULT_CONNECT_TIMEOUT = 10.0
# The API gives sync OCR up to 5 minutes server-side; the read timeout must outlast that.
DEFAULT_SYNC_READ_TIMEOUT = 330.0
MAX_URL_REFRESHES = 3
MAX_RETRY_AFTER = 300.0

DocumentSource = Any  # a path, URI, ObjectStoragePath, bytes (with name=) or a Document


class _Retry:
    """When and how long to wait; shared by the sync and async request loops."""

    def __init__(self, max_retries: int, backoff_base: float, backoff_max: float) -> None:
        self.attempts = max(0, max_retries) + 1
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max

    def backoff(self, attempt: int) -> float:
        # Equal jitter: half fixed, half random, so concurrent clients spread out but never hammer.
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        honoured = _parse_retry_after(retry_after)
        return honoured if honoured is not None else self.backoff(attempt)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _api_error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """The message, type and code, whichever of the API's error shapes the body has."""
    if not isinstance(body, Mapping):
        return None, None, None
    error = body.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        return _str(error.get("message")), _str(error.get("type")), None if code is None else str(code)
    if isinstance(error, str):
        return error, None, None
    for key in ("message", "detail", "failure_message"):
        if isinstance(body.get(key), str):
            code = body.get("code")
            return body[key], None, None if code is None else str(code)
    return None, None, None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class UpstageOCRHook(BaseHook):
    """
    Talk to the Upstage OCR API through an ``upstage`` connection.

    The connection's password is the API key (``UPSTAGE_API_KEY`` is the fallback when it has
    none); its host is the base URL, ``https://api.upstage.ai`` when empty. Extras ``timeout``,
    ``max_retries`` and ``download_concurrency`` tune the client; the constructor's arguments win.

    :param conn_id: the ``upstage`` connection to use.
    :param timeout: read timeout in seconds for API calls (sync OCR gets at least 330 s).
    :param max_retries: retries on connection errors, timeouts, 429 and 5xx.
    :param backoff_base: first backoff in seconds; doubles per retry, with jitter.
    :param backoff_max: ceiling of one backoff in seconds.
    :param download_concurrency: batch downloads in flight at once in :meth:`iter_results`.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "upstage_default"
    conn_type = "upstage"
    hook_name = "Upstage OCR"

    def __init__(
        self,
        conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        download_concurrency: int | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self._timeout = timeout
        self._max_retries = max_retries
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
        if conn.port and urlsplit(host).port is None:
            host = f"{host.rstrip('/')}:{conn.port}"
        return host.rstrip("/")

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
            _mask(key)
            self._masked = key
        return key

    async def _aapi_key(self, conn: Connection) -> str:
        key = self._key_of(conn)
        if key != self._masked:
            await _amask(key)
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

    def _retry(self, conn: Connection) -> _Retry:
        retries = self._setting(conn, self._max_retries, "max_retries", DEFAULT_MAX_RETRIES, int)
        return _Retry(retries, self._backoff_base, self._backoff_max)

    def _read_timeout(self, conn: Connection, floor: float = 0.0) -> float:
        return max(floor, self._setting(conn, self._timeout, "timeout", DEFAULT_READ_TIMEOUT, float))

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        pool = max(self.download_concurrency, 10)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = _user_agent()
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
        conn = self.connection
        retry = self._retry(conn)
        headers = {"Authorization": f"Bearer {self._api_key(conn)}"} if authenticated else {}
        timeout = (DEFAULT_CONNECT_TIMEOUT, read_timeout or self._read_timeout(conn))
        error: UpstageAPIError
        for attempt in range(1, retry.attempts + 1):
            retry_after = None
            maybe_billed = False
            try:
                response = self.session.request(method, url, headers=headers, timeout=timeout, **kwargs)
            except requests.exceptions.RequestException as exc:
                error = _connection_error(exc, what, url)
                sent = not error.never_sent
                if sent and not idempotent:
                    raise UpstageConnectionError(
                        f"{error.message}; the request may have reached the API, so it is not repeated "
                        "automatically (a repeat could bill the document twice)",
                        endpoint=what,
                    ) from None
                maybe_billed = sent and billed
            else:
                if response.status_code < 400:
                    return response
                error = self._status_error(response, what, authenticated=authenticated)
                if not isinstance(error, (UpstageRateLimitError, UpstageServerError)):
                    raise error
                retry_after = response.headers.get("Retry-After")
                response.close()
            if attempt == retry.attempts:
                break
            delay = retry.delay(attempt, retry_after)
            self.log.warning(
                "Upstage %s: %s%s; retry %d/%d in %.1f s",
                what,
                error.message,
                _MAY_BILL_AGAIN if maybe_billed else "",
                attempt,
                retry.attempts - 1,
                delay,
            )
            time.sleep(delay)
        raise _gave_up(error, retry.attempts)

    def _status_error(
        self, response: requests.Response, what: str, *, authenticated: bool
    ) -> UpstageAPIError:
        return _error_from(response.status_code, _json_or_none(response), response.text, what, authenticated)

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
            "Upstage sync OCR of %s done in %.1f s: %d pages, %d words, model %s",
            doc.name,
            time.monotonic() - started,
            len(result.pages),
            result.word_count,
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

    def get_request(self, request_id: str) -> RequestInfo:
        """The status of an async request, with fresh download URLs for its completed batches."""
        response = self._call(
            "GET", f"{self.base_url}{REQUESTS_PATH}/{_checked_id(request_id)}", what="status"
        )
        return RequestInfo.from_api(_json_object(response, f"status of request {request_id}"))

    def list_requests(self) -> list[dict[str, Any]]:
        """Recent async requests, newest first, as the API lists them."""
        response = self._call("GET", self.base_url + REQUESTS_PATH, what="request list")
        body = _json_object(response, "request list")
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
        if info is None or info.id != request_id:
            info = self.get_request(request_id)
        batches = _completed_batches(info)
        workers = max(1, concurrency or self.download_concurrency)
        refresher = _URLRefresher(self, info)
        total_pages = sum(b.page_count for b in batches)
        self.log.info(
            "Upstage request %s: downloading %d batches (%d pages), %d at a time",
            request_id,
            len(batches),
            total_pages,
            workers,
        )
        started = time.monotonic()
        done_pages = 0
        window: deque[tuple[BatchInfo, Future[_Fetched[_Parsed]]]] = deque()
        pending = iter(batches)
        first_numbered: tuple[BatchInfo, PageIds] | None = None
        unvouched: list[tuple[BatchInfo, int]] = []  # passed on, vouched for only by their URL

        # Downloads wait on the network, parsing on a core: a parse pool of one thread per core
        # gets all the speed there is, and keeps the allocator's per-thread heaps to that few
        # (a parse in each of 16 download threads held 100 MB more at the peak).
        parsers = ThreadPoolExecutor(
            max_workers=min(workers, os.cpu_count() or 1), thread_name_prefix="upstage-parse"
        )

        def parse_batch(batch: BatchInfo, data: bytes) -> _Parsed:
            source = f"request {request_id} batch {batch.id}"
            return parsers.submit(
                parse, data, start_page=batch.start_page, end_page=batch.end_page, source=source
            ).result()

        def fetch(batch: BatchInfo) -> _Fetched[_Parsed]:
            data, answer = self._download_batch(request_id, batch, refresher)
            try:
                return _Fetched(parse_batch(batch, data), answer)
            except BatchPagesMismatchError as exc:
                # The status answer gave this batch another one's URL: it may have done so for others.
                refresher.distrust(answer, because=_pages_of(batch))
                return fetch_again(batch, str(exc))

        def fetch_again(batch: BatchInfo, reason: str) -> _Fetched[_Parsed]:
            """The one second try a batch gets, through URLs of a newer status answer."""
            self.log.warning("Upstage %s; fetching the batch once more through fresh download URLs", reason)
            data, answer = self._download_batch(request_id, batch, refresher)
            try:
                return _Fetched(parse_batch(batch, data), answer, again=True)
            except BatchPagesMismatchError as exc:
                raise BatchPagesMismatchError(f"{exc}, again through fresh download URLs") from None

        def checked(batch: BatchInfo, fetched: _Fetched[_Parsed]) -> _Fetched[_Parsed]:
            """What a batch's own response cannot show: a bad status answer, another numbering."""
            because = refresher.distrusted(fetched.answer)
            if because is not None and not fetched.vouched:
                reason = (
                    f"request {request_id} {_pages_of(batch)}: its download URL came from the status "
                    f"answer that gave {because} another batch's pages"
                )
                if fetched.again:
                    raise BatchPagesMismatchError(reason)
                fetched = fetch_again(batch, reason)
            conflict = _page_ids_conflict(request_id, batch, fetched.result.page_ids, first_numbered)
            if conflict is not None:
                if fetched.again:
                    raise conflict
                refresher.newer_than(fetched.answer)
                fetched = fetch_again(batch, str(conflict))
                conflict = _page_ids_conflict(request_id, batch, fetched.result.page_ids, first_numbered)
                if conflict is not None:
                    raise BatchPagesMismatchError(f"{conflict}, again through fresh download URLs")
            return fetched

        def check_passed_on() -> None:
            if not refresher.distrusts_any:
                return
            for batch, answer in unvouched:
                because = refresher.distrusted(answer)
                if because is not None:
                    raise BatchPagesMismatchError(
                        f"request {request_id} {_pages_of(batch)} was already passed on when the status "
                        f"answer its download URL came from turned out to give {because} another batch's "
                        "pages; nothing vouches for its pages: fetch the results again"
                    )

        with parsers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upstage-download") as pool:
            try:
                for batch in pending:
                    window.append((batch, pool.submit(fetch, batch)))
                    if len(window) >= workers:
                        break
                while window:
                    batch, future = window.popleft()
                    fetched = future.result()
                    nxt = next(pending, None)
                    if nxt is not None:
                        window.append((nxt, pool.submit(fetch, nxt)))
                    fetched = checked(batch, fetched)
                    if first_numbered is None and fetched.result.page_ids is not None:
                        first_numbered = (batch, fetched.result.page_ids)
                    if not fetched.vouched:
                        unvouched.append((batch, fetched.answer))
                    check_passed_on()
                    done_pages += fetched.result.page_count
                    yield fetched.result
                check_passed_on()
            finally:
                for _, future in window:
                    future.cancel()
        self.log.info(
            "Upstage request %s: %d pages downloaded and parsed in %.1f s (%d URL refreshes)",
            request_id,
            done_pages,
            time.monotonic() - started,
            refresher.refreshes,
        )

    def _download_batch(
        self, request_id: str, batch: BatchInfo, refresher: _URLRefresher
    ) -> tuple[bytes, int]:
        """The batch's bytes, and which status answer issued the URL that gave them."""
        # The newest URL known for the batch: once one refresh happened, the URLs of the first
        # status call are as stale for the batches still waiting as for the one that hit a 403.
        url, answer = refresher.current_url(batch)
        for _ in range(MAX_URL_REFRESHES + 1):
            if url is None:
                url, answer = refresher.fresh_url(batch, stale=None)
                continue
            try:
                response = self._call("GET", url, what=f"download of batch {batch.id}", authenticated=False)
            except DownloadURLExpiredError:
                self.log.info("Upstage batch %s: download URL expired; fetching a fresh one", batch.id)
                url, answer = refresher.fresh_url(batch, stale=url)
                continue
            return response.content, answer
        raise DownloadURLExpiredError(
            f"batch {batch.id} (pages {batch.start_page}-{batch.end_page}): the download URL was refused "
            f"{MAX_URL_REFRESHES + 1} times, even freshly issued; check the clock of this machine",
            status_code=403,
            endpoint=f"download of batch {batch.id}",
        )

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: an authenticated, read-only call."""
        try:
            count = len(self.list_requests())
        except UpstageError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to Upstage at {self.base_url} ({count} recent requests)"

    # --- async (triggers) -------------------------------------------------------------------------------

    async def aget_request(self, request_id: str, *, max_retries: int | None = None) -> RequestInfo:
        """
        :meth:`get_request` for the triggerer's event loop: never blocks it.

        ``max_retries`` overrides the connection's for this call (a trigger riding out an outage
        polls once per wait of its own instead of stacking the hook's retries on top).
        """
        conn = await self._aconnection()
        retry = (
            self._retry(conn)
            if max_retries is None
            else _Retry(max_retries, self._backoff_base, self._backoff_max)
        )
        client, slots = _loop_http()
        url = f"{self._base_url(conn)}{REQUESTS_PATH}/{_checked_id(request_id)}"
        headers = {"Authorization": f"Bearer {await self._aapi_key(conn)}"}
        import httpx

        error: UpstageAPIError
        for attempt in range(1, retry.attempts + 1):
            retry_after = None
            try:
                async with slots:
                    response = await client.get(url, headers=headers, timeout=self._httpx_timeout(conn))
            except httpx.HTTPError as exc:
                error = _connection_error(exc, "status", url)
            else:
                if response.status_code < 400:
                    try:
                        body = response.json()
                    except ValueError:
                        raise MalformedResponseError(
                            f"status of request {request_id}: the response is not JSON"
                        ) from None
                    return RequestInfo.from_api(body)
                error = _error_from(
                    response.status_code, _json_or_none(response), response.text, "status", True
                )
                if not isinstance(error, (UpstageRateLimitError, UpstageServerError)):
                    raise error
                retry_after = response.headers.get("Retry-After")
            if attempt == retry.attempts:
                break
            delay = retry.delay(attempt, retry_after)
            self.log.warning(
                "Upstage status: %s; retry %d/%d in %.1f s", error.message, attempt, retry.attempts - 1, delay
            )
            await asyncio.sleep(delay)
        raise _gave_up(error, retry.attempts)

    def _httpx_timeout(self, conn: Connection) -> Any:
        import httpx

        return httpx.Timeout(self._read_timeout(conn), connect=DEFAULT_CONNECT_TIMEOUT)

    # --- helpers ----------------------------------------------------------------------------------------

    def _prepare(self, document: DocumentSource, mode: Literal["sync", "async"]) -> Document:
        if isinstance(document, Document):
            return validate_document(document, mode=mode)
        return prepare_document(document, mode=mode)


class _URLRefresher:
    """The newest download URL of every batch, and which status answer issued it.

    Status answers are counted from the one the download started with (0); each issues every URL
    anew. One status call is shared by all downloads that need fresh URLs at the same time: URLs
    that expired (403), or an answer found to give a batch another batch's pages, which is then
    distrusted for every batch whose own page ids cannot vouch for its pages.
    """

    def __init__(self, hook: UpstageOCRHook, info: RequestInfo) -> None:
        self._hook = hook
        self._request_id = info.id
        self._urls = {b.id: b.download_url for b in info.batches}
        self._answer = 0
        self._distrusted: dict[int, str] = {}  # answer -> the batch that showed it wrong
        self._lock = threading.Lock()
        self.refreshes = 0

    def current_url(self, batch: BatchInfo) -> tuple[str | None, int]:
        with self._lock:
            return self._urls.get(batch.id, batch.download_url), self._answer

    def fresh_url(self, batch: BatchInfo, stale: str | None) -> tuple[str, int]:
        with self._lock:
            current = self._urls.get(batch.id)
            if current is None or current == stale:
                self._refresh()
                current = self._urls.get(batch.id)
            if current is None:
                raise MalformedResponseError(
                    f"request {self._request_id} batch {batch.id}: "
                    "no download URL even after a fresh status call"
                )
            return current, self._answer

    def newer_than(self, answer: int) -> None:
        """Make sure the URLs at hand come from a status answer after ``answer``."""
        with self._lock:
            if self._answer == answer:
                self._refresh()

    def distrust(self, answer: int, *, because: str) -> None:
        """Status answer ``answer`` gave ``because`` another batch's pages: replace its URLs."""
        with self._lock:
            self._distrusted.setdefault(answer, because)
            if self._answer == answer:
                self._refresh()

    @property
    def distrusts_any(self) -> bool:
        return bool(self._distrusted)

    def distrusted(self, answer: int) -> str | None:
        """The batch that showed status answer ``answer`` wrong, if one did."""
        with self._lock:
            return self._distrusted.get(answer)

    def _refresh(self) -> None:  # with the lock held
        info = self._hook.get_request(self._request_id)
        self.refreshes += 1
        self._answer += 1
        self._urls = {b.id: b.download_url for b in info.batches}


@dataclass(frozen=True)
class _Fetched(Generic[_Parsed]):
    """A parsed batch, which status answer issued the URL it came from, and whether it is a retry."""

    result: _Parsed
    answer: int
    again: bool = False

    @property
    def vouched(self) -> bool:
        """Absolute page ids name exactly the pages announced; no other batch's download has them.
        Batch-relative ids (and no ids) are the same in every batch of a size: only the URL vouches."""
        return self.result.page_ids == "absolute"


def _pages_of(batch: BatchInfo) -> str:
    return f"batch {batch.id} (pages {batch.start_page}-{batch.end_page})"


_NUMBERING = {"relative": "batch-relative", "absolute": "absolute"}


def _page_ids_conflict(
    request_id: str, batch: BatchInfo, page_ids: PageIds | None, first: tuple[BatchInfo, PageIds] | None
) -> BatchPagesMismatchError | None:
    """All batches of a request number their pages one way; the first to show which sets it."""
    if first is None or page_ids is None or page_ids == first[1]:
        return None
    earlier, numbering = first
    return BatchPagesMismatchError(
        f"request {request_id} {_pages_of(batch)}: its page ids are {_NUMBERING[page_ids]}, but those of "
        f"{_pages_of(earlier)} were {_NUMBERING[numbering]}: one of the two holds other pages than announced"
    )


def _completed_batches(info: RequestInfo) -> list[BatchInfo]:
    """The batches of a completed request, in page order, checked to cover every page once."""
    failure = info.failure()
    if failure is not None:
        raise failure
    if info.status is not RequestState.COMPLETED:
        raise UpstageRequestError(
            f"request {info.id} is not completed yet ({info.progress()}); wait for it before downloading",
            endpoint="results",
        )
    batches = sorted(info.batches, key=lambda b: b.start_page)
    expected = 1
    for batch in batches:
        if batch.status is not BatchState.COMPLETED:
            raise MalformedResponseError(
                f"request {info.id} is completed but batch {batch.id} is {batch.status.value}"
            )
        if batch.start_page != expected:
            raise MalformedResponseError(
                f"request {info.id}: batch {batch.id} starts at page {batch.start_page}, expected {expected} "
                "(pages missing or overlapping)"
            )
        expected = batch.end_page + 1
    if info.total_pages is not None and expected - 1 != info.total_pages:
        raise MalformedResponseError(
            f"request {info.id}: batches cover pages 1-{expected - 1} of {info.total_pages}"
        )
    return batches


def _error_from(status: int, body: Any, text: str, what: str, authenticated: bool) -> UpstageAPIError:
    message, error_type, code = _api_error_fields(body)
    if message is None:
        snippet = " ".join(text.split())[:300] if text else ""
        message = snippet or f"HTTP {status} with no message"
    kwargs: dict[str, Any] = {"status_code": status, "error_type": error_type, "code": code, "endpoint": what}
    if status == 429:
        return UpstageRateLimitError(message, **kwargs)
    if status >= 500:
        return UpstageServerError(message, **kwargs)
    if status == 403 and not authenticated:
        return DownloadURLExpiredError(message, **kwargs)
    if status in (401, 403):
        return UpstageAuthError(
            f"{message}; check the API key in the password of the upstage connection", **kwargs
        )
    return UpstageRequestError(message, **kwargs)


_ConnectionFailure = Literal["connect", "timeout", "lost"]

#: Appended to the retry line of a billed call (sync OCR) that may have reached the API.
_MAY_BILL_AGAIN = (
    "; the API may already have done and billed this call, so this retry may bill the document "
    'again (sync OCR has no request id to check; for exactly-once billing use the async path, mode="async")'
)


def _connection_failure(exc: Exception) -> _ConnectionFailure:
    """
    What became of a call that got no HTTP answer, for ``requests`` and ``httpx`` alike.

    ``connect``: no connection was made, so the request was never sent (safe to repeat);
    ``timeout``: sent, or being sent, and no answer in time; ``lost``: the connection broke
    after the request was sent, or while it was. Only ``connect`` proves the API never saw it.
    """
    import httpx
    import urllib3.exceptions

    if isinstance(exc, (requests.exceptions.ConnectTimeout, httpx.ConnectError, httpx.ConnectTimeout)):
        return "connect"
    if isinstance(exc, httpx.PoolTimeout):  # no connection to send it on came free
        return "connect"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, urllib3.exceptions.NewConnectionError):  # refused, DNS, unreachable
            return "connect"
    if isinstance(exc, (requests.exceptions.Timeout, httpx.TimeoutException)):
        return "timeout"
    return "lost"


def _connection_error(exc: Exception, what: str, url: str) -> UpstageConnectionError:
    """One wording for a call without an answer, whichever HTTP client made it."""
    # Only the exception's class and the host: its text can carry a pre-signed URL's query.
    kind = type(exc).__name__
    host = urlsplit(url).netloc
    failure = _connection_failure(exc)
    if failure == "connect":
        text = f"{UpstageConnectionError.NEVER_SENT} {host}"
    elif failure == "timeout":
        text = f"{host} did not answer in time"
    else:
        text = f"the connection to {host} was lost after the request was sent"
    return UpstageConnectionError(f"{kind}: {text}", endpoint=what)


def _json_or_none(response: requests.Response | httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    body = _json_or_none(response)
    if not isinstance(body, dict):
        raise MalformedResponseError(f"{what}: the response is not a JSON object")
    return body


def _checked_id(request_id: str) -> str:
    # Request ids go into a URL path: refuse anything that could change the path.
    if not isinstance(request_id, str) or not request_id or any(c in request_id for c in "/?#%\\ \n"):
        raise UpstageRequestError(f"invalid request id {request_id!r}", endpoint="status")
    return request_id


def _gave_up(error: UpstageAPIError, attempts: int) -> UpstageAPIError:
    """The last transient error, saying how hard we tried."""
    if attempts <= 1:
        return error
    return type(error)(
        f"{error.message} (gave up after {attempts} attempts)",
        status_code=error.status_code,
        error_type=error.error_type,
        code=error.code,
        endpoint=error.endpoint,
    )


def _pages_text(doc: Document) -> str:
    return "?" if doc.page_count is None else str(doc.page_count)


def _mask(secret: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(secret)


async def _amask(secret: str) -> None:
    """Masking from the triggerer's loop must not block it on a synchronous supervisor call."""
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # pragma: no cover - Airflow 3.1
        _mask(secret)
        return
    await amask_secret(secret)


# Status calls in flight at once in one event loop, across every trigger in it. httpx's pool
# re-checks every queued request against every connection each time one starts or ends: a
# thousand queued at once (all triggers resuming after a triggerer restart) cost seconds of loop
# time a round (bench_triggerer: p99 lag 5.7 s, 24 calls/s; with the limit 5 ms, 200 calls/s).
# Waiting for a slot costs nothing; the limit is the client's keep-alive pool, and is taken per
# HTTP call, not across retry back-offs, so a bad API day does not hold slots while it sleeps.
MAX_STATUS_CALLS_PER_LOOP = 32


class _LoopHTTP(NamedTuple):
    client: httpx.AsyncClient
    slots: asyncio.Semaphore  # MAX_STATUS_CALLS_PER_LOOP


# One HTTP client per event loop, shared by every hook in it: a triggerer with hundreds of waiting
# triggers reuses connections, and the TLS context (slow to build, blocking) is built once.
_LOOP_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopHTTP] = weakref.WeakKeyDictionary()


def _loop_http() -> _LoopHTTP:
    import httpx

    loop = asyncio.get_running_loop()
    http = _LOOP_CLIENTS.get(loop)
    if http is None or http.client.is_closed:
        client = httpx.AsyncClient(
            headers={"User-Agent": _user_agent()},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=MAX_STATUS_CALLS_PER_LOOP),
        )
        http = _LOOP_CLIENTS[loop] = _LoopHTTP(client, asyncio.Semaphore(MAX_STATUS_CALLS_PER_LOOP))
    return http


def _user_agent() -> str:
    from upstage_provider import __version__

    return f"airflow-provider-upstage/{__version__}"
