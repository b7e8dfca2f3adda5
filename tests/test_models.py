"""parse_ocr_response against the real recorded responses, the documented variant, and broken input."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upstage_provider.exceptions import BatchPagesMismatchError, MalformedResponseError
from upstage_provider.models import EDGE_TOLERANCE, OCRResult, Page, Word, parse_ocr_response

SAMPLES = ("check_box", "dpi_150", "multi_page", "water_mark")
Json = dict[str, Any]


@pytest.fixture(scope="module")
def sample_text(samples_dir: Path) -> dict[str, str]:
    return {name: (samples_dir / f"{name}.ocr.json").read_text(encoding="utf-8") for name in SAMPLES}


@pytest.fixture
def load(sample_text: dict[str, str]) -> Callable[[str], Json]:
    """A fresh, mutable copy of a recorded response."""

    def _load(name: str) -> Json:
        result: Json = json.loads(sample_text[name])
        return result

    return _load


def raw_vertices(word: Json) -> list[tuple[float, float]]:
    return [(v["x"], v["y"]) for v in word["boundingBox"]["vertices"]]


def is_hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


# --- the recorded responses -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_recorded_sample_word_by_word(name: str, load: Callable[[str], Json]) -> None:
    raw = load(name)
    result = parse_ocr_response(raw, source=name)

    assert result.model_version == "ocr-2.2.1"
    assert result.api_version == raw["apiVersion"]
    assert result.confidence == raw["confidence"]
    assert result.billed_pages == raw["numBilledPages"] == len(raw["pages"])
    assert result.text == raw["text"]
    assert [p.page for p in result.pages] == list(range(1, len(raw["pages"]) + 1))
    assert result.word_count == sum(len(p["words"]) for p in raw["pages"])

    for page, raw_page in zip(result.pages, raw["pages"], strict=True):
        assert (page.width, page.height) == (raw_page["width"], raw_page["height"])
        assert page.text == raw_page["text"]
        assert page.confidence == raw_page["confidence"]
        assert len(page.words) == len(raw_page["words"])
        for word, raw_word in zip(page.words, raw_page["words"], strict=True):
            assert (word.id, word.text, word.confidence) == (
                raw_word["id"],
                raw_word["text"],
                raw_word["confidence"],
            )
            assert len(word.polygon) == 4
            for (x, y), (raw_x, raw_y) in zip(word.polygon, raw_vertices(raw_word), strict=True):
                assert x == raw_x / raw_page["width"]
                assert y == raw_y / raw_page["height"]
                assert 0.0 <= x <= 1.0
                assert 0.0 <= y <= 1.0
            assert 0.0 <= word.left <= word.right <= 1.0
            assert 0.0 <= word.top <= word.bottom <= 1.0


def test_multi_page_word_ids_run_on_and_page_two_is_korean(load: Callable[[str], Json]) -> None:
    result = parse_ocr_response(load("multi_page"))
    assert [len(p.words) for p in result.pages] == [243, 41, 50]
    assert [(p.width, p.height) for p in result.pages] == [(1242, 1755), (1240, 1755), (1240, 1755)]
    second = result.pages[1]
    assert second.page == 2
    assert second.words[0].id == 243
    assert is_hangul(second.text)
    assert any(is_hangul(w.text) for w in second.words)


@pytest.mark.parametrize(
    "encode",
    [
        json.dumps,
        lambda d: json.dumps(d).encode(),
        lambda d: bytearray(json.dumps(d, ensure_ascii=False).encode("utf-8")),
    ],
    ids=["str", "bytes", "bytearray-utf8"],
)
def test_json_text_and_bytes_parse_like_the_mapping(
    encode: Callable[[Json], str | bytes], load: Callable[[str], Json]
) -> None:
    raw = load("multi_page")
    assert parse_ocr_response(encode(raw)) == parse_ocr_response(raw)


def test_the_payload_is_not_modified(load: Callable[[str], Json]) -> None:
    raw = load("check_box")
    before = copy.deepcopy(raw)
    parse_ocr_response(raw)
    assert raw == before


def test_word_box_of_a_rotated_quad() -> None:
    word = Word(1, "x", 0.5, ((0.2, 0.1), (0.4, 0.3), (0.3, 0.5), (0.1, 0.2)))
    assert (word.left, word.top, word.right, word.bottom) == (0.1, 0.1, 0.4, 0.5)


# --- the documented variant -------------------------------------------------------------------------


def documented_variant(raw: Json, *, keep_size: bool = False) -> Json:
    """The shape Upstage's docs show: snake_case, normalized floats, api/model/usage, no page size."""
    pages = []
    for page in raw["pages"]:
        words = [
            {
                "id": w["id"],
                "text": w["text"],
                "confidence": w["confidence"],
                "bounding_box": {
                    "vertices": [
                        {"x": x / page["width"], "y": y / page["height"]} for x, y in raw_vertices(w)
                    ]
                },
            }
            for w in page["words"]
        ]
        converted = {"id": page["id"], "text": page["text"], "confidence": page["confidence"], "words": words}
        if keep_size:
            converted |= {"width": page["width"], "height": page["height"]}
        pages.append(converted)
    return {
        "api": "2.0",
        "model": "ocr-2.2.1",
        "confidence": raw["confidence"],
        "text": raw["text"],
        "usage": {"pages": len(pages)},
        "pages": pages,
    }


