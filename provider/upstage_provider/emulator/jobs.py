"""Async OCR requests: accepted at once, processed in 10-page batches by a small worker pool.

A request goes ``submitted`` -> ``started`` (a worker measured and opened the document) ->
``completed`` | ``failed``; its batches go ``scheduled`` -> ``started`` -> ``completed`` |
``failed``. Every batch is a task of its own, so with two workers two batches (of one request
or of two) are read at once, as on the real service. A finished batch keeps its result as the
JSON bytes a download returns; the document itself is dropped once the engine has opened it.
Everything lives in memory, keyed by server-chosen ids: no client-supplied name is ever a path.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any

from upstage_provider.emulator.config import EmulatorConfig, FaultConfig
from upstage_provider.emulator.engine import EngineDocument, OCREngine, UnreadableDocumentError
from upstage_provider.emulator.errors import ApiError
from upstage_provider.emulator.limits import check_page_count, check_pages, shown_name
from upstage_provider.emulator.responses import build_ocr_response

log = logging.getLogger(__name__)

#: How many requests ``GET /requests`` lists (the newest).
LIST_LIMIT = 100


def rfc3339(timestamp: float | None) -> str | None:
    """UTC with millisecond precision and a ``Z``, as the API's timestamps are."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Stopped(Exception):
    """The server is shutting down: leave the work unfinished."""


class _InjectedBatchFailure(Exception):
    """A batch the fault config says must fail."""


@dataclass(slots=True)
class Batch:
    index: int
    start_page: int  # 1-based, inclusive
    end_page: int
    requested_at: float
    updated_at: float
    status: str = "scheduled"
    failure_message: str | None = None
    result: bytes | None = None

    @property
    def page_count(self) -> int:
        return self.end_page - self.start_page + 1


@dataclass(slots=True)
class Job:
    id: str
    model: str
    filename: str
    fmt: Any
    faults: FaultConfig
    requested_at: float
    document: bytes | None
    status: str = "submitted"
    failure_message: str | None = None
    total_pages: int | None = None
    completed_pages: int = 0
    completed_at: float | None = None
    batches: list[Batch] = field(default_factory=list)
    engine_document: EngineDocument | None = None
    unfinished: int = 0


