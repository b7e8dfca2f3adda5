"""Parquet output: real Upstage samples written to real files and read back word by word."""

from __future__ import annotations

import collections
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import multiprocessing
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from hypothesis import given
from hypothesis import strategies as st
from upath import UPath

from tests import parquet_race
from upstage_provider import __version__, publish
from upstage_provider.exceptions import UpstageError
from upstage_provider.models import OCRResult, Page, Word, parse_ocr_response
from upstage_provider.parquet import (
    PAGES_SCHEMA,
    WORDS_SCHEMA,
    DocumentMeta,
    ParquetPairMismatchError,
    ParquetWriteError,
    WriteSummary,
    output_file_name,
    result_batches,
    write_ocr_parquet,
)

SAMPLES = ("check_box", "dpi_150", "multi_page", "water_mark")
DOCUMENTS = {"check_box": "check_box.png", "dpi_150": "dpi_150.jpg", "multi_page": "multi_page.pdf"}
DOCUMENTS["water_mark"] = "water_mark.jpg"
PROCESSED_AT = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=timezone.utc)


@dataclasses.dataclass(frozen=True)
class Sample:
    raw: dict[str, Any]
    result: OCRResult
    meta: DocumentMeta


def load_sample(samples_dir: Path, name: str, request_id: str | None = None) -> Sample:
    raw = json.loads((samples_dir / f"{name}.ocr.json").read_text(encoding="utf-8"))
    document = samples_dir / DOCUMENTS[name]
    meta = DocumentMeta(
        document_uri=document.as_uri(),
        document_sha256=hashlib.sha256(document.read_bytes()).hexdigest(),
        request_id=request_id,
    )
    return Sample(raw=raw, result=parse_ocr_response(raw), meta=meta)


@pytest.fixture(params=SAMPLES)
def sample(request: pytest.FixtureRequest, samples_dir: Path) -> Sample:
    return load_sample(samples_dir, request.param)


@pytest.fixture
def multi_page(samples_dir: Path) -> Sample:
    return load_sample(samples_dir, "multi_page", request_id="req-0001")


def per_page(result: OCRResult) -> list[OCRResult]:
    """The sync result split the way an async request arrives: one OCRResult per batch, each
    billing its own page (as every batch's ``numBilledPages`` counts its own pages)."""
    return [
        dataclasses.replace(result, pages=(page,), text=page.text, billed_pages=1) for page in result.pages
    ]


def write(results: Any, out: Any, meta: DocumentMeta, processed_at: datetime = PROCESSED_AT) -> WriteSummary:
    return write_ocr_parquet(results, output_uri=out, meta=meta, processed_at=processed_at)


