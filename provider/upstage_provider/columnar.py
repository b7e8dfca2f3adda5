"""OCR responses straight to Arrow columns: the fast way from downloaded bytes to Parquet. No Airflow.

``models.parse_ocr_response`` builds a dataclass per word; for a 1,000-page document that is
300,000 words, 1.2 million vertices and a garbage collector busy with them, slower than the
download itself. Here pyarrow's C++ JSON reader parses the bytes (without the GIL, so download
threads parse in parallel) and every check and normalization is a vectorized compute call.

The rules are :mod:`upstage_provider.wire`'s, as in the reference parser: whenever a response is
anything but the ordinary shape (a missing page size, pages out of id order, a box past the edge
tolerance, a number where a string belongs, an error body ...) the bytes go to
``parse_ocr_response`` and its result through :func:`from_result`: exactly the reference's output
or error message, and a test checks that both ways give identical tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from upstage_provider import wire
from upstage_provider.exceptions import BatchPagesMismatchError, MalformedResponseError
from upstage_provider.models import OCRResult, parse_ocr_response
from upstage_provider.wire import PageIds, check_page_ids

__all__ = ["PAGE_COLUMNS", "POLYGON_TYPE", "WORD_COLUMNS", "OCRBatch", "fast_columns", "from_result"]
__all__ += ["parse_ocr_batch"]

POINT_TYPE = pa.struct([pa.field("x", pa.float64()), pa.field("y", pa.float64())])
POLYGON_TYPE = pa.list_(POINT_TYPE)

#: The per-word and per-page columns an OCR response provides; the Parquet writer adds the
#: document's own columns (uri, hash, request id, model version, processed_at) around them.
WORD_COLUMNS = pa.schema(
    [
        pa.field("page", pa.int32(), nullable=False),
        pa.field("word_id", pa.int64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("confidence", pa.float64()),
        pa.field("left", pa.float64(), nullable=False),
        pa.field("top", pa.float64(), nullable=False),
        pa.field("right", pa.float64(), nullable=False),
        pa.field("bottom", pa.float64(), nullable=False),
        pa.field("polygon", POLYGON_TYPE, nullable=False),
    ]
)
PAGE_COLUMNS = pa.schema(
    [
        pa.field("page", pa.int32(), nullable=False),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("confidence", pa.float64()),
        pa.field("word_count", pa.int32(), nullable=False),
    ]
)


@dataclass(frozen=True)
class OCRBatch:
    """One response (a sync document or one async batch) as Arrow columns, pages in document order.

    ``fast`` says which way it was decoded: True by the vectorized path, False by the reference
    parser (an unusual response); the columns are the same either way.
    """

    words: pa.RecordBatch
    pages: pa.RecordBatch
    model_version: str | None
    api_version: str | None
    confidence: float | None
    billed_pages: int | None
    fast: bool = False
    page_ids: PageIds | None = None  # as ``OCRResult.page_ids``
    #: The request this batch came from, when it is not the document's one (a split document's part).
    request_id: str | None = None

    @property
    def page_count(self) -> int:
        return self.pages.num_rows

    @property
    def word_count(self) -> int:
        return self.words.num_rows


def parse_ocr_batch(
    data: bytes, *, start_page: int = 1, end_page: int | None = None, source: str = "response"
) -> OCRBatch:
    """``parse_ocr_response`` for raw response bytes, returning Arrow columns; same rules, same errors.

    Raises :class:`~upstage_provider.exceptions.MalformedResponseError` as the reference parser does.
    """
    fast = fast_columns(data, start_page=start_page, end_page=end_page, source=source)
    if fast is not None:
        return fast[0]
    result = parse_ocr_response(data, start_page=start_page, end_page=end_page, source=source)
    try:
        return from_result(result)
    except UnicodeEncodeError as exc:  # a lone surrogate escape ("\ud800"): valid JSON, not Unicode
        bad = exc.object[exc.start : exc.end]
        raise MalformedResponseError(
            f"{source}: a text holds {bad!r}, half of a surrogate pair, which is not valid Unicode"
        ) from None


def fast_columns(
    data: bytes, *, start_page: int = 1, end_page: int | None = None, source: str = "response"
) -> tuple[OCRBatch, str | None] | None:
    """The vectorized path alone: the batch and the response's own ``text``; None if unusual."""
    if type(start_page) is int and start_page >= 1 and (end_page is None or type(end_page) is int):
        try:
            return _fast(bytes(data), start_page, end_page, source)
        except (_Unusual, pa.ArrowException, UnicodeDecodeError):  # the reference words the error
            pass
    return None


