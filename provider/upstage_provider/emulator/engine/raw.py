"""What a Tesseract pass reads, before it is mapped back to the page: raw words, lines, picture regions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RawWord:
    """A word in the OCR frame (upright, scaled): text, confidence 0..1, box l/t/r/b.

    ``turns``: quarter turns clockwise of the word's own "up" in that frame (Tesseract reads
    vertical text blocks by itself), which says which corner is the word's own top-left.
    """

    text: str
    confidence: float
    box: tuple[float, float, float, float]
    turns: int = 0


RawLine = list[RawWord]
Box = tuple[float, float, float, float]
# What one Tesseract pass gives: lines in reading order, and the boxes of picture regions
# (which its page layout does not read) where they fall in that order.
Reading = list[RawLine | Box]
