"""The API's documented limits, checked on what was uploaded, with the API's status codes.

The sniffing and measuring is the provider's own :mod:`upstage_provider.documents` (so the
emulator refuses exactly what the provider would refuse before upload); this module turns its
verdicts into HTTP answers and adds the per-endpoint page limits.
"""

from __future__ import annotations

from typing import Any

from upstage_provider import documents
from upstage_provider.emulator.errors import ApiError, from_document_error
from upstage_provider.exceptions import DocumentError
from upstage_provider.wording import mib_limit

MAX_FILE_BYTES: int = documents.MAX_FILE_BYTES
MAX_SYNC_PAGES: int = documents.MAX_SYNC_PAGES
MAX_ASYNC_PAGES: int = documents.MAX_ASYNC_PAGES
MAX_PAGE_PIXELS: int = documents.MAX_PAGE_PIXELS
#: Room for the multipart framing and the small form fields around a maximal document.
MULTIPART_OVERHEAD: int = 256 * 1024
MAX_BODY_BYTES: int = MAX_FILE_BYTES + MULTIPART_OVERHEAD

#: pdfium must not be entered from two threads at once, even for different documents: every
#: caller in the process (the documents module, the engine, this module) shares this one lock.
PDFIUM_LOCK = documents.PDFIUM_LOCK


def shown_name(filename: str | None) -> str:
    """A client-supplied file name made safe to echo in a message (never used as a path)."""
    name = (filename or "document").replace("\n", " ").replace("\r", " ")
    return name if len(name) <= 120 else name[:117] + "..."


def check_upload(data: bytes, filename: str) -> Any:
    """Size and kind of file, cheap enough to check before answering a submission."""
    name = shown_name(filename)
    if len(data) > MAX_FILE_BYTES:
        raise ApiError(
            413,
            f"{name}: {len(data):,} bytes is over the {mib_limit(MAX_FILE_BYTES)} limit per file",
            code="file_too_large",
            param="document",
        )
    if not data:
        raise ApiError(400, f"{name}: the document is empty", code="empty_document", param="document")
    try:
        return documents.detect_format(data, name)
    except DocumentError as exc:
        raise from_document_error(exc) from None


def check_pages(data: bytes, fmt: Any, filename: str, *, sync: bool) -> int | None:
    """
    Page count and page sizes against the endpoint's limits; None when the count is unknown
    without rendering (office formats), in which case the engine's count is checked later.
    """
    name = shown_name(filename)
    try:
        with PDFIUM_LOCK:
            sizes = documents.inspect_pages(data, fmt, name)
    except DocumentError as exc:
        raise from_document_error(exc) from None
    if sizes is None:
        return None
    check_page_count(len(sizes), filename, sync=sync)
    for number, size in enumerate(sizes, start=1):
        pixels = int(size.width) * int(size.height)
        if pixels > MAX_PAGE_PIXELS:
            raise ApiError(
                413,
                f"{name}: page {number} is {size.width} x {size.height} = {pixels:,} pixels, "
                f"over the limit of {MAX_PAGE_PIXELS:,} pixels per page; scale it down",
                code="page_too_large",
                param="document",
            )
    return len(sizes)


def check_page_count(count: int, filename: str, *, sync: bool) -> None:
    name = shown_name(filename)
    if sync and count > MAX_SYNC_PAGES:
        raise ApiError(
            413,
            f"{name}: {count} pages is over the limit of {MAX_SYNC_PAGES} pages for synchronous OCR; "
            f"use async (POST /v1/document-digitization/async, up to {MAX_ASYNC_PAGES:,} pages)",
            code="too_many_pages",
            param="document",
        )
    if not sync and count > MAX_ASYNC_PAGES:
        raise ApiError(
            413,
            f"{name}: {count} pages is over the limit of {MAX_ASYNC_PAGES:,} pages for async OCR; "
            "split the document",
            code="too_many_pages",
            param="document",
        )