def from_result(result: OCRResult) -> OCRBatch:
    """The reference conversion: parsed dataclasses, column by column, in plain Python."""
    word_pages: list[int] = []
    word_ids: list[int] = []
    texts: list[str] = []
    confidences: list[float | None] = []
    lefts: list[float] = []
    tops: list[float] = []
    rights: list[float] = []
    bottoms: list[float] = []
    offsets: list[int] = [0]
    xs: list[float] = []
    ys: list[float] = []
    for page in result.pages:
        for word in page.words:
            word_pages.append(page.page)
            word_ids.append(word.id)
            texts.append(word.text)
            confidences.append(word.confidence)
            lefts.append(word.left)
            tops.append(word.top)
            rights.append(word.right)
            bottoms.append(word.bottom)
            for x, y in word.polygon:
                xs.append(x)
                ys.append(y)
            offsets.append(len(xs))
    points = pa.StructArray.from_arrays(
        [pa.array(xs, type=pa.float64()), pa.array(ys, type=pa.float64())], fields=list(POINT_TYPE)
    )
    words = pa.RecordBatch.from_arrays(
        [
            pa.array(word_pages, type=pa.int32()),
            pa.array(word_ids, type=pa.int64()),
            pa.array(texts, type=pa.string()),
            pa.array(confidences, type=pa.float64()),
            pa.array(lefts, type=pa.float64()),
            pa.array(tops, type=pa.float64()),
            pa.array(rights, type=pa.float64()),
            pa.array(bottoms, type=pa.float64()),
            pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), points, type=POLYGON_TYPE),
        ],
        schema=WORD_COLUMNS,
    )
    pages = pa.RecordBatch.from_arrays(
        [
            pa.array([p.page for p in result.pages], type=pa.int32()),
            pa.array([p.width for p in result.pages], type=pa.int32()),
            pa.array([p.height for p in result.pages], type=pa.int32()),
            pa.array([p.text for p in result.pages], type=pa.string()),
            pa.array([p.confidence for p in result.pages], type=pa.float64()),
            pa.array([len(p.words) for p in result.pages], type=pa.int32()),
        ],
        schema=PAGE_COLUMNS,
    )
    return OCRBatch(
        words=words,
        pages=pages,
        model_version=result.model_version,
        api_version=result.api_version,
        confidence=result.confidence,
        billed_pages=result.billed_pages,
        fast=False,
        page_ids=result.page_ids,
    )


# --- the vectorized path ------------------------------------------------------------------------


class _Unusual(Exception):
    """Not the ordinary shape: let the reference parser decide (and word any error)."""


_NUMBER_TYPES = (pa.int64(), pa.float64())
_READ_PARSE = pa_json.ParseOptions(newlines_in_values=True)
_BLOCK_MIN = 1 << 20
_POOL = pa.system_memory_pool()


def _require(condition: Any) -> None:
    if not condition:
        raise _Unusual


def _range(values: pa.Array) -> tuple[Any, Any]:
    """Smallest and largest non-null value; ``(None, None)`` when there is none.

    pyarrow's reader accepts ``NaN`` (as Python's does) and ``min_max`` skips it, so a float
    column with one is sent to the reference parser, which rejects it by name.
    """
    if len(values) == 0 or values.null_count == len(values):
        return None, None
    _require(not pa.types.is_floating(values.type) or not pc.any(pc.is_nan(values)).as_py())
    bounds = pc.min_max(values)
    return bounds["min"].as_py(), bounds["max"].as_py()


