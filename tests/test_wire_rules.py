"""The wire format's rules at their edges, in both parsers, through public calls only.

Written against what survived mutation testing (docs/testing.md): a boundary one off, a rule one
parser keeps and the other drops, an ordinary response the fast path hands back to the reference
for no reason, a message that loses its path. Only ``parse_ocr_response``, ``parse_ocr_batch`` and
``check_page_ids`` are used, so these tests outlive the move of the rules into a shared module.
"""

from __future__ import annotations

import json
import types
from typing import Any

import pytest

from upstage_provider.columnar import OCRBatch, parse_ocr_batch
from upstage_provider.exceptions import BatchPagesMismatchError, MalformedResponseError
from upstage_provider.models import OCRResult, check_page_ids, parse_ocr_response

UNIT_BOX = [(0.1, 0.2), (0.3, 0.2), (0.3, 0.4), (0.1, 0.4)]


def word(word_id: int, vertices: list[tuple[Any, Any]], key: str = "boundingBox", **extra: Any) -> dict:
    return {
        "id": word_id,
        "text": f"w{word_id}",
        key: {"vertices": [{"x": x, "y": y} for x, y in vertices]},
        **extra,
    }


def page(page_id: int | None, words: list[dict], width: Any = 1000, height: Any = 2000, **extra: Any) -> dict:
    raw: dict[str, Any] = {"text": " ".join(w["text"] for w in words), "words": words, **extra}
    if page_id is not None:
        raw["id"] = page_id
    if width is not None:
        raw["width"] = width
    if height is not None:
        raw["height"] = height
    return raw


def response(pages: list[dict], **top: Any) -> dict:
    return {"modelVersion": "ocr-1", "apiVersion": "1.1", "confidence": 0.9, "pages": pages, **top}


def both(payload: dict, *, fast: bool = True, **kw: Any) -> tuple[OCRResult, OCRBatch]:
    """Parse with both parsers; the columns must be the reference's, taken the expected way."""
    result = parse_ocr_response(payload, **kw)
    batch = parse_ocr_batch(json.dumps(payload).encode(), **kw)
    assert batch.fast is fast
    words = [(p.page, w) for p in result.pages for w in p.words]
    assert batch.words.column("page").to_pylist() == [n for n, _ in words]
    assert batch.words.column("word_id").to_pylist() == [w.id for _, w in words]
    assert batch.words.column("confidence").to_pylist() == [w.confidence for _, w in words]
    polygons = [[(pt["x"], pt["y"]) for pt in poly] for poly in batch.words.column("polygon").to_pylist()]
    assert polygons == [list(w.polygon) for _, w in words]
    assert batch.words.column("left").to_pylist() == [w.left for _, w in words]
    assert batch.words.column("bottom").to_pylist() == [w.bottom for _, w in words]
    assert batch.pages.column("page").to_pylist() == [p.page for p in result.pages]
    assert batch.pages.column("width").to_pylist() == [p.width for p in result.pages]
    assert batch.pages.column("confidence").to_pylist() == [p.confidence for p in result.pages]
    assert batch.pages.column("word_count").to_pylist() == [len(p.words) for p in result.pages]
    assert (batch.model_version, batch.api_version) == (result.model_version, result.api_version)
    assert (batch.confidence, batch.billed_pages) == (result.confidence, result.billed_pages)
    assert batch.page_ids == result.page_ids
    return result, batch


def rejected(payload: dict, **kw: Any) -> str:
    """Both parsers refuse the payload with the same message; returns it."""
    with pytest.raises(MalformedResponseError) as ref:
        parse_ocr_response(payload, **kw)
    with pytest.raises(MalformedResponseError) as fast:
        parse_ocr_batch(json.dumps(payload).encode(), **kw)
    assert str(fast.value) == str(ref.value)
    assert type(fast.value) is type(ref.value)
    return str(ref.value)


# --- ordinary shapes stay on the fast path and agree ----------------------------------------------


