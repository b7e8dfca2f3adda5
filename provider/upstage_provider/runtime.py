"""Airflow-side pieces shared by the operators and the sensor.

- resolving document and output locations (local paths or ``ObjectStoragePath`` URIs);
- the submission ledger that keeps a retried task from paying for the same document twice;
- landing results as Parquet and telling Airflow about it (asset events).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import ObjectStoragePath, Variable

from upstage_provider.columnar import OCRBatch
from upstage_provider.compat import AirflowException, AirflowFailException
from upstage_provider.documents import Document, load_document
from upstage_provider.exceptions import UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.models import OCRResult
from upstage_provider.parquet import DocumentMeta, WriteSummary, write_ocr_parquet
from upstage_provider.status import RequestInfo, RequestState
from upstage_provider.triggers.ocr import FAILED, SUCCESS, TIMEOUT, UpstageOCRTrigger

log = logging.getLogger(__name__)

SUBMISSION_PREFIX = "upstage_submission__"
REQUEST_PREFIX = "upstage_request__"
#: Ledger value written just before the upload: ``pending@<epoch seconds>``. A worker killed between
#: the API accepting the upload and the request id reaching the ledger leaves only this behind.
PENDING_PREFIX = "pending@"
#: How far an API request's ``requested_at`` may lie from the pending mark and still be ours:
#: before it by clock skew, after it by the time one upload of up to 50 MB may take.
PENDING_BEFORE = 120.0
PENDING_AFTER = 900.0


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


# --- the submission ledger ---------------------------------------------------------------------


def submission_key(context: Mapping[str, Any], document_sha256: str) -> str:
    ti = context["ti"]
    identity = f"{ti.dag_id}|{ti.task_id}|{ti.run_id}|{getattr(ti, 'map_index', -1)}|{document_sha256}"
    return SUBMISSION_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:32]


def _ledger_entry(context: Mapping[str, Any], document_sha256: str) -> str | None:
    value = Variable.get(submission_key(context, document_sha256), default=None)
    return value if isinstance(value, str) and value else None


def previous_submission(context: Mapping[str, Any], document_sha256: str) -> str | None:
    """The request id an earlier try of this task instance recorded, if it got that far."""
    value = _ledger_entry(context, document_sha256)
    return None if value is None or value.startswith(PENDING_PREFIX) else value


def pending_since(context: Mapping[str, Any], document_sha256: str) -> float | None:
    """When an earlier try started an upload whose request id it never recorded (it was killed)."""
    value = _ledger_entry(context, document_sha256)
    if value is None or not value.startswith(PENDING_PREFIX):
        return None
    try:
        return float(value[len(PENDING_PREFIX) :])
    except ValueError:
        return None


def record_pending(context: Mapping[str, Any], document_sha256: str) -> None:
    """Write ahead: mark the upload as started, so a worker killed mid-submit leaves a trace."""
    Variable.set(submission_key(context, document_sha256), f"{PENDING_PREFIX}{time.time():.3f}")


def record_submission(
    context: Mapping[str, Any], doc: Document, uri: str, request_id: str, model: str
) -> None:
    """Remember the request before anything else can fail, so a retry reattaches to it."""
    Variable.set(submission_key(context, doc.sha256), request_id)
    Variable.set(
        REQUEST_PREFIX + request_id,
        {
            "document_uri": uri,
            "document_sha256": doc.sha256,
            "name": doc.name,
            "pages": doc.page_count,
            "bytes": doc.size,
            "model": model,
            "submitted_at": time.time(),
        },
        serialize_json=True,
    )


def recorded_document(request_id: str) -> dict[str, Any] | None:
    value = Variable.get(REQUEST_PREFIX + request_id, default=None, deserialize_json=True)
    return value if isinstance(value, dict) else None


def _api_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def find_unrecorded_submission(hook: UpstageOCRHook, doc: Document, since: float) -> str | None:
    """The request a killed try submitted but never recorded, when the API's list pins it down.

    Candidates were requested within ``[since - PENDING_BEFORE, since + PENDING_AFTER]``, did not
    fail, are not in any task's ledger, and have the document's page count. Only a single
    candidate is taken: reattaching to another document's request would land the wrong words,
    which is worse than paying twice, so anything ambiguous (or a list that cannot be read) means
    submitting anew.
    """
    try:
        listed = hook.list_requests()
    except Exception as exc:
        log.warning("Could not list Upstage requests to find an unrecorded submission (%s)", exc)
        return None
    candidates: list[str] = []
    for entry in listed:
        request_id, requested = entry.get("id"), _api_time(entry.get("requested_at"))
        if not isinstance(request_id, str) or requested is None:
            continue
        if not since - PENDING_BEFORE <= requested <= since + PENDING_AFTER:
            continue
        if str(entry.get("status", "")).lower() == RequestState.FAILED.value:
            continue
        if recorded_document(request_id) is not None:  # another task's (or try's) request
            continue
        try:
            info = hook.get_request(request_id)
        except Exception as exc:  # gone or unreadable: not one we can reattach to
            log.info("Upstage request %s cannot be read (%s); not a candidate", request_id, exc)
            continue
        if info.status is RequestState.FAILED:
            continue
        if doc.page_count is not None and info.total_pages not in (None, doc.page_count):
            continue
        candidates.append(request_id)
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        log.warning(
            "%d unrecorded Upstage requests could be the one a killed try submitted (%s); not guessing",
            len(candidates),
            ", ".join(candidates),
        )
    return None


def submit_once(
    hook: UpstageOCRHook, context: Mapping[str, Any], doc: Document, uri: str, model: str
) -> tuple[str, bool]:
    """Submit ``doc`` unless this task instance already did; returns (request id, reattached).

    The ledger is written ahead: ``pending@<time>`` before the upload, the request id after it. A
    try killed in between leaves only the mark; the retry then looks the request up in the API's
    list (see :func:`find_unrecorded_submission`) before paying for the document again.
    """
    since = pending_since(context, doc.sha256)
    if since is not None:
        found = find_unrecorded_submission(hook, doc, since)
        if found is not None:
            log.info(
                "Reattaching to Upstage request %s for %s: an earlier try submitted it but was stopped "
                "before recording it; not submitting again",
                found,
                uri,
            )
            record_submission(context, doc, uri, found, model)
            return found, True
        log.warning("An earlier try may have submitted %s; no unrecorded request matches it, submitting", uri)
    earlier = previous_submission(context, doc.sha256)
    if earlier is not None:
        try:
            info = hook.get_request(earlier)
        except Exception as exc:  # unknown or expired request: submit anew
            log.warning(
                "Earlier Upstage request %s for %s cannot be read (%s); submitting again", earlier, uri, exc
            )
        else:
            if info.status is not RequestState.FAILED:
                log.info(
                    "Reattaching to Upstage request %s for %s (%s); not submitting again",
                    earlier,
                    uri,
                    info.progress(),
                )
                return earlier, True
            log.warning(
                "Earlier Upstage request %s for %s failed (%s); submitting again",
                earlier,
                uri,
                info.failure_message or "no reason given",
            )
    record_pending(context, doc.sha256)
    request_id = hook.submit(doc, model=model)
    record_submission(context, doc, uri, request_id, model)
    return request_id, False


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
