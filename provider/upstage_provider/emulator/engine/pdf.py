"""PDF documents: text-layer words where a page has real text, OCR of the rendering elsewhere."""

from __future__ import annotations

import ctypes
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from upstage_provider.documents import PDFIUM_LOCK
from upstage_provider.emulator.engine.formats import check_pixels
from upstage_provider.emulator.engine.geometry import clamp
from upstage_provider.emulator.engine.interface import (
    EngineLine,
    EnginePage,
    EngineWord,
    RasterReader,
    UnreadableDocumentError,
)
from upstage_provider.emulator.engine.tuning import BOX_PADDING, SCANNED_PAGE_IMAGE_COVER

if TYPE_CHECKING:
    import pypdfium2


class PdfDocument:
    """A PDF: text-layer words where the page has real text, OCR of the rendering elsewhere."""

    def __init__(self, engine: RasterReader, data: bytes, filename: str) -> None:
        import pypdfium2

        self._engine, self._filename = engine, filename
        self._scale = engine.dpi / 72.0
        with PDFIUM_LOCK:
            try:
                self._pdf: pypdfium2.PdfDocument | None = pypdfium2.PdfDocument(data)
            except pypdfium2.PdfiumError as exc:
                if "password" in str(exc).lower():
                    raise UnreadableDocumentError(f"{filename}: the PDF is password-protected") from exc
                raise UnreadableDocumentError(f"{filename}: the PDF cannot be read ({exc})") from exc
            self.page_count = len(self._pdf)

    def page(self, index: int) -> EnginePage:
        if not 0 <= index < self.page_count:
            raise IndexError(f"page {index} of a {self.page_count}-page document")
        with PDFIUM_LOCK:
            if self._pdf is None:
                raise UnreadableDocumentError(f"{self._filename}: the document was closed")
            page = self._pdf[index]
            try:
                width_pt, height_pt = page.get_size()
                width, height = _pixels(width_pt, self._scale), _pixels(height_pt, self._scale)
                check_pixels(
                    width, height, where=f"{self._filename}: page {index + 1} at {self._engine.dpi} DPI"
                )
                lines = _text_layer(page, width, height, self._scale)
                image = None if lines is not None else _render(page, self._scale, width, height)
            finally:
                page.close()
        if lines is not None:
            return EnginePage(width, height, lines)
        assert image is not None
        return self._engine.ocr(image)

    def close(self) -> None:
        with PDFIUM_LOCK:
            if self._pdf is not None:
                self._pdf.close()
                self._pdf = None


def _pixels(points: float, scale: float) -> int:
    """A page side in pixels, rounded up as PDFium and the API do (792 pt at 150 DPI is 1650, not 1651)."""
    return max(1, math.ceil(points * scale - 1e-6))


def _render(page: pypdfium2.PdfPage, scale: float, width: int, height: int) -> Image.Image:
    bitmap = page.render(scale=scale, grayscale=True, fill_color=(255, 255, 255, 255))
    try:
        image = bitmap.to_pil().convert("L")  # copies out of PDFium's buffer
    finally:
        bitmap.close()
    # PDFium rounds float noise up (792 * 150/72 = 1650.0000000000002 -> 1651): keep the page size.
    return image if image.size == (width, height) else image.crop((0, 0, width, height))


@dataclass(slots=True)
class _Char:
    text: str
    box: tuple[float, float, float, float]  # left, bottom, right, top in PDF points
    angle: float  # radians, counter-clockwise, of the text direction


