"""Turning what the OCR engine saw into the JSON the Upstage API answers with.

The default shape is the *recorded* one (``../shared/upstage-samples/*.ocr.json``), key for
key and in the same (alphabetical) key order, because that is what clients meet in
production. Rules taken from the recordings:

- a page's ``text`` joins each line's words with ``" "`` and the lines with ``" \\n"`` (no
  trailing separator after the last line); the top-level ``text`` is the page texts
  concatenated with nothing between them;
- word ``id``s run on across pages; ``pages[].id`` is 0-based, ``metadata.pages[].page``
  1-based;
- confidences are rounded to 4 decimals; a page's is the mean of its (rounded) words', the
  document's the minimum of its pages'.

Not covered by any recording, so defined here: an empty page (no words) has ``text`` ``""``
and ``confidence`` ``0.0``, and it does not drag the document's confidence down (the minimum
is taken over pages that have words; a document with no words at all has ``0.0``).

Also built here: the snake_case variant some docs show (``bounding_box``, normalized float
vertices, ``api``/``model``/``usage``) and rough Clova / Google Vision shapes for the
``schema`` form field, which no recording shows either.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from statistics import fmean
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upstage_provider.emulator.engine import EnginePage, EngineWord

API_VERSION = "1.1"
SNAKE_API_VERSION = "2.0"
MIME_TYPE = "multipart/form-data"
LINE_SEPARATOR = " \n"
WORD_SEPARATOR = " "
SCHEMAS = ("clova", "google")


def rounded(confidence: float) -> float:
    """A confidence as the API prints it: 4 decimals, clamped to 0..1."""
    return round(min(1.0, max(0.0, float(confidence))), 4)


def page_text(page: EnginePage) -> str:
    """The page's words, lines joined the way the recorded responses join them."""
    lines = (WORD_SEPARATOR.join(w.text for w in line.words) for line in page.lines if line.words)
    return LINE_SEPARATOR.join(lines)


def page_words(page: EnginePage) -> list[EngineWord]:
    return [word for line in page.lines for word in line.words]


def page_confidence(word_confidences: Sequence[float]) -> float:
    """Mean of the words' rounded confidences; ``0.0`` for a page without words."""
    return round(fmean(word_confidences), 4) if word_confidences else 0.0


def document_confidence(pages: Sequence[tuple[float, int]]) -> float:
    """Minimum over the pages that have words (``(confidence, word count)`` pairs)."""
    read = [confidence for confidence, count in pages if count]
    return min(read) if read else 0.0


def build_ocr_response(
    pages: Sequence[EnginePage],
    *,
    model_version: str,
    first_page_id: int = 0,
    snake_case: bool = False,
) -> dict[str, Any]:
    """
    One sync-shaped response for ``pages``.

    ``first_page_id`` numbers the pages (``pages[].id`` from it, ``metadata.pages[].page``
    from it + 1): 0 for a whole document, or the batch's offset when a downloaded batch
    carries absolute page ids. Word ids always start at 0 in each response.
    """
    out_pages: list[dict[str, Any]] = []
    summary: list[tuple[float, int]] = []
    word_id = 0
    for index, page in enumerate(pages):
        words = page_words(page)
        out_words = []
        confidences = []
        for word in words:
            confidence = rounded(word.confidence)
            confidences.append(confidence)
            out_words.append(_word(word_id, word, confidence, page, snake_case))
            word_id += 1
        confidence = page_confidence(confidences)
        summary.append((confidence, len(words)))
        out_pages.append(
            {
                "confidence": confidence,
                "height": page.height,
                "id": first_page_id + index,
                "text": page_text(page),
                "width": page.width,
                "words": out_words,
            }
        )
    metadata = {
        "pages": [
            {"height": page.height, "page": first_page_id + index + 1, "width": page.width}
            for index, page in enumerate(pages)
        ]
    }
    confidence = document_confidence(summary)
    text = "".join(p["text"] for p in out_pages)
    if snake_case:
        return {
            "api": SNAKE_API_VERSION,
            "confidence": confidence,
            "metadata": metadata,
            "model": model_version,
            "pages": out_pages,
            "stored": False,
            "text": text,
            "usage": {"pages": len(out_pages)},
        }
    return {
        "apiVersion": API_VERSION,
        "confidence": confidence,
        "metadata": metadata,
        "mimeType": MIME_TYPE,
        "modelVersion": model_version,
        "numBilledPages": len(out_pages),
        "pages": out_pages,
        "stored": False,
        "text": text,
    }


