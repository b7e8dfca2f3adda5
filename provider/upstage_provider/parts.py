"""A split document through the async API: one request per part, each in the ledger, one landing.

A PDF or TIFF over the async limits is cut into parts by :mod:`upstage_provider.documents.split`.
Each part is submitted as a request of its own, through the submission ledger when a task
context is at hand, keyed per part: the whole document's hash, the part's index and page range
(not the part's bytes, which differ from one split to the next: PDFium gives every new PDF a new
``/ID``), so that a retried task reattaches to every part an earlier try submitted and pays only
for the ones it did not.
Once every part has completed, their batches land as one words/pages Parquet set for the whole
document, written in one go (``parquet.write_ocr_parquet``): the pages of part *k* are shifted
by its first page, so the set holds document pages 1..N, each row with its part's request id.
A crash or a failure anywhere before the files are published leaves no rows behind, and a
rerun replaces the whole set: nothing is landed twice.

Used by both operators and by :meth:`UpstageOCRHook.submit_parts
<upstage_provider.hooks.upstage.UpstageOCRHook.submit_parts>`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from upstage_provider.columnar import OCRBatch
from upstage_provider.documents import Document
from upstage_provider.documents.split import DocumentPart
from upstage_provider.exceptions import DocumentPartError, UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.landing import land, landing_price
from upstage_provider.ledger import DEFAULT_RETENTION, Ledger, submit_once
from upstage_provider.parquet import DocumentMeta
from upstage_provider.status import RequestInfo
from upstage_provider.wording import plural

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartRequest:
    """One part of a split document and the async request it went to; JSON-ready as :meth:`to_json`."""

    request_id: str
    part: int  # 1-based
    parts: int
    first_page: int  # the document page number of the part's first page
    page_count: int
    document: str  # the whole document's name, for messages
    document_uri: str  # the part's: ``<document uri>#pages=<first>-<last>``
    document_sha256: str  # the whole document's content hash

    @property
    def last_page(self) -> int:
        return self.first_page + self.page_count - 1

    @property
    def label(self) -> str:
        """``part 2/3 (pages 1001-2000) of scan.pdf``: how messages name the part."""
        return f"part {self.part}/{self.parts} (pages {self.first_page}-{self.last_page}) of {self.document}"

    def to_json(self) -> dict[str, Any]:
        """The submit operator's list items and the deferral's kwargs: primitives only."""
        return {
            "request_id": self.request_id,
            "part": self.part,
            "parts": self.parts,
            "first_page": self.first_page,
            "page_count": self.page_count,
            "document": self.document,
            "document_uri": self.document_uri,
            "document_sha256": self.document_sha256,
        }


def part_ledger(
    context: Mapping[str, Any],
    document_sha256: str,
    part: DocumentPart,
    model: str,
    retention: timedelta = DEFAULT_RETENTION,
) -> Ledger:
    """The ledger entry of one part: the whole document's hash, with the part's index and range."""
    key = f"{part.index}/{part.count}|{part.first_page}-{part.last_page}"
    return Ledger(context, document_sha256, model, retention, part=key)


def recorded_parts(
    doc: Document, parts: Sequence[DocumentPart], ledger_for: Callable[[DocumentPart], Ledger]
) -> list[PartRequest] | None:
    """The parts' requests as this task instance's ledger has them; None unless every part has one.

    What a task resumed from a deferral waits on, without a call to the API (nor paying again).
    """
    out = []
    for part in parts:
        entry = ledger_for(part).read()
        if entry is None or entry.request_id is None:
            return None
        out.append(_request(doc, part, str(entry.request_id)))
    return out


def _request(doc: Document, part: DocumentPart, request_id: str) -> PartRequest:
    return PartRequest(
        request_id,
        part.index,
        part.count,
        part.first_page,
        part.page_count,
        doc.name,
        part.document.uri,
        doc.sha256,
    )


def submit_parts(
    hook: UpstageOCRHook,
    doc: Document,
    parts: Sequence[DocumentPart],
    *,
    model: str = "ocr",
    ledger_for: Callable[[DocumentPart], Ledger] | None = None,
    reattach_unrecorded: bool = False,
) -> list[PartRequest]:
    """One async request per part, in page order; with ``ledger_for``, each through the ledger.

    A part that cannot be submitted raises :class:`DocumentPartError` naming it; the parts before
    it stay recorded, so a retry reattaches to them.
    """
    out = []
    for part in parts:
        request = _request(doc, part, "")
        try:
            if ledger_for is None:
                request_id, reattached = hook.submit(part.document, model=model), False
            else:
                entry, reattached = submit_once(
                    hook,
                    ledger_for(part),
                    part.document,
                    part.document.uri,
                    reattach_unrecorded=reattach_unrecorded,
                )
                request_id = str(entry.request_id)
        except UpstageError as exc:
            raise DocumentPartError(f"{request.label} could not be submitted: {exc}", cause=exc) from exc
        out.append(replace(request, request_id=request_id))
        log.info(
            "%s: %s request %s", request.label, "reattached to" if reattached else "submitted as", request_id
        )
    return out


def check_parts(
    hook: UpstageOCRHook, requests: Sequence[PartRequest], known: dict[str, RequestInfo]
) -> PartRequest | None:
    """The first part still running, after asking for each part not known to be done.

    ``known`` collects the statuses (completed ones are not asked for again). A part that failed,
    or has a failed batch, raises :class:`DocumentPartError` with its page range.
    """
    pending = None
    for request in requests:
        info = known.get(request.request_id)
        if info is None or not info.is_terminal:
            try:
                info = hook.get_request(request.request_id)
            except UpstageError as exc:
                raise DocumentPartError(
                    f"{request.label}: status of {request.request_id}: {exc}", cause=exc
                ) from exc
            known[request.request_id] = info
        failure = info.failure()
        if failure is not None:
            raise DocumentPartError(f"{request.label} failed: {failure}", cause=failure)
        if not info.is_terminal and pending is None:
            pending = request
    return pending


def land_parts(
    hook: UpstageOCRHook,
    requests: Sequence[PartRequest],
    known: Mapping[str, RequestInfo],
    *,
    document_uri: str,
    document_sha256: str,
    output_uri: Any,
    context: Mapping[str, Any],
    outlets: Iterable[Any] = (),
    partition: str | None = None,
    storage_conn_id: str | None = None,
) -> dict[str, Any]:
    """Every part's batches as one Parquet set with document page numbers; returns the summary.

    The summary is ``land``'s with ``request_id`` the parts' ids joined by commas (as the files'
    ``upstage.request_id`` footer has it) and ``parts``: ``[{"request_id", "first_page",
    "page_count", "billed_pages"}, ...]``, the parts' billed pages summing to the document's.
    """
    meta = DocumentMeta(document_uri, document_sha256, ",".join(r.request_id for r in requests))
    billed: dict[str, int | None] = {}
    summary = land(
        _document_batches(hook, requests, known, billed),
        output_uri=output_uri,
        meta=meta,
        context=context,
        outlets=outlets,
        price_per_page=landing_price(hook),
        partition=partition,
        storage_conn_id=storage_conn_id,
    )
    summary["parts"] = [
        {
            "request_id": r.request_id,
            "first_page": r.first_page,
            "page_count": r.page_count,
            "billed_pages": billed.get(r.request_id),
        }
        for r in requests
    ]
    return summary


def _document_batches(
    hook: UpstageOCRHook,
    requests: Sequence[PartRequest],
    known: Mapping[str, RequestInfo],
    billed: dict[str, int | None],
) -> Iterator[OCRBatch]:
    """The parts' batches in page order, renumbered to document pages; a short part raises.

    ``billed`` collects each part's billed pages (None while none of its batches gave a count).
    """
    for request in requests:
        pages = 0
        billed[request.request_id] = None
        try:
            for batch in hook.iter_arrow_batches(request.request_id, info=known.get(request.request_id)):
                pages += batch.page_count
                if batch.billed_pages is not None:
                    billed[request.request_id] = (billed[request.request_id] or 0) + batch.billed_pages
                yield at_document_pages(batch, request.first_page, request.request_id)
        except UpstageError as exc:
            raise DocumentPartError(
                f"{request.label}: results of {request.request_id}: {exc}", cause=exc
            ) from exc
        if pages != request.page_count:
            raise DocumentPartError(
                f"{request.label}: request {request.request_id} returned {plural(pages, 'page')}, "
                f"not {request.page_count}; nothing was written"
            )
        log.info("%s: %s read from request %s", request.label, plural(pages, "page"), request.request_id)


def at_document_pages(batch: OCRBatch, first_page: int, request_id: str) -> OCRBatch:
    """A part's batch with its pages numbered as in the whole document, tagged with its request."""
    offset = first_page - 1
    return replace(
        batch, words=_shifted(batch.words, offset), pages=_shifted(batch.pages, offset), request_id=request_id
    )


def _shifted(columns: pa.RecordBatch, offset: int) -> pa.RecordBatch:
    if offset == 0:
        return columns
    index = columns.schema.get_field_index("page")
    page = pc.add_checked(columns.column(index), pa.scalar(offset, pa.int32()))
    return columns.set_column(index, columns.schema.field(index), page)
