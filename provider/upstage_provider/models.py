"""The typed OCR result and the reference parser that builds it from an Upstage response. No Airflow.

Everything downstream (Parquet, XCom summaries, lineage) reads these frozen dataclasses, never the
raw JSON, so every oddity of the wire format is settled here, once, with an error that names the
JSON path when a response cannot be trusted. The rules themselves (which keys, pixels or
normalized, clamping, page ids and order) are stated in :mod:`upstage_provider.wire`, shared with
the columnar parser; this module applies them value by value and words every error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NoReturn

from upstage_provider import wire
from upstage_provider.exceptions import BatchPagesMismatchError, MalformedResponseError
from upstage_provider.wire import EDGE_TOLERANCE, PageIds, check_page_ids
from upstage_provider.wire import kind as _kind
from upstage_provider.wire import show as _show

__all__ = ["EDGE_TOLERANCE", "OCRResult", "Page", "PageIds", "Word", "check_page_ids", "parse_ocr_response"]

_COORD_LIMIT = wire.COORD_LIMIT  # the old private name, for code that imported it
# wire's limits as module globals: the word loop below inlines wire.is_coordinate and friends
_MAX_WORD_ID = wire.MAX_WORD_ID
_CAMEL_BOX, _SNAKE_BOX = wire.BOX_KEYS
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

    Coordinates come out normalized to the page and clamped onto it, by the rules in
    :mod:`upstage_provider.wire`.
    """
    wire.check_span(start_page, end_page)
    return _Parser(source).parse(wire.decode(payload, source), start_page, end_page)


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
            self.fail("", f'has no "pages": not an OCR result (keys: {wire.keys(payload)})')
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
            text = wire.document_text([page.text for page in pages])
        elif not isinstance(text, str):
            self.fail("text", f"is {_kind(text)}, expected a string")
        return OCRResult(
            pages=pages,
            model_version=self._optional_str(*wire.MODEL_KEYS),
            api_version=self._optional_str(*wire.API_KEYS),
            confidence=self._unit(payload.get("confidence"), "confidence"),
            text=text,
            billed_pages=self._billed_pages(),
            page_ids=page_ids,
        )

    def _reject_error_body(self, payload: Mapping[str, Any]) -> None:
        """Name an API error body for what it is instead of reporting a missing key."""
        problem = wire.error_body(payload)
        if problem is not None:
            self.fail("", problem)

    def _page_order(self, raw_pages: list[Any] | tuple[Any, ...]) -> tuple[list[int], list[int]]:
        """Indices of ``raw_pages`` in document order (:func:`wire.document_order`), and the ids present."""
        ids: list[int | None] = []
        for index, raw in enumerate(raw_pages):
            if not isinstance(raw, Mapping):
                self.fail(f"pages[{index}]", f"is {_kind(raw)}, expected an object")
            page_id = raw.get("id")
            if page_id is not None and type(page_id) is not int:
                self.fail(f"pages[{index}].id", f"is {_show(page_id)}, expected an integer")
            ids.append(page_id)
        return wire.document_order(ids), [page_id for page_id in ids if page_id is not None]

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
        value = self.payload.get(wire.BILLED_PAGES_KEY)
        path = wire.BILLED_PAGES_KEY
        if value is None:
            usage = self.payload.get(wire.USAGE_KEY)
            if usage is None:
                return None
            if not isinstance(usage, Mapping):
                self.fail(wire.USAGE_KEY, f"is {_kind(usage)}, expected an object")
            value = usage.get(wire.USAGE_PAGES_KEY)
            path = f"{wire.USAGE_KEY}.{wire.USAGE_PAGES_KEY}"
            if value is None:
                return None
        if type(value) is not int or value < 0:
            self.fail(path, f"is {_show(value)}, expected a non-negative integer")
        return value

    def _unit(self, value: Any, path: str) -> float | None:
        """A confidence: absent stays None, anything but a number in [0, 1] is an error."""
        if value is None:
            return None
        if wire.is_unit(value):
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
        if not wire.is_dimension(value):
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
        return sizes.get(wire.metadata_first_page(sizes) + position, (None, None))

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
            box_key = _CAMEL_BOX
            box = word.get(box_key)
            if box is None:
                box_key = _SNAKE_BOX
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
        if not ids or not wire.is_pixel_page(highest, all_int, sized):
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
            text = wire.page_text(texts)
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
                if not wire.within_tolerance(value):
                    over = -value if value < 0 else value - 1.0
                    extent = "width" if axis == "x" else "height"
                    self.fail(
                        f"{path}.words[{j}]",
                        f"(page {number}, word id {word_id}) lies outside the page: vertices[{k}].{axis} = "
                        f"{given:g}{unit} is {over:.1%} of the page {extent} past its edge "
                        f"(tolerance {EDGE_TOLERANCE:.0%})",
                    )
        return tuple((wire.clamp(x), wire.clamp(y)) for x, y in polygon)

    # -- precise messages for the rare bad word; kept out of the hot loop

    def _bad_box(self, box: Any, word_path: str, box_key: str) -> NoReturn:
        if box is None:
            self.fail(word_path, f'has no "{_CAMEL_BOX}" (or "{_SNAKE_BOX}")')
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
            if not wire.is_coordinate(value):
                self.fail(f"{path}.{axis}", f"is {_show(value)}, expected a finite coordinate")
        self.fail(path, f"is {_show(vertex)}, expected an object with numeric x and y")
