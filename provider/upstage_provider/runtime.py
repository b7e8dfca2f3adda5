"""Airflow-side pieces shared by the operators and the sensor.

- resolving document and output locations (local paths or ``ObjectStoragePath`` URIs);
- checking, before any paid call, that the output location takes files;
- landing results as Parquet and telling Airflow about it (asset events).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import ObjectStoragePath

from upstage_provider.columnar import OCRBatch
from upstage_provider.compat import AirflowException, AirflowFailException
from upstage_provider.documents import Document, load_document
from upstage_provider.exceptions import UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.models import OCRResult
from upstage_provider.parquet import DocumentMeta, WriteSummary, write_ocr_parquet
from upstage_provider.status import RequestInfo
from upstage_provider.triggers.ocr import FAILED, SUCCESS, TIMEOUT, UpstageOCRTrigger

log = logging.getLogger(__name__)


def location(uri: Any) -> Any:
    """A local path stays a string; a URI becomes an ``ObjectStoragePath`` where Airflow knows it.

    ``ObjectStoragePath`` resolves credentials from Airflow connections (``s3://conn_id@bucket/``).
    Schemes it has no filesystem for (``memory://``, ...) go to fsspec as they are.
    """
    if isinstance(uri, ObjectStoragePath):
        return uri
    text = str(uri)
    if "://" not in text:
        return text
    try:
        path = ObjectStoragePath(text)
        path.fs  # noqa: B018 - resolving the filesystem is what tells whether Airflow knows the scheme
    except ValueError:
        return text
    return path


def read_document(uri: Any) -> Document:
    return load_document(location(uri))


WRITE_CHECK_PREFIX = "_upstage_write_check-"


def check_output_writable(output_uri: Any) -> None:
    """Create, then delete, a marker under ``output_uri``: OCR that cannot be written is not paid for.

    The marker's name starts with ``_``, which Spark, Hive, DuckDB and pyarrow datasets skip.
    The folder stays: concurrent tasks check (and write into) the same one, so removing it again
    could pull it from under another task's marker or files.
    """
    target = location(output_uri)
    try:
        if isinstance(target, ObjectStoragePath):
            fs, root = target.fs, target.path
        else:
            import fsspec

            fs, root = fsspec.core.url_to_fs(str(target))
        root = root.rstrip("/") or "/"
        fs.makedirs(root, exist_ok=True)
        marker = f"{root.rstrip('/')}/{WRITE_CHECK_PREFIX}{uuid.uuid4().hex}"
        fs.pipe_file(marker, b"")
        fs.rm_file(marker)
    except Exception as exc:
        raise AirflowFailException(
            f"output_uri {output_uri} is not writable ({type(exc).__name__}: {exc}); check permissions "
            "or choose another output_uri (checked before any paid OCR call or download)"
        ) from None


# --- waiting -----------------------------------------------------------------------------------

# The deferral's own timeout is only a backstop behind the trigger's deadline event.
DEFER_TIMEOUT_MARGIN = 300.0


def waiting_trigger(
    request_id: str, conn_id: str, poll_interval: float, timeout: float
) -> tuple[UpstageOCRTrigger, timedelta]:
    """The trigger to defer to, with an absolute deadline, and the deferral's backstop timeout."""
    trigger = UpstageOCRTrigger(
        request_id=request_id, conn_id=conn_id, poll_interval=poll_interval, deadline=time.time() + timeout
    )
    return trigger, timedelta(seconds=timeout + DEFER_TIMEOUT_MARGIN)


# --- outcomes ----------------------------------------------------------------------------------


def airflow_error(exc: UpstageError) -> AirflowException:
    """Airflow must not retry what cannot succeed: bad input, a bad key, a failed request."""
    return AirflowFailException(str(exc)) if exc.permanent else AirflowException(str(exc))


def failed_for_good(context: Mapping[str, Any], exc: UpstageError) -> bool:
    """A permanent error, or a transient one on the task's last try: no try will follow."""
    if exc.permanent:
        return True
    ti = context.get("ti")
    try:
        return int(ti.try_number) > int(ti.max_tries)  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return False


def raise_for_event(
    event: Mapping[str, Any], *, timeout_error: type[AirflowException] = AirflowException
) -> str:
    """Raise what a trigger event calls for; returns the request id of a successful one."""
    request_id = str(event.get("request_id") or "")
    status = event.get("status")
    message = event.get("message") or "no message"
    if status == SUCCESS:
        return request_id
    if status == FAILED:
        raise AirflowFailException(message)
    if status == TIMEOUT:
        raise timeout_error(message)
    error = AirflowFailException if event.get("permanent") else AirflowException
    raise error(f"Upstage request {request_id}: {message}")


# --- landing results ---------------------------------------------------------------------------


def land_request(
    hook: UpstageOCRHook,
    request_id: str,
    info: RequestInfo | None,
    *,
    output_uri: Any,
    meta: DocumentMeta,
    context: Mapping[str, Any],
    outlets: Iterable[Any] = (),
) -> dict[str, Any]:
    """Download a finished request batch by batch into Parquet; a failed one fails the task."""
    failure = info.failure() if info is not None else None
    if failure is not None:
        raise AirflowFailException(str(failure))
    try:
        return land(
            hook.iter_arrow_batches(request_id, info=info),
            output_uri=output_uri,
            meta=meta,
            context=context,
            outlets=outlets,
        )
    except UpstageError as exc:
        raise airflow_error(exc) from None


def land(
    results: Iterable[OCRResult | OCRBatch],
    *,
    output_uri: Any,
    meta: DocumentMeta,
    context: Mapping[str, Any],
    outlets: Iterable[Any] = (),
) -> dict[str, Any]:
    """Write Parquet, emit asset events, and return the small summary that goes to XCom."""
    summary = write_ocr_parquet(results, output_uri=location(output_uri), meta=meta)
    log.info(
        "Wrote %d words, %d pages for %s in %.2f s: %s, %s",
        summary.words,
        summary.pages,
        meta.document_uri,
        summary.seconds,
        summary.words_uri,
        summary.pages_uri,
    )
    result = summarize(summary, meta.request_id)
    emit_asset_events(context, outlets, result)
    return result


def summarize(summary: WriteSummary, request_id: str | None) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "words_uri": summary.words_uri,
        "pages_uri": summary.pages_uri,
        "pages": summary.pages,
        "words": summary.words,
    }


def emit_asset_events(context: Mapping[str, Any], outlets: Iterable[Any], result: Mapping[str, Any]) -> None:
    outlets = list(outlets)
    if not outlets:
        return
    events = context.get("outlet_events")
    if events is None:
        return
    extra = {"request_id": result["request_id"], "pages": result["pages"], "words": result["words"]}
    for outlet in outlets:
        try:
            events[outlet].extra.update(json.loads(json.dumps(extra)))
        except (KeyError, TypeError, AttributeError):  # not an asset (e.g. an alias we cannot fill)
            log.debug("Outlet %r takes no asset event extra", outlet)