def assert_same_polygons(left: OCRResult, right: OCRResult) -> None:
    assert [len(p.words) for p in left.pages] == [len(p.words) for p in right.pages]
    for page_a, page_b in zip(left.pages, right.pages, strict=True):
        for a, b in zip(page_a.words, page_b.words, strict=True):
            assert (a.id, a.text, a.confidence) == (b.id, b.text, b.confidence)
            for (xa, ya), (xb, yb) in zip(a.polygon, b.polygon, strict=True):
                assert abs(xa - xb) <= 1e-9
                assert abs(ya - yb) <= 1e-9


@pytest.mark.parametrize("name", SAMPLES)
def test_documented_variant_gives_the_same_polygons(name: str, load: Callable[[str], Json]) -> None:
    raw = load(name)
    recorded = parse_ocr_response(raw)
    variant = parse_ocr_response(documented_variant(raw))

    assert_same_polygons(variant, recorded)
    assert variant.billed_pages == len(raw["pages"])
    assert variant.model_version == "ocr-2.2.1"
    assert variant.api_version == "2.0"
    assert [(p.width, p.height) for p in variant.pages] == [(None, None)] * len(raw["pages"])
    assert [p.page for p in variant.pages] == [p.page for p in recorded.pages]


def test_normalized_floats_on_a_sized_page_stay_normalized(load: Callable[[str], Json]) -> None:
    raw = load("multi_page")
    variant = parse_ocr_response(documented_variant(raw, keep_size=True))
    assert_same_polygons(variant, parse_ocr_response(raw))
    assert variant.pages[0].width == 1242


def test_integer_zero_and_one_in_a_normalized_page_without_size() -> None:
    word = {
        "id": 0,
        "text": "all",
        "boundingBox": {"vertices": [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 1, "y": 1}, {"x": 0, "y": 1}]},
    }
    result = parse_ocr_response({"pages": [{"id": 0, "words": [word]}]})
    assert result.pages[0].words[0].polygon == ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    assert result.pages[0].words[0].confidence is None


def test_page_size_falls_back_to_metadata(load: Callable[[str], Json]) -> None:
    raw = load("multi_page")
    expected = parse_ocr_response(raw)
    for page in raw["pages"]:
        del page["width"], page["height"]
    assert parse_ocr_response(raw) == expected


def test_missing_texts_are_rebuilt(load: Callable[[str], Json]) -> None:
    raw = load("multi_page")
    del raw["text"]
    del raw["pages"][1]["text"]
    result = parse_ocr_response(raw)
    assert result.pages[1].text == " ".join(w["text"] for w in raw["pages"][1]["words"])
    assert result.text == "".join(p.text for p in result.pages)


def test_optional_fields_may_be_absent(load: Callable[[str], Json]) -> None:
    raw = load("check_box")
    for key in ("apiVersion", "modelVersion", "numBilledPages", "confidence", "metadata"):
        del raw[key]
    del raw["pages"][0]["confidence"]
    del raw["pages"][0]["words"][0]["confidence"]
    result = parse_ocr_response(raw)
    assert (result.model_version, result.api_version, result.billed_pages, result.confidence) == (None,) * 4
    assert result.pages[0].confidence is None
    assert result.pages[0].words[0].confidence is None
    assert result.pages[0].words[1].confidence == raw["pages"][0]["words"][1]["confidence"]