def files_in(folder: Path) -> list[str]:
    """Every entry, hidden ones included: temporaries must not survive."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def memory_root() -> str:
    return f"memory://parquet-tests/{uuid.uuid4().hex}"


# --- the contract -------------------------------------------------------------------------------


def test_words_schema_is_the_public_contract() -> None:
    assert [(f.name, str(f.type)) for f in WORDS_SCHEMA] == [
        ("document_uri", "string"),
        ("document_sha256", "string"),
        ("request_id", "string"),
        ("model_version", "string"),
        ("page", "int32"),
        ("word_id", "int64"),
        ("text", "string"),
        ("confidence", "double"),
        ("left", "double"),
        ("top", "double"),
        ("right", "double"),
        ("bottom", "double"),
        ("polygon", "list<item: struct<x: double, y: double>>"),
        ("processed_at", "timestamp[us, tz=UTC]"),
    ]


def test_pages_schema_is_the_public_contract() -> None:
    assert [(f.name, str(f.type)) for f in PAGES_SCHEMA] == [
        ("document_uri", "string"),
        ("document_sha256", "string"),
        ("request_id", "string"),
        ("model_version", "string"),
        ("page", "int32"),
        ("width", "int32"),
        ("height", "int32"),
        ("text", "string"),
        ("confidence", "double"),
        ("word_count", "int32"),
        ("processed_at", "timestamp[us, tz=UTC]"),
        ("billed_pages", "int32"),
    ]


# --- real samples, word by word -----------------------------------------------------------------


def test_sample_words_match_the_raw_json(sample: Sample, tmp_path: Path) -> None:
    summary = write([sample.result], tmp_path, sample.meta)
    table = pq.read_table(summary.words_uri)
    assert table.schema.equals(WORDS_SCHEMA)
    rows = table.to_pylist()

    expected = [
        (page_index + 1, page, word)
        for page_index, page in enumerate(sample.raw["pages"])
        for word in page["words"]
    ]
    assert len(rows) == len(expected) == summary.words > 0
    for row, (page_number, page, word) in zip(rows, expected, strict=True):
        width, height = page["width"], page["height"]
        vertices = word["boundingBox"]["vertices"]
        xs = [v["x"] / width for v in vertices]
        ys = [v["y"] / height for v in vertices]
        assert row["page"] == page_number
        assert row["word_id"] == word["id"]
        assert row["text"] == word["text"]
        assert row["confidence"] == pytest.approx(word["confidence"])
        assert row["left"] == pytest.approx(min(xs))
        assert row["top"] == pytest.approx(min(ys))
        assert row["right"] == pytest.approx(max(xs))
        assert row["bottom"] == pytest.approx(max(ys))
        assert [p["x"] for p in row["polygon"]] == pytest.approx(xs)  # the API's vertex order
        assert [p["y"] for p in row["polygon"]] == pytest.approx(ys)
        assert row["document_uri"] == sample.meta.document_uri
        assert row["document_sha256"] == sample.meta.document_sha256
        assert row["request_id"] is None
        assert row["model_version"] == sample.raw["modelVersion"]
        assert row["processed_at"] == PROCESSED_AT


def test_sample_pages_match_the_raw_json(sample: Sample, tmp_path: Path) -> None:
    summary = write([sample.result], tmp_path, sample.meta)
    table = pq.read_table(summary.pages_uri)
    assert table.schema.equals(PAGES_SCHEMA)
    rows = table.to_pylist()
    raw_pages = sample.raw["pages"]
    assert len(rows) == len(raw_pages) == summary.pages
    for number, (row, page) in enumerate(zip(rows, raw_pages, strict=True), start=1):
        assert row["page"] == number
        assert (row["width"], row["height"]) == (page["width"], page["height"])
        assert row["text"] == page["text"]
        assert row["confidence"] == pytest.approx(page["confidence"])
        assert row["word_count"] == len(page["words"])
        assert row["model_version"] == sample.raw["modelVersion"]
    assert summary.model_version == sample.raw["modelVersion"]


def test_types_and_boxes(multi_page: Sample, tmp_path: Path) -> None:
    summary = write([multi_page.result], tmp_path, multi_page.meta)
    words = pq.read_table(summary.words_uri)
    assert words.schema.field("page").type == pa.int32()
    assert words.schema.field("word_id").type == pa.int64()
    assert words.schema.field("polygon").type == pa.list_(
        pa.struct([("x", pa.float64()), ("y", pa.float64())])
    )
    assert words.schema.field("processed_at").type == pa.timestamp("us", tz="UTC")
    for column in ("left", "top", "right", "bottom"):
        values = words.column(column).to_pylist()
        assert all(0.0 <= v <= 1.0 for v in values), column
    points = words.column("polygon").combine_chunks().flatten()
    assert all(0.0 <= v <= 1.0 for v in points.field("x").to_pylist() + points.field("y").to_pylist())
    assert set(pq.read_table(summary.words_uri, columns=["request_id"]).column(0).to_pylist()) == {"req-0001"}
    # Korean text survives the round trip (page 2 is a Korean recipe).
    assert any("타코야키" in text for text in words.column("text").to_pylist())


def reference_batches(
    result: OCRResult, meta: DocumentMeta, processed_at: datetime
) -> tuple[pa.Table, pa.Table]:
    """The obvious conversion, row dicts and ``from_pylist``: slow, but plainly right."""
    common = {
        "document_uri": meta.document_uri,
        "document_sha256": meta.document_sha256,
        "request_id": meta.request_id,
        "model_version": result.model_version,
    }
    words = [
        {
            **common,
            "page": page.page,
            "word_id": word.id,
            "text": word.text,
            "confidence": word.confidence,
            "left": word.left,
            "top": word.top,
            "right": word.right,
            "bottom": word.bottom,
            "polygon": [{"x": x, "y": y} for x, y in word.polygon],
            "processed_at": processed_at,
        }
        for page in result.pages
        for word in page.words
    ]
    pages = [
        {
            **common,
            "page": page.page,
            "width": page.width,
            "height": page.height,
            "text": page.text,
            "confidence": page.confidence,
            "word_count": len(page.words),
            "processed_at": processed_at,
            "billed_pages": reference_billed(result.billed_pages, index, len(result.pages)),
        }
        for index, page in enumerate(result.pages)
    ]
    return pa.Table.from_pylist(words, schema=WORDS_SCHEMA), pa.Table.from_pylist(pages, schema=PAGES_SCHEMA)


def reference_billed(billed: int | None, index: int, pages: int) -> int | None:
    """docs/parquet.md's rule, page by page: 1 while the count lasts, the excess on the last page."""
    if billed is None:
        return None
    return (1 if index < billed else 0) + (max(0, billed - pages) if index == pages - 1 else 0)


@pytest.mark.parametrize("request_id", [None, "req-42"])
def test_fast_path_equals_reference_conversion(sample: Sample, request_id: str | None) -> None:
    meta = dataclasses.replace(sample.meta, request_id=request_id)
    words, pages = result_batches(sample.result, meta, PROCESSED_AT)
    expected_words, expected_pages = reference_batches(sample.result, meta, PROCESSED_AT)
    assert pa.Table.from_batches([words]).equals(expected_words)
    assert pa.Table.from_batches([pages]).equals(expected_pages)


def test_fast_path_handles_unknown_values() -> None:
    word = Word(id=7, text="x", confidence=None, polygon=((0.1, 0.2), (0.3, 0.2), (0.3, 0.4), (0.1, 0.4)))
    page = Page(page=11, width=None, height=None, text="x", confidence=None, words=(word,))
    empty = Page(page=12, width=None, height=None, text="", confidence=None, words=())
    result = OCRResult(
        pages=(page, empty),
        model_version=None,
        api_version=None,
        confidence=None,
        text="x",
        billed_pages=None,
    )
    meta = DocumentMeta(document_uri="s3://b/doc.pdf", document_sha256="0" * 64)
    words, pages = result_batches(result, meta, PROCESSED_AT)
    expected_words, expected_pages = reference_batches(result, meta, PROCESSED_AT)
    assert pa.Table.from_batches([words]).equals(expected_words)
    assert pa.Table.from_batches([pages]).equals(expected_pages)
    assert pages.column("word_count").to_pylist() == [1, 0]
    assert pages.column("width").null_count == 2


def test_processed_at_is_stored_in_utc(multi_page: Sample) -> None:
    seoul = PROCESSED_AT.astimezone(timezone(timedelta(hours=9)))
    words, _ = result_batches(multi_page.result, multi_page.meta, seoul)
    assert words.column("processed_at")[0].as_py() == PROCESSED_AT
    with pytest.raises(ValueError, match="timezone-aware"):
        result_batches(multi_page.result, multi_page.meta, datetime(2026, 11, 24))


# --- batches, laziness --------------------------------------------------------------------------