def _field(struct_type: pa.DataType, name: str) -> pa.DataType | None:
    index = struct_type.get_field_index(name)
    return None if index < 0 else struct_type.field(index).type


def _list_of_structs(type_: pa.DataType | None) -> bool:
    return type_ is not None and pa.types.is_list(type_) and pa.types.is_struct(type_.value_type)


def _child(struct: pa.StructArray, name: str) -> pa.Array:
    """A required field of every element: present, and never null."""
    _require(_field(struct.type, name) is not None)
    child = pc.struct_field(struct, name)
    _no_nulls(child)
    return child


def _maybe_child(struct: pa.StructArray, name: str) -> pa.Array | None:
    return pc.struct_field(struct, name) if _field(struct.type, name) is not None else None


def _no_nulls(array: pa.Array) -> None:
    _require(array.null_count == 0)


def _units(array: pa.Array | None) -> pa.Array | None:
    """A confidence column: null or a number in [0, 1], as float64."""
    if array is None:
        return None
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.float64())
    _require(array.type in _NUMBER_TYPES)
    values = pc.cast(array, pa.float64())
    low, high = _range(values)
    _require(low is None or (wire.is_unit(low) and wire.is_unit(high)))
    return values


def _optional_str(table: pa.Table, *names: str) -> str | None:
    for name in names:
        if name not in table.column_names:
            continue
        column = table.column(name)
        if pa.types.is_null(column.type):
            continue
        _require(pa.types.is_string(column.type))
        value = column[0].as_py()
        if value is not None:
            return str(value)
    return None


def _read(data: bytes) -> pa.Table:
    options = pa_json.ReadOptions(use_threads=False, block_size=max(len(data) + 1, _BLOCK_MIN))
    # The reader's big, short-lived buffers go to the system allocator, which hands them back;
    # Arrow's default (mimalloc) kept them: 15 MB more peak RSS per landed document (bench_memory).
    table = pa_json.read_json(
        pa.BufferReader(data), read_options=options, parse_options=_READ_PARSE, memory_pool=_POOL
    )
    _require(table.num_rows == 1)
    return table.combine_chunks()


