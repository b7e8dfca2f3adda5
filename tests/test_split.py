"""Splitting PDFs and TIFFs over the async limits into parts that fit (``documents.split``), no Airflow."""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pytest
from PIL import Image

from tests.emulator_fixtures import image_pdf
from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.columnar import OCRBatch
from upstage_provider.documents import (
    MAX_ASYNC_PAGES,
    DocumentTooLargeError,
    load_document,
)
from upstage_provider.documents.split import needs_split, split_document
from upstage_provider.parts import at_document_pages


def tiff(frames: int, sizes: list[tuple[int, int]] | None = None) -> bytes:
    sizes = sizes or [(120 + i % 5, 160) for i in range(frames)]
    images = [Image.new("1", size, i % 2) for i, size in enumerate(sizes)]
    buffer = io.BytesIO()
    images[0].save(buffer, "TIFF", save_all=True, append_images=images[1:], compression="group4")
    return buffer.getvalue()


def test_a_2500_page_pdf_splits_into_page_ranges_of_at_most_1000() -> None:
    doc = load_document(make_pdf(2500), name="archive.pdf")
    assert needs_split(doc)
    parts = split_document(doc)
    assert [(p.first_page, p.last_page) for p in parts] == [(1, 1000), (1001, 2000), (2001, 2500)]
    assert [p.label for p in parts][1] == "part 2/3 (pages 1001-2000)"
    for part in parts:
        reread = load_document(part.document.data, name=part.document.name)
        assert reread.page_count == part.page_count <= MAX_ASYNC_PAGES
        assert part.document.pages == doc.pages[part.first_page - 1 : part.last_page]
    assert parts[0].document.name == "archive.pages-1-1000.pdf"
    assert parts[2].document.uri == "archive.pdf#pages=2001-2500"


def test_a_pdf_within_the_limits_is_one_part_holding_the_document_itself() -> None:
    doc = load_document(make_pdf(1000), name="scan.pdf")
    assert not needs_split(doc)
    (part,) = split_document(doc)
    assert part.document is doc
    assert (part.first_page, part.page_count) == (1, 1000)


def test_a_part_over_the_size_limit_is_halved_until_each_fits_and_pages_are_copied_not_rendered() -> None:
    data = image_pdf(12)
    doc = load_document(data, name="heavy.pdf")
    limit = len(data) // 4  # about 3 pages' worth, so parts of 12 pages must shrink
    assert needs_split(doc, max_bytes=limit)
    parts = split_document(doc, max_bytes=limit)
    assert all(p.document.size <= limit for p in parts)
    assert [p.first_page for p in parts] == [1, *(q.last_page + 1 for q in parts[:-1])]
    assert parts[-1].last_page == 12
    assert len(parts) >= 4
    # Copied as they are: the parts together are about the original's size (re-rendering would not be).
    assert 0.95 < sum(p.document.size for p in parts) / len(data) < 1.05


def test_a_single_page_over_the_size_limit_is_a_clear_error() -> None:
    data = image_pdf(3)
    doc = load_document(data, name="poster.pdf")
    with pytest.raises(
        DocumentTooLargeError, match=r"poster\.pdf: page 1 alone is .* so the document cannot be split"
    ):
        split_document(doc, max_bytes=len(data) // 6)


def test_other_formats_over_the_limits_keep_their_refusal() -> None:
    buffer = io.BytesIO()
    Image.frombytes("L", (400, 400), os.urandom(160_000)).save(buffer, "PNG")
    doc = load_document(buffer.getvalue(), name="photo.png")
    assert not needs_split(doc, max_bytes=1000)
    with pytest.raises(
        DocumentTooLargeError, match=r"photo\.png: .* over the API's 1,000 bytes limit per file"
    ):
        split_document(doc, max_bytes=1000)


def test_a_tiff_of_more_than_1000_frames_splits_with_every_frame_in_order() -> None:
    sizes = [(100 + i % 7, 150 + i % 3) for i in range(1005)]
    doc = load_document(tiff(1005, sizes), name="fax.tif")
    assert needs_split(doc)
    parts = split_document(doc)
    assert [(p.first_page, p.last_page) for p in parts] == [(1, 1000), (1001, 1005)]
    found = []
    for part in parts:
        reread = load_document(part.document.data, name=part.document.name)
        found += [(p.width, p.height) for p in reread.pages or ()]
    assert found == sizes
    # The frames' pixels survive the copy (group4 is lossless).
    with Image.open(io.BytesIO(parts[1].document.data)) as image:
        image.seek(4)  # document frame 1005: 1004 % 2 == 0, all black
        assert image.getextrema() == (0, 0)
        image.seek(3)
        assert image.getextrema() == (255, 255)


def test_the_page_limit_is_a_keyword_and_the_last_part_takes_the_rest() -> None:
    doc = load_document(make_pdf(5), name="scan.pdf")
    parts = split_document(doc, max_pages=2)
    assert [(p.first_page, p.last_page) for p in parts] == [(1, 2), (3, 4), (5, 5)]
    assert [p.label for p in parts] == [
        "part 1/3 (pages 1-2)",
        "part 2/3 (pages 3-4)",
        "part 3/3 (pages 5-5)",
    ]


def test_a_parts_pages_are_renumbered_to_document_pages() -> None:
    words = pa.record_batch({"page": pa.array([1, 1, 2], pa.int32()), "text": ["a", "b", "c"]})
    pages = pa.record_batch({"page": pa.array([1, 2], pa.int32())})
    batch = OCRBatch(words, pages, "m", "1.1", 0.9, 2)
    moved = at_document_pages(batch, 1001, "req-2")
    assert moved.words.column("page").to_pylist() == [1001, 1001, 1002]
    assert moved.pages.column("page").to_pylist() == [1001, 1002]
    assert moved.request_id == "req-2"
    assert at_document_pages(batch, 1, "req-1").pages.column("page").to_pylist() == [1, 2]
