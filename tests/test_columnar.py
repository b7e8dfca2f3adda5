"""The vectorized parser gives exactly what the reference parser + conversion give, errors included."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.emulator_fixtures import wait_done
from upstage_provider.columnar import OCRBatch, from_result, parse_ocr_batch
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.exceptions import MalformedResponseError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.models import parse_ocr_response

SAMPLES = ("check_box", "dpi_150", "multi_page", "water_mark")
Json = dict[str, Any]
Outcome = tuple[Any, ...]


def reference(data: bytes, **kwargs: Any) -> OCRBatch:
    return from_result(parse_ocr_response(data, **kwargs))


def outcome(parse: Callable[..., OCRBatch], data: bytes, **kwargs: Any) -> Outcome:
    """Everything a caller can observe: the columns and facts, or the error message."""
    try:
        batch = parse(data, **kwargs)
    except MalformedResponseError as exc:
        return ("error", str(exc))
    return (
        "ok",
        batch.words.to_pylist(),
        batch.pages.to_pylist(),
        batch.words.schema,
        batch.pages.schema,
        batch.model_version,
        batch.api_version,
        batch.confidence,
        batch.billed_pages,
        batch.page_ids,
    )


def assert_same(data: bytes, **kwargs: Any) -> OCRBatch | None:
    """Both ways agree; returns the fast batch when the payload parses."""
    fast = outcome(parse_ocr_batch, data, **kwargs)
    slow = outcome(reference, data, **kwargs)
    assert fast == slow
    return parse_ocr_batch(data, **kwargs) if fast[0] == "ok" else None


# --- real responses take the fast path and agree -----------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_recorded_samples_take_the_fast_path_and_match(name: str, samples_dir: Path) -> None:
    data = (samples_dir / f"{name}.ocr.json").read_bytes()  # pretty-printed, as recorded
    batch = assert_same(data, source=name)
    assert batch is not None
    assert batch.fast, "the recorded shape must not fall back to the reference parser"
    assert batch.words.num_rows == sum(len(p["words"]) for p in json.loads(data)["pages"])
    assert batch.billed_pages == json.loads(data)["numBilledPages"] == batch.page_count
    compact = json.dumps(json.loads(data), ensure_ascii=False, separators=(",", ":")).encode()
    assert assert_same(compact) is not None


def test_tables_are_bit_identical_not_just_equal(samples_dir: Path) -> None:
    data = (samples_dir / "multi_page.ocr.json").read_bytes()
    fast, slow = parse_ocr_batch(data), reference(data)
    assert fast.fast
    assert not slow.fast
    assert fast.words.equals(slow.words)
    assert fast.pages.equals(slow.pages)
    assert fast.words.schema.equals(slow.words.schema)


@pytest.mark.parametrize(
    ("snake_case", "batch_page_ids"), [(False, "relative"), (False, "absolute"), (True, "relative")]
)
def test_emulator_batches_match_through_the_hook(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    make_pdf: Callable[..., bytes],
    snake_case: bool,
    batch_page_ids: str,
) -> None:
    server = make_emulator(snake_case=snake_case, batch_page_ids=batch_page_ids)
    hook = UpstageOCRHook(connect(server.url))
    from upstage_provider.documents import load_document

    request_id = hook.submit(load_document(make_pdf(23), name="doc.pdf"))
    wait_done(hook, request_id)
    fast = list(hook.iter_arrow_batches(request_id))
    slow = [from_result(result) for result in hook.iter_batches(request_id)]
    assert [b.page_count for b in fast] == [10, 10, 3]
    assert all(b.fast for b in fast) or snake_case  # snake_case pages may lack a size
    for a, b in zip(fast, slow, strict=True):
        assert a.words.equals(b.words)
        assert a.pages.equals(b.pages)
        assert a.model_version == b.model_version
    pages = pa.concat_arrays([b.pages.column("page") for b in fast]).to_pylist()
    assert pages == list(range(1, 24))


# --- generated responses, ordinary and odd ------------------------------------------------------

coordinate = st.one_of(
    st.integers(min_value=0, max_value=1300),
    st.integers(min_value=-40, max_value=1800),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=-0.05, max_value=1.05),
    st.sampled_from([0, 1, 0.0, 1.0, 0.5, 1.019, -0.019, 1e12, True, None, "7"]),
)
confidence = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([None, 0, 1, 1.5, -0.1, "0.9"]),
)


@st.composite
def word(draw: st.DrawFn, box_key: str, pixel: bool) -> Json:
    if draw(st.integers(0, 9)) == 0:  # the odd one
        vertices: Any = [
            {"x": draw(coordinate), "y": draw(coordinate)} for _ in range(draw(st.integers(3, 5)))
        ]
    elif pixel:
        x, y = draw(st.integers(0, 1250)), draw(st.integers(0, 1760))
        w, h = draw(st.integers(0, 60)), draw(st.integers(0, 30))
        vertices = [{"x": x, "y": y}, {"x": x + w, "y": y}, {"x": x + w, "y": y + h}, {"x": x, "y": y + h}]
    else:
        vertices = [{"x": draw(st.floats(0.0, 1.0)), "y": draw(st.floats(0.0, 1.0))} for _ in range(4)]
    result: Json = {
        box_key: {"vertices": vertices},
        "id": draw(st.integers(0, 50)),
        "text": draw(st.text(max_size=6)),
    }
    if draw(st.booleans()):
        result["confidence"] = draw(confidence)
    if draw(st.integers(0, 19)) == 0:
        result[draw(st.sampled_from(["id", "text", box_key]))] = draw(st.sampled_from([None, 3, "x", -1]))
    return result


@st.composite
def response(draw: st.DrawFn) -> tuple[bytes, int, int | None]:
    snake = draw(st.booleans())
    box_key = "bounding_box" if snake else "boundingBox"
    pixel = draw(st.booleans())
    n_pages = draw(st.integers(0, 4))
    pages = []
    for index in range(n_pages):
        page: Json = {"words": draw(st.lists(word(box_key, pixel), max_size=5))}
        if draw(st.integers(0, 5)):
            page["id"] = index
        if draw(st.integers(0, 5)):
            page["width"] = draw(st.sampled_from([1240, 1275, 800]))
        if draw(st.integers(0, 5)):
            page["height"] = draw(st.sampled_from([1754, 1650, 600]))
        if draw(st.integers(0, 5)):
            page["text"] = " ".join(w["text"] for w in page["words"] if isinstance(w.get("text"), str))
        if draw(st.booleans()):
            page["confidence"] = draw(confidence)
        pages.append(page)
    if n_pages > 1 and draw(st.integers(0, 4)) == 0:
        pages.reverse()
    if n_pages > 1 and draw(st.integers(0, 6)) == 0:
        pages[0]["id"] = pages[-1].get("id", 0)
    payload: Json = {"pages": pages}
    if draw(st.booleans()):
        payload["metadata"] = {
            "pages": [{"page": i + 1, "width": 1000, "height": 1400} for i in range(n_pages)]
        }
    if snake:
        payload.update(model="ocr-x", api="2.0", usage={"pages": n_pages})
    else:
        payload.update(modelVersion="ocr-2.2.1", apiVersion="1.1", numBilledPages=n_pages)
    if draw(st.booleans()):
        payload["confidence"] = draw(confidence)
    if draw(st.integers(0, 9)) == 0:
        payload[draw(st.sampled_from(["modelVersion", "numBilledPages", "text", "pages"]))] = draw(
            st.sampled_from([None, 3, "x", [], {}])
        )
    data = json.dumps(payload, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))
    start = draw(st.integers(1, 30))
    end = draw(st.sampled_from([None, start + n_pages - 1, start + n_pages]))
    return data.encode(), start, end


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response())
def test_generated_responses_agree_with_the_reference(case: tuple[bytes, int, int | None]) -> None:
    data, start, end = case
    if end is not None and end < start:
        end = None
    assert_same(data, start_page=start, end_page=end, source="request r batch 1")


@st.composite
def ordinary_response(draw: st.DrawFn) -> tuple[bytes, int]:
    """What the API sends, with everything it may vary: both spellings, pixels or fractions,
    boxes a little past the edge, missing confidences, any Unicode text."""
    snake = draw(st.booleans())
    box_key = "bounding_box" if snake else "boundingBox"
    pixel = draw(st.booleans())
    start = draw(st.integers(1, 990))
    first_id = draw(st.sampled_from([0, start - 1]))
    pages = []
    for index in range(draw(st.integers(1, 4))):
        width, height = draw(st.sampled_from([(1240, 1754), (1275, 1650), (800, 600)]))
        words = []
        for word_id in range(draw(st.integers(1 if index == 0 else 0, 6))):
            if pixel:
                vertices = [
                    {"x": draw(st.integers(-15, width + 15)), "y": draw(st.integers(-10, height + 10))}
                    for _ in range(4)
                ]
            else:
                vertices = [
                    {"x": draw(st.floats(-0.019, 1.019)), "y": draw(st.floats(-0.019, 1.019))}
                    for _ in range(4)
                ]
                vertices[0]["x"] = draw(st.floats(0.001, 0.999).filter(lambda v: not v.is_integer()))
            word: Json = {box_key: {"vertices": vertices}, "id": word_id, "text": draw(st.text(max_size=8))}
            if draw(st.integers(0, 4)):
                word["confidence"] = draw(st.one_of(st.floats(0.0, 1.0), st.none()))
            words.append(word)
        pages.append(
            {
                "confidence": draw(st.floats(0.0, 1.0)),
                "height": height,
                "id": first_id + index,
                "text": " ".join(w["text"] for w in words),
                "width": width,
                "words": words,
            }
        )
    if snake:
        payload: Json = {"api": "2.0", "model": "ocr", "pages": pages, "usage": {"pages": len(pages)}}
    else:
        payload = {
            "apiVersion": "1.1",
            "modelVersion": "ocr-2.2.1",
            "numBilledPages": len(pages),
            "pages": pages,
        }
    payload["confidence"] = draw(st.floats(0.0, 1.0))
    data = json.dumps(payload, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 4])))
    return data.encode(), start


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ordinary_response())
def test_ordinary_generated_responses_take_the_fast_path_and_agree(case: tuple[bytes, int]) -> None:
    data, start = case
    n_pages = len(json.loads(data)["pages"])
    batch = assert_same(data, start_page=start, end_page=start + n_pages - 1)
    assert batch is not None
    assert batch.fast


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"pages": [] } {"pages": []}',
        b'{"error": {"message": "quota exceeded", "type": "rate_limit"}}',
        b'{"pages": [{"words": [], "width": 10, "height": 10}], "pages": 3}',
        b'{"pages": [{"id": 0, "width": 100, "height": 100, "text": "", "words": [{"id": 0, "text": "a", '
        b'"boundingBox": {"vertices": [{"x": 1, "y": 1}, {"x": 2, "y": 1}, {"x": 2, "y": 2}, '
        b'{"x": 1, "y": NaN}]}}]}]}',
        b'{"pages": [{"id": 0, "width": 100, "height": 100, "text": "", "words": [{"id": 0, "text": "a", '
        b'"boundingBox": {"vertices": [{"x": 1, "y": 1}, {"x": 2, "y": 1}, {"x": 2, "y": 2}, '
        b'{"x": 1, "y": 1, "x": 300}]}}]}]}',
        b'\xef\xbb\xbf{"pages": []}',
    ],
)
def test_broken_or_odd_bytes_behave_like_the_reference(data: bytes) -> None:
    assert_same(data, source="batch")


def test_a_lone_surrogate_is_a_malformed_response_not_a_crash() -> None:
    data = b'{"pages": [{"width": 9, "height": 9, "text": "\\ud800", "words": []}]}'
    with pytest.raises(MalformedResponseError, match=r"batch 2: a text holds '\\ud800'"):
        parse_ocr_batch(data, source="batch 2")


def test_a_box_past_the_edge_tolerance_gets_the_reference_message(samples_dir: Path) -> None:
    payload = json.loads((samples_dir / "dpi_150.ocr.json").read_bytes())
    payload["pages"][0]["words"][5]["boundingBox"]["vertices"][1]["x"] = 5000
    data = json.dumps(payload).encode()
    with pytest.raises(MalformedResponseError, match=r"pages\[0\]\.words\[5\].*lies outside the page"):
        parse_ocr_batch(data, source="dpi")
    assert_same(data, source="dpi")


def test_a_box_within_tolerance_is_clamped_on_the_fast_path(samples_dir: Path) -> None:
    payload = json.loads((samples_dir / "dpi_150.ocr.json").read_bytes())
    width = payload["pages"][0]["width"]
    payload["pages"][0]["words"][0]["boundingBox"]["vertices"][1]["x"] = width + 10
    batch = assert_same(json.dumps(payload).encode())
    assert batch is not None
    assert batch.fast
    assert batch.words.column("right")[0].as_py() == 1.0


def with_page_ids(samples_dir: Path, first_id: int | None) -> bytes:
    """multi_page (3 pages, the fast path's shape) with its page ids counted from ``first_id``."""
    payload = json.loads((samples_dir / "multi_page.ocr.json").read_bytes())
    for offset, page in enumerate(payload["pages"]):
        if first_id is None:
            del page["id"]
        else:
            page["id"] = first_id + offset
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("start", "first_id", "numbering"),
    [(1, 0, None), (11, 0, "relative"), (11, 10, "absolute"), (3, 2, "absolute"), (11, None, None)],
)
def test_page_ids_of_either_numbering_take_the_fast_path(
    samples_dir: Path, start: int, first_id: int | None, numbering: str | None
) -> None:
    data = with_page_ids(samples_dir, first_id)
    batch = assert_same(data, start_page=start, end_page=start + 2)
    assert batch is not None
    assert batch.fast
    assert batch.page_ids == numbering
    assert batch.pages.column("page").to_pylist() == [start, start + 1, start + 2]