def test_replacement_characters_are_kept(load: Callable[[str], Json]) -> None:
    raw = load("water_mark")
    raw["pages"][0]["words"][2]["text"] = "\ufffd\ufffd마크"
    raw["pages"][0]["text"] = "\ufffd " + raw["pages"][0]["text"]
    page = parse_ocr_response(json.dumps(raw).encode()).pages[0]
    assert page.words[2].text == "\ufffd\ufffd마크"
    assert page.text.startswith("\ufffd ")


def test_an_empty_page_is_valid(load: Callable[[str], Json]) -> None:
    raw = load("multi_page")
    raw["pages"][2]["words"] = []
    raw["pages"][2]["text"] = ""
    result = parse_ocr_response(raw)
    assert result.pages[2].words == ()
    assert (result.pages[2].page, result.pages[2].width, result.pages[2].text) == (3, 1240, "")


# --- async batches ----------------------------------------------------------------------------------

BATCHES = ((1, 10), (11, 20), (21, 23))


def batch_payloads(raw: Json, ids: str) -> Iterator[tuple[int, int, Json]]:
    """A 23-page document cut into the API's 10-page batches; every page says which page it is."""
    word_id = 0
    for start, end in BATCHES:
        pages, metadata = [], []
        for number in range(start, end + 1):
            page = copy.deepcopy(raw["pages"][number % 3])
            for word in page["words"]:
                word["id"] = word_id
                word_id += 1
            page["text"] = f"document page {number}"
            relative = number - start
            page["id"] = relative if ids == "relative" else number - 1
            meta = {"page": relative + 1 if ids == "relative" else number}
            meta |= {"width": page.pop("width"), "height": page.pop("height")}  # only in metadata
            pages.append(page)
            metadata.append(meta)
        random.Random(start).shuffle(pages)  # ids, not list order, say where a page belongs
        yield start, end, {"modelVersion": "ocr-2.2.1", "pages": pages, "metadata": {"pages": metadata}}


def parse_batches(raw: Json, ids: str) -> list[Page]:
    pages: list[Page] = []
    for start, end, payload in batch_payloads(raw, ids):
        pages += parse_ocr_response(payload, start_page=start, end_page=end, source=f"batch {start}").pages
    return pages


@pytest.mark.parametrize("ids", ["relative", "absolute"])
def test_batches_are_placed_by_start_page(ids: str, load: Callable[[str], Json]) -> None:
    raw = load("multi_page")
    pages = parse_batches(raw, ids)
    assert [p.page for p in pages] == list(range(1, 24))
    assert all(p.text == f"document page {p.page}" for p in pages)
    assert [p.width for p in pages] == [raw["pages"][n % 3]["width"] for n in range(1, 24)]
    assert [len(p.words) for p in pages] == [len(raw["pages"][n % 3]["words"]) for n in range(1, 24)]


def test_relative_and_absolute_batch_ids_give_the_same_document(load: Callable[[str], Json]) -> None:
    raw = load("multi_page")
    assert parse_batches(raw, "relative") == parse_batches(raw, "absolute")


def test_pages_without_distinct_ids_keep_list_order(load: Callable[[str], Json]) -> None:
    raw = load("multi_page")
    raw["pages"].reverse()
    for page in raw["pages"]:
        page["id"] = 0
    result = parse_ocr_response(raw, start_page=5)
    assert [p.page for p in result.pages] == [5, 6, 7]
    assert result.pages[0].words[0].id == 284  # the recorded third page, now first in the list


def renumbered(payload: Json, first_id: int | None) -> Json:
    """The batch with its page ids counted from ``first_id`` (in id order), or without ids."""
    pages = sorted(payload["pages"], key=lambda page: page["id"])
    for offset, page in enumerate(pages):
        if first_id is None:
            del page["id"]
        else:
            page["id"] = first_id + offset
    return payload


