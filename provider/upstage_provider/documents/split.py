"""Splitting a PDF or multi-frame TIFF over the async limits into parts that each fit them.

The async endpoint takes at most :data:`~upstage_provider.documents.limits.MAX_ASYNC_PAGES`
pages and :data:`~upstage_provider.documents.limits.MAX_FILE_BYTES` per file. A longer (or
larger) PDF is cut into page ranges by PDFium without re-rendering anything (``import_pages``
copies the page objects and their streams as they are); a TIFF's frames are written into new
multi-frame TIFFs by Pillow, which decodes and re-encodes each frame with its own compression
(lossless except for JPEG-in-TIFF frames, which Pillow has no way to copy undecoded).

Parts are consecutive page ranges of at most ``max_pages`` pages. A part whose written file is
still over ``max_bytes`` is halved until it fits; a single page that does not fit on its own is
a clear error. Every other format over the limits is refused as before by
:func:`~upstage_provider.documents.limits.validate_document`.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from upstage_provider.documents.limits import (
    MAX_ASYNC_PAGES,
    MAX_FILE_BYTES,
    _format_bytes,
    _format_limit,
    validate_document,
)
from upstage_provider.documents.model import Document, DocumentFormat
from upstage_provider.documents.pages import PDFIUM_LOCK
from upstage_provider.exceptions import CorruptDocumentError, DocumentTooLargeError

#: The formats that can be split into page ranges.
SPLITTABLE_FORMATS = frozenset({DocumentFormat.PDF, DocumentFormat.TIFF})
#: A first guess at pages per part aims this far under the size limit, so that halving is rare.
_SIZE_MARGIN = 0.9


@dataclass(frozen=True)
class DocumentPart:
    """One page range of a longer document, as a document of its own that fits the async limits."""

    index: int  # 1-based
    count: int
    first_page: int  # the document page number of the part's first page (1-based)
    document: Document

    @property
    def page_count(self) -> int:
        return self.document.page_count or 0

    @property
    def last_page(self) -> int:
        return self.first_page + self.page_count - 1

    @property
    def label(self) -> str:
        """``part 2/3 (pages 1001-2000)``: how messages name the part."""
        return f"part {self.index}/{self.count} (pages {self.first_page}-{self.last_page})"


def over_async_limits(
    doc: Document, *, max_pages: int = MAX_ASYNC_PAGES, max_bytes: int = MAX_FILE_BYTES
) -> bool:
    """True when ``doc`` is too long or too big for one async request."""
    return doc.size > max_bytes or (doc.page_count or 0) > max_pages


def needs_split(doc: Document, *, max_pages: int = MAX_ASYNC_PAGES, max_bytes: int = MAX_FILE_BYTES) -> bool:
    """True for a PDF or TIFF over the async limits: one that :func:`split_document` cuts into parts."""
    return (
        doc.format in SPLITTABLE_FORMATS
        and doc.pages is not None
        and over_async_limits(doc, max_pages=max_pages, max_bytes=max_bytes)
    )


def split_document(
    doc: Document, *, max_pages: int = MAX_ASYNC_PAGES, max_bytes: int = MAX_FILE_BYTES
) -> list[DocumentPart]:
    """
    ``doc`` as consecutive parts of at most ``max_pages`` pages and ``max_bytes`` each.

    A document within the limits comes back as one part holding ``doc`` itself. Raises what
    :func:`validate_document` raises for a document that cannot be split (another format over
    the limits, a page over the pixel limit), and :class:`DocumentTooLargeError` when one page
    alone is over ``max_bytes``. The limits are keyword arguments for tests; the API's are the
    defaults.
    """
    if not needs_split(doc, max_pages=max_pages, max_bytes=max_bytes):
        validate_document(doc, mode="async", max_bytes=max_bytes, max_pages=max_pages)
        return [DocumentPart(1, 1, 1, doc)]
    # Everything but the two limits splitting fixes (empty, page pixels) is checked on the whole.
    validate_document(doc, mode="async", max_bytes=sys.maxsize, max_pages=sys.maxsize)
    writer = _pdf_writer if doc.format is DocumentFormat.PDF else _tiff_writer
    with writer(doc) as write:
        ranges = _fitting_ranges(doc, write, max_pages, max_bytes)
    pages = doc.pages or ()
    parts = []
    for index, (start, stop, data) in enumerate(ranges, start=1):
        part = Document(
            name=_part_name(doc.name, start + 1, stop),
            uri=f"{doc.uri}#pages={start + 1}-{stop}",
            data=data,
            format=doc.format,
            pages=tuple(pages[start:stop]),
        )
        validate_document(part, mode="async", max_bytes=max_bytes, max_pages=max_pages)
        parts.append(DocumentPart(index, len(ranges), start + 1, part))
    return parts


def _fitting_ranges(
    doc: Document, write: Callable[[int, int], bytes], max_pages: int, max_bytes: int
) -> list[tuple[int, int, bytes]]:
    """(start, stop, bytes) of each part, 0-based and stop exclusive, in page order."""
    total = doc.page_count or 0
    step = max_pages
    if doc.size > max_bytes:  # a first guess from the average page, so that halving is rare
        step = min(step, max(1, int(total * max_bytes * _SIZE_MARGIN / doc.size)))
    pending = [(start, min(start + step, total)) for start in range(0, total, step)]
    pending.reverse()
    done: list[tuple[int, int, bytes]] = []
    while pending:
        start, stop = pending.pop()
        data = write(start, stop)
        if len(data) <= max_bytes:
            done.append((start, stop, data))
            continue
        if stop - start == 1:
            raise DocumentTooLargeError(
                f"{doc.name}: page {start + 1} alone is {_format_bytes(len(data))} as a file of its own, "
                f"over the API's {_format_limit(max_bytes)} limit per file, so the document cannot be "
                "split into parts that fit; compress that page's images or scan it at a lower resolution"
            )
        middle = (start + stop) // 2
        pending.extend([(middle, stop), (start, middle)])  # popped first half first
    return done


def _part_name(name: str, first: int, last: int) -> str:
    """``scan.pdf`` -> ``scan.pages-1001-2000.pdf``: the upload's file name keeps its extension."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name}.pages-{first}-{last}"
    return f"{stem}.pages-{first}-{last}.{ext}"