@pytest.mark.parametrize(
    ("start", "first_id", "expected"),
    [
        (
            1,
            10,
            "page ids 10-12 do not match 0-2 (batch-relative and absolute ids agree for a batch from page 1)",
        ),
        (11, 20, "page ids 20-22 match neither 0-2 (batch-relative) nor 10-12 (absolute)"),
        (11, 1, "page ids 1-3 match neither 0-2 (batch-relative) nor 10-12 (absolute)"),
    ],
)
def test_page_ids_of_other_pages_get_the_reference_message(
    samples_dir: Path, start: int, first_id: int, expected: str
) -> None:
    data = with_page_ids(samples_dir, first_id)
    source = "request r batch 1"
    with pytest.raises(MalformedResponseError) as err:
        parse_ocr_batch(data, start_page=start, end_page=start + 2, source=source)
    pages = f"{start}-{start + 2}"
    assert (
        str(err.value) == f"{source} (pages {pages}): {expected}: the response holds other pages than {pages}"
    )
    assert_same(data, start_page=start, end_page=start + 2, source=source)


def test_parquet_files_equal_those_of_the_reference_conversion(samples_dir: Path, tmp_path: Path) -> None:
    """What lands on disk is the same, metadata included, whichever parser read the batches."""
    import pyarrow.parquet as pq

    from upstage_provider.parquet import WRITE_ID_KEY, DocumentMeta, write_ocr_parquet

    def _without_write_id(table: Any) -> dict[bytes, bytes]:
        return {k: v for k, v in (table.schema.metadata or {}).items() if k != WRITE_ID_KEY.encode()}

    stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
    meta = DocumentMeta(document_uri="s3://bucket/in/doc.pdf", document_sha256="a" * 64, request_id="r1")
    blobs = [(samples_dir / f"{name}.ocr.json").read_bytes() for name in SAMPLES]
    spans = []
    first = 1
    for data in blobs:
        pages = len(json.loads(data)["pages"])
        spans.append((data, first, first + pages - 1))
        first += pages
    fast = write_ocr_parquet(
        [parse_ocr_batch(d, start_page=a, end_page=b) for d, a, b in spans],
        output_uri=str(tmp_path / "fast"),
        meta=meta,
        processed_at=stamp,
    )
    slow = write_ocr_parquet(
        [parse_ocr_response(d, start_page=a, end_page=b) for d, a, b in spans],
        output_uri=str(tmp_path / "slow"),
        meta=meta,
        processed_at=stamp,
    )
    assert fast.words == slow.words > 0
    for kind in ("words_uri", "pages_uri"):
        got = pq.read_table(getattr(fast, kind).removeprefix("file://"))
        want = pq.read_table(getattr(slow, kind).removeprefix("file://"))
        # Each write has its own write id (it pairs a words file with its pages file).
        assert got.schema.metadata[WRITE_ID_KEY.encode()] != want.schema.metadata[WRITE_ID_KEY.encode()]
        assert got.replace_schema_metadata(_without_write_id(got)).equals(
            want.replace_schema_metadata(_without_write_id(want)), check_metadata=True
        ), kind
        assert got.num_rows > 0
    billed = sum(json.loads(d)["numBilledPages"] for d in blobs)
    assert fast.billed_pages == slow.billed_pages == billed == 6
    pages = pq.read_table(fast.pages_uri.removeprefix("file://"))
    assert pages.column("billed_pages").to_pylist() == [1] * 6  # not an all-null column that trivially agrees