@pytest.mark.parametrize(
    ("batch", "first_id", "numbering"),
    [
        (0, 0, None),  # from page 1, batch-relative and absolute ids are the same
        (1, 0, "relative"),
        (1, 10, "absolute"),
        (2, 0, "relative"),
        (2, 20, "absolute"),
        (1, None, None),  # no ids: placed by list order, as before
    ],
)
def test_page_ids_of_either_numbering_are_accepted_and_reported(
    batch: int, first_id: int | None, numbering: str | None, load: Callable[[str], Json]
) -> None:
    start, end, payload = list(batch_payloads(load("multi_page"), "relative"))[batch]
    result = parse_ocr_response(renumbered(payload, first_id), start_page=start, end_page=end)
    assert [p.page for p in result.pages] == list(range(start, end + 1))
    assert result.page_ids == numbering
    if first_id is not None:
        assert all(p.text == f"document page {p.page}" for p in result.pages)


@pytest.mark.parametrize(
    ("batch", "first_id", "expected"),
    [
        (
            0,
            10,
            "request r batch 0 (pages 1-10): page ids 10-19 do not match 0-9 (batch-relative and "
            "absolute ids agree for a batch from page 1): the response holds other pages than 1-10",
        ),
        (
            1,
            20,
            "request r batch 1 (pages 11-20): page ids 20-29 match neither 0-9 (batch-relative) nor "
            "10-19 (absolute): the response holds other pages than 11-20",
        ),
        (
            1,
            5,
            "request r batch 1 (pages 11-20): page ids 5-14 match neither 0-9 (batch-relative) nor "
            "10-19 (absolute): the response holds other pages than 11-20",
        ),
        (
            2,
            10,
            "request r batch 2 (pages 21-23): page ids 10-12 match neither 0-2 (batch-relative) nor "
            "20-22 (absolute): the response holds other pages than 21-23",
        ),
    ],
)
def test_page_ids_of_other_pages_are_rejected(
    batch: int, first_id: int, expected: str, load: Callable[[str], Json]
) -> None:
    start, end, payload = list(batch_payloads(load("multi_page"), "relative"))[batch]
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response(
            renumbered(payload, first_id), start_page=start, end_page=end, source=f"request r batch {batch}"
        )
    assert str(err.value) == expected
    assert isinstance(err.value, BatchPagesMismatchError)


def test_the_page_ids_present_must_fit_when_some_are_missing(load: Callable[[str], Json]) -> None:
    start, end, payload = next(batch_payloads(load("multi_page"), "absolute"))
    payload["pages"][3].pop("id")
    accepted = parse_ocr_response(copy.deepcopy(payload), start_page=start, end_page=end)
    assert [p.page for p in accepted.pages] == list(range(1, 11))  # list order, as before
    for page in payload["pages"]:
        if "id" in page:
            page["id"] += 10  # the ids of pages 11-20
    with pytest.raises(
        MalformedResponseError, match=r"^batch \(pages 1-10\): page ids 1\d-19 do not match 0-9"
    ):
        parse_ocr_response(payload, start_page=start, end_page=end, source="batch")


def test_a_sync_response_is_numbered_from_page_one(load: Callable[[str], Json]) -> None:
    raw = load("multi_page")
    for page in raw["pages"]:
        page["id"] += 1
    with pytest.raises(
        MalformedResponseError, match=r"^response \(pages 1-3\): page ids 1-3 do not match 0-2"
    ):
        parse_ocr_response(raw)


def test_a_batch_with_too_many_pages_is_rejected(load: Callable[[str], Json]) -> None:
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response(load("multi_page"), start_page=11, end_page=12, source="request r batch 2")
    assert "request r batch 2: holds 3 pages, expected 2 (pages 11-12)" in str(err.value)
    assert "should not have" in str(err.value)


def test_a_batch_that_lost_a_page_is_rejected(load: Callable[[str], Json]) -> None:
    with pytest.raises(MalformedResponseError, match=r"holds 3 pages, expected 10 \(pages 11-20\).*lost"):
        parse_ocr_response(load("multi_page"), start_page=11, end_page=20)


