"""The fast dataclass parser gives exactly what ``parse_ocr_response`` gives, errors included."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import FrozenInstanceError, fields, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings

from tests.emulator_fixtures import wait_done
from tests.test_columnar import SAMPLES, ordinary_response, response, with_page_ids
from upstage_provider.columnar import fast_columns, parse_ocr_batch
from upstage_provider.documents import load_document
from upstage_provider.emulator.responses import build_ocr_response
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.emulator.synthetic import SyntheticDocument
from upstage_provider.exceptions import MalformedResponseError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.models import OCRResult, Word, parse_ocr_response
from upstage_provider.results import ParsedBatch, pages_of, parse_batch, parse_ocr_result, result_of

Outcome = tuple[Any, ...]


def outcome(parse: Any, data: Any, **kwargs: Any) -> Outcome:
    """What a caller can observe: the result, down to each value's type, or the error."""
    try:
        result = parse(data, **kwargs)
    except (ValueError, TypeError) as exc:  # MalformedResponseError is a ValueError
        return ("error", type(exc), str(exc))
    # repr tells 1 from 1.0 and -0.0 from 0.0, which == does not
    return ("ok", result, repr(result))


def assert_same(data: Any, **kwargs: Any) -> OCRResult | None:
    fast = outcome(parse_ocr_result, data, **kwargs)
    assert fast == outcome(parse_ocr_response, data, **kwargs)
    return fast[1] if fast[0] == "ok" else None


def assert_fast_path_agrees(data: bytes, **kwargs: Any) -> OCRResult:
    """The columns-to-dataclasses conversion itself, not the fallback to the reference parser."""
    fast = fast_columns(data, **kwargs)
    assert fast is not None, "this response must take the vectorized path"
    result = result_of(ParsedBatch(*fast))
    expected = parse_ocr_response(data, **kwargs)
    assert result == expected
    assert repr(result) == repr(expected)
    assert assert_same(data, **kwargs) == expected
    parsed = parse_batch(data, **kwargs)
    assert parsed.columns is not None
    assert (parsed.page_count, parsed.page_ids) == (expected.page_count, expected.page_ids)
    assert tuple(pages_of(parsed)) == expected.pages
    return result


# --- real and emulated responses -----------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_recorded_samples_agree_on_the_fast_path(name: str, samples_dir: Path) -> None:
    data = (samples_dir / f"{name}.ocr.json").read_bytes()
    result = assert_fast_path_agrees(data, source=name)
    assert result.word_count == sum(len(p["words"]) for p in json.loads(data)["pages"]) > 0
    assert result.text == json.loads(data)["text"]


@pytest.mark.parametrize(("start", "first_id"), [(1, 0), (11, 0), (11, 10), (11, None)])
def test_samples_as_async_batches_agree(samples_dir: Path, start: int, first_id: int | None) -> None:
    data = with_page_ids(samples_dir, first_id)
    result = assert_fast_path_agrees(data, start_page=start, end_page=start + 2)
    assert [page.page for page in result.pages] == [start, start + 1, start + 2]


@pytest.mark.parametrize("snake_case", [False, True])
@pytest.mark.parametrize("first_page_id", [0, 20])
def test_emulator_batches_agree(snake_case: bool, first_page_id: int) -> None:
    document = SyntheticDocument([(1240, 1754), (1275, 1650), (800, 600)], 60, "seed")
    payload = build_ocr_response(
        [document.page(i) for i in range(3)],
        model_version="ocr-2.2.1",
        first_page_id=first_page_id,
        snake_case=snake_case,
    )
    for key in ("text", "confidence", "numBilledPages", "usage"):
        data = json.dumps(payload).encode()
        result = assert_fast_path_agrees(data, start_page=21, end_page=23, source="batch 3")
        assert result.word_count == 180
        payload.pop(key, None)  # the next round without it: derived or absent on both paths


def test_a_response_without_text_reads_as_its_page_texts(samples_dir: Path) -> None:
    payload = json.loads((samples_dir / "multi_page.ocr.json").read_bytes())
    del payload["text"]
    result = assert_fast_path_agrees(json.dumps(payload).encode())
    assert result.text == "".join(page["text"] for page in payload["pages"])


# --- generated responses, ordinary and odd ---------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ordinary_response())
def test_ordinary_generated_responses_agree_on_the_fast_path(case: tuple[bytes, int]) -> None:
    data, start = case
    n_pages = len(json.loads(data)["pages"])
    assert_fast_path_agrees(data, start_page=start, end_page=start + n_pages - 1)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response())
def test_generated_responses_agree_or_fail_alike(case: tuple[bytes, int, int | None]) -> None:
    data, start, end = case
    if end is not None and end < start:
        end = None
    assert_same(data, start_page=start, end_page=end, source="request r batch 1")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        b'{"pages": [] } {"pages": []}',
        b'{"error": {"message": "quota exceeded", "type": "rate_limit"}}',
        b'{"pages": [{"width": 9, "height": 9, "text": "\\ud800", "words": []}]}',
        b'{"pages": [{"width": 9, "height": 9, "text": "a", "words": []}], "text": 3}',
        b'{"pages": [{"width": 9, "height": 9, "text": "a", "words": []}], "pages": 3}',
        b'{"pages": [{"id": 0, "width": 100, "height": 100, "text": "", "words": [{"id": 0, "text": "a", '
        b'"boundingBox": {"vertices": [{"x": 1, "y": 1}, {"x": 2, "y": 1}, {"x": 2, "y": 2}, '
        b'{"x": 1, "y": NaN}]}}]}]}',
        b'{"pages": [{"id": 0, "width": 100, "height": 100, "text": "", "words": [{"id": 0, "text": "a", '
        b'"boundingBox": {"vertices": [{"x": 1, "y": 1}, {"x": 2, "y": 1}, {"x": 2, "y": 2}, '
        b'{"x": 1, "y": 1, "x": 300}]}}]}]}',
        b'{"pages": [{"id": 0, "width": 100, "height": 100, "text": "", "words": [{"id": 0, "text": "a", '
        b'"boundingBox": {"vertices": [{"x": 1, "y": 1}, {"x": 2, "y": 1}, {"x": 2, "y": 2}]}}]}]}',
        b'\xef\xbb\xbf{"pages": []}',
    ],
)
def test_broken_or_odd_bytes_behave_like_the_reference(data: bytes) -> None:
    assert_same(data, source="batch")
    assert_same(data, start_page=3, end_page=3, source="batch")


