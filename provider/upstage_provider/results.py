"""OCR responses to the typed :class:`OCRResult` by way of Arrow columns: the hook's fast parse. No Airflow.

``parse_ocr_response`` validates every word in Python, under the GIL, while the downloads wait for
it: on a 1,000-page request that made the hook's page API barely faster than a sequential loop.
Here pyarrow's reader parses and checks the response (``columnar.fast_columns``, outside the GIL)
and the dataclasses are built from its columns in a few passes over whole columns.

The result is the reference parser's, value for value: a response the vectorized path does not
take (anything unusual or broken) goes to ``parse_ocr_response`` itself, which then returns or
raises exactly what it always does.

The hook parses in its download threads (:func:`parse_columns`: checks done, errors raised there)
and builds the dataclasses as it hands them out (:func:`pages_of`, :func:`result_of`). Words built
ahead sit in the download window long enough for the garbage collector to promote them to its
oldest generation, whose full passes over the whole heap (Airflow's included) then cost more than
the parse; built at hand-out they mostly die young. A page is always complete when yielded: its
Words exist, nothing in it is lazy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from upstage_provider import wire
from upstage_provider.columnar import OCRBatch, fast_columns
from upstage_provider.models import OCRResult, Page, PageIds, Word, parse_ocr_response

__all__ = ["ParsedBatch", "pages_of", "parse_batch", "parse_ocr_result", "result_of"]

# The slot descriptors of Word's fields: setting them is what the dataclass's own __init__ does
# (``object.__setattr__``, as Word is frozen), here a whole column at a time instead of a call a word.
_WORD_SLOTS = tuple(vars(Word)[name] for name in ("id", "text", "confidence", "polygon"))
_new_object = object.__new__


@dataclass(frozen=True)
class ParsedBatch:
    """A checked response whose dataclasses are built on hand-out.

    An ordinary response as Arrow ``columns`` and its own ``text`` (None when it had none: then it
    is the page texts joined); anything else as the reference parser's ``result``.
    """

    columns: OCRBatch | None = None
    text: str | None = None
    result: OCRResult | None = None

    @property
    def page_ids(self) -> PageIds | None:
        return self._parsed.page_ids

    @property
    def page_count(self) -> int:
        return self._parsed.page_count

    @property
    def _parsed(self) -> OCRBatch | OCRResult:
        parsed = self.columns if self.columns is not None else self.result
        assert parsed is not None, "a ParsedBatch holds columns or a result"
        return parsed


def parse_ocr_result(
    payload: bytes | bytearray | memoryview | str | Mapping[str, Any],
    *,
    start_page: int = 1,
    end_page: int | None = None,
    source: str = "response",
) -> OCRResult:
    """``parse_ocr_response``, several times faster on raw bytes; same arguments, result and errors."""
    return result_of(parse_batch(payload, start_page=start_page, end_page=end_page, source=source))


def parse_batch(
    payload: bytes | bytearray | memoryview | str | Mapping[str, Any],
    *,
    start_page: int = 1,
    end_page: int | None = None,
    source: str = "response",
) -> ParsedBatch:
    """Every check of ``parse_ocr_response``, and its errors, leaving only the building to do."""
    wire.check_span(start_page, end_page)
    if isinstance(payload, (bytearray, memoryview)):
        payload = bytes(payload)
    if isinstance(payload, bytes):
        fast = fast_columns(payload, start_page=start_page, end_page=end_page, source=source)
        if fast is not None:
            return ParsedBatch(*fast)
    return ParsedBatch(
        result=parse_ocr_response(payload, start_page=start_page, end_page=end_page, source=source)
    )


def result_of(parsed: ParsedBatch) -> OCRResult:
    """The :class:`OCRResult` of a parsed batch."""
    batch = parsed.columns
    if batch is None:
        assert parsed.result is not None
        return parsed.result
    pages = tuple(pages_of(parsed))
    return OCRResult(
        pages=pages,
        model_version=batch.model_version,
        api_version=batch.api_version,
        confidence=batch.confidence,
        text=wire.document_text([page.text for page in pages]) if parsed.text is None else parsed.text,
        billed_pages=batch.billed_pages,
        page_ids=batch.page_ids,
    )


def pages_of(parsed: ParsedBatch) -> Iterator[Page]:
    """The pages of a parsed batch, each built as it is asked for."""
    batch = parsed.columns
    if batch is None:
        assert parsed.result is not None
        yield from parsed.result.pages
        return
    pages = batch.pages
    columns = _WordColumns(batch)
    start = 0
    for number, width, height, text, confidence, count in zip(
        *(pages.column(name).to_pylist() for name in ("page", "width", "height", "text", "confidence")),
        pages.column("word_count").to_pylist(),
        strict=True,
    ):
        words = columns.words(start, start + count)
        start += count
        yield Page(number, width, height, text, confidence, words)


class _WordColumns:
    """A batch's word columns as Python lists: strings and floats, which the collector ignores."""

    __slots__ = ("columns", "xs", "ys")

    def __init__(self, batch: OCRBatch) -> None:
        words = batch.words
        self.columns = [words.column(name).to_pylist() for name in ("word_id", "text", "confidence")]
        self.xs, self.ys = (axis.to_pylist() for axis in words.column("polygon").flatten().flatten())
        if len(self.xs) != 4 * words.num_rows:
            raise AssertionError(f"{len(self.xs)} vertices for {words.num_rows} words, not 4 a word")

    def words(self, start: int, end: int) -> tuple[Word, ...]:
        """Words ``start`` to ``end``, each polygon a tuple of four ``(x, y)`` tuples."""
        points = iter(zip(self.xs[4 * start : 4 * end], self.ys[4 * start : 4 * end], strict=True))
        values = [column[start:end] for column in self.columns]
        values.append(list(zip(points, points, points, points, strict=True)))
        out: list[Word] = list(map(_new_object, repeat(Word, end - start)))
        for slot, column in zip(_WORD_SLOTS, values, strict=True):
            deque(map(slot.__set__, out, column), maxlen=0)
        return tuple(out)
