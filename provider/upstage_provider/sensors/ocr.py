"""Sensor that waits for an async Upstage request, then lands its words and pages as Parquet."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from upstage_provider.compat import AirflowSensorTimeout, conf
from upstage_provider.exceptions import UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.parquet import DocumentMeta
from upstage_provider.runtime import (
    airflow_error,
    land_request,
    raise_for_event,
    read_document,
    recorded_document,
)
from upstage_provider.status import RequestInfo
from upstage_provider.triggers.ocr import UpstageOCRTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

# The deferral's own timeout is a backstop behind the trigger's deadline event.
DEFER_TIMEOUT_MARGIN = 300.0


class UpstageOCRSensor(BaseSensorOperator):
    """
    Wait for an async OCR request, then write its results under ``output_uri``.

    Writes ``<output_uri>/words/<doc>.parquet`` and ``<output_uri>/pages/<doc>.parquet`` and
    returns ``{"request_id", "words_uri", "pages_uri", "pages", "words"}``. Deferrable, it waits
    in the triggerer through :class:`UpstageOCRTrigger`; otherwise it pokes (``mode="reschedule"``
    frees the slot between pokes). A failed request or batch fails the task without retries.

    :param request_id: the request to wait for (usually ``UpstageOCRSubmitOperator``'s output).
    :param output_uri: folder (local path or object-storage URI) that receives the Parquet.
    :param conn_id: the ``upstage`` connection.
    :param document: the submitted document, when the request was not submitted by
        ``UpstageOCRSubmitOperator`` (which records it); gives the ``document_uri``/``sha256`` columns.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between status calls.
    """

    template_fields: Sequence[str] = ("request_id", "output_uri", "conn_id", "document")
    ui_color = "#e8f0fe"

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
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poll_interval, timeout=timeout, **kwargs)
        self.request_id = request_id
        self.output_uri = output_uri
        self.conn_id = conn_id
        self.document = document
        self.deferrable = deferrable
        self.poll_interval = poll_interval

    @property
    def hook(self) -> UpstageOCRHook:
        return UpstageOCRHook(self.conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        deadline = time.time() + self.timeout
        info = self._status(self.hook)
        if info.is_terminal:
            return self._finish(context, info)
        self.log.info("Upstage request %s: %s; deferring to the triggerer", self.request_id, info.progress())
        self.defer(
            trigger=UpstageOCRTrigger(
                request_id=self.request_id,
                conn_id=self.conn_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFER_TIMEOUT_MARGIN),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        info = self._status(self.hook)
        self.log.info("Upstage request %s: %s", self.request_id, info.progress())
        if not info.is_terminal:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, info))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        raise_for_event(event, timeout_error=AirflowSensorTimeout)
        return self._finish(context, None)

    def _status(self, hook: UpstageOCRHook) -> RequestInfo:
        try:
            return hook.get_request(self.request_id)
        except UpstageError as exc:
            raise airflow_error(exc) from None

    def _finish(self, context: Context, info: RequestInfo | None) -> dict[str, Any]:
        hook = self.hook
        try:
            return land_request(
                hook,
                self.request_id,
                info,
                output_uri=self.output_uri,
                meta=self._meta(),
                context=context,
                outlets=self.outlets,
            )
        finally:
            hook.close()

    def _meta(self) -> DocumentMeta:
        if self.document:
            doc = read_document(self.document)
            return DocumentMeta(str(self.document), doc.sha256, self.request_id)
        recorded = recorded_document(self.request_id)
        if recorded:
            return DocumentMeta(recorded["document_uri"], recorded["document_sha256"], self.request_id)
        self.log.warning(
            "Upstage request %s was not submitted by UpstageOCRSubmitOperator and no `document` was "
            "given: document_uri and document_sha256 are left unknown",
            self.request_id,
        )
        return DocumentMeta(f"upstage://requests/{self.request_id}", "", self.request_id)
