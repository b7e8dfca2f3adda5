"""OCR responses to the typed :class:`OCRResult` by way of Arrow columns: the hook's fast parse. No Airflow.

``parse_ocr_response`` validates every word in Python, under the GIL, while the downloads wait for
it: on a 1,000-page request that made the hook's page API barely faster than a sequential loop.
Here pyarrow's reader parses and checks the response (``columnar.fast_columns``, outside the GIL)
and the dataclasses are built from its columns in a few passes over whole columns.

The result is the reference parser's, value for value: a response the vectorized path does not
take (anything unusual or broken) goes to ``parse_ocr_response`` itself, which then returns or
raises exactly what it always does. Nothing is lazy: every Word exists when this returns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from itertools import repeat
from typing import Any

from upstage_provider import wire
from upstage_provider.columnar import OCRBatch, fast_columns
from upstage_provider.models import OCRResult, Page, Word, parse_ocr_response

__all__ = ["parse_ocr_result", "to_result"]

# The slot descriptors of Word's fields: setting them is what the dataclass's own __init__ does
# (``object.__setattr__``, as Word is frozen), here a whole column at a time instead of a call a word.
_WORD_SLOTS = tuple(vars(Word)[name] for name in ("id", "text", "confidence", "polygon"))
_new_object = object.__new__


def parse_ocr_result(
    payload: bytes | bytearray | memoryview | str | Mapping[str, Any],
    *,
    start_page: int = 1,
    end_page: int | None = None,
    source: str = "response",
) -> OCRResult:
    """``parse_ocr_response``, several times faster on raw bytes; same arguments, result and errors."""
    wire.check_span(start_page, end_page)
    if isinstance(payload, (bytes, bytearray, memoryview)):
        fast = fast_columns(bytes(payload), start_page=start_page, end_page=end_page, source=source)
        if fast is not None:
            try:
                return to_result(*fast)
            except UnicodeDecodeError:  # a string pyarrow let through but Python will not decode
                pass
    return parse_ocr_response(payload, start_page=start_page, end_page=end_page, source=source)


def to_result(batch: OCRBatch, text: str | None = None) -> OCRResult:
    """The dataclasses of a batch of columns; ``text`` is the response's own, when it had one."""
    pages = batch.pages
    page_texts: list[str] = pages.column("text").to_pylist()
    all_words = _words(batch)
    out: list[Page] = []
    start = 0
    for number, width, height, page_text, confidence, count in zip(
        pages.column("page").to_pylist(),
        pages.column("width").to_pylist(),
        pages.column("height").to_pylist(),
        page_texts,
        pages.column("confidence").to_pylist(),
        pages.column("word_count").to_pylist(),
        strict=True,
    ):
        out.append(
            Page(number, width, height, page_text, confidence, tuple(all_words[start : start + count]))
        )
        start += count
    return OCRResult(
        pages=tuple(out),
        model_version=batch.model_version,
        api_version=batch.api_version,
        confidence=batch.confidence,
        text=wire.document_text(page_texts) if text is None else text,
        billed_pages=batch.billed_pages,
        page_ids=batch.page_ids,
    )


def _words(batch: OCRBatch) -> list[Word]:
    """Every word of the batch, in page order; each polygon a tuple of four ``(x, y)`` tuples."""
    words = batch.words
    columns = [words.column(name).to_pylist() for name in ("word_id", "text", "confidence")]
    xs, ys = (axis.to_pylist() for axis in words.column("polygon").flatten().flatten())
    count = len(columns[0])
    if len(xs) != 4 * count:
        raise AssertionError(f"{len(xs)} vertices for {count} words; the columnar path checks for 4 each")
    points = iter(zip(xs, ys, strict=True))
    columns.append(list(zip(points, points, points, points, strict=True)))
    out: list[Word] = list(map(_new_object, repeat(Word, count)))
    for slot, values in zip(_WORD_SLOTS, columns, strict=True):
        deque(map(slot.__set__, out, values), maxlen=0)
    return out
