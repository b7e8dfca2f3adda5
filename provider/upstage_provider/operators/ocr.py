"""Operators: submit a document for async OCR, or OCR it end to end into Parquet in one task."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from upstage_provider import lineage
from upstage_provider.compat import AirflowException, AirflowFailException, conf
from upstage_provider.documents import MAX_ASYNC_PAGES, MAX_FILE_BYTES, MAX_SYNC_PAGES, Document
from upstage_provider.documents.split import DocumentPart, needs_split, split_document
from upstage_provider.events import airflow_error, failed_for_good, raise_for_event
from upstage_provider.exceptions import DocumentError, UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.landing import check_price_per_page, land, land_request, valid_partition
from upstage_provider.ledger import (
    DEFAULT_RETENTION,
    DOCUMENT_XCOM_KEY,
    Ledger,
    document_handoff,
    submit_once,
)
from upstage_provider.locations import (
    DEFAULT_STORAGE_CONN_ID,
    check_output_writable,
    plain_uri,
    read_valid_document,
)
from upstage_provider.parquet import DocumentMeta
from upstage_provider.parts import (
    PartRequest,
    check_parts,
    land_parts,
    part_ledger,
    recorded_parts,
    submit_parts,
)
from upstage_provider.polling import DEFAULT_MAX_POLL_INTERVAL, check_intervals
from upstage_provider.runtime import waiting_trigger
from upstage_provider.status import RequestInfo
from upstage_provider.wording import mib, mib_limit, plural

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

    One document, one request: a PDF or TIFF over the async limits (1,000 pages, 50 MB) is
    refused before any API call, with a message that points to :class:`UpstageOCROperator`
    (which splits it and lands one Parquet set), unless ``split_long_documents=True``.

    :param document: local path or object-storage URI (``s3://``, ``gs://``, ``file://``, ...).
    :param conn_id: the ``upstage`` connection.
    :param model: ``ocr`` or a pinned model version.
    :param storage_conn_id: the Airflow connection a plain ``s3://bucket/key`` document is read
        with (``s3://conn@bucket/key`` keeps its own); a missing connection falls back to boto's
        own credentials (environment, instance role). See :func:`upstage_provider.locations.location`.
    :param reattach_unrecorded: when an earlier try died between the upload and recording the
        request id, reattach to a request the API lists that matches the document's page count,
        every page's size and the time of the upload, instead of submitting again. Off by
        default: the API cannot prove such a request is this document's, and landing another
        document's words is worse than paying twice.
    :param split_long_documents: split a PDF or TIFF over the async limits into parts and submit
        one request per part (each reattached on a retry). The task then returns a list, for a
        document of any length: one ``PartRequest.to_json()`` dict per part, in page order,
        ``{"request_id", "part", "parts", "first_page", "page_count", "document",
        "document_uri", "document_sha256"}``. Each part is a document of its own to
        ``UpstageOCRSensor`` (expand it over the request ids): it lands under the part's URI
        (``<uri>#pages=1001-2000``) with pages numbered within the part.
    """

    template_fields: Sequence[str] = ("document", "conn_id", "model", "storage_conn_id")
    ui_color = "#e8f0fe"
    # For the OpenLineage methods, set while the task runs: the request(s) and the page count.
    _lineage_request_ids: tuple[str, ...] = ()
    _lineage_pages: int | None = None

    def __init__(
        self,
        *,
        document: Any,
        conn_id: str = UpstageOCRHook.default_conn_name,
        model: str = "ocr",
        reattach_unrecorded: bool = False,
        split_long_documents: bool = False,
        storage_conn_id: str | None = DEFAULT_STORAGE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.document = document
        self.conn_id = conn_id
        self.model = model
        self.storage_conn_id = storage_conn_id
        self.reattach_unrecorded = reattach_unrecorded
        self.split_long_documents = split_long_documents

    def execute(self, context: Context) -> str | list[dict[str, Any]]:
        check_price_per_page(self.conn_id)  # the sensor lands at this price: a bad one fails before paying
        doc = read_valid_document(self.document, None, self.storage_conn_id)
        self._lineage_pages = doc.page_count
        if needs_split(doc) and not self.split_long_documents:
            raise AirflowFailException(_one_request_refusal(doc))
        if self.split_long_documents:
            return self._submit_parts(context, doc)
        doc = read_valid_document(doc, "async")
        hook = UpstageOCRHook(self.conn_id)
        ledger = Ledger(context, doc.sha256, self.model)
        try:
            entry, _ = submit_once(
                hook, ledger, doc, plain_uri(self.document), reattach_unrecorded=self.reattach_unrecorded
            )
        except UpstageError as exc:
            if failed_for_good(context, exc):
                ledger.forget_if_variable()
            raise airflow_error(exc) from None
        finally:
            hook.close()
        context["ti"].xcom_push(key=DOCUMENT_XCOM_KEY, value=document_handoff(entry, ledger.variable_key))
        self._lineage_request_ids = (str(entry.request_id),)
        return str(entry.request_id)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the document in, no output yet, the request id(s) as the external query."""
        return lineage.submit_lineage(
            str(self.document),
            self._lineage_request_ids,
            source=lineage.api_source_for(self.conn_id),
            pages=self._lineage_pages,
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage: the document, any request already made, the error the task failed with."""
        return lineage.failure_lineage(
            str(self.document),
            ",".join(self._lineage_request_ids) or None,
            lineage.task_error(task_instance),
            source=lineage.api_source_for(self.conn_id),
        )

    def _submit_parts(self, context: Context, doc: Document) -> list[dict[str, Any]]:
        parts = _split(doc)
        hook = UpstageOCRHook(self.conn_id)
        try:
            requests = submit_parts(
                hook,
                doc,
                parts,
                model=self.model,
                ledger_for=lambda part: part_ledger(context, doc.sha256, part, self.model),
                reattach_unrecorded=self.reattach_unrecorded,
            )
        except UpstageError as exc:
            if failed_for_good(context, exc):
                for part in parts:
                    part_ledger(context, doc.sha256, part, self.model).forget_if_variable()
            raise airflow_error(exc) from None
        finally:
            hook.close()
        # One handoff per part (the sensor finds its own by request id), each naming the part.
        handoffs = [
            {
                "request_id": r.request_id,
                "document_uri": r.document_uri,
                "document_sha256": r.document_sha256,
                "model": self.model,
                "pages": r.page_count,
                "ledger_variable": part_ledger(context, doc.sha256, part, self.model).variable_key,
                "first_page": r.first_page,
            }
            for part, r in zip(parts, requests, strict=True)
        ]
        context["ti"].xcom_push(key=DOCUMENT_XCOM_KEY, value=handoffs)
        self._lineage_request_ids = tuple(r.request_id for r in requests)
        return [r.to_json() for r in requests]


def _one_request_refusal(doc: Document) -> str:
    pages = doc.page_count or 0
    if pages > MAX_ASYNC_PAGES:
        over = f"{plural(pages, 'page')} is over the async limit of {plural(MAX_ASYNC_PAGES, 'page')}"
    else:
        over = f"{mib(doc.size)} is over the API's {mib_limit(MAX_FILE_BYTES)} limit per file"
    return (
        f"{doc.name}: {over}, and UpstageOCRSubmitOperator submits one request per document; use "
        "UpstageOCROperator, which splits it into parts and lands one Parquet set with pages 1..N, "
        "or pass split_long_documents=True to submit one request per part (the task then returns a list)"
    )


def _split(doc: Document) -> list[DocumentPart]:
    """Parts that each fit the async limits; a document that cannot be split fails for good."""
    try:
        return split_document(doc)
    except DocumentError as exc:
        raise AirflowFailException(str(exc)) from None


class UpstageOCROperator(BaseOperator):
    """
    OCR one document into Parquet in a single task.

    ``mode="auto"`` takes the sync endpoint up to 100 pages and the async one above (and for
    office formats, whose pages cannot be counted before upload), deferring while it waits
    when ``deferrable``. Writes the same files and returns the same summary as
    :class:`~upstage_provider.sensors.ocr.UpstageOCRSensor`.

    A PDF or TIFF over the async limits (1,000 pages or 50 MB) is split into parts that fit
    (:mod:`upstage_provider.parts`): one async request per part, each in the submission ledger
    (a retry reattaches to every part already submitted), waited for one after another (deferring
    on each part still running), then landed as one Parquet set with document pages 1..N. Its
    summary's ``request_id`` joins the parts' ids with commas, and ``parts`` lists
    ``{"request_id", "first_page", "page_count", "billed_pages"}``. A failed part fails the task
    with the part's page range in the message.

    :param document: local path or object-storage URI.
    :param output_uri: the lake root (local path or URI) that receives ``words/`` and ``pages/``.
    :param partition: Hive-style partition path under each table, templated, e.g.
        ``"ds={{ ds }}"``: files land in ``<output_uri>/words/ds=.../`` and
        ``<output_uri>/pages/ds=.../``. None writes to ``<output_uri>/words/`` itself.
    :param storage_conn_id: the Airflow connection plain ``s3://`` URIs (the document and
        ``output_uri``) are read and written with; see :class:`UpstageOCRSubmitOperator`.
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

    template_fields: Sequence[str] = (
        "document",
        "output_uri",
        "conn_id",
        "model",
        "partition",
        "storage_conn_id",
    )
    ui_color = "#e8f0fe"
    # For the OpenLineage methods, set while the task runs (the listener calls them on this same
    # object once the task has ended): the request(s) made and the summary of what landed.
    _lineage_request_id: str | None = None
    _lineage_summary: dict[str, Any] | None = None

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
        partition: str | None = None,
        storage_conn_id: str | None = DEFAULT_STORAGE_CONN_ID,
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
        self.partition = partition
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> dict[str, Any] | None:
        valid_partition(self.partition)
        price = check_price_per_page(self.conn_id)
        doc = read_valid_document(self.document, None, self.storage_conn_id)
        path = self._path_for(doc)
        if path == "async" and needs_split(doc):
            return self._execute_parts(context, doc)
        read_valid_document(doc, path)
        check_output_writable(self.output_uri, self.storage_conn_id)
        self.log.info("%s: %s pages, %s path", self.document, doc.page_count or "?", path)
        hook = UpstageOCRHook(self.conn_id)
        ledger: Ledger | None = None
        try:
            if path == "sync":
                result = hook.ocr(doc, model=self.model)
                return self._landed(
                    land(
                        [result],
                        output_uri=self.output_uri,
                        meta=DocumentMeta(plain_uri(self.document), doc.sha256, None),
                        context=context,
                        outlets=self.outlets,
                        price_per_page=price,
                        partition=self.partition,
                        storage_conn_id=self.storage_conn_id,
                    )
                )
            ledger = self._ledger(context, doc.sha256)
            entry, _ = submit_once(
                hook, ledger, doc, plain_uri(self.document), reattach_unrecorded=self.reattach_unrecorded
            )
            return self._wait_and_land(hook, context, str(entry.request_id), doc)
        except UpstageError as exc:
            if ledger is not None and failed_for_good(context, exc):
                ledger.forget_if_variable()
            raise airflow_error(exc) from None
        finally:
            hook.close()

    def _landed(self, summary: dict[str, Any]) -> dict[str, Any]:
        self._lineage_summary = summary
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the document in, its words and pages files out, the request's facets."""
        return lineage.ocr_lineage(
            str(self.document),
            self._lineage_summary,
            source=lineage.api_source_for(self.conn_id),
            fs=lineage.storage_fs(self.output_uri, self.storage_conn_id),
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage: the document, any request already made, the error the task failed with."""
        return lineage.failure_lineage(
            str(self.document),
            self._lineage_request_id,
            lineage.task_error(task_instance),
            source=lineage.api_source_for(self.conn_id),
        )

    def _ledger(self, context: Context, sha256: str) -> Ledger:
        return Ledger(context, sha256, self.model, retention=self._retention())

    def _retention(self) -> timedelta:
        # The entry must outlive the wait (and the task's retries) to be of use to a retry.
        wait = timedelta(seconds=self.timeout) + (self.retries or 0) * self.retry_delay
        return max(DEFAULT_RETENTION, 2 * wait)

    def _path_for(self, doc: Document) -> Literal["sync", "async"]:
        if self.mode != "auto":
            return self.mode
        if doc.page_count is None or doc.page_count > MAX_SYNC_PAGES or needs_split(doc):
            return "async"
        return "sync"

    def _wait_and_land(
        self, hook: UpstageOCRHook, context: Context, request_id: str, doc: Document
    ) -> dict[str, Any] | None:
        self._lineage_request_id = request_id
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
        self._lineage_request_id = event.get("request_id") or None
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
                meta=DocumentMeta(plain_uri(self.document), sha256, request_id),
                context=context,
                outlets=self.outlets,
                partition=self.partition,
                storage_conn_id=self.storage_conn_id,
            )
        except AirflowFailException:
            ledger.forget_if_variable()
            raise
        ledger.forget_if_variable()
        return self._landed(summary)

    # --- a document split into parts (over 1,000 pages or 50 MB) --------------------------------------

    def _execute_parts(self, context: Context, doc: Document) -> dict[str, Any] | None:
        parts = _split(doc)
        check_output_writable(self.output_uri, self.storage_conn_id)
        self.log.info(
            "%s: %s pages, %s bytes: over the async limits, split into %d parts (pages %s)",
            self.document,
            doc.page_count,
            f"{doc.size:,}",
            len(parts),
            ", ".join(f"{p.first_page}-{p.last_page}" for p in parts),
        )
        return self._run_parts(context, doc, parts, time.time() + self.timeout, resumed=False)

    def execute_parts_complete(
        self, context: Context, event: dict[str, Any], deadline: float | None = None
    ) -> dict[str, Any] | None:
        """Back from waiting on one part: on to the next part still running, or land them all.

        The parts are found again from the document and the ledger (split again, no API call),
        not from the deferral's kwargs: ``dag.test()`` drops those when it resumes a task.
        """
        doc = read_valid_document(self.document, None, self.storage_conn_id)
        parts = _split(doc)
        self._lineage_request_id = event.get("request_id") or None
        try:
            raise_for_event(event)
        except AirflowException as exc:
            recorded = recorded_parts(doc, parts, lambda part: self._part_ledger(context, doc.sha256, part))
            failed = next((r for r in recorded or [] if r.request_id == event.get("request_id")), None)
            if isinstance(exc, AirflowFailException):
                self._forget_parts(context, doc.sha256, parts)
            label = failed.label if failed is not None else f"a part of {self.document}"
            raise type(exc)(f"{label} failed: {exc}") from None
        return self._run_parts(context, doc, parts, deadline or time.time() + self.timeout, resumed=True)

    def _run_parts(
        self, context: Context, doc: Document, parts: list[DocumentPart], deadline: float, *, resumed: bool
    ) -> dict[str, Any] | None:
        """Submit the parts (or, resumed, take them from the ledger), wait for them, land them."""
        hook = UpstageOCRHook(self.conn_id)

        def ledger_for(part: DocumentPart) -> Ledger:
            return self._part_ledger(context, doc.sha256, part)

        try:
            requests = recorded_parts(doc, parts, ledger_for) if resumed else None
            if resumed and requests is None:
                # Never submitted from a resumption: a document changed while its parts were under
                # way (or a ledger that lost them) must not be paid for on every resumption.
                raise AirflowException(
                    f"{self.document}: the ledger no longer has a request for every part submitted "
                    "before deferring (was the document replaced meanwhile?); a retry submits anew"
                )
            if requests is None:
                requests = submit_parts(
                    hook,
                    doc,
                    parts,
                    model=self.model,
                    ledger_for=ledger_for,
                    reattach_unrecorded=self.reattach_unrecorded,
                )
            self._lineage_request_id = ",".join(r.request_id for r in requests)
            summary = self._wait_parts(hook, context, doc.sha256, requests, deadline)
        except UpstageError as exc:
            if failed_for_good(context, exc):
                self._forget_parts(context, doc.sha256, parts)
            raise airflow_error(exc) from None
        finally:
            hook.close()
        self._forget_parts(context, doc.sha256, parts)
        return self._landed(summary)

    def _wait_parts(
        self,
        hook: UpstageOCRHook,
        context: Context,
        sha256: str,
        requests: list[PartRequest],
        deadline: float,
    ) -> dict[str, Any]:
        """Wait for the parts one after another (deferring on each still running), then land them."""
        known: dict[str, RequestInfo] = {}
        while (pending := check_parts(hook, requests, known)) is not None:
            if self.deferrable:
                remaining = max(0.0, deadline - time.time())
                trigger, backstop = waiting_trigger(
                    pending.request_id,
                    self.conn_id,
                    self.poll_interval,
                    remaining,
                    max_poll_interval=self.max_poll_interval,
                    adaptive_polling=self.adaptive_polling,
                )
                self.log.info("%s: request %s still running; deferring", pending.label, pending.request_id)
                self.defer(
                    trigger=trigger,
                    method_name="execute_parts_complete",
                    kwargs={"deadline": deadline},
                    timeout=backstop,
                )
            if time.time() > deadline:
                raise AirflowException(
                    f"{pending.label}: Upstage request {pending.request_id} did not finish "
                    f"in {self.timeout:.0f} s"
                )
            self.log.info("%s: %s", pending.label, known[pending.request_id].progress())
            time.sleep(self.poll_interval)
        return land_parts(
            hook,
            requests,
            known,
            document_uri=plain_uri(self.document),
            document_sha256=sha256,
            output_uri=self.output_uri,
            context=context,
            outlets=self.outlets,
            partition=self.partition,
            storage_conn_id=self.storage_conn_id,
        )

    def _part_ledger(self, context: Context, sha256: str, part: DocumentPart) -> Ledger:
        return part_ledger(context, sha256, part, self.model, self._retention())

    def _forget_parts(self, context: Context, sha256: str, parts: list[DocumentPart]) -> None:
        for part in parts:
            self._part_ledger(context, sha256, part).forget_if_variable()
