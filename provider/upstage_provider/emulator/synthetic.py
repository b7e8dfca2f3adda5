"""An OCR engine that reads nothing: fast, deterministic words for load tests and hook tests.

It takes from the document only what the API's bookkeeping needs (how many pages, how big),
and fills each page with pseudo-random words laid out in lines, seeded by the engine's seed,
the document's bytes and the page index, so the same upload always gets the same answer.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from collections.abc import Sequence

from upstage_provider.documents import PDFIUM_LOCK
from upstage_provider.emulator.engine import (
    EngineLine,
    EnginePage,
    EngineWord,
    UnreadableDocumentError,
)

#: Pages of PDFs are sized as if rendered at this resolution, like the real API does.
RENDER_DPI = 150
WORDS_PER_LINE = 10

_VOCABULARY = (
    "invoice", "total", "amount", "date", "customer", "account", "number", "payment", "due",
    "order", "item", "quantity", "price", "tax", "subtotal", "balance", "reference", "address",
    "street", "city", "phone", "email", "page", "section", "table", "figure", "report", "summary",
    "the", "of", "and", "to", "in", "for", "with", "on", "by", "from", "at", "as",
    "contract", "agreement", "signature", "approved", "received", "shipped", "delivered",
    "Seoul", "Upstage", "OCR", "document", "합계", "금액", "날짜", "주소", "영수증",
)  # fmt: skip
_LONGEST = max(len(w) for w in _VOCABULARY)


class SyntheticDocument:
    """Pages of one document; each is generated on demand, so opening a big PDF is cheap."""

    def __init__(self, sizes: Sequence[tuple[int, int]], words_per_page: int, seed: str) -> None:
        self._sizes = tuple(sizes)
        self._words_per_page = words_per_page
        self._seed = seed
        self.page_count = len(self._sizes)

    def page(self, index: int) -> EnginePage:
        if not 0 <= index < len(self._sizes):
            raise IndexError(f"page index {index} out of range (0-{len(self._sizes) - 1})")
        width, height = self._sizes[index]
        rng = random.Random(f"{self._seed}:{index}")
        return EnginePage(width=width, height=height, lines=_layout(rng, width, height, self._words_per_page))

    def close(self) -> None:
        """Nothing to release: the document's bytes were not kept."""


class SyntheticEngine:
    """
    An ``OCREngine`` without OCR.

    Page counts come from the document (PDF pages, TIFF frames, 1 for other images), page
    sizes from it too (PDF pages at 150 DPI, images at their pixel size); a document this
    engine cannot measure without rendering (office formats, HWP) is one page of
    ``page_size``.
    """

    name = "synthetic"

    def __init__(
        self, words_per_page: int = 300, page_size: tuple[int, int] = (1240, 1754), seed: int = 0
    ) -> None:
        if words_per_page < 0:
            raise ValueError(f"words_per_page must not be negative, got {words_per_page}")
        if page_size[0] < 1 or page_size[1] < 1:
            raise ValueError(f"page_size must be positive, got {page_size}")
        self.words_per_page = words_per_page
        self.page_size = (int(page_size[0]), int(page_size[1]))
        self.seed = seed

    def open(self, data: bytes, filename: str) -> SyntheticDocument:
        sizes = _page_sizes(data, filename, self.page_size)
        digest = hashlib.sha256(data).hexdigest()[:16]
        return SyntheticDocument(sizes, self.words_per_page, f"{self.seed}:{digest}")


def _page_sizes(data: bytes, filename: str, fallback: tuple[int, int]) -> list[tuple[int, int]]:
    if not data:
        raise UnreadableDocumentError(f"{filename}: the document is empty")
    if data[:5] == b"%PDF-":
        return _pdf_page_sizes(data, filename)
    if data[:4] == b"PK\x03\x04" or data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return [fallback]  # office formats and HWP: counting pages would take a renderer
    return _image_page_sizes(data, filename)


def _pdf_page_sizes(data: bytes, filename: str) -> list[tuple[int, int]]:
    import pypdfium2 as pdfium

    scale = RENDER_DPI / 72
    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise UnreadableDocumentError(f"{filename}: not a readable PDF ({exc})") from None
        try:
            sizes = []
            for index in range(len(pdf)):
                width, height = pdf.get_page_size(index)
                sizes.append((max(1, round(width * scale)), max(1, round(height * scale))))
        finally:
            pdf.close()
    if not sizes:
        raise UnreadableDocumentError(f"{filename}: the PDF has no pages")
    return sizes


def _image_page_sizes(data: bytes, filename: str) -> list[tuple[int, int]]:
    from PIL import Image, UnidentifiedImageError

    _register_heif()
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "TIFF":
                return [image.size]
            sizes = []
            for frame in range(getattr(image, "n_frames", 1)):
                image.seek(frame)
                sizes.append(image.size)
            return sizes
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableDocumentError(f"{filename}: not a readable image ({exc})") from None


def _register_heif() -> None:
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # HEIC stays unreadable without it; everything else works
        return
    register_heif_opener()


def _layout(rng: random.Random, width: int, height: int, count: int) -> tuple[EngineLine, ...]:
    """``count`` words in lines of ``WORDS_PER_LINE`` inside the page's margins, integer boxes."""
    if count == 0:
        return ()
    per_line = min(WORDS_PER_LINE, count)
    n_lines = math.ceil(count / per_line)
    margin_x, margin_y = int(width * 0.06), int(height * 0.06)
    usable_w, usable_h = max(1, width - 2 * margin_x), max(1, height - 2 * margin_y)
    pitch = usable_h / n_lines
    word_h = max(1, int(pitch * 0.6))
    char_w = usable_w / (per_line * (_LONGEST + 1))
    lines = []
    remaining = count
    for line_index in range(n_lines):
        top = min(height, margin_y + int(line_index * pitch))
        bottom = min(height, top + word_h)
        x = float(margin_x)
        words = []
        for _ in range(min(per_line, remaining)):
            text = _word(rng)
            left = min(width, int(x))
            right = min(width, max(left + 1, int(x + len(text) * char_w)))
            left = min(left, right)
            confidence = rng.uniform(0.80, 1.0)
            vertices = ((left, top), (right, top), (right, bottom), (left, bottom))
            words.append(EngineWord(text=text, confidence=confidence, vertices=vertices))
            x += (_LONGEST + 1) * char_w
        remaining -= len(words)
        lines.append(EngineLine(words=tuple(words)))
    return tuple(lines)


def _word(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return str(rng.randint(1, 9999))
    return rng.choice(_VOCABULARY)


def blank_pdf(pages: int = 1, size: tuple[float, float] = (612, 792)) -> bytes:
    """A PDF of ``pages`` blank pages of ``size`` points: all the synthetic engine needs to answer.

    Tests, benchmarks and the system test build their load from it; it holds the process-wide
    pdfium lock because an in-process emulator may be using pdfium on another thread.
    """
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument.new()
        try:
            for _ in range(pages):
                pdf.new_page(*size)
            buf = io.BytesIO()
            pdf.save(buf)
        finally:
            pdf.close()
    return buf.getvalue()