class _pdf_writer:
    """Writes page ranges of one PDF as new PDFs (under :data:`PDFIUM_LOCK` throughout)."""

    def __init__(self, doc: Document) -> None:
        self._doc = doc
        self._src: Any = None

    def __enter__(self) -> Callable[[int, int], bytes]:
        import pypdfium2 as pdfium

        PDFIUM_LOCK.acquire()
        try:
            self._src = pdfium.PdfDocument(self._doc.data)
        except pdfium.PdfiumError as exc:
            PDFIUM_LOCK.release()
            raise CorruptDocumentError(
                f"{self._doc.name}: PDFium cannot open the PDF to split it ({exc})"
            ) from exc
        return self._write

    def __exit__(self, *exc: object) -> None:
        try:
            self._src.close()
        finally:
            PDFIUM_LOCK.release()

    def _write(self, start: int, stop: int) -> bytes:
        import pypdfium2 as pdfium

        part = pdfium.PdfDocument.new()
        try:
            part.import_pages(self._src, pages=list(range(start, stop)))
            buffer = io.BytesIO()
            part.save(buffer)
        except pdfium.PdfiumError as exc:
            raise CorruptDocumentError(
                f"{self._doc.name}: pages {start + 1}-{stop} cannot be copied into a part ({exc})"
            ) from exc
        finally:
            part.close()
        return buffer.getvalue()


class _tiff_writer:
    """Writes frame ranges of one TIFF as new multi-frame TIFFs, one frame in memory at a time."""

    def __init__(self, doc: Document) -> None:
        self._doc = doc
        self._image: Any = None

    def __enter__(self) -> Callable[[int, int], bytes]:
        # Built directly, as pages.py does, to skip Pillow's global decompression-bomb check: the
        # pixel limit per page was checked by validate_document already.
        from PIL import TiffImagePlugin

        self._image = TiffImagePlugin.TiffImageFile(io.BytesIO(self._doc.data))
        return self._write

    def __exit__(self, *exc: object) -> None:
        self._image.close()

    def _write(self, start: int, stop: int) -> bytes:
        from PIL import TiffImagePlugin

        image = self._image
        buffer = io.BytesIO()
        try:
            with TiffImagePlugin.AppendingTiffWriter(buffer) as out:
                for frame in range(start, stop):
                    image.seek(frame)
                    image.load()
                    image.save(out, format="TIFF", **_frame_options(image))
                    out.newFrame()
        except Exception as exc:  # Pillow raises many kinds on damaged frames
            raise CorruptDocumentError(
                f"{self._doc.name}: TIFF frames {start + 1}-{stop} cannot be copied into a part "
                f"({type(exc).__name__}: {exc}); re-export the file"
            ) from exc
        return buffer.getvalue()


def _frame_options(image: Any) -> dict[str, Any]:
    """The frame's own compression and resolution, so a part's frames read like the original's."""
    options: dict[str, Any] = {}
    compression = image.info.get("compression")
    if compression and compression != "raw":
        options["compression"] = compression
    dpi = image.info.get("dpi")
    if dpi:
        options["dpi"] = dpi
    return options
