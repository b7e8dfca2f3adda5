"""Landing finished OCR: Parquet under the output location, the XCom summary, asset events.

The one path every operator and the sensor take once results are ready, so what lands and what
Airflow is told about it are the same whichever task produced them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from upstage_provider.columnar import OCRBatch
from upstage_provider.compat import AirflowFailException
from upstage_provider.cost import billed_note, estimated_cost
from upstage_provider.events import airflow_error
from upstage_provider.exceptions import UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.locations import location
from upstage_provider.models import OCRResult
from upstage_provider.parquet import DocumentMeta, WriteSummary, check_partition, write_ocr_parquet
from upstage_provider.status import RequestInfo

log = logging.getLogger(__name__)

#: The summary's cost keys, copied to the asset event's extra when present.
COST_KEYS = ("billed_pages", "estimated_cost", "price_per_page")


def land_request(
    hook: UpstageOCRHook,
    request_id: str,
    info: RequestInfo | None,
    *,
    output_uri: Any,
    meta: DocumentMeta,
    context: Mapping[str, Any],
    outlets: Iterable[Any] = (),
    partition: str | None = None,
    storage_conn_id: str | None = None,
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
            price_per_page=landing_price(hook),
            partition=partition,
            storage_conn_id=storage_conn_id,
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
    partition: str | None = None,
    storage_conn_id: str | None = None,
    price_per_page: float | None = None,
) -> dict[str, Any]:
    """Write Parquet, tell Airflow about it, and return the small summary that goes to XCom.

    ``output_uri`` is the lake root; with ``partition`` (``ds=2026-11-24``) the files go to
    ``words/<partition>/`` and ``pages/<partition>/`` under it. ``storage_conn_id`` is the
    connection a plain ``s3://`` ``output_uri`` is written with (``locations.location``).
    ``price_per_page`` (the connection's extra) adds the estimated cost to the summary.
    """
    partition = valid_partition(partition)
    summary = write_ocr_parquet(
        results, output_uri=location(output_uri, storage_conn_id), meta=meta, partition=partition
    )
    log.info(
        "Wrote %d words, %d pages for %s in %.2f s, %s: %s, %s",
        summary.words,
        summary.pages,
        meta.document_uri,
        summary.seconds,
        billed_note(summary.billed_pages, price_per_page),
        summary.words_uri,
        summary.pages_uri,
    )
    result = summarize(summary, meta.request_id, price_per_page=price_per_page)
    emit_asset_events(context, outlets, result)
    # OpenLineage facets (upstage_provider.lineage) are built from this summary by the task's
    # get_openlineage_facets_on_complete, which the listener calls once the task has succeeded.
    return result


def valid_partition(partition: str | None) -> str | None:
    """The checked partition path; a bad one fails the task for good (call it before paying)."""
    try:
        return check_partition(partition)
    except (TypeError, ValueError) as exc:
        raise AirflowFailException(str(exc)) from None


def summarize(
    summary: WriteSummary, request_id: str | None, *, price_per_page: float | None = None
) -> dict[str, Any]:
    """The task's return value: URIs and counts, never the data.

    ``billed_pages`` is always there (None when the API reported no count); ``estimated_cost``
    and ``price_per_page`` only when the connection has a price.
    """
    result: dict[str, Any] = {
        "request_id": request_id,
        "words_uri": summary.words_uri,
        "pages_uri": summary.pages_uri,
        "pages": summary.pages,
        "words": summary.words,
        "billed_pages": summary.billed_pages,
        "partition": summary.partition,
        "model_version": summary.model_version,
    }
    if price_per_page is not None:
        result["estimated_cost"] = estimated_cost(summary.billed_pages, price_per_page)
        result["price_per_page"] = price_per_page
    return result


def emit_asset_events(context: Mapping[str, Any], outlets: Iterable[Any], result: Mapping[str, Any]) -> None:
    """Attach the run's facts (request id, pages, words, billed pages, cost) to each outlet asset's event."""
    outlets = list(outlets)
    if not outlets:
        return
    events = context.get("outlet_events")
    if events is None:
        return
    extra = {"request_id": result["request_id"], "pages": result["pages"], "words": result["words"]}
    extra.update({key: result[key] for key in COST_KEYS if key in result})
    for outlet in outlets:
        try:
            events[outlet].extra.update(json.loads(json.dumps(extra)))
        except (KeyError, TypeError, AttributeError):  # not an asset (e.g. an alias we cannot fill)
            log.debug("Outlet %r takes no asset event extra", outlet)


# --- the price ---------------------------------------------------------------------------------


def check_price_per_page(conn_id: str) -> float | None:
    """The connection's price, read when a task starts: a bad one fails it before any OCR call."""
    try:
        return UpstageOCRHook(conn_id).price_per_page
    except UpstageError as exc:
        raise airflow_error(exc) from None


def landing_price(hook: UpstageOCRHook) -> float | None:
    """The price when landing, after OCR that is paid for: one made bad meanwhile only drops the estimate.

    The task checked it when it started (:func:`check_price_per_page`); failing now would throw
    away results already billed, for the sake of an estimate.
    """
    try:
        return hook.price_per_page
    except UpstageError as exc:
        log.warning("%s; landing without an estimated cost", exc)
        return None
