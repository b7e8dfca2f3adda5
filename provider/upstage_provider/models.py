"""The typed OCR result and the one parser that builds it from an Upstage response. No Airflow.

Everything downstream (Parquet, XCom summaries, lineage) reads these frozen dataclasses, never the
raw JSON, so every oddity of the wire format is settled here, once, with an error that names the
JSON path when a response cannot be trusted.

Shapes accepted:

* recorded: camelCase ``boundingBox``/``modelVersion``/``apiVersion``/``numBilledPages``, integer
  pixel vertices, page ``width``/``height`` (falling back to ``metadata.pages[]`` when a page lacks
  them);
* documented: snake_case ``bounding_box``, vertices already normalized to 0..1, ``model``, ``api``,
  ``usage.pages``, pages possibly without a size.

Pixels or normalized, decided per page (the API never says which):

* any coordinate above ``1 + EDGE_TOLERANCE`` can only be a pixel, so the page is in pixels;
* a page with a known size whose coordinates are all JSON integers is in pixels too (normalized
  floats are never all integers unless every word spans the whole page);
* otherwise the coordinates are already normalized and are kept as given;
* pixels on a page whose size is known neither from the page nor from ``metadata`` are an error:
  there is nothing to normalize them by.

Clamping: after normalization a coordinate up to ``EDGE_TOLERANCE`` (2% of the page's width or
height) outside [0, 1] is clamped onto the edge; OCR engines draw boxes a few pixels past the page
border. Anything further out is an error naming the page and the word: it means the coordinates and
the page size do not belong together.

Page numbers: the payload's pages, sorted by ``id`` when every page has a distinct one and kept in
list order otherwise, are document pages ``start_page``, ``start_page + 1``, ... Whether an async
batch numbers its pages from 0 (batch-relative) or by their place in the document (absolute) is not
known, so either is accepted, but the ids must be one of the two: every id present lies in
``0..n-1`` or every one in ``start_page-1..end_page-1`` (:func:`check_page_ids`). Ids outside both
mean the response holds other pages (another batch's download, most likely), an error. A sync
response starts at page 1, where the two numberings are the same. Pages without ids are placed by
list order and checked by their count only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal, NoReturn

from upstage_provider.exceptions import BatchPagesMismatchError, MalformedResponseError

__all__ = ["EDGE_TOLERANCE", "OCRResult", "Page", "PageIds", "Word", "check_page_ids", "parse_ocr_response"]

#: How a response's page ids count: from 0 in every batch, or by the page's place in the document.
PageIds = Literal["relative", "absolute"]

#: How far (as a fraction of the page's width or height) a box may stick out before it is an error.
EDGE_TOLERANCE = 0.02

# Beyond any real pixel coordinate (pages are at most 200 million pixels); also rejects NaN and inf
# in the same comparison, and keeps huge JSON integers away from float conversion.
_COORD_LIMIT = 1e9
_MAX_WORD_ID = 2**63  # word ids end up in an int64 column
_LOW = -EDGE_TOLERANCE
_HIGH = 1.0 + EDGE_TOLERANCE
_second = itemgetter(1)


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word; ``polygon`` is the API's 4 vertices, normalized to the page, in its order."""

    id: int
    text: str
    confidence: float | None
    polygon: tuple[tuple[float, float], ...]

    @property
    def left(self) -> float:
        return min(self.polygon)[0]

    @property
    def right(self) -> float:
        return max(self.polygon)[0]

    @property
    def top(self) -> float:
        return min(self.polygon, key=_second)[1]

    @property
    def bottom(self) -> float:
        return max(self.polygon, key=_second)[1]


@dataclass(frozen=True, slots=True)
class Page:
    """One page; ``page`` is its 1-based number in the whole document, not the API's page id."""

    page: int
    width: int | None
    height: int | None
    text: str
    confidence: float | None
    words: tuple[Word, ...]