def _fast(data: bytes, start_page: int, end_page: int | None, source: str) -> tuple[OCRBatch, str | None]:
    table = _read(data)
    _require("pages" in table.column_names)
    text = _optional_str(table, "text")
    pages_list = table.column("pages").chunk(0)
    _require(_list_of_structs(pages_list.type) and pages_list.null_count == 0)
    pages = pages_list.flatten()
    _no_nulls(pages)
    n_pages = len(pages)
    _require(end_page is None or n_pages == end_page - start_page + 1)

    # Page ids: one of the two numberings (the reference words a mismatch, after any error it finds
    # first). Page order: by id when every page has a distinct one; only the ordinary ascending case.
    ids = _maybe_child(pages, "id")
    page_ids: PageIds | None = None
    if ids is not None and not pa.types.is_null(ids.type):
        _require(pa.types.is_int64(ids.type))
        lowest, highest = _range(ids)
        try:
            page_ids = check_page_ids(
                lowest, highest, page_count=n_pages, start_page=start_page, source=source
            )
        except BatchPagesMismatchError:
            raise _Unusual from None
        _require(wire.document_order(ids.to_pylist()) == list(range(n_pages)))  # else the reference sorts

    _require(_list_of_structs(_field(pages.type, "words")))
    words_list = _child(pages, "words")
    words = words_list.flatten()
    _no_nulls(words)

    # Page sizes must be on the page itself (the metadata fallback is the reference parser's job).
    widths = _child(pages, "width")
    heights = _child(pages, "height")
    for size in (widths, heights):
        _require(pa.types.is_int64(size.type))
        _require(all(wire.is_dimension(value) for value in size.to_pylist()))
    page_texts = _child(pages, "text")
    _require(pa.types.is_string(page_texts.type))
    page_texts.validate(full=True)  # the reader lets a cut UTF-8 sequence through; JSON does not
    page_confidences = _units(_maybe_child(pages, "confidence"))

    n_words = len(words)
    word_ids = _child(words, "id")
    word_texts = _child(words, "text")
    _require(pa.types.is_int64(word_ids.type) and pa.types.is_string(word_texts.type))
    word_texts.validate(full=True)
    _require(n_words == 0 or _range(word_ids)[0] >= 0)
    word_confidences = _units(_maybe_child(words, "confidence"))
    if word_confidences is None:
        word_confidences = pa.nulls(n_words, pa.float64())

    xs, ys, offsets, vertex_words = _vertices(words)
    word_counts = pc.list_value_length(words_list)
    word_page_index = pc.list_parent_indices(words_list)
    vertex_page_index = pc.take(word_page_index, vertex_words)
    x_scale, y_scale = _scales(xs, ys, word_counts.to_pylist(), widths.to_pylist(), heights.to_pylist())
    xn = _normalized(xs, pc.take(x_scale, vertex_page_index))
    yn = _normalized(ys, pc.take(y_scale, vertex_page_index))

    page_numbers = pa.array(range(start_page, start_page + n_pages), type=pa.int32())
    corners_x = pa.FixedSizeListArray.from_arrays(xn, 4)
    corners_y = pa.FixedSizeListArray.from_arrays(yn, 4)
    x_corners = [pc.list_element(corners_x, k) for k in range(4)]
    y_corners = [pc.list_element(corners_y, k) for k in range(4)]
    points = pa.StructArray.from_arrays([xn, yn], fields=list(POINT_TYPE))
    words_out = pa.RecordBatch.from_arrays(
        [
            pc.take(page_numbers, word_page_index),
            word_ids,
            word_texts,
            word_confidences,
            pc.min_element_wise(*x_corners),
            pc.min_element_wise(*y_corners),
            pc.max_element_wise(*x_corners),
            pc.max_element_wise(*y_corners),
            pa.ListArray.from_arrays(offsets, points, type=POLYGON_TYPE),
        ],
        schema=WORD_COLUMNS,
    )
    pages_out = pa.RecordBatch.from_arrays(
        [
            page_numbers,
            pc.cast(widths, pa.int32()),
            pc.cast(heights, pa.int32()),
            page_texts,
            page_confidences if page_confidences is not None else pa.nulls(n_pages, pa.float64()),
            pc.cast(word_counts, pa.int32()),
        ],
        schema=PAGE_COLUMNS,
    )
    batch = OCRBatch(
        words=words_out,
        pages=pages_out,
        model_version=_optional_str(table, *wire.MODEL_KEYS),
        api_version=_optional_str(table, *wire.API_KEYS),
        confidence=_top_confidence(table),
        billed_pages=_billed_pages(table),
        fast=True,
        page_ids=page_ids,
    )
    return batch, text


def _vertices(words: pa.StructArray) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """Every word's four vertices as flat x and y columns, list offsets, and each vertex's word."""
    word_type = words.type
    camel, snake = wire.BOX_KEYS
    has_camel = _field(word_type, camel) is not None
    has_snake = _field(word_type, snake) is not None
    _require(has_camel != has_snake)  # both spellings in one response: per word, so the reference
    box_key = camel if has_camel else snake
    box_type = _field(word_type, box_key)
    _require(box_type is not None and pa.types.is_struct(box_type))
    assert box_type is not None
    _require(_list_of_structs(_field(box_type, "vertices")))
    boxes = pc.struct_field(words, box_key)
    _no_nulls(boxes)
    vertex_lists = pc.struct_field(boxes, "vertices")
    _no_nulls(vertex_lists)
    _require(_range(pc.list_value_length(vertex_lists)) in ((4, 4), (None, None)))
    vertices = vertex_lists.flatten()
    _no_nulls(vertices)
    vertex_type = vertices.type
    columns = []
    for axis in ("x", "y"):
        _require(_field(vertex_type, axis) in _NUMBER_TYPES)
        values = pc.struct_field(vertices, axis)
        _no_nulls(values)
        low, high = _range(values)
        _require(low is None or (wire.is_coordinate(low) and wire.is_coordinate(high)))
        columns.append(values)
    offsets = vertex_lists.offsets
    if len(offsets) and offsets[0].as_py() != 0:
        offsets = pc.subtract(offsets, offsets[0])
    return columns[0], columns[1], offsets, pc.list_parent_indices(vertex_lists)