def test_many_batches_give_the_same_rows_as_one(multi_page: Sample, tmp_path: Path) -> None:
    one = write([multi_page.result], tmp_path / "one", multi_page.meta)
    many = write(per_page(multi_page.result), tmp_path / "many", multi_page.meta)
    for a, b in ((one.words_uri, many.words_uri), (one.pages_uri, many.pages_uri)):
        assert pq.read_table(a).equals(pq.read_table(b))
    assert pq.ParquetFile(many.words_uri).metadata.num_row_groups == 3
    assert pq.ParquetFile(many.pages_uri).metadata.num_row_groups == 3
    assert (many.pages, many.words) == (one.pages, one.words) == (3, 334)


def test_writer_consumes_batches_lazily(multi_page: Sample, tmp_path: Path) -> None:
    """Each batch is written before the next is asked for: a temp file exists and holds data."""
    words_dir = tmp_path / "words"
    seen: list[tuple[int, list[str], int]] = []

    def batches() -> Iterator[OCRResult]:
        for index, batch in enumerate(per_page(multi_page.result)):
            temps = sorted(p.name for p in words_dir.glob(".*")) if words_dir.exists() else []
            size = sum((words_dir / name).stat().st_size for name in temps)
            seen.append((index, temps, size))
            yield batch

    write(batches(), tmp_path, multi_page.meta)
    assert seen[0] == (0, [], 0)
    name = output_file_name(multi_page.meta.document_uri)
    for index, temps, size in seen[1:]:
        assert len(temps) == 1, index
        assert re.fullmatch(rf"\.{re.escape(name)}\.tmp-[0-9a-f]{{32}}", temps[0])
        assert size > 0, f"batch {index - 1} was not written before batch {index} was pulled"
    assert files_in(words_dir) == [name]


def test_empty_batches_add_no_row_groups(multi_page: Sample, tmp_path: Path) -> None:
    empty = dataclasses.replace(multi_page.result, pages=(), text="")
    summary = write([empty, multi_page.result, empty], tmp_path, multi_page.meta)
    assert pq.ParquetFile(summary.words_uri).metadata.num_row_groups == 1
    assert pq.read_metadata(summary.words_uri).metadata[b"upstage.batches"] == b"3"


def test_no_results_still_write_empty_files(multi_page: Sample, tmp_path: Path) -> None:
    """An empty run replaces an earlier file too, so a rerun never leaves stale rows."""
    write([multi_page.result], tmp_path, multi_page.meta)
    summary = write([], tmp_path, multi_page.meta)
    assert (summary.words, summary.pages, summary.model_version) == (0, 0, None)
    assert pq.read_table(summary.words_uri).num_rows == 0
    assert pq.read_table(summary.pages_uri).schema.equals(PAGES_SCHEMA)


# --- layout, reruns, readers --------------------------------------------------------------------


def test_rerun_replaces_and_second_document_adds(samples_dir: Path, tmp_path: Path) -> None:
    first = load_sample(samples_dir, "multi_page")
    second = load_sample(samples_dir, "check_box")
    summary = write([first.result], tmp_path, first.meta)
    assert summary.words_uri == str(tmp_path / "words" / output_file_name(first.meta.document_uri))
    assert summary.pages_uri == str(tmp_path / "pages" / output_file_name(first.meta.document_uri))
    write(per_page(first.result), tmp_path, first.meta)
    assert files_in(tmp_path / "words") == [Path(summary.words_uri).name]
    assert files_in(tmp_path / "pages") == [Path(summary.pages_uri).name]
    assert ds.dataset(tmp_path / "words").count_rows() == 334

    write([second.result], tmp_path, second.meta)
    assert len(files_in(tmp_path / "words")) == len(files_in(tmp_path / "pages")) == 2
    assert ds.dataset(tmp_path / "words").count_rows() == 334 + 31
    assert ds.dataset(tmp_path / "pages").count_rows() == 3 + 1
    count = duckdb.execute("select count(*) from read_parquet(?)", [f"{tmp_path}/words/**/*.parquet"])
    assert count.fetchall() == [(334 + 31,)]
    per_doc = duckdb.execute(
        "select document_uri, count(*) from read_parquet(?) group by 1 order by 1",
        [f"{tmp_path}/words/*.parquet"],
    ).fetchall()
    assert per_doc == sorted([(first.meta.document_uri, 334), (second.meta.document_uri, 31)])