@pytest.mark.parametrize(("start", "end"), [(0, None), (3, 2), (True, None)])
def test_bad_page_range_arguments(start: Any, end: Any, load: Callable[[str], Json]) -> None:
    with pytest.raises(ValueError, match=r"^(start_page|end_page) must be") as err:
        parse_ocr_response(load("check_box"), start_page=start, end_page=end)
    assert not isinstance(err.value, MalformedResponseError)


# --- clamping ---------------------------------------------------------------------------------------


def set_box(raw: Json, page: int, word: int, points: list[tuple[Any, Any]]) -> None:
    raw["pages"][page]["words"][word]["boundingBox"]["vertices"] = [{"x": x, "y": y} for x, y in points]


def test_a_box_two_pixels_past_the_edges_is_clamped(load: Callable[[str], Json]) -> None:
    raw = load("check_box")  # 1460 x 608
    set_box(raw, 0, 4, [(-2, -2), (1462, -2), (1462, 610), (-2, 610)])
    word = parse_ocr_response(raw).pages[0].words[4]
    assert word.polygon == ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


def test_normalized_coordinates_slightly_outside_are_clamped() -> None:
    word = {
        "id": 7,
        "text": "edge",
        "bounding_box": {
            "vertices": [
                {"x": -0.01, "y": 0.5},
                {"x": 1.015, "y": 0.5},
                {"x": 1.015, "y": 0.6},
                {"x": -0.01, "y": 0.6},
            ]
        },
    }
    polygon = parse_ocr_response({"pages": [{"words": [word]}]}).pages[0].words[0].polygon
    assert polygon == ((0.0, 0.5), (1.0, 0.5), (1.0, 0.6), (0.0, 0.6))


@pytest.mark.parametrize(
    ("points", "detail"),
    [
        (
            [(100, 10), (1898, 10), (1898, 40), (100, 40)],
            "vertices[1].x = 1898 px is 30.0% of the page width",
        ),
        (
            [(100, -183), (200, -183), (200, 40), (100, 40)],
            "vertices[0].y = -183 px is 30.1% of the page height",
        ),
        ([(100, 10), (200, 10), (200, 630), (100, 630)], "vertices[2].y = 630 px is 3.6% of the page height"),
    ],
)
def test_a_box_far_outside_the_page_is_an_error(
    points: list[tuple[int, int]], detail: str, load: Callable[[str], Json]
) -> None:
    raw = load("check_box")
    set_box(raw, 0, 4, points)
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response(raw)
    message = str(err.value)
    assert message.startswith("response: pages[0].words[4] (page 1, word id 4) lies outside the page")
    assert detail in message
    assert f"tolerance {EDGE_TOLERANCE:.0%}" in message


# --- malformed responses ----------------------------------------------------------------------------


def word_at(raw: Json, page: int = 1, word: int = 17) -> Json:
    result: Json = raw["pages"][page]["words"][word]
    return result


def vertex(raw: Json, index: int, page: int = 1, word: int = 17) -> Json:
    result: Json = word_at(raw, page, word)["boundingBox"]["vertices"][index]
    return result


def _drop_page_sizes(raw: Json) -> None:
    for page in raw["pages"]:
        del page["width"], page["height"]
    del raw["metadata"]


