"""Hangul: which characters are Hangul, and rejoining the syllables Tesseract's Korean model splits."""

from __future__ import annotations

from upstage_provider.emulator.engine.raw import RawLine, RawWord
from upstage_provider.emulator.engine.tuning import HANGUL_JOIN_GAP


def is_hangul(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3" or "\u1100" <= char <= "\u11ff" or "\u3130" <= char <= "\u318f"


def join_hangul(line: RawLine) -> RawLine:
    """Rejoin Hangul syllables that Tesseract's Korean model returned as separate words."""
    if len(line) < 2:
        return line
    heights = sorted(w.box[3] - w.box[1] for w in line)
    height = heights[len(heights) // 2]  # the median: one bad box must not set the scale
    joined: RawLine = [line[0]]
    for word in line[1:]:
        last = joined[-1]
        gap = word.box[0] - last.box[2]
        if (
            last.text
            and word.text
            and is_hangul(last.text[-1])
            and is_hangul(word.text[0])
            and gap <= HANGUL_JOIN_GAP * height
        ):
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