def test_partition_goes_under_each_table(multi_page: Sample, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    name = output_file_name(multi_page.meta.document_uri)
    first = write_ocr_parquet(
        [multi_page.result], output_uri=lake, meta=multi_page.meta, partition="ds=2026-11-24"
    )
    write_ocr_parquet([multi_page.result], output_uri=lake, meta=multi_page.meta, partition="ds=2026-11-25/")
    assert first.words_uri == str(lake / "words" / "ds=2026-11-24" / name)
    assert first.pages_uri == str(lake / "pages" / "ds=2026-11-24" / name)
    assert first.partition == "ds=2026-11-24"
    assert files_in(lake) == ["pages", "words"], "no lock file is left at the root"

    # As docs/parquet.md shows: each table folder is one dataset with ds as a column.
    words = ds.dataset(lake / "words", partitioning="hive")
    table = words.to_table(filter=ds.field("ds") == "2026-11-24")
    assert table.num_rows == 334
    assert table.schema.names == [*WORDS_SCHEMA.names, "ds"]
    assert ds.dataset(lake / "pages", partitioning="hive").count_rows() == 2 * 3
    # Within one partition the folder reads as usual.
    assert ds.dataset(lake / "words" / "ds=2026-11-24").count_rows() == 334

    rows = duckdb.execute(
        "select ds::varchar, count(*) from read_parquet(?, hive_partitioning = true) group by 1 order by 1",
        [f"{lake}/words/*/*.parquet"],
    ).fetchall()
    assert rows == [("2026-11-24", 334), ("2026-11-25", 334)]


def test_several_partition_levels(multi_page: Sample, tmp_path: Path) -> None:
    summary = write_ocr_parquet(
        [multi_page.result], output_uri=tmp_path, meta=multi_page.meta, partition="year=2026/month=11"
    )
    assert summary.pages_uri.endswith(
        "/pages/year=2026/month=11/" + output_file_name(multi_page.meta.document_uri)
    )
    table = ds.dataset(tmp_path / "pages", partitioning="hive").to_table()
    assert set(table["month"].to_pylist()) == {11}


def test_without_partition_the_layout_is_unchanged(multi_page: Sample, tmp_path: Path) -> None:
    summary = write([multi_page.result], tmp_path, multi_page.meta)
    assert summary.words_uri == str(tmp_path / "words" / output_file_name(multi_page.meta.document_uri))
    assert summary.partition is None


@pytest.mark.parametrize(
    ("partition", "problem"),
    [
        ("", "empty"),
        ("/ds=2026-11-24", "starts with '/'"),
        ("ds=2026-11-24/../pages", "contains '..'"),
        ("ds=..", "contains '..'"),
        ("_ds=1", "starts with '_'"),
        (".ds=1", "starts with '.'"),
        ("2026-11-24", "is not key=value"),
        ("ds=", "is not key=value"),
        ("ds=1//b=2", "is not key=value"),
    ],
)
def test_bad_partitions_are_refused_before_anything_is_written(
    multi_page: Sample, tmp_path: Path, partition: str, problem: str
) -> None:
    def results() -> Iterator[OCRResult]:
        raise AssertionError("results must not be read")
        yield multi_page.result

    with pytest.raises(ValueError, match=re.escape(problem)) as caught:
        write_ocr_parquet(results(), output_uri=tmp_path, meta=multi_page.meta, partition=partition)
    assert "Hive-style partition" in str(caught.value)
    assert files_in(tmp_path) == []


def test_memory_uri_and_upath(multi_page: Sample) -> None:
    root = memory_root()
    summary = write(per_page(multi_page.result), root, multi_page.meta)
    name = output_file_name(multi_page.meta.document_uri)
    assert summary.words_uri.startswith("memory://")
    assert summary.words_uri.endswith(f"/words/{name}")
    fs = fsspec.filesystem("memory")
    with fs.open(summary.words_uri, "rb") as handle:
        assert pq.read_table(handle).num_rows == 334

    path = UPath(memory_root())
    summary = write([multi_page.result], path, multi_page.meta)
    assert (path / "words" / name).exists()
    assert [p.name for p in (path / "pages").iterdir()] == [name]
    dataset = ds.dataset((path / "words").path, filesystem=path.fs)
    assert dataset.count_rows() == 334


def test_airflow_object_storage_path(multi_page: Sample, tmp_path: Path) -> None:
    """What the operator passes: its own filesystem (and connection) is used, not a re-parsed URI."""
    import airflow.sdk as sdk

    out = sdk.ObjectStoragePath(f"file://{tmp_path}")
    summary = write_ocr_parquet(
        [multi_page.result], output_uri=out, meta=multi_page.meta, partition="ds=2026-11-24"
    )
    name = output_file_name(multi_page.meta.document_uri)
    assert summary.words_uri == str(tmp_path / "words" / "ds=2026-11-24" / name)
    assert pq.read_table(summary.pages_uri).num_rows == 3


def test_file_uri_is_accepted(multi_page: Sample, tmp_path: Path) -> None:
    summary = write([multi_page.result], tmp_path.as_uri(), multi_page.meta)
    assert summary.words_uri == str(tmp_path / "words" / output_file_name(multi_page.meta.document_uri))
    assert pq.read_table(summary.words_uri).num_rows == 334


def test_metadata_compression_and_log(
    multi_page: Sample, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="upstage_provider.parquet"):
        summary = write(per_page(multi_page.result), tmp_path, multi_page.meta)
    for uri, table in ((summary.words_uri, "words"), (summary.pages_uri, "pages")):
        footer = {k.decode(): v.decode() for k, v in pq.read_metadata(uri).metadata.items()}
        assert footer["upstage.document_uri"] == multi_page.meta.document_uri
        assert footer["upstage.document_sha256"] == multi_page.meta.document_sha256
        assert footer["upstage.request_id"] == "req-0001"
        assert footer["upstage.model_version"] == "ocr-2.2.1"
        assert footer["upstage.provider_version"] == __version__
        assert footer["upstage.source"] == "upstage-ocr-async"
        assert footer["upstage.processed_at"] == PROCESSED_AT.isoformat()
        assert json.loads(footer["upstage.model_versions"]) == ["ocr-2.2.1"]
        counts = (footer["upstage.batches"], footer["upstage.pages"], footer["upstage.words"])
        assert counts == ("3", "3", "334")
        # What is known at open is in the Arrow schema too, so dataset readers see it.
        assert pq.read_schema(uri).metadata[b"upstage.document_uri"] == multi_page.meta.document_uri.encode()
        parquet = pq.ParquetFile(uri).metadata
        for group in range(parquet.num_row_groups):
            row_group = parquet.row_group(group)
            assert {row_group.column(i).compression for i in range(row_group.num_columns)} == {"ZSTD"}, table
    assert any(
        "334 words" in r.getMessage() and "3 pages" in r.getMessage() and "2 files" in r.getMessage()
        for r in caplog.records
    )


# --- billed pages --------------------------------------------------------------------------------


def billed_sum(uri: str) -> Any:
    """What a data engineer asks the pages table: ``SELECT sum(billed_pages)``."""
    return duckdb.execute("select sum(billed_pages) from read_parquet(?)", [uri]).fetchall()[0][0]


@pytest.mark.parametrize(
    ("billed", "expected", "column"),
    [
        ((1, 1, 1), 3, [1, 1, 1]),  # every batch bills its page: what the API does
        ((3, None, None), 3, [3, None, None]),  # two batches without a count: unknown, not zero
        ((2, 0, 4), 6, [2, 0, 4]),  # a batch billing more than its page: the excess stays on it
        ((None, None, None), None, [None, None, None]),
    ],
)
def test_billed_pages_are_summed_over_batches_into_summary_footer_and_column(
    multi_page: Sample,
    tmp_path: Path,
    billed: tuple[int | None, ...],
    expected: int | None,
    column: list[Any],
) -> None:
    batches = [
        dataclasses.replace(b, billed_pages=n)
        for b, n in zip(per_page(multi_page.result), billed, strict=True)
    ]
    summary = write(batches, tmp_path, multi_page.meta)
    assert summary.billed_pages == expected
    assert pq.read_table(summary.pages_uri).column("billed_pages").to_pylist() == column
    assert billed_sum(summary.pages_uri) == expected  # SQL's SUM skips nulls, as the summary does
    for uri in (summary.words_uri, summary.pages_uri):
        footer = pq.read_metadata(uri).metadata
        if expected is None:
            assert b"upstage.billed_pages" not in footer  # absent: no response said
        else:
            assert footer[b"upstage.billed_pages"] == str(expected).encode()
    assert "billed_pages" not in pq.read_schema(summary.words_uri).names  # a pages fact only


def test_a_sync_result_bills_its_pages_once(multi_page: Sample, tmp_path: Path) -> None:
    assert multi_page.result.billed_pages == multi_page.raw["numBilledPages"] == 3
    summary = write([multi_page.result], tmp_path, multi_page.meta)
    assert summary.billed_pages == 3
    assert pq.read_table(summary.pages_uri).column("billed_pages").to_pylist() == [1, 1, 1]


def test_billed_pages_of_a_day_are_one_sum_over_the_partition(samples_dir: Path, tmp_path: Path) -> None:
    """``SELECT sum(billed_pages) FROM pages WHERE ds=...``: the day's bill, whatever the documents."""
    day = tmp_path / "ds=2026-11-24"
    summaries = [write([s.result], day, s.meta) for s in (load_sample(samples_dir, n) for n in SAMPLES)]
    ((total,),) = duckdb.execute(
        "select sum(billed_pages) from read_parquet(?, hive_partitioning = true) where ds = '2026-11-24'",
        [f"{tmp_path}/*/pages/*.parquet"],
    ).fetchall()
    assert total == sum(s.billed_pages or 0 for s in summaries) == 1 + 1 + 3 + 1


def test_model_version_known_only_later_goes_to_the_footer(multi_page: Sample, tmp_path: Path) -> None:
    first, *rest = per_page(multi_page.result)
    batches = [dataclasses.replace(first, model_version=None), *rest]
    summary = write(batches, tmp_path, multi_page.meta)
    assert summary.model_version == "ocr-2.2.1"
    assert b"upstage.model_version" not in pq.read_schema(summary.words_uri).metadata
    assert pq.read_metadata(summary.words_uri).metadata[b"upstage.model_version"] == b"ocr-2.2.1"
    assert pq.read_table(summary.words_uri).column("model_version").null_count == 243


def test_sync_result_has_null_request_id(samples_dir: Path, tmp_path: Path) -> None:
    sample = load_sample(samples_dir, "water_mark")
    summary = write([sample.result], tmp_path, sample.meta)
    assert pq.read_table(summary.pages_uri).column("request_id").null_count == 1
    footer = pq.read_metadata(summary.pages_uri).metadata
    assert b"upstage.request_id" not in footer
    assert footer[b"upstage.source"] == b"upstage-ocr-sync"


# --- atomicity and errors -----------------------------------------------------------------------


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("cause", "permanent"),
    [
        (PermissionError(13, "Permission denied"), True),
        (OSError(30, "Read-only file system"), True),
        (NotADirectoryError(20, "Not a directory"), True),
        (pa.ArrowInvalid("value out of range"), True),
        (OSError(28, "No space left on device"), False),
        (ConnectionError("connection reset"), False),
        (TimeoutError("read timed out"), False),
    ],
)
def test_write_error_permanence(cause: BaseException, permanent: bool) -> None:
    error = ParquetWriteError("s3://lake/words/scan-0.parquet", cause)
    assert error.permanent is permanent
    assert str(error) == f"could not write s3://lake/words/scan-0.parquet: {cause}"