BOX = "response: pages[1].words[17].boundingBox"
MALFORMED: dict[str, tuple[Callable[[Json], object], str]] = {
    "3 vertices": (
        lambda r: word_at(r)["boundingBox"]["vertices"].pop(),
        f"{BOX}.vertices has 3 vertices, expected 4",
    ),
    "5 vertices": (
        lambda r: word_at(r)["boundingBox"]["vertices"].append({"x": 1, "y": 2}),
        f"{BOX}.vertices has 5 vertices, expected 4",
    ),
    "vertices missing": (lambda r: word_at(r)["boundingBox"].pop("vertices"), f"{BOX}.vertices is missing"),
    "vertices an object": (
        lambda r: word_at(r)["boundingBox"].update(vertices={"x": 1}),
        f"{BOX}.vertices is an object, expected a list of 4 vertices",
    ),
    "box missing": (
        lambda r: word_at(r).pop("boundingBox"),
        'response: pages[1].words[17] has no "boundingBox" (or "bounding_box")',
    ),
    "box a list": (lambda r: word_at(r).update(boundingBox=[]), f"{BOX} is a list of 0, expected an object"),
    "vertex not an object": (
        lambda r: word_at(r)["boundingBox"]["vertices"].__setitem__(2, [1, 2]),
        f"{BOX}.vertices[2] is a list of 2, expected an object with x and y",
    ),
    "vertex without y": (lambda r: vertex(r, 3).pop("y"), f'{BOX}.vertices[3] has no "y"'),
    "NaN": (lambda r: vertex(r, 1).update(x=math.nan), f"{BOX}.vertices[1].x is nan, expected a finite"),
    "inf": (lambda r: vertex(r, 0).update(y=math.inf), f"{BOX}.vertices[0].y is inf, expected a finite"),
    "huge integer": (
        lambda r: vertex(r, 0).update(y=10**400),
        f"{BOX}.vertices[0].y is an integer of 401 digits, expected a finite",
    ),
    "boolean coordinate": (
        lambda r: vertex(r, 0).update(x=True),
        f"{BOX}.vertices[0].x is True, expected a number",
    ),
    "string coordinate": (
        lambda r: vertex(r, 2).update(y="412"),
        f"{BOX}.vertices[2].y is '412', expected a number",
    ),
    "null coordinate": (
        lambda r: vertex(r, 2).update(y=None),
        f"{BOX}.vertices[2].y is absent or null, expected a number",
    ),
    "text missing": (
        lambda r: word_at(r).pop("text"),
        "response: pages[1].words[17].text is absent or null, expected a string",
    ),
    "text a number": (
        lambda r: word_at(r).update(text=5),
        "response: pages[1].words[17].text is 5, expected a string",
    ),
    "word id missing": (
        lambda r: word_at(r).pop("id"),
        "response: pages[1].words[17].id is absent or null, expected a non-negative integer",
    ),
    "word id boolean": (
        lambda r: word_at(r).update(id=False),
        "response: pages[1].words[17].id is False, expected a non-negative integer",
    ),
    "word not an object": (
        lambda r: r["pages"][1]["words"].__setitem__(17, "word"),
        "response: pages[1].words[17] is a string ('word'), expected an object",
    ),
    "confidence above 1": (
        lambda r: word_at(r).update(confidence=1.5),
        "response: pages[1].words[17].confidence is 1.5, expected a number in [0, 1]",
    ),
    "confidence negative": (
        lambda r: word_at(r).update(confidence=-0.1),
        "response: pages[1].words[17].confidence is -0.1, expected a number in [0, 1]",
    ),
    "confidence NaN": (
        lambda r: word_at(r).update(confidence=math.nan),
        "response: pages[1].words[17].confidence is nan, expected a number in [0, 1]",
    ),
    "confidence a string": (
        lambda r: word_at(r).update(confidence="0.9"),
        "response: pages[1].words[17].confidence is '0.9', expected a number in [0, 1]",
    ),
    "confidence boolean": (
        lambda r: word_at(r).update(confidence=True),
        "response: pages[1].words[17].confidence is True, expected a number in [0, 1]",
    ),
    "page confidence": (
        lambda r: r["pages"][2].update(confidence=2),
        "response: pages[2].confidence is 2, expected a number in [0, 1]",
    ),
    "document confidence": (
        lambda r: r.update(confidence=math.inf),
        "response: confidence is inf, expected a number in [0, 1]",
    ),
    "pages missing": (
        lambda r: r.pop("pages"),
        'response: has no "pages": not an OCR result (keys: apiVersion',
    ),
    "pages an object": (lambda r: r.update(pages={}), "response: pages is an object, expected a list"),
    "page not an object": (
        lambda r: r["pages"].__setitem__(1, None),
        "response: pages[1] is null, expected an object",
    ),
    "page id a string": (
        lambda r: r["pages"][1].update(id="1"),
        "response: pages[1].id is '1', expected an integer",
    ),
    "words missing": (
        lambda r: r["pages"][1].pop("words"),
        'response: pages[1] has no "words", expected a list (empty for a blank page)',
    ),
    "words an object": (
        lambda r: r["pages"][1].update(words={}),
        "response: pages[1].words is an object, expected a list",
    ),
    "page text a list": (
        lambda r: r["pages"][1].update(text=["a"]),
        "response: pages[1].text is a list of 1, expected a string",
    ),
    "width a boolean": (
        lambda r: r["pages"][1].update(width=True),
        "response: pages[1].width is True, expected a whole number of pixels",
    ),
    "width a string": (
        lambda r: r["pages"][1].update(width="1240"),
        "response: pages[1].width is '1240', expected a whole number of pixels",
    ),
    "width zero": (
        lambda r: r["pages"][1].update(width=0),
        "response: pages[1].width is 0, expected a positive number of pixels",
    ),
    "height fractional": (
        lambda r: r["pages"][1].update(height=1755.5),
        "response: pages[1].height is 1755.5, expected a whole number of pixels",
    ),
    "metadata size bad when needed": (
        lambda r: (r["pages"][1].pop("height"), r["metadata"]["pages"][1].update(height=-3)),
        "response: metadata.pages[1].height is -3, expected a positive number of pixels",
    ),
    "metadata page number bad": (
        lambda r: (r["pages"][0].pop("width"), r["metadata"]["pages"][0].update(page="1")),
        "response: metadata.pages[0].page is '1', expected a 1-based page number",
    ),
    "no page size anywhere": (
        _drop_page_sizes,
        "response: pages[0] has pixel coordinates (up to 1307) but its page size is missing: "
        "no width and height on the page or in metadata.pages",
    ),
    "no page height anywhere": (
        lambda r: (r["pages"][0].pop("height"), r.pop("metadata")),
        "response: pages[0] has pixel coordinates (up to 1307) but its page size is missing: no height",
    ),
    "billed pages negative": (
        lambda r: r.update(numBilledPages=-1),
        "response: numBilledPages is -1, expected a non-negative integer",
    ),
    "usage pages a string": (
        lambda r: (r.pop("numBilledPages"), r.update(usage={"pages": "3"})),
        "response: usage.pages is '3', expected a non-negative integer",
    ),
    "usage a list": (
        lambda r: (r.pop("numBilledPages"), r.update(usage=[3])),
        "response: usage is a list of 1, expected an object",
    ),
    "model version a number": (
        lambda r: r.update(modelVersion=2.2),
        "response: modelVersion is a number (2.2), expected a string",
    ),
    "document text a number": (
        lambda r: r.update(text=7),
        "response: text is a number (7), expected a string",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_response_names_the_path(case: str, load: Callable[[str], Json]) -> None:
    mutate, expected = MALFORMED[case]
    raw = load("multi_page")
    mutate(raw)
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response(raw)
    assert expected in str(err.value)


def test_the_source_starts_every_message(load: Callable[[str], Json]) -> None:
    raw = load("multi_page")
    word_at(raw)["boundingBox"]["vertices"].pop()
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response(raw, source="request 42 batch 3")
    assert (
        str(err.value)
        == "request 42 batch 3: pages[1].words[17].boundingBox.vertices has 3 vertices, expected 4"
    )


def test_nan_literal_in_json_bytes(sample_text: dict[str, str]) -> None:
    text = sample_text["check_box"].replace('"confidence": 0.9991', '"confidence": NaN', 1)
    assert "NaN" in text
    with pytest.raises(MalformedResponseError, match=r"pages\[0\]\.words\[0\]\.confidence is nan"):
        parse_ocr_response(text.encode())


def test_snake_case_paths_are_named_as_given(load: Callable[[str], Json]) -> None:
    variant = documented_variant(load("check_box"))
    variant["pages"][0]["words"][3]["bounding_box"]["vertices"] = []
    with pytest.raises(MalformedResponseError, match=r"pages\[0\]\.words\[3\]\.bounding_box\.vertices has 0"):
        parse_ocr_response(variant)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "error": {
                    "message": "Invalid API key",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
            "response: is an error response, not an OCR result: 'Invalid API key' "
            "(type 'invalid_request_error', code 'invalid_api_key')",
        ),
        (
            {"code": 413, "message": "The document has 120 pages; the limit is 100"},
            "is an error response, not an OCR result: "
            "'The document has 120 pages; the limit is 100' (code 413)",
        ),
        ({"error": "Unauthorized"}, "is an error response, not an OCR result: 'Unauthorized'"),
        ({"detail": "Not Found"}, "is an error response, not an OCR result: 'Not Found'"),
    ],
)
def test_error_bodies_are_named_as_such(body: Json, expected: str) -> None:
    for payload in (body, json.dumps(body), json.dumps(body).encode()):
        with pytest.raises(MalformedResponseError) as err:
            parse_ocr_response(payload)
        assert expected in str(err.value)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"pages": [', "response: not valid JSON: Expecting value at line 1 column 12 (char 11)"),
        (b"", "response: not valid JSON: Expecting value at line 1 column 1 (char 0)"),
        ('{"pages": []} x', "response: not valid JSON: Extra data at line 1 column 15 (char 14)"),
        (b'{"pages": "\xff"}', "response: not valid JSON: 'utf-8' codec can't decode byte 0xff"),
        (b"[]", "response: expected a JSON object, got a list of 0"),
        ("null", "response: expected a JSON object, got null"),
        ([{"pages": []}], "response: expected a JSON object, got a list of 1"),
    ],
)
def test_undecodable_payloads(payload: Any, expected: str) -> None:
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_response(payload)
    assert expected in str(err.value)