def test_documented_snake_case_shape_is_read_on_the_fast_path() -> None:
    payload = {
        "model": "document-parse",
        "api": "2.0",
        "usage": {"pages": 2},
        "pages": [
            page(0, [word(0, UNIT_BOX, key="bounding_box")], width=None, height=None, confidence=0.5),
            page(1, [word(1, UNIT_BOX, key="bounding_box")], width=None, height=None, confidence=0.5),
        ],
    }
    payload["pages"] = [dict(p, width=800, height=600) for p in payload["pages"]]
    result, batch = both(payload)
    assert (batch.model_version, batch.api_version, batch.billed_pages) == ("document-parse", "2.0", 2)
    assert result.pages[0].words[0].polygon == tuple(UNIT_BOX)


def test_pages_without_their_own_confidence_get_a_null_one_on_the_fast_path() -> None:
    _, batch = both(response([page(0, [word(0, UNIT_BOX, confidence=0.7)]), page(1, [])]))
    assert batch.pages.column("confidence").to_pylist() == [None, None]
    _, batch = both(response([page(0, [word(0, UNIT_BOX)])]))
    assert batch.words.column("confidence").to_pylist() == [None]


@pytest.mark.parametrize("value", [0.0, 1.0, 0, 1])
def test_confidences_of_exactly_zero_and_one_are_accepted(value: float) -> None:
    payload = response([page(0, [word(0, UNIT_BOX, confidence=value)], confidence=value)], confidence=value)
    result, _ = both(payload)
    assert result.confidence == result.pages[0].confidence == result.pages[0].words[0].confidence == value


def test_a_confidence_over_one_is_an_error_in_both_parsers() -> None:
    message = rejected(response([page(0, [word(0, UNIT_BOX, confidence=1.5)])]))
    assert message == "response: pages[0].words[0].confidence is 1.5, expected a number in [0, 1]"


@pytest.mark.parametrize(
    ("top", "billed"),
    [
        ({"numBilledPages": 0}, 0),
        ({"numBilledPages": None, "usage": {"pages": 3}}, 3),
        ({"usage": {"pages": 0}}, 0),
    ],
)
def test_billed_pages_zero_counts_and_a_null_count_falls_back_to_usage(top: dict, billed: int) -> None:
    result, _ = both(response([page(0, [word(0, UNIT_BOX)])], **top))
    assert result.billed_pages == billed


def test_pages_given_out_of_id_order_are_put_in_order() -> None:
    payload = response([page(1, [word(5, UNIT_BOX)]), page(0, [word(4, UNIT_BOX)])])
    result, _ = both(payload, fast=False)  # out of order: the reference sorts
    assert [p.words[0].id for p in result.pages] == [4, 5]


def test_a_page_without_an_id_puts_pages_in_list_order() -> None:
    result, _ = both(response([page(None, [word(0, UNIT_BOX)]), page(1, [word(1, UNIT_BOX)])]))
    assert [p.page for p in result.pages] == [1, 2]


# --- pixels or normalized, per page ---------------------------------------------------------------


def test_pages_of_pixels_and_normalized_pages_in_one_float_response() -> None:
    pixel = [(100.5, 200.0), (300.5, 200.0), (300.5, 400.0), (100.5, 400.0)]
    payload = response([page(0, [word(0, pixel)]), page(1, []), page(2, [word(1, UNIT_BOX)])])
    result, _ = both(payload)
    assert result.pages[0].words[0].polygon[0] == (0.1005, 0.1)
    assert result.pages[2].words[0].polygon == tuple(UNIT_BOX)


def test_integer_coordinates_on_a_sized_page_are_pixels_even_when_small() -> None:
    tiny = [(0, 0), (1, 0), (1, 1), (0, 1)]
    result, _ = both(response([page(0, [word(0, tiny)], width=1000, height=500)]))
    assert result.pages[0].words[0].polygon[2] == (0.001, 0.002)


@pytest.mark.parametrize(
    "vertices",
    [
        [(0.1, 0), (0.5, 0), (0.5, 1), (0.1, 1)],  # x floats, y integers
        [(0, 0.1), (1, 0.1), (1, 0.5), (0, 0.5)],  # x integers, y floats
    ],
)
def test_one_float_axis_makes_a_page_normalized(vertices: list[tuple[Any, Any]]) -> None:
    result = parse_ocr_response(response([page(0, [word(0, vertices)])]))
    assert result.pages[0].words[0].polygon == tuple((float(x), float(y)) for x, y in vertices)
    batch = parse_ocr_batch(json.dumps(response([page(0, [word(0, vertices)])])).encode())
    assert batch.words.column("right").to_pylist() == [result.pages[0].words[0].right]