def _text_layer(
    page: pypdfium2.PdfPage, width: int, height: int, scale: float
) -> tuple[EngineLine, ...] | None:
    """The page's words from its text layer, or None when it has none worth trusting."""
    import pypdfium2.raw as pdfium_c

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        if count <= 0:
            return None
        chars: list[_Char | None] = []  # None marks a line break
        real = broken = 0
        for i in range(count):
            code = pdfium_c.FPDFText_GetUnicode(textpage.raw, i)
            char = chr(code) if code else ""
            if char in ("\r", "\n"):
                chars.append(None)
                continue
            if char == "\x02":  # PDFium's marker for a hyphen that ends a line
                char = "-"
            if not char or char.isspace() or unicodedata.category(char) == "Cc":
                chars.append(_Char(" ", (0, 0, 0, 0), 0.0))
                continue
            real += 1
            broken += char == "\ufffd"
            angle = pdfium_c.FPDFText_GetCharAngle(textpage.raw, i)
            chars.append(_Char(char, textpage.get_charbox(i), max(0.0, angle)))
    finally:
        textpage.close()
    if real == 0 or broken > real / 2 or _image_cover(page) >= SCANNED_PAGE_IMAGE_COVER:
        return None
    to_pixels = _page_to_pixels(page, width, height)
    pad = BOX_PADDING / scale  # the same margin as OCRed words, in points
    lines: list[EngineLine] = []
    words: list[EngineWord] = []
    current: list[_Char] = []

    def end_word() -> None:
        if current:
            words.append(_pdf_word(current, to_pixels, width, height, pad))
            current.clear()

    def end_line() -> None:
        end_word()
        if words:
            lines.append(EngineLine(tuple(words)))
            words.clear()

    for item in chars:
        if item is None:
            end_line()
        elif item.text == " ":
            end_word()
        else:
            current.append(item)
    end_line()
    return tuple(lines)


def _image_cover(page: pypdfium2.PdfPage) -> float:
    """Share of the page under image objects (a scan with or without an OCR text layer)."""
    import pypdfium2.raw as pdfium_c

    left, bottom, right, top = page.get_bbox()
    area = max(1e-6, (right - left) * (top - bottom))
    covered = 0.0
    for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4):
        x0, y0, x1, y1 = obj.get_bounds()
        covered += max(0.0, min(x1, right) - max(x0, left)) * max(0.0, min(y1, top) - max(y0, bottom))
    return min(1.0, covered / area)


def _page_to_pixels(
    page: pypdfium2.PdfPage, width: int, height: int
) -> Callable[[float, float], tuple[float, float]]:
    """PDF user space (points, origin bottom-left) to rendered pixels (origin top-left), as PDFium renders.

    PDFium's own mapping handles the crop box and the page's /Rotate; it answers in whole device
    pixels, so it is asked on a 16x larger device and the affine map is recovered from three points.
    """
    import pypdfium2.raw as pdfium_c

    fine = 16

    def device(x: float, y: float) -> tuple[float, float]:
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(
            page.raw, 0, 0, width * fine, height * fine, 0, x, y, ctypes.byref(dx), ctypes.byref(dy)
        )
        return dx.value / fine, dy.value / fine

    ox, oy = device(0.0, 0.0)
    ax, ay = device(1000.0, 0.0)
    bx, by = device(0.0, 1000.0)
    xx, xy = (ax - ox) / 1000.0, (ay - oy) / 1000.0
    yx, yy = (bx - ox) / 1000.0, (by - oy) / 1000.0
    return lambda x, y: (ox + xx * x + yx * y, oy + xy * x + yy * y)


def _pdf_word(
    chars: Sequence[_Char],
    to_pixels: Callable[[float, float], tuple[float, float]],
    width: int,
    height: int,
    pad: float,
) -> EngineWord:
    """A word's quad from its characters' boxes, measured along its own text direction."""
    angle = chars[0].angle
    dx, dy = math.cos(angle), math.sin(angle)  # along the text
    ux, uy = -dy, dx  # up the glyphs
    along: list[float] = []
    across: list[float] = []
    for char in chars:
        left, bottom, right, top = char.box
        for x, y in ((left, bottom), (right, bottom), (right, top), (left, top)):
            along.append(x * dx + y * dy)
            across.append(x * ux + y * uy)
    a0, a1, u0, u1 = min(along), max(along), min(across), max(across)

    def corner(a: float, u: float) -> tuple[int, int]:
        px, py = to_pixels(a * dx + u * ux, a * dy + u * uy)
        return clamp(round(px), width), clamp(round(py), height)

    quad = (
        corner(a0 - pad, u1 + pad),
        corner(a1 + pad, u1 + pad),
        corner(a1 + pad, u0 - pad),
        corner(a0 - pad, u0 - pad),
    )
    return EngineWord("".join(c.text for c in chars), 1.0, quad)
