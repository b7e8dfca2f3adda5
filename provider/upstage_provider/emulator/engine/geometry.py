"""Geometry: boxes from the upright, scaled image Tesseract read mapped back to the original page's pixels."""

from __future__ import annotations

import math

from upstage_provider.emulator.engine.hangul import is_hangul
from upstage_provider.emulator.engine.interface import Quad
from upstage_provider.emulator.engine.raw import RawWord
from upstage_provider.emulator.engine.tuning import BOX_PADDING, HANGUL_BOX_PADDING


class Frame:
    """Maps boxes from the upright, scaled image Tesseract read back to the original pixels.

    ``rotation``: degrees the original was turned counter-clockwise (Pillow's ``rotate`` with
    ``expand=True``, about its centre) to be upright: quarter turns from orientation detection
    plus any skew. ``turned_size``: the size of that turned image before scaling (the original's
    size when nothing was turned). A word's upright rectangle maps back to a quad that follows
    the word's own rotation, its first vertex at the word's own top-left.
    """

    def __init__(
        self,
        width: int,
        height: int,
        rotation: float,
        scale: float,
        turned_size: tuple[int, int],
    ) -> None:
        self.width, self.height = width, height  # the original page
        self.rotation = rotation
        self.scale = scale
        turned_w, turned_h = turned_size
        self._centre = (width / 2, height / 2)
        self._turned_centre = (turned_w / 2, turned_h / 2)
        theta = math.radians(rotation)
        self._cos, self._sin = math.cos(theta), math.sin(theta)

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
        # Pillow turns content counter-clockwise on screen (y down): a point p of the original
        # lands at c' + R(p - c), R = [[cos, sin], [-sin, cos]]; this is that map's inverse.
        dx, dy = x - self._turned_centre[0], y - self._turned_centre[1]
        ox = self._centre[0] + self._cos * dx - self._sin * dy
        oy = self._centre[1] + self._sin * dx + self._cos * dy
        return clamp(round(ox), self.width), clamp(round(oy), self.height)


def clamp(value: int, size: int) -> int:
    return max(0, min(size - 1, value))