@pytest.mark.parametrize("corner", range(4))
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize(("given", "clamped"), [(1.01, 1.0), (-0.01, 0.0), (1.02, 1.0), (-0.02, 0.0)])
def test_every_coordinate_within_the_tolerance_is_clamped_onto_the_edge(
    corner: int, axis: int, given: float, clamped: float
) -> None:
    vertices = [list(v) for v in UNIT_BOX]
    vertices[corner][axis] = given
    result, _ = both(response([page(0, [word(0, [tuple(v) for v in vertices])])]))
    assert result.pages[0].words[0].polygon[corner][axis] == clamped


def test_a_normalized_box_past_the_tolerance_names_page_word_and_edge() -> None:
    box = [(0.1, 0.2), (-0.5, 0.2), (0.3, 0.4), (0.1, 0.4)]
    message = rejected(response([page(0, [word(0, UNIT_BOX), word(7, box)])]), start_page=3)
    assert message == (
        "response: pages[0].words[1] (page 3, word id 7) lies outside the page: vertices[1].x = -0.5 "
        "is 50.0% of the page width past its edge (tolerance 2%)"
    )


def test_pixels_without_a_width_say_which_size_is_missing() -> None:
    pixel = [(10, 20), (30, 20), (30, 40), (10, 40)]
    no_width = rejected(response([page(0, [word(0, pixel)], width=None, height=2000)]))
    no_height = rejected(response([page(0, [word(0, pixel)], width=1000, height=None)]))
    assert "its page size is missing: no width on the page or in metadata.pages" in no_width
    assert "its page size is missing: no height on the page or in metadata.pages" in no_height


# --- page sizes and metadata ----------------------------------------------------------------------


@pytest.mark.parametrize(("width", "kept"), [(1, 1), (1240.0, 1240), (999_999_999, 999_999_999)])
def test_page_sizes_from_one_pixel_up_and_written_as_floats(width: Any, kept: int) -> None:
    result = parse_ocr_response(response([page(0, [word(0, UNIT_BOX)], width=width)]))
    assert result.pages[0].width == kept
    assert type(result.pages[0].width) is int


def test_a_page_size_of_a_billion_pixels_is_refused() -> None:
    with pytest.raises(MalformedResponseError, match=r"pages\[0\]\.width is 1000000000, expected a positive"):
        parse_ocr_response(response([page(0, [word(0, UNIT_BOX)], width=1_000_000_000)]))


def test_metadata_fills_a_missing_size_and_only_a_missing_one() -> None:
    pixel = [(10, 20), (30, 20), (30, 40), (10, 40)]
    payload = response(
        [page(0, [word(0, pixel)], width=None, height=400), page(1, [], width=None, height=None)],
        metadata={"pages": [{"page": 1, "width": 100, "height": 999}]},
    )
    result = parse_ocr_response(payload)
    assert [(p.width, p.height) for p in result.pages] == [(100, 400), (None, None)]


def test_metadata_numbered_by_document_page_fits_a_later_batch() -> None:
    pixel = [(10, 20), (30, 20), (30, 40), (10, 40)]
    payload = response(
        [page(1, [word(0, pixel)], width=None, height=None), page(2, [], width=None, height=None)],
        metadata={
            "pages": [{"page": 2, "width": 100, "height": 200}, {"page": 3, "width": 50, "height": 60}]
        },
    )
    result = parse_ocr_response(payload, start_page=2, end_page=3)
    assert [(p.page, p.width, p.height) for p in result.pages] == [(2, 100, 200), (3, 50, 60)]


