"""Skew: the angle a page's text lines make with the image's axes, found before Tesseract reads it.

Tesseract's orientation detection knows only quarter turns and its layout tolerates a few
degrees, so a photo taken at 30° reads as noise. The estimate is a projection profile: at the
right angle, the ink of each text line falls into a few rows (or, for columns of text, columns),
so the histogram of ink positions along that axis is sharpest. Projecting the ink pixels'
coordinates (rather than rotating the image) keeps it at a few milliseconds a page, cheap enough
to run on every page and let upright scans take the fast path.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from upstage_provider.emulator.engine.tuning import (
    SKEW_COARSE_STEP,
    SKEW_FINE_STEP,
    SKEW_MIN_GAIN,
    SKEW_MIN_PEAK,
    SKEW_SIDE,
)

#: Lines are found at any angle up to this either way; past it they are nearer the other axis.
MAX_SKEW = 45.0


def ink_points(gray: Image.Image, side: int = SKEW_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The coordinates of text-like dark pixels of a downscaled ``gray``.

    A pixel is ink when it is clearly darker than its neighbourhood: photos have uneven light,
    so one global threshold would take the shadows for ink and the grey thermal print for paper.
    """
    scale = min(1.0, side / max(gray.size))
    small = (
        gray
        if scale == 1.0
        else gray.resize(
            (max(1, round(gray.width * scale)), max(1, round(gray.height * scale))), Image.Resampling.BOX
        )
    )
    pixels = np.asarray(small, dtype=np.int16)
    local = np.asarray(small.filter(ImageFilter.BoxBlur(6)), dtype=np.int16)
    contrast = max(12, int(pixels.std() * 0.3))
    ys, xs = np.nonzero(pixels < local - contrast)
    # Spread each pixel over its square: integer coordinates projected at an angle fall on a
    # lattice whose aliasing would look sharper than any text line (worst at 45°).
    jitter = np.random.default_rng(0).random((2, xs.size), dtype=np.float32)
    return xs + jitter[0], ys + jitter[1]


def _sharpness(xs: np.ndarray, ys: np.ndarray, degrees: float) -> float:
    """How sharply the ink piles into rows and columns once turned by ``degrees``."""
    theta = np.deg2rad(degrees)
    cos, sin = np.cos(theta), np.sin(theta)
    total = 0.0
    for axis in (ys * cos - xs * sin, xs * cos + ys * sin):
        counts = np.bincount((axis - axis.min()).astype(np.int32)).astype(np.float64)
        total += float(np.square(np.diff(counts)).sum())
    return total


def estimate_skew(gray: Image.Image) -> float:
    """Degrees to turn ``gray`` counter-clockwise so its text lines run along the axes.

    0.0 when the page has too little ink to tell, when no angle stands out from the others
    (noise, pictures), or when none sharpens the profile clearly more than leaving the page as
    it is (upright scans).
    """
    xs, ys = ink_points(gray)
    if xs.size < 200:
        return 0.0
    if xs.size > 200_000:  # enough to tell; keep the cost flat on busy pages
        keep = np.random.default_rng(0).choice(xs.size, 200_000, replace=False)
        xs, ys = xs[keep], ys[keep]
    coarse = np.arange(-MAX_SKEW, MAX_SKEW + 1e-9, SKEW_COARSE_STEP)
    scores = np.array([_sharpness(xs, ys, a) for a in coarse])
    if scores.max() < SKEW_MIN_PEAK * float(np.median(scores)):
        return 0.0  # no angle stands out: noise, a picture, no lines of text
    best = float(coarse[int(np.argmax(scores))])
    fine = np.arange(best - SKEW_COARSE_STEP, best + SKEW_COARSE_STEP + 1e-9, SKEW_FINE_STEP)
    fine_scores = [_sharpness(xs, ys, a) for a in fine]
    best = float(fine[int(np.argmax(fine_scores))])
    if max(fine_scores) < SKEW_MIN_GAIN * _sharpness(xs, ys, 0.0):
        return 0.0
    return round(best, 2)
