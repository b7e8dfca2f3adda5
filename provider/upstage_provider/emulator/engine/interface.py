"""The engine interface the API app codes against: pages of positioned words, and the errors.

Everything else in this package is one engine (Tesseract) behind it; the synthetic engine
(``emulator/synthetic.py``) implements the same protocols.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PIL import Image

Quad = tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class EngineWord:
    """One word; ``vertices`` are integer pixels, clockwise from the word's own top-left."""

    text: str
    confidence: float
    vertices: Quad


@dataclass(frozen=True, slots=True)
class EngineLine:
    """Words read on one line, left to right in the line's own direction."""

    words: tuple[EngineWord, ...]


@dataclass(frozen=True, slots=True)
class EnginePage:
    """A page's size in pixels (PDF pages as rendered at the engine's DPI) and its lines in reading order."""

    width: int
    height: int
    lines: tuple[EngineLine, ...]


class UnreadableDocumentError(Exception):
    """The engine cannot read this document; str(e) is the message the API answers with (HTTP 415/422)."""


class UnsupportedFormatError(UnreadableDocumentError):
    """The bytes are not one of the formats the API reads (the API answers 415, not 422)."""


class EngineDocument(Protocol):
    """An opened document; ``page`` may be called from any thread, in any order."""

    page_count: int

    def page(self, index: int) -> EnginePage: ...

    def close(self) -> None: ...


class OCREngine(Protocol):
    """What the API app needs from an OCR engine."""

    name: str

    def open(self, data: bytes, filename: str) -> EngineDocument: ...


class RasterReader(Protocol):
    """What a document needs from the engine that opened it: its rendering DPI and page OCR."""

    dpi: int

    def ocr(self, image: Image.Image) -> EnginePage: ...
