"""Hangul: which characters are Hangul, and rejoining the syllables Tesseract's Korean model splits."""

from __future__ import annotations

import itertools

from upstage_provider.emulator.engine.raw import RawLine, RawWord
from upstage_provider.emulator.engine.tuning import HANGUL_JOIN_GAP, HANGUL_JOIN_RANGE, HANGUL_MIN_JUMP


def is_hangul(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3" or "\u1100" <= char <= "\u11ff" or "\u3130" <= char <= "\u318f"


def _pairs(line: RawLine) -> list[int]:
    """Indexes i where word i ends and word i + 1 begins in Hangul."""
    return [
        i
        for i in range(len(line) - 1)
        if line[i].text
        and line[i + 1].text
        and is_hangul(line[i].text[-1])
        and is_hangul(line[i + 1].text[0])
    ]


def join_gap(gaps: list[float]) -> float:
    """The gap (in line heights) up to which neighbours are one word, read from the line's own gaps.

    Fonts space words differently, so a line whose Hangul gaps fall into two clear groups (the
    syllables Tesseract split, and the word spaces) is cut between them; other lines use the
    default. The cut stays within HANGUL_JOIN_RANGE so that one odd gap cannot move it far.
    """
    low, high = HANGUL_JOIN_RANGE
    ordered = sorted(g for g in gaps if g > 0)
    if len(ordered) < 3:
        return HANGUL_JOIN_GAP
    jumps = [(b - a, (a + b) / 2) for a, b in itertools.pairwise(ordered) if low <= (a + b) / 2 <= high]
    if not jumps:
        return HANGUL_JOIN_GAP
    size, middle = max(jumps)
    return middle if size >= HANGUL_MIN_JUMP else HANGUL_JOIN_GAP


def join_hangul(line: RawLine) -> RawLine:
    """Rejoin Hangul syllables that Tesseract's Korean model returned as separate words."""
    if len(line) < 2:
        return line
    heights = sorted(w.box[3] - w.box[1] for w in line)
    height = heights[len(heights) // 2] or 1.0  # the median: one bad box must not set the scale
    pairs = set(_pairs(line))
    limit = join_gap([(line[i + 1].box[0] - line[i].box[2]) / height for i in pairs])
    joined: RawLine = [line[0]]
    for index, word in enumerate(line[1:]):
        last = joined[-1]
        gap = word.box[0] - line[index].box[2]
        if index in pairs and gap <= limit * height:
            count = len(last.text) + len(word.text)
            joined[-1] = RawWord(
                last.text + word.text,
                (last.confidence * len(last.text) + word.confidence * len(word.text)) / count,
                (
                    min(last.box[0], word.box[0]),
                    min(last.box[1], word.box[1]),
                    max(last.box[2], word.box[2]),
                    max(last.box[3], word.box[3]),
                ),
                last.turns,
            )
        else:
            joined.append(word)
    return joined