def test_write_error_permanence_follows_explicit_causes() -> None:
    wrapped = OSError("upload failed")
    wrapped.__cause__ = PermissionError(13, "AccessDenied")
    assert ParquetWriteError("s3://b/k", wrapped).permanent is True
    implicit = ConnectionError("reset")
    implicit.__context__ = ValueError("unrelated, handled earlier")
    assert ParquetWriteError("s3://b/k", implicit).permanent is False


def test_failing_input_leaves_previous_files_intact(multi_page: Sample, tmp_path: Path) -> None:
    summary = write([multi_page.result], tmp_path, multi_page.meta)
    before = {uri: Path(uri).read_bytes() for uri in (summary.words_uri, summary.pages_uri)}

    def batches() -> Iterator[OCRResult]:
        first, second, _third = per_page(multi_page.result)
        yield first
        yield second
        raise Boom("batch 3 download failed")

    with pytest.raises(Boom, match="batch 3"):  # the caller's own error, not wrapped
        write(batches(), tmp_path, multi_page.meta, processed_at=PROCESSED_AT + timedelta(days=1))
    for uri, content in before.items():
        assert Path(uri).read_bytes() == content
    assert files_in(tmp_path / "words") == [Path(summary.words_uri).name]
    assert files_in(tmp_path / "pages") == [Path(summary.pages_uri).name]