@pytest.mark.parametrize(
    ("billed", "column"),
    [
        ({"numBilledPages": 3}, [1, 1, 1]),
        ({"numBilledPages": 2}, [1, 1, 0]),
        ({"numBilledPages": 5}, [1, 1, 3]),
        ({"numBilledPages": 0}, [0, 0, 0]),
        ({}, [None, None, None]),
        ({"numBilledPages": None}, [None, None, None]),
        ({"usage": {"pages": 3}}, [1, 1, 1]),
    ],
)
def test_both_conversions_give_the_same_billed_pages_column(
    samples_dir: Path, billed: Json, column: list[int | None]
) -> None:
    """The pages table's ``billed_pages`` is the same from bytes, from the reference and from dataclasses."""
    from upstage_provider.parquet import DocumentMeta, result_batches

    raw = json.loads((samples_dir / "multi_page.ocr.json").read_bytes())
    del raw["numBilledPages"]
    raw.update(billed)
    data = json.dumps(raw).encode()
    meta = DocumentMeta(document_uri="s3://bucket/in/doc.pdf", document_sha256="a" * 64, request_id="r1")
    stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
    fast = parse_ocr_batch(data, start_page=11, end_page=13)
    assert fast.fast
    tables = [
        result_batches(parsed, meta, stamp)[1]
        for parsed in (
            fast,
            reference(data, start_page=11, end_page=13),
            parse_ocr_response(data, start_page=11),
        )
    ]
    assert tables[0].column("billed_pages").to_pylist() == column
    assert tables[0].equals(tables[1])
    assert tables[0].equals(tables[2])