def _word(
    word_id: int, word: EngineWord, confidence: float, page: EnginePage, snake_case: bool
) -> dict[str, Any]:
    if snake_case:
        width, height = max(page.width, 1), max(page.height, 1)
        vertices: list[dict[str, Any]] = [
            {"x": round(x / width, 4), "y": round(y / height, 4)} for x, y in word.vertices
        ]
        return {
            "bounding_box": {"vertices": vertices},
            "confidence": confidence,
            "id": word_id,
            "text": word.text,
        }
    return {
        "boundingBox": {"vertices": [{"x": int(x), "y": int(y)} for x, y in word.vertices]},
        "confidence": confidence,
        "id": word_id,
        "text": word.text,
    }


# --- the `schema` form field: shapes for people migrating from other OCR services -----------------


def build_schema_response(pages: Sequence[EnginePage], schema: str) -> dict[str, Any]:
    """The ``schema=clova`` / ``schema=google`` answer (an approximation: nothing was recorded)."""
    if schema == "clova":
        return _clova(pages)
    if schema == "google":
        return _google(pages)
    raise ValueError(f"unknown schema {schema!r}; choose from {list(SCHEMAS)}")


def _clova(pages: Sequence[EnginePage]) -> dict[str, Any]:
    images = []
    for index, page in enumerate(pages):
        fields = []
        for line in page.lines:
            for position, word in enumerate(line.words):
                fields.append(
                    {
                        "boundingPoly": {
                            "vertices": [{"x": float(x), "y": float(y)} for x, y in word.vertices]
                        },
                        "inferConfidence": rounded(word.confidence),
                        "inferText": word.text,
                        "lineBreak": position == len(line.words) - 1,
                        "type": "NORMAL",
                        "valueType": "ALL",
                    }
                )
        images.append(
            {
                "convertedImageInfo": {"height": page.height, "pageIndex": index, "width": page.width},
                "fields": fields,
                "inferResult": "SUCCESS",
                "message": "SUCCESS",
                "name": f"page-{index + 1}",
                "uid": uuid.uuid4().hex,
            }
        )
    return {
        "images": images,
        "requestId": str(uuid.uuid4()),
        "timestamp": int(time.time() * 1000),
        "version": "V2",
    }


def _google(pages: Sequence[EnginePage]) -> dict[str, Any]:
    responses = []
    for index, page in enumerate(pages):
        text = page_text(page)
        annotations: list[dict[str, Any]] = []
        words = page_words(page)
        if words:
            xs = [x for w in words for x, _ in w.vertices]
            ys = [y for w in words for _, y in w.vertices]
            box = [(min(xs), min(ys)), (max(xs), min(ys)), (max(xs), max(ys)), (min(xs), max(ys))]
            annotations.append({"boundingPoly": _poly(box), "description": text, "locale": "und"})
        annotations.extend({"boundingPoly": _poly(w.vertices), "description": w.text} for w in words)
        confidences = [rounded(w.confidence) for w in words]
        responses.append(
            {
                "context": {"pageNumber": index + 1},
                "fullTextAnnotation": {
                    "pages": [
                        {
                            "confidence": page_confidence(confidences),
                            "height": page.height,
                            "width": page.width,
                        }
                    ],
                    "text": text,
                },
                "textAnnotations": annotations,
            }
        )
    return {"responses": responses}


def _poly(vertices: Sequence[tuple[int, int]]) -> dict[str, Any]:
    return {"vertices": [{"x": int(x), "y": int(y)} for x, y in vertices]}
