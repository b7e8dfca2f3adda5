"""Geometry: boxes from the upright, scaled image Tesseract read mapped back to the original page's pixels."""

from __future__ import annotations

from upstage_provider.emulator.engine.hangul import is_hangul
from upstage_provider.emulator.engine.interface import Quad
from upstage_provider.emulator.engine.raw import RawWord
from upstage_provider.emulator.engine.tuning import BOX_PADDING, HANGUL_BOX_PADDING


class Frame:
    """Maps boxes from the upright, scaled image Tesseract read back to the original pixels."""

    def __init__(self, width: int, height: int, rotation: int, scale: float) -> None:
        self.width, self.height = width, height  # the original page
        self.rotation = rotation  # degrees the original was turned counter-clockwise to be upright
        self.scale = scale

    def quad(self, word: RawWord) -> Quad:
        """The word's corners, clockwise from its own top-left, in the original frame."""
        pad = HANGUL_BOX_PADDING if any(map(is_hangul, word.text)) else BOX_PADDING
        left, top, right, bottom = (v / self.scale for v in word.box)
        corners = [
            (left - pad, top - pad),
            (right + pad, top - pad),
            (right + pad, bottom + pad),
            (left - pad, bottom + pad),
        ]
        start = word.turns % 4
        corners = corners[start:] + corners[:start]
        return tuple(self._to_original(x, y) for x, y in corners)  # type: ignore[return-value]

    def _to_original(self, x: float, y: float) -> tuple[int, int]:
        w, h = self.width, self.height
        if self.rotation == 90:
            x, y = w - y, x
        elif self.rotation == 180:
            x, y = w - x, h - y
        elif self.rotation == 270:
            x, y = y, h - x
        return clamp(round(x), w), clamp(round(y), h)


def clamp(value: int, size: int) -> int:
    return max(0, min(size - 1, value))
