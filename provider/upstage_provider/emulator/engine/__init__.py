"""The emulator's offline OCR engine: documents in, pages of positioned words out.

The API app turns these pages into Upstage-shaped JSON; this package only reads documents. It
imitates what the real service does closely enough for the provider's tests and demos to see
realistic words, boxes and confidences (see ``benchmarks/ocr_agreement.py`` and
``docs/emulator.md`` for how close): images are OCRed with Tesseract (``tesserocr``), turned
upright first when their text runs at an angle and with their light evened when they are
photographs; PDF pages with a real text layer give their words directly and other pages are
rendered at 150 DPI and OCRed; office documents are rendered to PDF by LibreOffice first.

The modules, each importing only those above it:

- ``interface``: the pages, words, errors and protocols the app codes against
- ``tuning``: the values measured on the Upstage samples
- ``formats``: format sniffing, image decoding without Pillow's global guard, the pixel limit
- ``traineddata``: finding the Tesseract models
- ``raw``, ``hangul``, ``geometry``: words in the OCR frame, Hangul joining, mapping back to the page
- ``skew``, ``light``: a page's text angle, and photographed pages' light evened, before reading
- ``checkboxes``: form check boxes read as "□" and "■"
- ``tesseract``: the pool of tesserocr APIs and reading one pass out of them
- ``images``, ``pdf``: the documents, page by page
- ``tesseract_engine``: ``TesseractEngine``, which ties them together
"""

from __future__ import annotations

from upstage_provider.documents import PDFIUM_LOCK
from upstage_provider.emulator.engine.formats import MAX_PAGE_PIXELS
from upstage_provider.emulator.engine.formats import open_image as _open_image  # noqa: F401 (tests use it)
from upstage_provider.emulator.engine.interface import (
    EngineDocument,
    EngineLine,
    EnginePage,
    EngineWord,
    OCREngine,
    Quad,
    UnreadableDocumentError,
    UnsupportedFormatError,
)
from upstage_provider.emulator.engine.tesseract_engine import LANGUAGES_ENV, TesseractEngine

__all__ = [
    "LANGUAGES_ENV",
    "MAX_PAGE_PIXELS",
    "PDFIUM_LOCK",
    "EngineDocument",
    "EngineLine",
    "EnginePage",
    "EngineWord",
    "OCREngine",
    "Quad",
    "TesseractEngine",
    "UnreadableDocumentError",
    "UnsupportedFormatError",
]
