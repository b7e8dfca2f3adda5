"""Check boxes: words whose ink is form check boxes become the "□" and "■" glyphs Upstage reads.

Upstage reads empty form check boxes as "□"; Tesseract has no such glyph and answers "[]",
"O", "(J" or strings a column of boxes together into one "vertical word". A word whose ink is
one empty square outline becomes "□". A word made of several boxes becomes one glyph per box,
"■" for the marked ones. A lone marked box is left as Tesseract read it: a filled square is
too easily confused with dark page furniture (and Upstage answers "■", "く" or nothing there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from PIL import Image

from upstage_provider.emulator.engine.raw import Box, RawLine, RawWord

_CHECK_BOX = "□"
_MARKED_BOX = "■"


def find_check_boxes(ink: Image.Image, lines: list[RawLine]) -> None:
    """Replace, in place, words made only of check boxes by box glyphs placed in their lines.

    ``ink`` is the thresholded page with ink white (255) on black.
    """
    loose: list[RawWord] = []
    for line in lines:
        for index, word in reversed(list(enumerate(line))):
            if len(word.text) > 3 and word.confidence >= 0.5:
                continue
            boxes = _box_glyphs(ink, word.box)
            if len(boxes) == 1:
                line[index] = boxes[0]
            elif boxes:  # a column of boxes read as one vertical word: each goes to its own line
                del line[index]
                loose.extend(boxes)
    for box in loose:
        _place(box, lines)


def _box_glyphs(ink: Image.Image, box: Box) -> list[RawWord]:
    """The check boxes that make up all the ink in ``box``, or [] if anything else is there."""
    left, top = int(box[0]), int(box[1])
    region = ink.crop((left, top, int(box[2]), int(box[3])))
    glyphs = []
    for y0, y1 in _runs(region.resize((1, region.height), Image.Resampling.BOX).tobytes()):
        band = region.crop((0, y0, region.width, y1))
        for x0, x1 in _runs(band.resize((region.width, 1), Image.Resampling.BOX).tobytes()):
            piece = band.crop((x0, 0, x1, band.height))
            bbox = piece.getbbox()
            if bbox is None:
                continue
            glyph = _box_glyph(piece.crop(bbox))
            if glyph is None:
                return []
            glyphs.append(
                RawWord(
                    glyph,
                    0.9,
                    (left + x0 + bbox[0], top + y0 + bbox[1], left + x0 + bbox[2], top + y0 + bbox[3]),
                )
            )
    if not any(g.text == _CHECK_BOX for g in glyphs) or (len(glyphs) == 1 and glyphs[0].text != _CHECK_BOX):
        return []
    return glyphs


def _runs(profile: Iterable[float]) -> list[tuple[int, int]]:
    """Start/end of the stretches where a projection profile has ink."""
    runs, start = [], None
    for index, value in enumerate(profile):
        if value and start is None:
            start = index
        elif not value and start is not None:
            runs.append((start, index))
            start = None
    if start is not None:
        runs.append((start, index + 1))
    return runs


def _box_glyph(piece: Image.Image) -> str | None:
    """ "□" for an empty square outline, "■" for a filled or marked one, None for anything else."""
    width, height = piece.size
    if min(width, height) < 8 or not 0.7 <= width / height <= 1.4:
        return None
    side = max(2, round(0.18 * min(width, height)))
    corner = max(2, side // 2)
    strips = (
        piece.crop((0, 0, width, side)).resize((width, 1), Image.Resampling.BOX),
        piece.crop((0, height - side, width, height)).resize((width, 1), Image.Resampling.BOX),
        piece.crop((0, 0, side, height)).resize((1, height), Image.Resampling.BOX),
        piece.crop((width - side, 0, width, height)).resize((1, height), Image.Resampling.BOX),
    )
    for strip in strips:
        values = list(strip.tobytes())
        if sum(1 for v in values if v) < 0.85 * len(values):
            return None
    corners = ((0, 0), (width - corner, 0), (0, height - corner), (width - corner, height - corner))
    if any(piece.crop((x, y, x + corner, y + corner)).getbbox() is None for x, y in corners):
        return None  # round shapes (O, 0) leave the corners of their box empty
    inset = max(side + 1, round(0.25 * min(width, height)))
    inner = piece.crop((inset, inset, width - inset, height - inset))
    if inner.width < 2 or inner.height < 2:
        return None
    fill = sum(inner.resize((1, 1), Image.Resampling.BOX).tobytes()) / 255
    return _CHECK_BOX if fill < 0.05 else _MARKED_BOX


def _place(word: RawWord, lines: list[RawLine]) -> None:
    """Put a new word into the nearest line level with it, in left-to-right order, or a line of its own."""
    left, top, right, bottom = word.box
    best, best_distance = None, math.inf
    for line in lines:
        if not line or any(w.turns for w in line):
            continue
        line_top, line_bottom = min(w.box[1] for w in line), max(w.box[3] for w in line)
        overlap = min(bottom, line_bottom) - max(top, line_top)
        if overlap <= 0.5 * min(bottom - top, line_bottom - line_top):
            continue
        distance = max(0.0, min(w.box[0] for w in line) - right, left - max(w.box[2] for w in line))
        if distance < best_distance:
            best, best_distance = line, distance
    if best is None or best_distance > 4 * (bottom - top):
        lines.append([word])
        return
    index = next((i for i, w in enumerate(best) if w.box[0] > word.box[0]), len(best))
    best.insert(index, word)
