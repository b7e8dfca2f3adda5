"""Operators: submit a document for async OCR, or OCR it end to end into Parquet in one task."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from upstage_provider.compat import AirflowException, AirflowFailException, conf
from upstage_provider.documents import MAX_SYNC_PAGES, Document
from upstage_provider.events import airflow_error, failed_for_good, raise_for_event
from upstage_provider.exceptions import UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.landing import land, land_request
from upstage_provider.ledger import (
    DEFAULT_RETENTION,
    DOCUMENT_XCOM_KEY,
    Ledger,
    document_handoff,
    submit_once,
)
from upstage_provider.locations import check_output_writable, read_valid_document
from upstage_provider.parquet import DocumentMeta
from upstage_provider.polling import DEFAULT_MAX_POLL_INTERVAL, check_intervals
from upstage_provider.runtime import waiting_trigger
from upstage_provider.status import RequestInfo

if TYPE_CHECKING:
    from airflow.sdk import Context

Mode = Literal["auto", "sync", "async"]


class UpstageOCRSubmitOperator(BaseOperator):
    """
    Validate a document and submit it for async OCR; returns the request id.

    A retry (or a cleared rerun) of this task reattaches to the request its earlier try
    submitted, unless that request failed or the API no longer knows it, instead of paying for
    the document again. Submissions are recorded in the submission ledger
    (:mod:`upstage_provider.ledger`): the task state store on Airflow 3.3, Variables before.
    The document's URI and SHA-256 go to XCom (key ``upstage_document``) for the sensor.

    :param document: local path or object-storage URI (``s3://``, ``gs://``, ``file://``, ...).
    :param conn_id: the ``upstage`` connection.
    :param model: ``ocr`` or a pinned model version.
    :param reattach_unrecorded: when an earlier try died between the upload and recording the
        request id, reattach to a request the API lists that matches the document's page count,
        every page's size and the time of the upload, instead of submitting again. Off by
        default: the API cannot prove such a request is this document's, and landing another
        document's words is worse than paying twice.
    """

    template_fields: Sequence[str] = ("document", "conn_id", "model")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        document: Any,
        conn_id: str = UpstageOCRHook.default_conn_name,
        model: str = "ocr",
        reattach_unrecorded: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.document = document
        self.conn_id = conn_id
        self.model = model
        self.reattach_unrecorded = reattach_unrecorded

    def execute(self, context: Context) -> str:
        doc = read_valid_document(self.document, "async")
        hook = UpstageOCRHook(self.conn_id)
        ledger = Ledger(context, doc.sha256, self.model)
        try:
            entry, _ = submit_once(
                hook, ledger, doc, str(self.document), reattach_unrecorded=self.reattach_unrecorded
            )
        except UpstageError as exc:
            if failed_for_good(context, exc):
                ledger.forget_if_variable()
            raise airflow_error(exc) from None
        finally:
            hook.close()
        context["ti"].xcom_push(key=DOCUMENT_XCOM_KEY, value=document_handoff(entry, ledger.variable_key))
        return str(entry.request_id)


class UpstageOCROperator(BaseOperator):
    """
    OCR one document into Parquet in a single task.

    ``mode="auto"`` takes the sync endpoint up to 100 pages and the async one above (and for
    office formats, whose pages cannot be counted before upload), deferring while it waits
    when ``deferrable``. Writes the same files and returns the same summary as
    :class:`~upstage_provider.sensors.ocr.UpstageOCRSensor`.

    :param document: local path or object-storage URI.
    :param output_uri: folder (local path or URI) that receives ``words/`` and ``pages/``.
    :param conn_id: the ``upstage`` connection.
    :param mode: ``auto``, ``sync`` or ``async``.
    :param model: ``ocr`` or a pinned model version.
    :param deferrable: wait for async results in the triggerer, not a worker slot.
    :param poll_interval: seconds between status calls on the async path.
    :param max_poll_interval: while deferred, the longest wait between two status calls.
    :param adaptive_polling: while deferred, space status calls by the request's progress
        (:mod:`upstage_provider.polling`); False polls every ``poll_interval``.
    :param timeout: how long to wait for an async request.
    :param reattach_unrecorded: see :class:`UpstageOCRSubmitOperator`.
    """

    template_fields: Sequence[str] = ("document", "output_uri", "conn_id", "model")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        document: Any,
        output_uri: Any,
        conn_id: str = UpstageOCRHook.default_conn_name,
        mode: Mode = "auto",
        model: str = "ocr",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float | timedelta = timedelta(hours=24),
        reattach_unrecorded: bool = False,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        adaptive_polling: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_intervals(poll_interval, max_poll_interval)
        if mode not in ("auto", "sync", "async"):
            raise ValueError(f"mode must be 'auto', 'sync' or 'async', not {mode!r}")
        self.document = document
        self.output_uri = output_uri
        self.conn_id = conn_id
        self.mode = mode
        self.model = model
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self.reattach_unrecorded = reattach_unrecorded
        self.max_poll_interval = max_poll_interval
        self.adaptive_polling = adaptive_polling

    def execute(self, context: Context) -> dict[str, Any] | None:
        doc = read_valid_document(self.document, None)
        path = self._path_for(doc)
        read_valid_document(doc, path)
        check_output_writable(self.output_uri)
        self.log.info("%s: %s pages, %s path", self.document, doc.page_count or "?", path)
        hook = UpstageOCRHook(self.conn_id)
        ledger: Ledger | None = None
        try:
            if path == "sync":
                result = hook.ocr(doc, model=self.model)
                return land(
                    [result],
                    output_uri=self.output_uri,
                    meta=DocumentMeta(str(self.document), doc.sha256, None),
                    context=context,
                    outlets=self.outlets,
                )
            ledger = self._ledger(context, doc.sha256)
            entry, _ = submit_once(
                hook, ledger, doc, str(self.document), reattach_unrecorded=self.reattach_unrecorded
            )
            return self._wait_and_land(hook, context, str(entry.request_id), doc)
        except UpstageError as exc:
            if ledger is not None and failed_for_good(context, exc):
                ledger.forget_if_variable()
            raise airflow_error(exc) from None
        finally:
            hook.close()

    def _ledger(self, context: Context, sha256: str) -> Ledger:
        # The entry must outlive the wait (and the task's retries) to be of use to a retry.
        wait = timedelta(seconds=self.timeout) + (self.retries or 0) * self.retry_delay
        return Ledger(context, sha256, self.model, retention=max(DEFAULT_RETENTION, 2 * wait))

    def _path_for(self, doc: Document) -> Literal["sync", "async"]:
        if self.mode != "auto":
            return self.mode
        if doc.page_count is None or doc.page_count > MAX_SYNC_PAGES:
            return "async"
        return "sync"

    def _wait_and_land(
        self, hook: UpstageOCRHook, context: Context, request_id: str, doc: Document
    ) -> dict[str, Any] | None:
        trigger, backstop = waiting_trigger(
            request_id,
            self.conn_id,
            self.poll_interval,
            self.timeout,
            max_poll_interval=self.max_poll_interval,
            adaptive_polling=self.adaptive_polling,
        )
        info = hook.get_request(request_id)
        if self.deferrable and not info.is_terminal:
            self.log.info("Upstage request %s: %s; deferring to the triggerer", request_id, info.progress())
            self.defer(
                trigger=trigger,
                method_name="execute_complete",
                kwargs={"document_sha256": doc.sha256},
                timeout=backstop,
            )
        while not info.is_terminal:
            if trigger.deadline is not None and time.time() > trigger.deadline:
                raise AirflowException(f"Upstage request {request_id} did not finish in {self.timeout:.0f} s")
            self.log.info("Upstage request %s: %s", request_id, info.progress())
            time.sleep(self.poll_interval)
            info = hook.get_request(request_id)
        return self._land_request(hook, context, request_id, doc.sha256, info)

    def execute_complete(
        self, context: Context, event: dict[str, Any], document_sha256: str = ""
    ) -> dict[str, Any]:
        try:
            request_id = raise_for_event(event)
        except AirflowFailException:
            self._ledger(context, document_sha256).forget_if_variable()
            raise
        hook = UpstageOCRHook(self.conn_id)
        try:
            return self._land_request(hook, context, request_id, document_sha256, None)
        finally:
            hook.close()

    def _land_request(
        self, hook: UpstageOCRHook, context: Context, request_id: str, sha256: str, info: RequestInfo | None
    ) -> dict[str, Any]:
        ledger = self._ledger(context, sha256)
        try:
            summary = land_request(
                hook,
                request_id,
                info,
                output_uri=self.output_uri,
                meta=DocumentMeta(str(self.document), sha256, request_id),
                context=context,
                outlets=self.outlets,
            )
        except AirflowFailException:
            ledger.forget_if_variable()
            raise
        ledger.forget_if_variable()
        return summary