class JobManager:
    """Owns the async requests of one server and the worker pool that processes them."""

    def __init__(
        self,
        engine: OCREngine,
        config: EmulatorConfig,
        *,
        on_pages: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._engine = engine
        self._config = config
        self._on_pages = on_pages
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="upstage-emulator-job")

    # --- the API's view -----------------------------------------------------------------------

    def submit(self, data: bytes, filename: str, fmt: Any, model: str, faults: FaultConfig) -> str:
        """Register a request and queue its preparation; returns the request id at once."""
        now = time.time()
        job = Job(
            id=str(uuid.uuid4()),
            model=model,
            filename=shown_name(filename),
            fmt=fmt,
            faults=faults,
            requested_at=now,
            document=data,
        )
        with self._lock:
            self._jobs[job.id] = job
        self._pool.submit(self._guarded, self._prepare, job)
        log.info("request %s: %s submitted (%d bytes)", job.id, job.filename, len(data))
        return job.id

    def status(self, request_id: str, download_url: Callable[[str, int], str]) -> dict[str, Any] | None:
        """The status document of one request, with fresh URLs for its finished batches."""
        with self._lock:
            job = self._jobs.get(request_id)
            if job is None:
                return None
            batches = [
                {
                    "id": b.index,
                    "model": job.model,
                    "status": b.status,
                    "failure_message": b.failure_message,
                    "download_url": None,
                    "start_page": b.start_page,
                    "end_page": b.end_page,
                    "requested_at": rfc3339(b.requested_at),
                    "updated_at": rfc3339(b.updated_at),
                }
                for b in job.batches
            ]
            body = {
                "id": job.id,
                "status": job.status,
                "model": job.model,
                "failure_message": job.failure_message,
                "total_pages": job.total_pages,
                "completed_pages": job.completed_pages,
                "requested_at": rfc3339(job.requested_at),
                "completed_at": rfc3339(job.completed_at),
                "batches": batches,
            }
        for index, batch in enumerate(batches):  # signing needs nothing of the job's state: no lock
            if batch["status"] == "completed":
                batch["download_url"] = download_url(job.id, index)
        return body

    def list(self) -> list[dict[str, Any]]:
        """The newest :data:`LIST_LIMIT` requests, newest first."""
        with self._lock:
            newest = list(self._jobs.values())[-LIST_LIMIT:]
            return [
                {
                    "id": job.id,
                    "status": job.status,
                    "model": job.model,
                    "requested_at": rfc3339(job.requested_at),
                    "completed_at": rfc3339(job.completed_at),
                }
                for job in reversed(newest)
            ]

    def result(self, request_id: str, batch_index: int) -> bytes | None:
        """A completed batch's JSON, or None if there is no such completed batch."""
        with self._lock:
            job = self._jobs.get(request_id)
            if job is None or not 0 <= batch_index < len(job.batches):
                return None
            return job.batches[batch_index].result

    def counts(self) -> dict[str, int]:
        """How many requests are in each status."""
        with self._lock:
            counts: dict[str, int] = {}
            for job in self._jobs.values():
                counts[job.status] = counts.get(job.status, 0) + 1
            return counts

    def clear(self) -> None:
        """Forget every request; work under way finishes into requests nobody can see."""
        with self._lock:
            self._jobs.clear()

    def close(self) -> None:
        """Stop the workers: queued work is dropped, sleeping work wakes and leaves."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            self._close_document(job)

    # --- the workers ----------------------------------------------------------------------------

    def _guarded(self, task: Callable[[Job], None], job: Job) -> None:
        """Run one task; nothing it raises may kill a worker thread silently."""
        if self._stop.is_set():
            return
        try:
            task(job)
        except _Stopped:
            pass
        except Exception:
            log.exception("request %s: unexpected error in the emulator", job.id)
            self._fail(job, "internal error in the emulator's OCR engine")

    def _prepare(self, job: Job) -> None:
        """Measure and open the document, then schedule its batches (or fail the request)."""
        with self._lock:
            job.status = "started"
        data = job.document
        assert data is not None
        try:
            pages = check_pages(data, job.fmt, job.filename, sync=False)
            if pages is not None:
                job.total_pages = pages
            document = self._engine.open(data, job.filename)
        except ApiError as exc:
            self._fail(job, exc.message)
            return
        except UnreadableDocumentError as exc:
            self._fail(job, str(exc))
            return
        finally:
            job.document = None
        job.engine_document = document
        try:
            check_page_count(document.page_count, job.filename, sync=False)
        except ApiError as exc:
            self._fail(job, exc.message, total_pages=document.page_count)
            return
        if job.faults.fail_request_message:
            self._fail(job, job.faults.fail_request_message, total_pages=document.page_count)
            return
        self._schedule(job, document.page_count)

    def _schedule(self, job: Job, page_count: int) -> None:
        now = time.time()
        size = self._config.batch_size
        batches = [
            Batch(
                index=i,
                start_page=start,
                end_page=min(start + size - 1, page_count),
                requested_at=now,
                updated_at=now,
            )
            for i, start in enumerate(range(1, page_count + 1, size))
        ]
        with self._lock:
            job.total_pages = page_count
            job.batches = batches
            job.unfinished = len(batches)
        log.info("request %s: %d pages in %d batches", job.id, page_count, len(batches))
        if not batches:
            self._finish(job)
        for batch in batches:
            try:
                self._pool.submit(self._guarded, partial(self._run_batch, batch=batch), job)
            except RuntimeError:  # the pool was shut down while this request was being prepared
                raise _Stopped from None

    def _run_batch(self, job: Job, *, batch: Batch) -> None:
        with self._lock:
            batch.status = "started"
            batch.updated_at = time.time()
        try:
            self._sleep(job.faults.latency_per_page * batch.page_count)
            if batch.index in job.faults.fail_batches:
                raise _InjectedBatchFailure(
                    f"pages {batch.start_page}-{batch.end_page} could not be processed (injected fault)"
                )
            document = job.engine_document
            assert document is not None
            pages = []
            for index in range(batch.start_page - 1, batch.end_page):
                if self._stop.is_set():
                    raise _Stopped
                pages.append(document.page(index))
            first_id = 0 if self._config.batch_page_ids == "relative" else batch.start_page - 1
            body = build_ocr_response(
                pages, model_version=job.model, first_page_id=first_id, snake_case=self._config.snake_case
            )
            result = json.dumps(body, ensure_ascii=False).encode()
        except _Stopped:
            raise
        except (_InjectedBatchFailure, UnreadableDocumentError) as exc:
            self._end_batch(job, batch, "failed", failure_message=str(exc))
            return
        except Exception:
            log.exception("request %s batch %d: OCR failed", job.id, batch.index)
            message = f"OCR failed on pages {batch.start_page}-{batch.end_page}"
            self._end_batch(job, batch, "failed", failure_message=message)
            return
        self._on_pages(batch.page_count)
        self._end_batch(job, batch, "completed", result=result)

    def _end_batch(
        self,
        job: Job,
        batch: Batch,
        status: str,
        *,
        result: bytes | None = None,
        failure_message: str | None = None,
    ) -> None:
        with self._lock:
            batch.status = status
            batch.updated_at = time.time()
            batch.result = result
            batch.failure_message = failure_message
            if status == "completed":
                job.completed_pages += batch.page_count
            job.unfinished -= 1
            last = job.unfinished == 0
            done = sum(1 for b in job.batches if b.status in ("completed", "failed"))
        log.info(
            "request %s: batch %d/%d %s, %d/%s pages",
            job.id, done, len(job.batches), status, job.completed_pages, job.total_pages,
        )  # fmt: skip
        if last:
            self._finish(job)

    def _finish(self, job: Job) -> None:
        self._close_document(job)
        failed = [b for b in job.batches if b.status == "failed"]
        with self._lock:
            job.completed_at = time.time()
            if failed:
                job.status = "failed"
                job.failure_message = f"{len(failed)} of {len(job.batches)} batches failed: " + "; ".join(
                    f"batch {b.index} (pages {b.start_page}-{b.end_page}): {b.failure_message}"
                    for b in failed
                )
            else:
                job.status = "completed"
        log.info("request %s: %s, %d/%s pages", job.id, job.status, job.completed_pages, job.total_pages)

    def _fail(self, job: Job, message: str, *, total_pages: int | None = None) -> None:
        self._close_document(job)
        with self._lock:
            if total_pages is not None:
                job.total_pages = total_pages
            job.status = "failed"
            job.failure_message = message
            job.completed_at = time.time()
        log.info("request %s: failed: %s", job.id, message)

    def _close_document(self, job: Job) -> None:
        with self._lock:
            document, job.engine_document = job.engine_document, None
        if document is not None:
            try:
                document.close()
            except Exception:
                log.warning("request %s: closing the document failed", job.id, exc_info=True)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._stop.wait(seconds):
            raise _Stopped
