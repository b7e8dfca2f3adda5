"""Sensor that waits for an async Upstage request, then lands its words and pages as Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from upstage_provider import lineage
from upstage_provider.compat import AirflowFailException, AirflowSensorTimeout, conf
from upstage_provider.events import airflow_error, raise_for_event
from upstage_provider.exceptions import UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.landing import check_price_per_page, land_request, valid_partition
from upstage_provider.ledger import delete_variable, find_handoff
from upstage_provider.locations import (
    DEFAULT_STORAGE_CONN_ID,
    check_output_writable,
    plain_uri,
    read_document,
)
from upstage_provider.parquet import DocumentMeta
from upstage_provider.polling import DEFAULT_MAX_POLL_INTERVAL, check_intervals
from upstage_provider.runtime import waiting_trigger
from upstage_provider.status import RequestInfo

if TYPE_CHECKING:
    from airflow.sdk import Context


class UpstageOCRSensor(BaseSensorOperator):
    """
    Wait for an async OCR request, then write its results under ``output_uri``.

    Writes ``<output_uri>/words/<doc>.parquet`` and ``<output_uri>/pages/<doc>.parquet`` (with
    ``partition``: ``<output_uri>/words/<partition>/<doc>.parquet``, ...) and returns
    ``{"request_id", "words_uri", "pages_uri", "pages", "words", "partition", "billed_pages"}``
    (with a ``price_per_page`` on the connection also ``"estimated_cost"`` and ``"price_per_page"``).
    Deferrable, it waits in the triggerer through
    :class:`~upstage_provider.triggers.ocr.UpstageOCRTrigger`; otherwise it pokes
    (``mode="reschedule"`` frees the slot between pokes). A failed request or batch fails
    the task without retries.

    :param request_id: the request to wait for (usually ``UpstageOCRSubmitOperator``'s output).
    :param output_uri: the lake root (local path or object-storage URI) that receives ``words/``
        and ``pages/``.
    :param partition: Hive-style partition path under each table, templated, e.g.
        ``"ds={{ ds }}"`` (several levels: ``"year=2026/month=11"``). None writes to
        ``<output_uri>/words/`` itself.
    :param storage_conn_id: the Airflow connection plain ``s3://`` URIs (``output_uri`` and
        ``document``) are written and read with; ``s3://conn@bucket/...`` keeps its own. A
        missing connection falls back to boto's own credentials (environment, instance role).
    :param conn_id: the ``upstage`` connection.
    :param document: the submitted document, when the request was not submitted by an upstream
        ``UpstageOCRSubmitOperator`` (whose XCom ``upstage_document`` names it); gives the
        ``document_uri``/``document_sha256`` columns.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between status calls (while deferred: before the first one,
        and the shortest wait between two).
    :param timeout: how long to wait for the request (seconds or a ``timedelta``; 24 hours by
        default): past it the task fails with ``AirflowSensorTimeout``, without retries. Deferred,
        the deadline is absolute and survives triggerer restarts.
    :param max_poll_interval: while deferred, the longest wait between two status calls.
    :param adaptive_polling: while deferred, space status calls by the request's progress, or
        geometrically without it (:mod:`upstage_provider.polling`); False polls every
        ``poll_interval``.
    """

    template_fields: Sequence[str] = (
        "request_id",
        "output_uri",
        "conn_id",
        "document",
        "partition",
        "storage_conn_id",
    )
    # The waiting schedule is not templated: a bad one must fail when the DAG is parsed.
    ui_color = "#e8f0fe"
    # What the OpenLineage methods report, set while the task runs (the listener calls them on
    # this same object once the task has ended).
    _lineage_document: str | None = None
    _lineage_summary: dict[str, Any] | None = None

    def __init__(
        self,
        *,
        request_id: str,
        output_uri: Any,
        conn_id: str = UpstageOCRHook.default_conn_name,
        document: Any = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float | timedelta = timedelta(hours=24),
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        adaptive_polling: bool = True,
        partition: str | None = None,
        storage_conn_id: str | None = DEFAULT_STORAGE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        check_intervals(poll_interval, max_poll_interval)
        super().__init__(poke_interval=poll_interval, timeout=timeout, **kwargs)
        self.request_id = request_id
        self.output_uri = output_uri
        self.conn_id = conn_id
        self.document = document
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.adaptive_polling = adaptive_polling
        self.partition = partition
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> Any:
        # Hours of waiting must not end in a write that cannot succeed, nor a price that is not one.
        valid_partition(self.partition)
        check_output_writable(self.output_uri, self.storage_conn_id)
        check_price_per_page(self.conn_id)
        if not self.deferrable:
            return super().execute(context)
        trigger, backstop = waiting_trigger(
            self.request_id,
            self.conn_id,
            self.poll_interval,
            self.timeout,
            max_poll_interval=self.max_poll_interval,
            adaptive_polling=self.adaptive_polling,
        )
        hook = UpstageOCRHook(self.conn_id)
        try:
            info = self._status(hook)
            if info.is_terminal:
                return self._land(context, hook, info)
        finally:
            hook.close()
        self.log.info("Upstage request %s: %s; deferring to the triggerer", self.request_id, info.progress())
        self.defer(trigger=trigger, method_name="execute_complete", timeout=backstop)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        hook = UpstageOCRHook(self.conn_id)
        try:
            info = self._status(hook)
            self.log.info("Upstage request %s: %s", self.request_id, info.progress())
            if not info.is_terminal:
                return False
            return PokeReturnValue(is_done=True, xcom_value=self._land(context, hook, info))
        finally:
            hook.close()

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        try:
            raise_for_event(event, timeout_error=AirflowSensorTimeout)
        except AirflowFailException:
            self._forget_submission(context)
            raise
        hook = UpstageOCRHook(self.conn_id)
        try:
            return self._land(context, hook, None)
        finally:
            hook.close()

    def _status(self, hook: UpstageOCRHook) -> RequestInfo:
        try:
            return hook.get_request(self.request_id)
        except UpstageError as exc:
            raise airflow_error(exc) from None

    def _land(self, context: Context, hook: UpstageOCRHook, info: RequestInfo | None) -> dict[str, Any]:
        try:
            summary = land_request(
                hook,
                self.request_id,
                info,
                output_uri=self.output_uri,
                meta=self._meta(context),
                context=context,
                outlets=self.outlets,
                partition=self.partition,
                storage_conn_id=self.storage_conn_id,
            )
        except AirflowFailException:
            self._forget_submission(context)
            raise
        self._forget_submission(context)
        self._lineage_summary = summary
        return summary

    def _meta(self, context: Context) -> DocumentMeta:
        if self.document:
            self._lineage_document = plain_uri(self.document)
            doc = read_document(self.document, self.storage_conn_id)
            return DocumentMeta(plain_uri(self.document), doc.sha256, self.request_id)
        handoff = self._handoff(context)
        if handoff:
            # plain_uri again: a handoff pushed before the connection id was stripped may carry one.
            uri = plain_uri(handoff["document_uri"])
            self._lineage_document = uri
            return DocumentMeta(uri, handoff["document_sha256"], self.request_id)
        self.log.warning(
            "Upstage request %s was not submitted by an upstream UpstageOCRSubmitOperator and no "
            "`document` was given: document_uri and document_sha256 are left unknown",
            self.request_id,
        )
        return DocumentMeta(f"upstage://requests/{self.request_id}", "", self.request_id)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the document in, its words and pages files out, the request's facets."""
        return lineage.ocr_lineage(
            self._lineage_document,
            self._lineage_summary,
            source=lineage.api_source_for(self.conn_id),
            fs=lineage.storage_fs(self.output_uri, self.storage_conn_id),
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage: the document and request known so far, and the error the task failed with."""
        return lineage.failure_lineage(
            self._lineage_document or self._handoff_document(task_instance),
            self.request_id,
            lineage.task_error(task_instance),
            source=lineage.api_source_for(self.conn_id),
        )

    def _handoff_document(self, task_instance: Any) -> str | None:
        """The document of a task that failed before it read the handoff (a failed request)."""
        if self.document:
            return str(self.document)
        try:
            handoff = self._handoff(task_instance.get_template_context())
        except Exception:
            return None
        return str(handoff["document_uri"]) if handoff else None

    def _handoff(self, context: Context) -> dict[str, Any] | None:
        """Pulled once per task run: the metadata and the Variable cleanup both need it."""
        if not hasattr(self, "_handoff_pulled"):
            self._handoff_pulled = find_handoff(context, self.upstream_task_ids, self.request_id)
        return self._handoff_pulled

    def _forget_submission(self, context: Context) -> None:
        """On Airflow 3.1/3.2 the submit task's ledger Variable goes once the document is done."""
        handoff = self._handoff(context)
        key = handoff.get("ledger_variable") if handoff else None
        if key:
            delete_variable(str(key))