def test_failing_input_on_first_run_leaves_nothing(multi_page: Sample, tmp_path: Path) -> None:
    def batches() -> Iterator[OCRResult]:
        yield from per_page(multi_page.result)[:2]
        raise Boom("gone")

    with pytest.raises(Boom):
        write(batches(), tmp_path, multi_page.meta)
    assert files_in(tmp_path / "words") == []
    assert files_in(tmp_path / "pages") == []


def test_unwritable_location_raises_permanent_error(multi_page: Sample, tmp_path: Path) -> None:
    """A file where the output folder should be: mkdir fails even as root."""
    blocker = tmp_path / "out"
    blocker.write_bytes(b"not a folder")
    with pytest.raises(ParquetWriteError) as caught:
        write([multi_page.result], blocker, multi_page.meta)
    error = caught.value
    assert isinstance(error, UpstageError)
    assert str(blocker / "words" / output_file_name(multi_page.meta.document_uri)) in str(error)
    assert str(error).startswith("could not write ")
    assert error.permanent is True
    assert files_in(tmp_path) == ["out"]
    assert blocker.read_bytes() == b"not a folder"


class SharedMemoryFileSystem(MemoryFileSystem):
    """The memory filesystem's store under another protocol, so a test can break one operation."""

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str):
            for protocol in cls.protocol:
                path = path.removeprefix(f"{protocol}://")
        return super()._strip_protocol(path)


class FailingMoveFileSystem(SharedMemoryFileSystem):
    """Its rename fails, as an object store's copy might."""

    protocol = ("failmv",)

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError(f"connection reset while moving {path1}")


class FailingWriteFileSystem(SharedMemoryFileSystem):
    """Its files refuse bytes after a few writes, like a full disk."""

    protocol = ("failwrite",)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        handle = super()._open(path, mode, **kwargs)
        if "w" in mode:
            calls = {"n": 0}
            original = handle.write

            def write(data: Any) -> int:
                calls["n"] += 1
                if calls["n"] > 3:
                    raise OSError(28, "No space left on device")
                return original(data)

            handle.write = write
        return handle


@pytest.fixture
def failing_filesystems() -> None:
    """Registered under their own protocols, so ``failmv://...`` URIs go through fsspec as usual."""
    fsspec.register_implementation("failmv", FailingMoveFileSystem, clobber=True)
    fsspec.register_implementation("failwrite", FailingWriteFileSystem, clobber=True)


def memory_listing(fs: Any, folder: str) -> list[str]:
    if not fs.exists(folder):
        return []
    return sorted(entry.rsplit("/", 1)[-1] for entry in fs.ls(folder, detail=False))


@pytest.mark.usefixtures("failing_filesystems")
def test_failing_move_keeps_previous_file_and_cleans_up(multi_page: Sample) -> None:
    root = memory_root()
    summary = write([multi_page.result], root, multi_page.meta)
    memory = fsspec.filesystem("memory")
    before = memory.cat_file(summary.words_uri)
    folder = summary.words_uri.rsplit("/", 1)[0]

    failing_root = root.replace("memory://", "failmv://")
    with pytest.raises(ParquetWriteError) as caught:
        write([multi_page.result], failing_root, multi_page.meta, processed_at=PROCESSED_AT + timedelta(1))
    error = caught.value
    assert "failmv://" in str(error)
    assert output_file_name(multi_page.meta.document_uri) in str(error)
    assert "connection reset" in str(error)
    assert error.permanent is False
    assert isinstance(error.__cause__, ConnectionError)
    assert memory.cat_file(summary.words_uri) == before
    assert memory_listing(memory, folder) == [output_file_name(multi_page.meta.document_uri)]
    assert memory_listing(memory, folder.replace("/words", "/pages")) == [
        output_file_name(multi_page.meta.document_uri)
    ]


@pytest.mark.usefixtures("failing_filesystems")
def test_failing_write_leaves_nothing(multi_page: Sample) -> None:
    root = memory_root()
    with pytest.raises(ParquetWriteError, match="No space left on device") as caught:
        write(per_page(multi_page.result), root.replace("memory://", "failwrite://"), multi_page.meta)
    assert caught.value.permanent is False
    memory = fsspec.filesystem("memory")
    bare = root.removeprefix("memory://")
    assert memory_listing(memory, f"/{bare}/words") == []
    assert memory_listing(memory, f"/{bare}/pages") == []


def test_bad_output_uri_is_a_type_error(multi_page: Sample) -> None:
    with pytest.raises(TypeError, match="output_uri"):
        write([multi_page.result], 42, multi_page.meta)


# --- concurrent writers of one document ---------------------------------------------------------

#: Rounds of the two-writer race; unfixed, about one round in five ended with a mixed pair.
RACE_ROUNDS = 200
#: A guard against a hung or dead child, not a performance bound.
RACE_PATIENCE = 120.0


@dataclasses.dataclass(frozen=True)
class RaceRound:
    number: int
    words: tuple[str | None, ...]  # (request_id column, upstage.request_id, upstage.write_id)
    pages: tuple[str | None, ...]
    outcomes: dict[int, tuple[str, str]]  # writer -> ("ok" or the exception type's name, message)

    @property
    def mixed(self) -> bool:
        return self.words != self.pages


def published_write(path: Path) -> tuple[str | None, ...]:
    """Which write a published file came from, as its rows and its footer say."""
    found = pq.read_metadata(path).metadata or {}
    column = pq.read_table(path, columns=["request_id"]).column(0).unique().to_pylist()
    assert len(column) == 1, f"{path} mixes rows of several writes: {column}"

    def key(name: str) -> str | None:
        value = found.get(f"upstage.{name}".encode())
        return value.decode() if value is not None else None

    return column[0], key("request_id"), key("write_id")