def _scales(
    xs: pa.Array, ys: pa.Array, word_counts: list[int], widths: list[int], heights: list[int]
) -> tuple[pa.Array, pa.Array]:
    """Per page, what to divide by: its size when its coordinates are pixels, else 1.

    :func:`wire.is_pixel_page` decides, the page size always being known here. A column of integers
    means every coordinate was a JSON integer; in a float column an integral value may have been
    written either way, and only pages that settle it by size or by a fraction stay.
    """
    all_int = pa.types.is_int64(xs.type) and pa.types.is_int64(ys.type)
    x_scale: list[float] = []
    y_scale: list[float] = []
    start = 0
    for count, width, height in zip(word_counts, widths, heights, strict=True):
        end = start + 4 * count
        pixel = count > 0 and _pixel_page(xs.slice(start, end - start), ys.slice(start, end - start), all_int)
        x_scale.append(float(width) if pixel else 1.0)
        y_scale.append(float(height) if pixel else 1.0)
        start = end
    return pa.array(x_scale, type=pa.float64()), pa.array(y_scale, type=pa.float64())


def _pixel_page(xs: pa.Array, ys: pa.Array, all_int: bool) -> bool:
    """One page with words: pixels, normalized, or (floats, every one integral) not ours to say."""
    if all_int:  # JSON integers on a page of known size are pixels, whatever the largest one
        return wire.is_pixel_page(0.0, all_integers=True, sized=True)
    highest = max(_range(xs)[1], _range(ys)[1], 0.0)
    if wire.is_pixel_page(highest, all_integers=False, sized=True):
        return True
    if not (pc.any(_fractional(xs)).as_py() or pc.any(_fractional(ys)).as_py()):
        raise _Unusual  # every value integral, written as 1 or as 1.0: the reference decides
    return False


def _fractional(values: pa.Array) -> pa.Array:
    return pc.not_equal(values, pc.floor(values))


def _normalized(values: pa.Array, scale: pa.Array) -> pa.Array:
    """Divided by the page size (or 1), checked against the edge tolerance, then clamped to [0, 1]."""
    normalized = pc.divide(pc.cast(values, pa.float64()), scale)
    low, high = _range(normalized)
    if low is None:
        return normalized
    _require(wire.within_tolerance(low) and wire.within_tolerance(high))
    if low < 0.0:
        normalized = pc.if_else(pc.less(normalized, 0.0), 0.0, normalized)
    if high > 1.0:
        normalized = pc.if_else(pc.greater(normalized, 1.0), 1.0, normalized)
    return normalized


def _top_confidence(table: pa.Table) -> float | None:
    if "confidence" not in table.column_names:
        return None
    values = _units(table.column("confidence").chunk(0))
    assert values is not None
    value = values[0].as_py()
    return None if value is None else float(value)


def _billed_pages(table: pa.Table) -> int | None:
    """``numBilledPages``, else the documented ``usage.pages``; anything odd goes to the reference."""
    for name in (wire.BILLED_PAGES_KEY, wire.USAGE_KEY):
        if name not in table.column_names:
            continue
        column = table.column(name).chunk(0)
        if pa.types.is_null(column.type) or column.null_count:
            continue
        if name == wire.USAGE_KEY:
            _require(
                pa.types.is_struct(column.type) and _field(column.type, wire.USAGE_PAGES_KEY) is not None
            )
            column = pc.struct_field(column, wire.USAGE_PAGES_KEY)
            if pa.types.is_null(column.type) or column.null_count:
                return None
        _require(pa.types.is_int64(column.type))
        value = column[0].as_py()
        _require(value >= 0)
        return int(value)
    return None
