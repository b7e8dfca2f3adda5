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
from upstage_provider.events import airflow_error
from upstage_provider.exceptions import UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.locations import location
from upstage_provider.models import OCRResult
from upstage_provider.parquet import DocumentMeta, WriteSummary, write_ocr_parquet
from upstage_provider.status import RequestInfo

log = logging.getLogger(__name__)


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
    """Write Parquet, tell Airflow about it, and return the small summary that goes to XCom."""
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
    # OpenLineage facets (upstage_provider.lineage) are built from this summary by the task's
    # get_openlineage_facets_on_complete, which the listener calls once the task has succeeded.
    return result


def summarize(summary: WriteSummary, request_id: str | None) -> dict[str, Any]:
    """The task's return value: URIs and counts, never the data."""
    return {
        "request_id": request_id,
        "words_uri": summary.words_uri,
        "pages_uri": summary.pages_uri,
        "pages": summary.pages,
        "words": summary.words,
        "model_version": summary.model_version,
    }


def emit_asset_events(context: Mapping[str, Any], outlets: Iterable[Any], result: Mapping[str, Any]) -> None:
    """Attach the run's facts (request id, pages, words) to each outlet asset's event."""
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