@dataclass(frozen=True, slots=True)
class OCRResult:
    """A whole response (a sync document or one async batch)."""

    pages: tuple[Page, ...]
    model_version: str | None
    api_version: str | None
    confidence: float | None
    text: str
    billed_pages: int | None
    #: The numbering the page ids showed; None without ids, or where both numberings agree.
    page_ids: PageIds | None = None

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def word_count(self) -> int:
        return sum(len(page.words) for page in self.pages)


def parse_ocr_response(
    payload: Mapping[str, Any] | bytes | str,
    *,
    start_page: int = 1,
    end_page: int | None = None,
    source: str = "response",
) -> OCRResult:
    """Validate an OCR response and turn it into an :class:`OCRResult` with normalized boxes.

    ``start_page``/``end_page`` (1-based, inclusive) say which document pages the payload holds, as an
    async batch announces them; with ``end_page`` the page count must match exactly, so a batch that
    lost or gained pages is caught here. ``source`` starts every error message (``"request r1 batch
    2"``) so a user knows which download was bad. Raises :class:`MalformedResponseError`.

    Coordinates, per page: pixels (divided by the page size) when any exceeds ``1 + EDGE_TOLERANCE``
    or, on a page with a known size, when all are JSON integers; otherwise already normalized. Pixels
    without a page size are an error. Within ``EDGE_TOLERANCE`` outside [0, 1] they are clamped,
    further out an error. Details in the module docstring.
    """
    if type(start_page) is not int or start_page < 1:
        raise ValueError(f"start_page must be an integer >= 1, got {start_page!r}")
    if end_page is not None and (type(end_page) is not int or end_page < start_page):
        raise ValueError(f"end_page must be an integer >= start_page ({start_page}), got {end_page!r}")
    return _Parser(source).parse(_decode(payload, source), start_page, end_page)


def check_page_ids(
    lowest: int | None, highest: int | None, *, page_count: int, start_page: int, source: str
) -> PageIds | None:
    """Which numbering a response's page ids use, from the lowest and highest id present.

    Every id present must lie in ``0..page_count-1`` (batch-relative) or every one in
    ``start_page-1..start_page+page_count-2`` (absolute); anything else raises
    :class:`BatchPagesMismatchError`. Returns None when there are no ids, or when they fit both (a
    batch from page 1). Both parsers call this, the columnar one with its id column's min and max.
    """
    if lowest is None or highest is None:
        return None
    end_page = start_page + page_count - 1
    relative = lowest >= 0 and highest <= page_count - 1
    absolute = start_page - 1 <= lowest and highest <= end_page - 1
    if relative and absolute:
        return None
    if relative:
        return "relative"
    if absolute:
        return "absolute"
    pages = f"{start_page}-{end_page}"
    got = _span(lowest, highest)
    relative_ids = _span(0, page_count - 1)
    if start_page == 1:
        problem = (
            f"page ids {got} do not match {relative_ids} "
            "(batch-relative and absolute ids agree for a batch from page 1)"
        )
    else:
        absolute_ids = _span(start_page - 1, end_page - 1)
        problem = (
            f"page ids {got} match neither {relative_ids} (batch-relative) nor {absolute_ids} (absolute)"
        )
    raise BatchPagesMismatchError(
        f"{source} (pages {pages}): {problem}: the response holds other pages than {pages}"
    )


# --- decoding -----------------------------------------------------------------------------------


def _decode(payload: Mapping[str, Any] | bytes | str, source: str) -> Mapping[str, Any]:
    if isinstance(payload, (bytes, bytearray, memoryview, str)):
        raw = bytes(payload) if isinstance(payload, memoryview) else payload
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise MalformedResponseError(
                f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno} (char {exc.pos})"
            ) from None
        except (ValueError, RecursionError) as exc:  # bad UTF-8, integers too long, absurd nesting
            raise MalformedResponseError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(payload, Mapping):
        raise MalformedResponseError(f"{source}: expected a JSON object, got {_kind(payload)}")
    return payload


# --- parsing ------------------------------------------------------------------------------------


