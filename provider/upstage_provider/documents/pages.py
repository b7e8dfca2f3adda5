"""Page measuring: every page's size in pixels, read from headers only (no rendering, no decoding).

PDF through PDFium (under :data:`PDFIUM_LOCK`), JPEG/PNG/BMP/TIFF through Pillow's header parsers,
HEIC through :mod:`upstage_provider.documents.heif`, PPTX from its ``presentation.xml``.
"""

from __future__ import annotations

import io
import math
import re
import struct
import threading
import zipfile
from typing import Any

from upstage_provider.documents.formats import _small_entry
from upstage_provider.documents.heif import _BoxError, _heic_primary_size
from upstage_provider.documents.limits import _MIB, RENDER_DPI
from upstage_provider.documents.model import DocumentFormat, PageSize
from upstage_provider.exceptions import CorruptDocumentError, EncryptedDocumentError

#: PDFium is not thread-safe, even across documents: every call into it in this process should
#: hold this lock (re-entrant, so a caller that already holds it may call :func:`inspect_pages`).
PDFIUM_LOCK = threading.RLock()

_POINTS_PER_INCH = 72
_EMU_PER_INCH = 914_400


def inspect_pages(data: bytes, fmt: DocumentFormat, name: str = "document") -> tuple[PageSize, ...] | None:
    """
    Every page's size in pixels, read from headers only; None when only rendering could tell.

    Raises :class:`CorruptDocumentError` when the headers cannot be read (and
    :class:`EncryptedDocumentError` for a password-protected PDF).
    """
    data = bytes(data)
    if fmt is DocumentFormat.PDF:
        return _pdf_pages(data, name)
    if fmt is DocumentFormat.HEIC:
        return _heic_pages(data, name)
    if fmt.is_image:
        return _pillow_pages(data, fmt, name)
    if fmt is DocumentFormat.PPTX:
        return _pptx_pages(data)
    return None


def _points_to_pixels(points: float) -> int:
    # Rounded up, as the API reports them: an A4 page (595 x 842 pt) comes back as 1240 x 1755.
    return math.ceil(points * RENDER_DPI / _POINTS_PER_INCH - 1e-6)


def _pdf_pages(data: bytes, name: str) -> tuple[PageSize, ...]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            # PDFium's last-error code can be stale after some failures, so a password error
            # counts only when the file really declares encryption.
            if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD and b"/Encrypt" in data:
                raise EncryptedDocumentError(
                    f"{name}: the PDF is password-protected and cannot be opened (the API cannot "
                    "open it either); remove the password (e.g. print to a new PDF) and try again"
                ) from exc
            if _declares_no_pages(data):
                raise _no_pages_error(name) from exc
            raise CorruptDocumentError(
                f"{name}: PDFium cannot open the PDF ({exc}); it is damaged or truncated, "
                "re-export or re-download it"
            ) from exc
        try:
            sizes = [pdf.get_page_size(i) for i in range(len(pdf))]
        except pdfium.PdfiumError as exc:
            raise CorruptDocumentError(
                f"{name}: a page of the PDF cannot be read ({exc}); re-export or re-download it"
            ) from exc
        finally:
            pdf.close()
    if not sizes:
        raise _no_pages_error(name)
    return tuple(PageSize(_points_to_pixels(w), _points_to_pixels(h)) for w, h in sizes)


def _declares_no_pages(data: bytes) -> bool:
    """PDFium refuses a PDF whose page tree is empty without saying why; its /Count says so."""
    return re.search(rb"/Count\s*0\b", data) is not None and re.search(rb"/Count\s*[1-9]", data) is None


def _no_pages_error(name: str) -> CorruptDocumentError:
    return CorruptDocumentError(f"{name}: the PDF has 0 pages; check the step that produced it")


def _pillow_pages(data: bytes, fmt: DocumentFormat, name: str) -> tuple[PageSize, ...]:
    # The plugin classes are built directly instead of through Image.open: that parses the same
    # header but skips Pillow's global decompression-bomb check, so a huge page reaches our own,
    # clearer pixel limit, and no global setting is touched.
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin

    opener: Any = {
        DocumentFormat.JPEG: JpegImagePlugin.JpegImageFile,
        DocumentFormat.PNG: PngImagePlugin.PngImageFile,
        DocumentFormat.BMP: BmpImagePlugin.BmpImageFile,
        DocumentFormat.TIFF: TiffImagePlugin.TiffImageFile,
    }[fmt]
    try:
        with opener(io.BytesIO(data)) as image:
            if fmt is DocumentFormat.TIFF:
                sizes = []
                for frame in range(image.n_frames):
                    image.seek(frame)
                    sizes.append(image.size)
            else:
                sizes = [image.size]
    except Exception as exc:  # Pillow raises many kinds on damaged headers
        raise CorruptDocumentError(
            f"{name}: the {fmt.name} header cannot be read ({type(exc).__name__}: {exc}); the file "
            "is damaged or truncated, re-export or re-download it"
        ) from exc
    return _checked_sizes(sizes, fmt, name)


def _checked_sizes(sizes: list[tuple[int, int]], fmt: DocumentFormat, name: str) -> tuple[PageSize, ...]:
    for number, (width, height) in enumerate(sizes, start=1):
        if width <= 0 or height <= 0:
            raise CorruptDocumentError(
                f"{name}: {fmt.name} page {number} claims a size of {width} x {height} pixels; "
                "the file is damaged, re-export it"
            )
    return tuple(PageSize(int(w), int(h)) for w, h in sizes)


def _heic_pages(data: bytes, name: str) -> tuple[PageSize, ...] | None:
    try:
        size = _heic_primary_size(data)
    except (_BoxError, struct.error, IndexError) as exc:
        raise CorruptDocumentError(
            f"{name}: the HEIC structure cannot be read ({exc}); the file is damaged or truncated, "
            "re-export it"
        ) from exc
    if size is None:
        return None
    return _checked_sizes([size], DocumentFormat.HEIC, name)


_SLIDE_ID = re.compile(rb"<(?:\w+:)?sldId\b")
_SLIDE_SIZE = re.compile(rb"<(?:\w+:)?sldSz\b([^>]*)>")
_PRESENTATION_XML_LIMIT = 16 * _MIB


def _pptx_pages(data: bytes) -> tuple[PageSize, ...] | None:
    """Slides from ``ppt/presentation.xml``, at its slide size rendered at 150 DPI; None if unclear."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            xml = _small_entry(zf, "ppt/presentation.xml", _PRESENTATION_XML_LIMIT)
    except Exception:  # the API's renderer is the judge of office files; we only measure if we can
        return None
    if xml is None:
        return None
    count = len(_SLIDE_ID.findall(xml))
    size = _SLIDE_SIZE.search(xml)
    if not count or size is None:
        return None
    cx = re.search(rb'\bcx="(\d+)"', size.group(1))
    cy = re.search(rb'\bcy="(\d+)"', size.group(1))
    if cx is None or cy is None:
        return None
    page = PageSize(_emu_to_pixels(int(cx.group(1))), _emu_to_pixels(int(cy.group(1))))
    return (page,) * count


def _emu_to_pixels(emu: int) -> int:
    return -(-emu * RENDER_DPI // _EMU_PER_INCH)  # rounded up, like PDF pages