def test_absurd_nesting_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedResponseError, match=r"^response: not valid JSON: maximum recursion depth"):
        parse_ocr_response(b'{"pages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")


# --- fuzzing ----------------------------------------------------------------------------------------

KEYS = ("x", "y", "id", "text", "words", "pages", "vertices", "boundingBox", "width", "height", "page")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=5)
    ),
    max_leaves=8,
)


def small_document(raw: Json) -> Json:
    """multi_page with two words a page: every kind of path, few enough for the fuzzer to reach them."""
    small = copy.deepcopy(raw)
    for page in small["pages"]:
        page["words"] = page["words"][:2]
    return small


def all_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from all_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from all_paths(value, (*prefix, index))


def mutated(node: Any, path: tuple[Any, ...], delete: bool, value: Any) -> Any:
    """A copy of ``node`` with one key deleted or one value replaced; untouched branches are shared."""
    head, rest = path[0], path[1:]
    if not isinstance(node, (dict, list)) or (
        head not in node if isinstance(node, dict) else not isinstance(head, int) or head >= len(node)
    ):
        return node  # an earlier mutation removed this branch
    changed = copy.copy(node)
    if rest:
        changed[head] = mutated(node[head], rest, delete, value)
    elif delete:
        del changed[head]
    else:
        changed[head] = value
    return changed