def test_broken_metadata_is_ignored_while_no_page_needs_it() -> None:
    result = parse_ocr_response(response([page(0, [word(0, UNIT_BOX)])], metadata={"pages": "junk"}))
    assert result.pages[0].width == 1000


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([], "response: metadata is a list of 0, expected an object"),
        ({"pages": 3}, "response: metadata.pages is a number (3), expected a list"),
        ({"pages": [7]}, "response: metadata.pages[0] is a number (7), expected an object"),
        (
            {"pages": [{"page": 1, "width": "x"}]},
            "response: metadata.pages[0].width is 'x', expected a whole",
        ),
    ],
)
def test_bad_metadata_is_named_by_its_path(metadata: Any, message: str) -> None:
    payload = response([page(0, [word(0, UNIT_BOX)], width=None)], metadata=metadata)
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response(payload)
    assert str(err.value).startswith(message)


# --- ids ------------------------------------------------------------------------------------------


def test_word_ids_up_to_the_int64_limit() -> None:
    assert parse_ocr_response(response([page(0, [word(2**63 - 1, UNIT_BOX)])])).word_count == 1
    with pytest.raises(
        MalformedResponseError, match=r"words\[0\]\.id is 9223372036854775808, expected a non"
    ):
        parse_ocr_response(response([page(0, [word(2**63, UNIT_BOX)])]))


def test_a_page_count_that_is_not_the_batch_s_is_a_batch_mismatch() -> None:
    two = response([page(0, [word(0, UNIT_BOX)]), page(1, [])])
    with pytest.raises(BatchPagesMismatchError) as more:
        parse_ocr_response(two, start_page=5, end_page=5, source="request r batch 1")
    with pytest.raises(BatchPagesMismatchError) as fewer:
        parse_ocr_response(two, start_page=5, end_page=7, source="request r batch 1")
    assert str(more.value) == (
        "request r batch 1: holds 2 pages, expected 1 (pages 5-5): "
        "the batch returned pages it should not have"
    )
    assert (
        str(fewer.value) == "request r batch 1: holds 2 pages, expected 3 (pages 5-7): the batch lost pages"
    )


def test_absolute_ids_must_start_at_the_batch_s_first_page() -> None:
    assert check_page_ids(10, 19, page_count=10, start_page=11, source="b") == "absolute"
    with pytest.raises(BatchPagesMismatchError) as err:
        check_page_ids(9, 18, page_count=10, start_page=11, source="b")
    assert str(err.value) == (
        "b (pages 11-20): page ids 9-18 match neither 0-9 (batch-relative) nor 10-19 (absolute): "
        "the response holds other pages than 11-20"
    )


def test_one_missing_bound_means_no_ids() -> None:
    assert check_page_ids(None, 3, page_count=2, start_page=1, source="b") is None
    assert check_page_ids(3, None, page_count=2, start_page=1, source="b") is None


@pytest.mark.parametrize(
    ("low", "high", "shown"),
    [(-1, 1, "-1 to 1"), (20, 20, "20"), (10**30 + 1, 10**30 + 1, "an integer of 31")],
)
def test_mismatched_ids_are_shown_as_a_range(low: int, high: int, shown: str) -> None:
    with pytest.raises(BatchPagesMismatchError, match=f"page ids {shown}"):
        check_page_ids(low, high, page_count=2, start_page=1, source="b")


def test_a_page_without_an_id_does_not_hide_the_others() -> None:
    payload = response([page(None, [word(0, UNIT_BOX)]), page(7, [])])
    with pytest.raises(BatchPagesMismatchError, match="page ids 7 do not match 0-1"):
        parse_ocr_response(payload)


# --- messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"message": "hi"}, 'response: has no "pages": not an OCR result (keys: message)'),
        ({"code": 5}, 'response: has no "pages": not an OCR result (keys: code)'),
        ({}, 'response: has no "pages": not an OCR result (keys: none)'),
        ({f"k{i}": i for i in range(8)}, "(keys: k0, k1, k2, k3, k4, k5, k6, k7)"),
        ({f"k{i}": i for i in range(9)}, "(keys: k0, k1, k2, k3, k4, k5, k6, k7, ...)"),
        ({"error": "boom"}, "response: is an error response, not an OCR result: 'boom'"),
        (
            {"error": {"type": "x"}},
            "response: is an error response, not an OCR result: (no message) (type 'x')",
        ),
    ],
)
def test_what_is_not_an_ocr_result_is_described(payload: dict, message: str) -> None:
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response(payload)
    assert str(err.value).endswith(message)


