"""Light: photographed pages' uneven illumination and the desk around them, evened out before reading.

Tesseract binarizes a page with one global threshold. On a phone photo the light falls off
across the page, thermal print is grey, and the desk around the paper is darker than the text:
one threshold then takes the shadows for ink or the print for paper. Dividing the page by an
estimate of its background (the page with its text removed by a local maximum) turns the paper
white wherever it lies and keeps the print as dark as it is relative to its own paper.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from upstage_provider.emulator.engine.tuning import (
    LIGHT_CHECK_SIDE,
    LIGHT_INK_PERCENTILE,
    LIGHT_MIN_SPREAD,
    LIGHT_OFF_PAPER,
    LIGHT_SIDE,
)


def _small(gray: Image.Image, side: int = LIGHT_SIDE) -> tuple[Image.Image, int]:
    scale = min(1.0, side / max(gray.size))
    size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
    small = gray.resize(size, Image.Resampling.BOX)
    return small, max(3, round(max(small.size) / 60) | 1)  # a filter wider than a text stroke


def _bright(gray: Image.Image, side: int) -> tuple[Image.Image, int]:
    """The downscaled page with its print removed by a local maximum, and that filter's size."""
    small, size = _small(gray, side)
    return small.filter(ImageFilter.MaxFilter(size)), size


def background(gray: Image.Image, side: int = LIGHT_SIDE) -> Image.Image:
    """The page without its print, downscaled: a local maximum wider than strokes, smoothed."""
    bright, size = _bright(gray, side)
    return bright.filter(ImageFilter.GaussianBlur(size))


def off_paper(bright: Image.Image, size: int, shape: tuple[int, int]) -> np.ndarray:
    """Where the page (``bright``, from ``_bright``) shows no paper, as a mask of ``shape`` pixels.

    No paper: much darker than the brightest paper, with a margin around it. The margin covers
    the band where the smoothed background blends desk and paper, which would otherwise stay as
    a dark rim around the page.
    """
    level = LIGHT_OFF_PAPER * float(np.percentile(np.asarray(bright), 95))
    mask = bright.point(lambda v: 255 if v < level else 0).filter(ImageFilter.MaxFilter(2 * size + 1))
    return np.asarray(mask.resize(shape, Image.Resampling.NEAREST)) > 0


def is_uneven(paper: Image.Image) -> bool:
    """Whether the background varies enough to matter: photos do, flatbed scans do not."""
    values = np.asarray(paper, dtype=np.int16)
    low, high = np.percentile(values, [5, 95])
    return bool(high - low >= LIGHT_MIN_SPREAD)


def flatten(gray: Image.Image) -> Image.Image | None:
    """``gray`` with its paper evened to white and its print to black, or None when it is even already.

    What lies around the paper (a background much darker than the brightest paper) turns white:
    its edges would otherwise pull Tesseract's threshold down below the grey thermal print.
    """
    if not is_uneven(background(gray, LIGHT_CHECK_SIDE)):  # a coarse look first: the fast path
        return None
    bright, size = _bright(gray, LIGHT_SIDE)
    paper = bright.filter(ImageFilter.GaussianBlur(size))
    page = np.asarray(gray, dtype=np.float32)
    light = np.maximum(np.asarray(paper.resize(gray.size, Image.Resampling.BILINEAR), dtype=np.float32), 1.0)
    even = page * (255.0 / light)
    outside = off_paper(bright, size, gray.size)
    even[outside] = 255.0
    on_paper = even[~outside]
    if on_paper.size:
        ink = float(np.percentile(on_paper, LIGHT_INK_PERCENTILE))  # the darkest print
        if ink < 250.0:
            even = (even - ink) * (255.0 / (255.0 - ink))
    return Image.fromarray(np.clip(even, 0, 255).astype(np.uint8), "L")