def test_an_unusual_response_is_handed_out_as_the_reference_parsed_it(samples_dir: Path) -> None:
    payload = json.loads((samples_dir / "multi_page.ocr.json").read_bytes())
    payload["pages"].reverse()  # out of id order: the reference sorts them
    data = json.dumps(payload).encode()
    parsed = parse_batch(data)
    assert parsed.columns is None
    assert parsed.result == parse_ocr_response(data)
    assert tuple(pages_of(parsed)) == parsed.result.pages
    assert result_of(parsed) is parsed.result
    assert [page.page for page in parsed.result.pages] == [1, 2, 3]


_WORD = (
    b'"boundingBox": {"vertices": [{"x": 1, "y": 1}, {"x": 2, "y": 1}, {"x": 2, "y": 2}, {"x": 1, "y": 2}]}'
)


@pytest.mark.parametrize(
    "data",
    [
        b'{"pages": [{"width": 9, "height": 9, "text": "a", "words": [{"id": 0, "text": "\xc3", '
        + _WORD
        + b"}]}]}",
        b'{"pages": [{"width": 9, "height": 9, "text": "\xc3", "words": []}]}',
        b'{"modelVersion": "\xc3", "pages": [{"width": 9, "height": 9, "text": "a", "words": []}]}',
    ],
)
def test_a_cut_utf8_sequence_is_refused_by_every_parser(data: bytes) -> None:
    """pyarrow's reader lets a truncated UTF-8 sequence through in a string; JSON does not."""
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        parse_ocr_response(data)
    assert_same(data)
    assert outcome(parse_ocr_batch, data)[0] == "error"


@pytest.mark.parametrize(("start", "end"), [(0, None), (True, None), (2, 1), (1, 1.0), ("1", None)])
def test_bad_page_spans_are_refused_alike(samples_dir: Path, start: Any, end: Any) -> None:
    data = (samples_dir / "check_box.ocr.json").read_bytes()
    fast = outcome(parse_ocr_result, data, start_page=start, end_page=end)
    assert fast[0] == "error"
    assert fast == outcome(parse_ocr_response, data, start_page=start, end_page=end)


def test_a_decoded_payload_is_parsed_by_the_reference(samples_dir: Path) -> None:
    data = (samples_dir / "dpi_150.ocr.json").read_bytes()
    assert assert_same(json.loads(data)) == parse_ocr_response(data)
    assert assert_same(data.decode()) == parse_ocr_response(data)


# --- the words built a column at a time are ordinary Words -----------------------------------------


def test_fast_words_are_frozen_hashable_words(samples_dir: Path) -> None:
    result = assert_fast_path_agrees((samples_dir / "water_mark.ocr.json").read_bytes())
    word = result.pages[0].words[0]
    built = Word(word.id, word.text, word.confidence, word.polygon)
    assert type(word) is Word
    assert {f.name: getattr(word, f.name) for f in fields(Word)} == {
        f.name: getattr(built, f.name) for f in fields(Word)
    }
    assert hash(word) == hash(built)
    assert replace(word, text="x") == replace(built, text="x")
    for side in ("left", "top", "right", "bottom"):
        assert getattr(word, side) == getattr(built, side)
    assert all(type(point) is tuple and len(point) == 2 for point in word.polygon)
    with pytest.raises(FrozenInstanceError):
        word.text = "changed"  # type: ignore[misc]
    assert not hasattr(word, "__dict__")


# --- through the hook ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snake_case", "batch_page_ids"), [(False, "relative"), (False, "absolute"), (True, "relative")]
)
def test_the_hook_hands_out_what_the_reference_makes_of_each_download(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    make_pdf: Callable[..., bytes],
    snake_case: bool,
    batch_page_ids: str,
) -> None:
    server = make_emulator(snake_case=snake_case, batch_page_ids=batch_page_ids)
    hook = UpstageOCRHook(connect(server.url))
    request_id = hook.submit(load_document(make_pdf(23), name="doc.pdf"))
    info = wait_done(hook, request_id)
    expected = []
    for batch in sorted(info.batches, key=lambda b: b.start_page):
        assert batch.download_url is not None
        data = requests.get(batch.download_url, timeout=30).content
        expected.append(parse_ocr_response(data, start_page=batch.start_page, end_page=batch.end_page))
    batches = list(hook.iter_batches(request_id))
    assert batches == expected
    assert repr(batches) == repr(expected)
    pages = list(hook.iter_results(request_id))
    assert pages == [page for result in expected for page in result.pages]
    assert [page.page for page in pages] == list(range(1, 24))
    hook.close()