class _Parser:
    """Holds what every error message needs; one instance per response."""

    __slots__ = ("_metadata_sizes", "payload", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.payload: Mapping[str, Any] = {}
        self._metadata_sizes: dict[int, tuple[int | None, int | None]] | None = None

    def fail(
        self, path: str, problem: str, error: type[MalformedResponseError] = MalformedResponseError
    ) -> NoReturn:
        where = f"{path} " if path else ""
        raise error(f"{self.source}: {where}{problem}")

    # -- top level

    def parse(self, payload: Mapping[str, Any], start_page: int, end_page: int | None) -> OCRResult:
        self.payload = payload
        raw_pages = payload.get("pages")
        if raw_pages is None:
            self._reject_error_body(payload)
            self.fail("", f'has no "pages": not an OCR result (keys: {_keys(payload)})')
        if not isinstance(raw_pages, (list, tuple)):
            self.fail("pages", f"is {_kind(raw_pages)}, expected a list")

        order, ids = self._page_order(raw_pages)
        if end_page is not None:
            expected = end_page - start_page + 1
            if len(order) != expected:
                what = "returned pages it should not have" if len(order) > expected else "lost pages"
                self.fail(
                    "",
                    f"holds {len(order)} pages, expected {expected} (pages {start_page}-{end_page}): "
                    f"the batch {what}",
                    BatchPagesMismatchError,
                )
        page_ids = check_page_ids(
            min(ids, default=None),
            max(ids, default=None),
            page_count=len(order),
            start_page=start_page,
            source=self.source,
        )

        pages = tuple(
            self._page(raw_pages[index], index, position, start_page + position)
            for position, index in enumerate(order)
        )
        text = payload.get("text")
        if text is None:
            text = "".join(page.text for page in pages)  # the API concatenates page texts as they are
        elif not isinstance(text, str):
            self.fail("text", f"is {_kind(text)}, expected a string")
        return OCRResult(
            pages=pages,
            model_version=self._optional_str("modelVersion", "model"),
            api_version=self._optional_str("apiVersion", "api"),
            confidence=self._unit(payload.get("confidence"), "confidence"),
            text=text,
            billed_pages=self._billed_pages(),
            page_ids=page_ids,
        )

    def _reject_error_body(self, payload: Mapping[str, Any]) -> None:
        """Name an API error body for what it is instead of reporting a missing key."""
        error = payload.get("error")
        message: object = None
        details: list[str] = []
        if isinstance(error, Mapping):
            message = error.get("message")
            details = [f"{key} {_show(error[key])}" for key in ("type", "code") if error.get(key) is not None]
        elif error is not None:
            message = error
        elif "message" in payload and "code" in payload:
            message = payload["message"]
            details = [f"code {_show(payload['code'])}"]
        elif "detail" in payload:
            message = payload["detail"]
        else:
            return
        extra = f" ({', '.join(details)})" if details else ""
        shown = "(no message)" if message is None else _show(message, 300)
        self.fail("", f"is an error response, not an OCR result: {shown}{extra}")

    def _page_order(self, raw_pages: list[Any] | tuple[Any, ...]) -> tuple[list[int], list[int]]:
        """Indices of ``raw_pages`` in document order (by id when every id is there and distinct),
        and the ids present."""
        ids: list[int] = []
        for index, raw in enumerate(raw_pages):
            if not isinstance(raw, Mapping):
                self.fail(f"pages[{index}]", f"is {_kind(raw)}, expected an object")
            page_id = raw.get("id")
            if page_id is None:
                continue
            if type(page_id) is not int:
                self.fail(f"pages[{index}].id", f"is {_show(page_id)}, expected an integer")
            ids.append(page_id)
        positions = list(range(len(raw_pages)))
        if len(ids) == len(raw_pages) and len(set(ids)) == len(ids):
            positions.sort(key=ids.__getitem__)
        return positions, ids

    def _optional_str(self, *keys: str) -> str | None:
        for key in keys:
            value = self.payload.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                self.fail(key, f"is {_kind(value)}, expected a string")
            return value
        return None

    def _billed_pages(self) -> int | None:
        value = self.payload.get("numBilledPages")
        path = "numBilledPages"
        if value is None:
            usage = self.payload.get("usage")
            if usage is None:
                return None
            if not isinstance(usage, Mapping):
                self.fail("usage", f"is {_kind(usage)}, expected an object")
            value = usage.get("pages")
            path = "usage.pages"
            if value is None:
                return None
        if type(value) is not int or value < 0:
            self.fail(path, f"is {_show(value)}, expected a non-negative integer")
        return value

    def _unit(self, value: Any, path: str) -> float | None:
        """A confidence: absent stays None, anything but a number in [0, 1] is an error."""
        if value is None:
            return None
        kind = type(value)
        if (kind is float or kind is int) and 0.0 <= value <= 1.0:
            return float(value)
        self.fail(path, f"is {_show(value)}, expected a number in [0, 1]")

    def _dimension(self, value: Any, path: str) -> int | None:
        if value is None:
            return None
        kind = type(value)
        if kind is float and value.is_integer():
            value = int(value)
        elif kind is not int:
            self.fail(path, f"is {_show(value)}, expected a whole number of pixels")
        if not 0 < value < _COORD_LIMIT:
            self.fail(path, f"is {value}, expected a positive number of pixels")
        return int(value)

    # -- page size

    def _page_size(self, raw: Mapping[str, Any], index: int, position: int) -> tuple[int | None, int | None]:
        width = self._dimension(raw.get("width"), f"pages[{index}].width")
        height = self._dimension(raw.get("height"), f"pages[{index}].height")
        if width is None or height is None:
            meta_width, meta_height = self._metadata_size(position)
            width = meta_width if width is None else width
            height = meta_height if height is None else height
        return width, height

    def _metadata_size(self, position: int) -> tuple[int | None, int | None]:
        """``metadata.pages[]`` entry of the page at ``position``; read only when a page needs it.

        Its ``page`` numbers are 1-based and, in an async batch, may count from 1 or from the batch's
        first page: numbering that contains page 1 is taken as relative, any other as absolute.
        """
        if self._metadata_sizes is None:
            self._metadata_sizes = self._read_metadata()
        sizes = self._metadata_sizes
        if not sizes:
            return None, None
        first = 1 if 1 in sizes else min(sizes)
        return sizes.get(first + position, (None, None))

    def _read_metadata(self) -> dict[int, tuple[int | None, int | None]]:
        metadata = self.payload.get("metadata")
        if metadata is None:
            return {}
        if not isinstance(metadata, Mapping):
            self.fail("metadata", f"is {_kind(metadata)}, expected an object")
        entries = metadata.get("pages")
        if entries is None:
            return {}
        if not isinstance(entries, (list, tuple)):
            self.fail("metadata.pages", f"is {_kind(entries)}, expected a list")
        sizes: dict[int, tuple[int | None, int | None]] = {}
        for index, entry in enumerate(entries):
            path = f"metadata.pages[{index}]"
            if not isinstance(entry, Mapping):
                self.fail(path, f"is {_kind(entry)}, expected an object")
            number = entry.get("page")
            if type(number) is not int or number < 1:
                self.fail(f"{path}.page", f"is {_show(number)}, expected a 1-based page number")
            sizes[number] = (
                self._dimension(entry.get("width"), f"{path}.width"),
                self._dimension(entry.get("height"), f"{path}.height"),
            )
        return sizes

    # -- pages and words

    def _page(self, raw: Mapping[str, Any], index: int, position: int, number: int) -> Page:
        path = f"pages[{index}]"
        raw_words = raw.get("words")
        if not isinstance(raw_words, (list, tuple)):
            if raw_words is None:
                self.fail(path, 'has no "words", expected a list (empty for a blank page)')
            self.fail(f"{path}.words", f"is {_kind(raw_words)}, expected a list (empty for a blank page)")

        ids: list[int] = []
        texts: list[str] = []
        confidences: list[float | None] = []
        coords: list[float] = []  # 8 per word: x0, y0, ... x3, y3 as given
        all_int = True
        highest = 0.0
        for j, word in enumerate(raw_words):
            if type(word) is not dict and not isinstance(word, Mapping):
                self.fail(f"{path}.words[{j}]", f"is {_kind(word)}, expected an object")
            word_id = word.get("id")
            if type(word_id) is not int or not 0 <= word_id < _MAX_WORD_ID:
                self.fail(f"{path}.words[{j}].id", f"is {_show(word_id)}, expected a non-negative integer")
            text = word.get("text")
            if type(text) is not str:
                self.fail(f"{path}.words[{j}].text", f"is {_show(text)}, expected a string")
            confidence = word.get("confidence")
            if not (type(confidence) is float and 0.0 <= confidence <= 1.0):
                confidence = self._unit(confidence, f"{path}.words[{j}].confidence")
            box_key = "boundingBox"
            box = word.get(box_key)
            if box is None:
                box_key = "bounding_box"
                box = word.get(box_key)
            if type(box) is not dict and not isinstance(box, Mapping):
                self._bad_box(box, f"{path}.words[{j}]", box_key)
            vertices = box.get("vertices")
            if not (isinstance(vertices, (list, tuple)) and len(vertices) == 4):
                self._bad_vertices(vertices, f"{path}.words[{j}].{box_key}.vertices")
            for k, vertex in enumerate(vertices):
                try:
                    x = vertex["x"]
                    y = vertex["y"]
                except (KeyError, TypeError, IndexError):
                    self._bad_vertex(vertex, f"{path}.words[{j}].{box_key}.vertices[{k}]")
                kx = type(x)
                ky = type(y)
                if not (
                    (kx is int or kx is float)
                    and (ky is int or ky is float)
                    and -_COORD_LIMIT < x < _COORD_LIMIT
                    and -_COORD_LIMIT < y < _COORD_LIMIT
                ):
                    self._bad_vertex(vertex, f"{path}.words[{j}].{box_key}.vertices[{k}]")
                if kx is float or ky is float:
                    all_int = False
                if x > highest:
                    highest = x
                if y > highest:
                    highest = y
                coords.append(x)
                coords.append(y)
            ids.append(word_id)
            texts.append(text)
            confidences.append(confidence)

        width, height = self._page_size(raw, index, position)
        sized = width is not None and height is not None
        if not ids or (highest <= _HIGH and not (all_int and sized)):
            words = self._words(ids, texts, confidences, coords, 1.0, 1.0, path, number, "")
        elif width is not None and height is not None:
            words = self._words(ids, texts, confidences, coords, width, height, path, number, " px")
        else:
            missing = (
                "width and height"
                if width is None and height is None
                else "width"
                if width is None
                else "height"
            )
            self.fail(
                path,
                f"has pixel coordinates (up to {highest:g}) but its page size is missing: no {missing} "
                f"on the page or in metadata.pages, so they cannot be normalized",
            )

        text = raw.get("text")
        if text is None:
            text = " ".join(texts)
        elif not isinstance(text, str):
            self.fail(f"{path}.text", f"is {_kind(text)}, expected a string")
        return Page(
            page=number,
            width=width,
            height=height,
            text=text,
            confidence=self._unit(raw.get("confidence"), f"{path}.confidence"),
            words=words,
        )

    def _words(
        self,
        ids: list[int],
        texts: list[str],
        confidences: list[float | None],
        coords: list[float],
        w: float,
        h: float,
        path: str,
        number: int,
        unit: str,
    ) -> tuple[Word, ...]:
        """Words with coordinates divided by the page size (1 when already normalized), then clamped."""
        words: list[Word] = []
        append = words.append
        for j, word_id in enumerate(ids):
            b = 8 * j
            x0 = coords[b] / w
            y0 = coords[b + 1] / h
            x1 = coords[b + 2] / w
            y1 = coords[b + 3] / h
            x2 = coords[b + 4] / w
            y2 = coords[b + 5] / h
            x3 = coords[b + 6] / w
            y3 = coords[b + 7] / h
            polygon: tuple[tuple[float, float], ...]
            if (
                0.0 <= x0 <= 1.0
                and 0.0 <= x1 <= 1.0
                and 0.0 <= x2 <= 1.0
                and 0.0 <= x3 <= 1.0
                and 0.0 <= y0 <= 1.0
                and 0.0 <= y1 <= 1.0
                and 0.0 <= y2 <= 1.0
                and 0.0 <= y3 <= 1.0
            ):
                polygon = ((x0, y0), (x1, y1), (x2, y2), (x3, y3))
            else:
                polygon = self._clamped(
                    ((x0, y0), (x1, y1), (x2, y2), (x3, y3)),
                    coords[b : b + 8],
                    j,
                    word_id,
                    path,
                    number,
                    unit,
                )
            append(Word(word_id, texts[j], confidences[j], polygon))
        return tuple(words)

    def _clamped(
        self,
        polygon: tuple[tuple[float, float], ...],
        raw: list[float],
        j: int,
        word_id: int,
        path: str,
        number: int,
        unit: str,
    ) -> tuple[tuple[float, float], ...]:
        for k, (x, y) in enumerate(polygon):
            for axis, value, given in (("x", x, raw[2 * k]), ("y", y, raw[2 * k + 1])):
                if not _LOW <= value <= _HIGH:
                    over = -value if value < 0 else value - 1.0
                    extent = "width" if axis == "x" else "height"
                    self.fail(
                        f"{path}.words[{j}]",
                        f"(page {number}, word id {word_id}) lies outside the page: vertices[{k}].{axis} = "
                        f"{given:g}{unit} is {over:.1%} of the page {extent} past its edge "
                        f"(tolerance {EDGE_TOLERANCE:.0%})",
                    )
        return tuple((min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)) for x, y in polygon)

    # -- precise messages for the rare bad word; kept out of the hot loop

    def _bad_box(self, box: Any, word_path: str, box_key: str) -> NoReturn:
        if box is None:
            self.fail(word_path, 'has no "boundingBox" (or "bounding_box")')
        self.fail(f"{word_path}.{box_key}", f"is {_kind(box)}, expected an object")

    def _bad_vertices(self, vertices: Any, path: str) -> NoReturn:
        if vertices is None:
            self.fail(path, "is missing")
        if not isinstance(vertices, (list, tuple)):
            self.fail(path, f"is {_kind(vertices)}, expected a list of 4 vertices")
        self.fail(path, f"has {len(vertices)} vertices, expected 4")

    def _bad_vertex(self, vertex: Any, path: str) -> NoReturn:
        if not isinstance(vertex, Mapping):
            self.fail(path, f"is {_kind(vertex)}, expected an object with x and y")
        for axis in ("x", "y"):
            if axis not in vertex:
                self.fail(path, f'has no "{axis}"')
            value = vertex[axis]
            if type(value) not in (int, float):
                self.fail(f"{path}.{axis}", f"is {_show(value)}, expected a number")
            if not -_COORD_LIMIT < value < _COORD_LIMIT:
                self.fail(f"{path}.{axis}", f"is {_show(value)}, expected a finite coordinate")
        self.fail(path, f"is {_show(vertex)}, expected an object with numeric x and y")


# --- message helpers ----------------------------------------------------------------------------


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({_show(value)})"
    return type(value).__name__


def _show(value: object, limit: int = 60) -> str:
    """A value for an error message, short enough never to dump a response into a log."""
    if value is None:
        return "absent or null"
    if isinstance(value, (Mapping, list, tuple)):
        return _kind(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _span(low: int, high: int) -> str:
    """``3``, ``10-19``, ``-1 to 1``: a range of ids for a message."""
    if low == high:
        return _show(low)
    return f"{_show(low)}{'-' if low >= 0 else ' to '}{_show(high)}"


def _keys(payload: Mapping[str, Any]) -> str:
    keys = [str(key) for key in list(payload)[:8]]
    more = ", ..." if len(payload) > 8 else ""
    return ", ".join(keys) + more if keys else "none"
