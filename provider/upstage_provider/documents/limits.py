"""The Upstage OCR API's documented limits, each defined once here, and the checks against them.

File size, pages per endpoint (sync / async) and pixels per page, measured at :data:`RENDER_DPI`.
"""

from __future__ import annotations

from typing import Literal

from upstage_provider.documents.model import Document
from upstage_provider.exceptions import (
    DocumentTooLargeError,
    EmptyDocumentError,
    PageTooLargeError,
    TooManyPagesError,
)
from upstage_provider.wording import mib, mib_limit, plural

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_SYNC_PAGES = 100
MAX_ASYNC_PAGES = 1000
MAX_PAGE_PIXELS = 200_000_000
RENDER_DPI = 150

_MIB = 1024 * 1024


def validate_document(
    doc: Document,
    *,
    mode: Literal["sync", "async"] = "sync",
    max_bytes: int = MAX_FILE_BYTES,
    max_pages: int | None = None,
    max_page_pixels: int = MAX_PAGE_PIXELS,
) -> Document:
    """
    Check a loaded document against the API's limits for ``mode``; return it unchanged.

    Order: empty, size, page count, page pixels (format and readability were settled at load).
    The keyword limits default to the API's and exist for tests and for stricter callers.
    """
    _check_mode(mode)
    if doc.size == 0:
        raise _empty_error(doc.name)
    _check_bytes(doc.name, doc.size, max_bytes)
    if doc.pages is None:
        return doc
    _check_page_count(doc, mode, max_pages)
    _check_page_pixels(doc, max_page_pixels)
    return doc


def _check_mode(mode: str) -> None:
    if mode not in ("sync", "async"):
        raise ValueError(f"mode must be 'sync' or 'async', not {mode!r}")


def _empty_error(name: str) -> EmptyDocumentError:
    return EmptyDocumentError(f"{name}: the file is empty (0 bytes); check the upstream task that wrote it")


def _check_bytes(name: str, size: int, max_bytes: int) -> None:
    if size == 0:
        raise _empty_error(name)
    if size > max_bytes:
        raise DocumentTooLargeError(
            f"{name}: {_format_bytes(size)} is over the API's {_format_limit(max_bytes)} limit per file; "
            "split the document or compress its images"
        )


def _check_page_count(doc: Document, mode: str, max_pages: int | None) -> None:
    count = doc.page_count or 0
    if mode == "sync":
        limit = MAX_SYNC_PAGES if max_pages is None else max_pages
        if count > limit:
            raise TooManyPagesError(
                f"{doc.name}: {plural(count, 'page')} is over the sync limit of {plural(limit, 'page')}; use "
                "mode='auto' (UpstageOCROperator's default: sync up to the limit, async above) or the "
                f"async path (mode='async' / UpstageOCRSubmitOperator), which takes up to {MAX_ASYNC_PAGES:,}"
            )
    else:
        limit = MAX_ASYNC_PAGES if max_pages is None else max_pages
        if count > limit:
            raise TooManyPagesError(
                f"{doc.name}: {plural(count, 'page')} is over the async limit of {plural(limit, 'page')}; "
                f"split the document into parts of at most {plural(limit, 'page')}"
            )


def _check_page_pixels(doc: Document, max_page_pixels: int) -> None:
    over = [(n, p) for n, p in enumerate(doc.pages or (), start=1) if p.pixels > max_page_pixels]
    if not over:
        return
    number, page = over[0]
    more = f" (and {plural(len(over) - 1, 'more page')})" if len(over) > 1 else ""
    if doc.format.is_image:
        measured, advice = "", "downscale it"
    else:
        measured = f" when rendered at {RENDER_DPI} DPI"
        advice = "reduce the page size (or scan at a lower resolution)"
    raise PageTooLargeError(
        f"{doc.name}: page {number}{more} is {page.width} x {page.height} = {page.pixels:,} pixels"
        f"{measured}, over the API's {max_page_pixels:,}-pixel limit per page; {advice}"
    )


_format_limit = mib_limit
_format_bytes = mib