def check_invariants(result: OCRResult) -> None:
    assert [p.page for p in result.pages] == list(range(1, len(result.pages) + 1))
    for page in result.pages:
        for word in page.words:
            assert len(word.polygon) == 4
            assert all(0.0 <= c <= 1.0 for point in word.polygon for c in point)
            assert word.confidence is None or 0.0 <= word.confidence <= 1.0


@pytest.fixture(scope="module")
def fuzz_base(sample_text: dict[str, str]) -> tuple[Json, list[tuple[Any, ...]]]:
    base = small_document(json.loads(sample_text["multi_page"]))
    return base, list(all_paths(base))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_responses_parse_or_raise_malformed(
    data: st.DataObject, fuzz_base: tuple[Json, list[tuple[Any, ...]]]
) -> None:
    base, paths = fuzz_base
    document = base
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(paths), label="path")
        delete = data.draw(st.booleans(), label="delete")
        value = None if delete else data.draw(JSON_VALUES, label="value")
        document = mutated(document, path, delete, value)
    for payload in (document, json.dumps(document)):
        try:
            result = parse_ocr_response(payload)
        except MalformedResponseError:
            continue
        check_invariants(result)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10_000), position=st.integers(0, 10_000), byte=st.integers(0, 255))
def test_corrupted_bytes_parse_or_raise_malformed(
    cut: int, position: int, byte: int, fuzz_base: tuple[Json, list[tuple[Any, ...]]]
) -> None:
    encoded = bytearray(json.dumps(fuzz_base[0], ensure_ascii=False).encode("utf-8"))
    encoded[position % len(encoded)] = byte
    for payload in (bytes(encoded), bytes(encoded[: cut % len(encoded)])):
        with contextlib.suppress(MalformedResponseError):
            check_invariants(parse_ocr_response(payload))