def race_two_writers(root: Path, *, unlocked: bool, rounds: int = RACE_ROUNDS) -> list[RaceRound]:
    """Two processes write the same document at the same moment, ``rounds`` times over.

    Both wait at a barrier with this process before each round, so their writes really overlap;
    after each round this process reads which write each published file came from.
    """
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(3), context.Barrier(3)
    outcomes = context.Queue()
    writers = [
        context.Process(
            target=parquet_race.race_writer,
            args=(str(root), unlocked, writer, rounds, start, done, outcomes),
            daemon=True,
        )
        for writer in (1, 2)
    ]
    for process in writers:
        process.start()
    name = output_file_name(parquet_race.DOCUMENT_URI)
    seen: list[RaceRound] = []
    try:
        for number in range(rounds):
            start.wait(RACE_PATIENCE)
            done.wait(RACE_PATIENCE)
            reports = [outcomes.get(timeout=RACE_PATIENCE) for _ in writers]
            assert {report[0] for report in reports} == {number}
            seen.append(
                RaceRound(
                    number,
                    published_write(root / "words" / name),
                    published_write(root / "pages" / name),
                    {writer: (outcome, detail) for _, writer, outcome, detail in reports},
                )
            )
    finally:
        start.abort()
        done.abort()
        for process in writers:
            process.join(RACE_PATIENCE)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in writers] == [0, 0]
    return seen


def race_report(rounds: list[RaceRound]) -> str:
    mixed = [r for r in rounds if r.mixed]
    failed = [r for r in rounds if any(outcome != "ok" for outcome, _ in r.outcomes.values())]
    wins = collections.Counter(r.words[0][-1] for r in rounds if r.words[0] and not r.mixed)
    example = (
        f"; first: round {mixed[0].number} words {mixed[0].words} pages {mixed[0].pages}" if mixed else ""
    )
    return (
        f"{len(mixed)} of {len(rounds)} rounds left words and pages from different writes, "
        f"{len(failed)} had a failed writer, consistent rounds won by writer {dict(wins)}{example}"
    )


def test_concurrent_writers_on_local_disk_leave_a_consistent_pair(tmp_path: Path) -> None:
    """Same document, same moment, two processes: the pair is always one write's, and nobody fails."""
    root = tmp_path / "lake"
    rounds = race_two_writers(root, unlocked=False)
    report = race_report(rounds)
    assert not [r for r in rounds if r.mixed], report
    for r in rounds:
        assert r.outcomes == {1: ("ok", ""), 2: ("ok", "")}, report
        assert r.words[0] in (parquet_race.request_id(r.number, 1), parquet_race.request_id(r.number, 2))
        assert r.words[0] == r.words[1]
    name = output_file_name(parquet_race.DOCUMENT_URI)
    assert files_in(root / "words") == files_in(root / "pages") == [name]
    assert files_in(root) == ["pages", "words"], "the lock file is removed after each write"


def test_concurrent_writers_without_file_locks_never_leave_an_unnoticed_mismatch(tmp_path: Path) -> None:
    """No locks (as on an object store): a mixed pair always fails one of the writers, by name."""
    rounds = race_two_writers(tmp_path / "lake", unlocked=True)
    report = race_report(rounds)
    for r in rounds:
        failures = {outcome for outcome, _ in r.outcomes.values()} - {"ok"}
        assert failures <= {"ParquetPairMismatchError"}, (r, report)
        if r.mixed:
            assert failures, f"round {r.number}: a mixed pair went unnoticed ({report})"


class InterleavingFileSystem(SharedMemoryFileSystem):
    """Runs ``between`` right after one chosen move, so a test can put another writer there."""

    protocol = ("interleave",)
    after: str = ""
    between: Any = None

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        super().mv(path1, path2, *args, **kwargs)
        cls = type(self)
        if cls.between is not None and f"/{cls.after}/" in str(path2):
            between, cls.between = cls.between, None
            between()


@pytest.fixture
def interleave() -> Iterator[type[InterleavingFileSystem]]:
    fsspec.register_implementation("interleave", InterleavingFileSystem, clobber=True)
    yield InterleavingFileSystem
    InterleavingFileSystem.between = None


def footer_write_ids(summary: WriteSummary) -> tuple[bytes | None, bytes | None]:
    memory = fsspec.filesystem("memory")

    def write_id(uri: str) -> bytes | None:
        with memory.open(uri.replace("interleave://", "memory://"), "rb") as handle:
            return (pq.read_metadata(handle).metadata or {}).get(b"upstage.write_id")

    return write_id(summary.words_uri), write_id(summary.pages_uri)


def test_a_mixed_pair_fails_the_writer_that_left_it(
    multi_page: Sample, interleave: type[InterleavingFileSystem]
) -> None:
    """Run B writes the whole pair between run A's two renames: A's words now sit beside B's pages."""
    root = memory_root()
    meta_b = dataclasses.replace(multi_page.meta, request_id="req-b")
    other: list[WriteSummary] = []
    interleave.after = "pages"
    interleave.between = lambda: other.append(write([multi_page.result], root, meta_b))

    with pytest.raises(ParquetPairMismatchError) as caught:
        write([multi_page.result], root.replace("memory://", "interleave://"), multi_page.meta)
    error = caught.value
    name = output_file_name(multi_page.meta.document_uri)
    assert isinstance(error, UpstageError)
    assert error.permanent is False, "a rerun writes the pair again"
    assert f"/words/{name} and " in str(error)
    assert f"/pages/{name} has upstage.write_id {other[0].write_id}, this run wrote {error.write_id}" in str(
        error
    )
    assert "do not share an output location between concurrent runs" in str(error)
    words_id, pages_id = footer_write_ids(other[0])
    assert (words_id, pages_id) == (error.write_id.encode(), str(other[0].write_id).encode())

    rerun = write([multi_page.result], root, multi_page.meta)
    assert footer_write_ids(rerun) == (str(rerun.write_id).encode(),) * 2


