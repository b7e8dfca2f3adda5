"""Downloading a completed async request: its batches in page order, each checked to hold its pages.

:class:`BatchDownloader` is the hook's machinery behind ``iter_batches`` and
``iter_arrow_batches``; the hook passes the parser (``parse_ocr_response`` or
``parse_ocr_batch``) and makes the HTTP calls. What the page ids can and cannot prove is in
docs/errors.md ("Wrong pages in a batch").
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from upstage_provider.exceptions import (
    BatchPagesMismatchError,
    DownloadURLExpiredError,
    MalformedResponseError,
    RequestNotCompletedError,
)
from upstage_provider.models import PageIds
from upstage_provider.status import BatchInfo, BatchState, RequestInfo, RequestState

if TYPE_CHECKING:
    from upstage_provider.hooks.upstage import UpstageOCRHook


class ParsedResponse(Protocol):
    """What the downloader needs of a parsed batch, whichever parser made it."""

    @property
    def page_ids(self) -> PageIds | None: ...

    @property
    def page_count(self) -> int: ...


Parsed = TypeVar("Parsed", bound=ParsedResponse)

MAX_URL_REFRESHES = 3


class BatchDownloader(Generic[Parsed]):
    """
    One pass over a completed request's batches: iterate it once for each batch, parsed, in order.

    ``concurrency`` downloads are in flight while the caller consumes earlier batches, so memory
    is bounded by that window, not by the document. A batch is passed on only when

    1. its own response holds the pages announced (``parse`` raises ``BatchPagesMismatchError``);
    2. the status answer that issued its URL has not been caught handing out another batch's
       URL, unless its absolute page ids vouch for it;
    3. it numbers its pages like the first batch that showed a numbering.

    A batch failing a check is fetched once more through the URLs of a newer status answer; a
    second failure ends the download. A batch already passed on cannot be taken back, so when its
    status answer is distrusted later and nothing vouches for it, the download fails too.
    """

    def __init__(
        self,
        hook: UpstageOCRHook,
        info: RequestInfo,
        parse: Callable[..., Parsed],
        concurrency: int | None = None,
    ) -> None:
        self._hook = hook
        self._request_id = info.id
        self._batches = completed_batches(info)
        self._parse: Callable[..., Parsed] = parse
        self._workers = max(1, concurrency or hook.download_concurrency)
        self._urls = _URLRefresher(hook, info)
        self._first_numbered: tuple[BatchInfo, PageIds] | None = None
        self._unvouched: list[tuple[BatchInfo, int]] = []  # passed on, vouched for only by their URL
        # Downloads wait on the network, parsing on a core: a parse pool of one thread per core
        # gets all the speed there is, and keeps the allocator's per-thread heaps to that few
        # (a parse in each of 16 download threads held 100 MB more at the peak).
        self._parsers = ThreadPoolExecutor(
            max_workers=min(self._workers, os.cpu_count() or 1), thread_name_prefix="upstage-parse"
        )

    def __iter__(self) -> Iterator[Parsed]:
        log = self._hook.log
        log.info(
            "Upstage request %s: downloading %d batches (%d pages), %d at a time",
            self._request_id,
            len(self._batches),
            sum(b.page_count for b in self._batches),
            self._workers,
        )
        started = time.monotonic()
        done_pages = 0
        downloads = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="upstage-download")
        with self._parsers, downloads, contextlib.closing(self._arrivals(downloads)) as arrivals:
            for batch, fetched in arrivals:
                fetched = self._numbered_alike(batch, self._from_trusted_answer(batch, fetched))
                if self._first_numbered is None and fetched.result.page_ids is not None:
                    self._first_numbered = (batch, fetched.result.page_ids)
                if not fetched.vouched:
                    self._unvouched.append((batch, fetched.answer))
                self._check_passed_on()
                done_pages += fetched.result.page_count
                yield fetched.result
            self._check_passed_on()
        log.info(
            "Upstage request %s: %d pages downloaded and parsed in %.1f s (%d URL refreshes)",
            self._request_id,
            done_pages,
            time.monotonic() - started,
            self._urls.refreshes,
        )

    # --- the window of downloads in flight --------------------------------------------------------

    def _arrivals(
        self, downloads: ThreadPoolExecutor
    ) -> Generator[tuple[BatchInfo, _Fetched[Parsed]], None, None]:
        """Fetched batches in page order; the next download starts as each one is handed over."""
        pending = iter(self._batches)
        window: deque[tuple[BatchInfo, Future[_Fetched[Parsed]]]] = deque(
            (batch, downloads.submit(self._fetch, batch))
            for batch in itertools.islice(pending, self._workers)
        )
        try:
            while window:
                batch, future = window.popleft()
                fetched = future.result()
                following = next(pending, None)
                if following is not None:
                    window.append((following, downloads.submit(self._fetch, following)))
                yield batch, fetched
        finally:  # a consumer that stops early or an error: no download starts after it
            for _, future in window:
                future.cancel()

    # --- one batch (in a download thread) ----------------------------------------------------------

    def _fetch(self, batch: BatchInfo) -> _Fetched[Parsed]:
        data, answer = self._download(batch)
        try:
            return _Fetched(self._parsed(batch, data), answer)
        except BatchPagesMismatchError as exc:
            # The status answer gave this batch another one's URL: it may have done so for others.
            self._urls.distrust(answer, because=pages_of(batch))
            return self._fetch_again(batch, str(exc))

    def _fetch_again(self, batch: BatchInfo, reason: str) -> _Fetched[Parsed]:
        """The one second try a batch gets, through URLs of a newer status answer."""
        self._hook.log.warning("Upstage %s; fetching the batch once more through fresh download URLs", reason)
        data, answer = self._download(batch)
        try:
            return _Fetched(self._parsed(batch, data), answer, again=True)
        except BatchPagesMismatchError as exc:
            raise BatchPagesMismatchError(f"{exc}, again through fresh download URLs") from None

    def _parsed(self, batch: BatchInfo, data: bytes) -> Parsed:
        source = f"request {self._request_id} batch {batch.id}"
        return self._parsers.submit(
            self._parse, data, start_page=batch.start_page, end_page=batch.end_page, source=source
        ).result()

    def _download(self, batch: BatchInfo) -> tuple[bytes, int]:
        """The batch's bytes, and which status answer issued the URL that gave them."""
        # The newest URL known for the batch: once one refresh happened, the URLs of the first
        # status call are as stale for the batches still waiting as for the one that hit a 403.
        url, answer = self._urls.current_url(batch)
        for _ in range(MAX_URL_REFRESHES + 1):
            if url is None:
                url, answer = self._urls.fresh_url(batch, stale=None)
                continue
            try:
                body = self._hook._get_body(url, what=f"download of batch {batch.id}")
            except DownloadURLExpiredError:
                self._hook.log.info("Upstage batch %s: download URL expired; fetching a fresh one", batch.id)
                url, answer = self._urls.fresh_url(batch, stale=url)
                continue
            return body, answer
        raise DownloadURLExpiredError(
            f"batch {batch.id} (pages {batch.start_page}-{batch.end_page}): the download URL was refused "
            f"{MAX_URL_REFRESHES + 1} times, even freshly issued; check the clock of this machine",
            status_code=403,
            endpoint=f"download of batch {batch.id}",
        )

    # --- what a batch's own response cannot show (in the consuming thread, in page order) ------------

    def _from_trusted_answer(self, batch: BatchInfo, fetched: _Fetched[Parsed]) -> _Fetched[Parsed]:
        """Check 2: a URL from a status answer caught giving out another batch's pages."""
        because = self._urls.distrusted(fetched.answer)
        if because is None or fetched.vouched:
            return fetched
        reason = (
            f"request {self._request_id} {pages_of(batch)}: its download URL came from the status "
            f"answer that gave {because} another batch's pages"
        )
        if fetched.again:
            raise BatchPagesMismatchError(reason)
        return self._fetch_again(batch, reason)

    def _numbered_alike(self, batch: BatchInfo, fetched: _Fetched[Parsed]) -> _Fetched[Parsed]:
        """Check 3: page ids numbered like those of the first batch that showed a numbering."""
        conflict = page_ids_conflict(self._request_id, batch, fetched.result.page_ids, self._first_numbered)
        if conflict is None:
            return fetched
        if fetched.again:
            raise conflict
        self._urls.newer_than(fetched.answer)
        fetched = self._fetch_again(batch, str(conflict))
        conflict = page_ids_conflict(self._request_id, batch, fetched.result.page_ids, self._first_numbered)
        if conflict is not None:
            raise BatchPagesMismatchError(f"{conflict}, again through fresh download URLs")
        return fetched

    def _check_passed_on(self) -> None:
        """Batches already yielded whose status answer has since been distrusted end the download."""
        if not self._urls.distrusts_any:
            return
        for batch, answer in self._unvouched:
            because = self._urls.distrusted(answer)
            if because is not None:
                raise BatchPagesMismatchError(
                    f"request {self._request_id} {pages_of(batch)} was already passed on when the status "
                    f"answer its download URL came from turned out to give {because} another batch's "
                    "pages; nothing vouches for its pages: fetch the results again"
                )


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
class _Fetched(Generic[Parsed]):
    """A parsed batch, which status answer issued the URL it came from, and whether it is a retry."""

    result: Parsed
    answer: int
    again: bool = False

    @property
    def vouched(self) -> bool:
        """Absolute page ids name exactly the pages announced; no other batch's download has them.
        Batch-relative ids (and no ids) are the same in every batch of a size: only the URL vouches."""
        return self.result.page_ids == "absolute"


def pages_of(batch: BatchInfo) -> str:
    return f"batch {batch.id} (pages {batch.start_page}-{batch.end_page})"


_NUMBERING = {"relative": "batch-relative", "absolute": "absolute"}


def page_ids_conflict(
    request_id: str, batch: BatchInfo, page_ids: PageIds | None, first: tuple[BatchInfo, PageIds] | None
) -> BatchPagesMismatchError | None:
    """All batches of a request number their pages one way; the first to show which sets it."""
    if first is None or page_ids is None or page_ids == first[1]:
        return None
    earlier, numbering = first
    return BatchPagesMismatchError(
        f"request {request_id} {pages_of(batch)}: its page ids are {_NUMBERING[page_ids]}, but those of "
        f"{pages_of(earlier)} were {_NUMBERING[numbering]}: one of the two holds other pages than announced"
    )


def completed_batches(info: RequestInfo) -> list[BatchInfo]:
    """The batches of a completed request, in page order, checked to cover every page once."""
    failure = info.failure()
    if failure is not None:
        raise failure
    if info.status is not RequestState.COMPLETED:
        raise RequestNotCompletedError(
            f"request {info.id} is not completed yet ({info.progress()}); wait for it before downloading"
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