def test_long_values_in_messages_are_cut() -> None:
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response({"error": "e" * 298})  # repr 300 characters: shown whole
    assert str(err.value).endswith(repr("e" * 298))
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response({"error": "e" * 299})  # repr 301: cut to 297 and "..."
    assert str(err.value).endswith(": " + repr("e" * 299)[:297] + "...")
    for length, shown in ((58, repr("x" * 58)), (59, repr("x" * 59)[:57] + "...")):
        with pytest.raises(MalformedResponseError) as err:
            parse_ocr_response(response([{"id": "x" * length, "words": []}]))
        assert str(err.value) == f"response: pages[0].id is {shown}, expected an integer"


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, "a boolean (true)"), ({1}, "set"), (5, "a number (5)"), ([1, 2], "a list of 2")],
)
def test_wrong_kinds_are_named(value: Any, kind: str) -> None:
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response({"pages": [value]})
    assert str(err.value) == f"response: pages[0] is {kind}, expected an object"
    if isinstance(value, list):
        with pytest.raises(
            MalformedResponseError, match=r"pages\[0\]\.id is a list of 2, expected an integer"
        ):
            parse_ocr_response({"pages": [{"id": value}]})


@pytest.mark.parametrize(("x", "name"), [(1e9, "1000000000.0"), (-1e9, "-1000000000.0")])
def test_a_coordinate_at_the_limit_is_not_finite_enough(x: float, name: str) -> None:
    vertices = [(x, 0.2), *UNIT_BOX[1:]]
    message = rejected(response([page(0, [word(0, vertices)])]))
    assert (
        message
        == f"response: pages[0].words[0].boundingBox.vertices[0].x is {name}, expected a finite coordinate"
    )


def test_a_top_level_text_that_is_not_a_string_is_refused_by_both() -> None:
    assert rejected(response([page(0, [])], text=5)) == "response: text is a number (5), expected a string"


def test_a_bounding_box_that_is_not_an_object_is_refused_by_both() -> None:
    bad = {"id": 0, "text": "w", "boundingBox": "x"}
    assert rejected(response([page(0, [bad])])) == (
        "response: pages[0].words[0].boundingBox is a string ('x'), expected an object"
    )


def test_read_only_mappings_and_memoryviews_are_accepted() -> None:
    payload = response([page(0, [word(0, UNIT_BOX)])])
    frozen = types.MappingProxyType(
        dict(
            payload,
            pages=[
                types.MappingProxyType(
                    dict(
                        payload["pages"][0],
                        words=[
                            types.MappingProxyType(
                                dict(
                                    payload["pages"][0]["words"][0],
                                    boundingBox=types.MappingProxyType(
                                        payload["pages"][0]["words"][0]["boundingBox"]
                                    ),
                                )
                            )
                        ],
                    )
                )
            ],
        )
    )
    expected = parse_ocr_response(payload)
    assert parse_ocr_response(frozen) == expected
    assert parse_ocr_response(memoryview(json.dumps(payload).encode())) == expected


def test_the_columnar_parser_holds_a_batch_to_its_page_count_too() -> None:
    two = json.dumps(response([page(0, [word(0, UNIT_BOX)]), page(1, [])])).encode()
    odd = json.dumps(response([page(1, [word(0, UNIT_BOX)]), page(0, [])])).encode()  # the reference's way
    for data in (two, odd):
        with pytest.raises(BatchPagesMismatchError, match=r"holds 2 pages, expected 1 \(pages 5-5\)"):
            parse_ocr_batch(data, start_page=5, end_page=5)


def test_a_pixel_box_half_a_page_past_the_edge_is_refused_by_both() -> None:
    box = [(100, 200), (1500, 200), (1500, 400), (100, 400)]
    message = rejected(response([page(0, [word(0, box)])]))
    assert "vertices[1].x = 1500 px is 50.0% of the page width past its edge" in message


def test_a_one_pixel_page_stays_on_the_fast_path() -> None:
    result, _ = both(response([page(0, [word(0, UNIT_BOX)], width=1, height=1)]))
    assert (result.pages[0].width, result.pages[0].height) == (1, 1)