def test_a_writer_replaced_whole_right_after_it_published_succeeds(
    multi_page: Sample, interleave: type[InterleavingFileSystem], caplog: pytest.LogCaptureFixture
) -> None:
    """Run B writes the whole pair after run A's second rename: the pair is B's, A was superseded."""
    root = memory_root()
    meta_b = dataclasses.replace(multi_page.meta, request_id="req-b")
    other: list[WriteSummary] = []
    interleave.after = "words"
    interleave.between = lambda: other.append(write([multi_page.result], root, meta_b))

    with caplog.at_level(logging.WARNING, logger="upstage_provider.parquet"):
        first = write([multi_page.result], root.replace("memory://", "interleave://"), multi_page.meta)
    assert footer_write_ids(first) == (str(other[0].write_id).encode(),) * 2
    assert f"replaced by a concurrent write (upstage.write_id {other[0].write_id})" in caplog.text


def test_both_files_carry_one_write_id(multi_page: Sample, tmp_path: Path) -> None:
    first = write([multi_page.result], tmp_path, multi_page.meta)
    for uri in (first.words_uri, first.pages_uri):
        assert (pq.read_metadata(uri).metadata or {})[b"upstage.write_id"] == str(first.write_id).encode()
        assert (pq.read_schema(uri).metadata or {})[b"upstage.write_id"] == str(first.write_id).encode()
    assert re.fullmatch(r"[0-9a-f]{32}", str(first.write_id))
    assert write([multi_page.result], tmp_path, multi_page.meta).write_id != first.write_id


def test_a_held_lock_keeps_the_pair_unpublished_until_released(multi_page: Sample, tmp_path: Path) -> None:
    """Another writer of the document holds the lock: ours finishes its files, then waits to rename."""
    name = output_file_name(multi_page.meta.document_uri)
    lock = tmp_path / f".{name}.lock"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            write([multi_page.result], tmp_path, multi_page.meta)
        except BaseException as exc:
            errors.append(exc)

    with lock.open("wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        writer = threading.Thread(target=run, daemon=True)
        writer.start()

        def finished_temps() -> int:
            done = 0
            for temp in (*(tmp_path / "words").glob(".*.tmp-*"), *(tmp_path / "pages").glob(".*.tmp-*")):
                with suppress(pa.ArrowInvalid, OSError):
                    pq.read_metadata(temp)
                    done += 1
            return done

        while finished_temps() < 2:
            assert writer.is_alive(), errors
            writer.join(0.01)
        writer.join(0.2)
        assert writer.is_alive()
        assert not list(tmp_path.glob("*/*.parquet")), "published while another writer held the lock"
    writer.join(RACE_PATIENCE)
    assert not writer.is_alive()
    assert not errors
    assert files_in(tmp_path / "words") == files_in(tmp_path / "pages") == [name]
    assert files_in(tmp_path) == ["pages", "words"], "the lock file is removed after the write"


def test_a_lock_file_left_by_a_killed_writer_is_taken_over(multi_page: Sample, tmp_path: Path) -> None:
    name = output_file_name(multi_page.meta.document_uri)
    (tmp_path / f".{name}.lock").write_bytes(b"")  # its lock died with the process; the file stays
    write([multi_page.result], tmp_path, multi_page.meta)
    assert files_in(tmp_path) == ["pages", "words"]
    assert ds.dataset(tmp_path / "words").count_rows() > 0


def test_without_file_locks_the_write_still_checks_the_pair(
    multi_page: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A local filesystem whose flock says ENOLCK (some NFS and FUSE mounts): write, warn, check."""

    def flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(publish.fcntl, "flock", flock)
    with caplog.at_level(logging.WARNING, logger="upstage_provider.parquet"):
        summary = write([multi_page.result], tmp_path, multi_page.meta)
    assert "no file locks on" in caplog.text
    assert "relying on the write id check" in caplog.text
    assert files_in(tmp_path) == ["pages", "words"]
    assert (pq.read_metadata(summary.pages_uri).metadata or {})[b"upstage.write_id"] == str(
        summary.write_id
    ).encode()


# --- file names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "stem"),
    [
        ("file:///data/in/scan.pdf", "scan"),
        ("/data/in/scan.pdf", "scan"),
        ("s3://bucket/in/My%20Scan%20(1).PDF", "My-Scan-1"),
        ("https://host/x/report.final.tiff?X-Amz-Signature=abc#p=2", "report.final"),
        ("gs://bucket/dir/", "dir"),
        ("s3://bucket/in/.hidden.png", "hidden"),
        ("s3://bucket/in/_tmp_scan.png", "tmp_scan"),
        ("s3://bucket/in/한글 문서.pdf", "document"),
        ("s3://bucket/in/Café.png", "Cafe"),
        ("C:\\scans\\page.jpg", "page"),
        ("", "document"),
    ],
)
def test_output_file_name_is_readable(uri: str, stem: str) -> None:
    name = output_file_name(uri)
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    assert name == f"{stem}-{digest}.parquet"


def test_output_file_name_is_stable_and_tells_documents_apart() -> None:
    assert output_file_name("s3://b/a/scan.pdf") == output_file_name("s3://b/a/scan.pdf")
    assert output_file_name("s3://b/a/scan.pdf") != output_file_name("s3://b/b/scan.pdf")
    assert len(output_file_name("s3://b/" + "x" * 500 + ".pdf")) <= 64 + 1 + 12 + len(".parquet")


@given(st.text(max_size=300))
def test_output_file_name_is_always_safe_and_visible(uri: str) -> None:
    name = output_file_name(uri)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{12}\.parquet", name)
    assert name == output_file_name(uri)
