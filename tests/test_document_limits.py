"""The API's limits at their edges, with the whole message a user reads, through public calls only.

Written against what survived mutation testing (docs/testing.md): a limit that is off by one, an
override that is ignored, a message that names no document or loses its advice. Only the public
names of ``upstage_provider.documents`` are used, so these tests outlive its reorganisation.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from upstage_provider.documents import (
    MAX_ASYNC_PAGES,
    MAX_FILE_BYTES,
    RENDER_DPI,
    Document,
    DocumentFormat,
    PageSize,
    detect_format,
    load_document,
    prepare_document,
    validate_document,
)
from upstage_provider.exceptions import (
    DocumentTooLargeError,
    EmptyDocumentError,
    PageTooLargeError,
    TooManyPagesError,
    UnsupportedDocumentError,
)

EMPTY_ADVICE = "the file is empty (0 bytes); check the upstream task that wrote it"


def png(width: int = 4, height: int = 3) -> bytes:
    """A PNG header claiming a size (no pixels): the module reads headers only."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def pptx(cx: int, cy: int, slides: int = 1) -> bytes:
    ids = "".join(f'<p:sldId id="{256 + i}" r:id="rId{i + 2}"/>' for i in range(slides))
    presentation = (
        '<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<p:sldIdLst>{ids}</p:sldIdLst><p:sldSz cx="{cx}" cy="{cy}"/></p:presentation>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        zf.writestr("ppt/presentation.xml", presentation)
        for i in range(slides):
            zf.writestr(f"ppt/slides/slide{i + 1}.xml", "<p:sld/>")
    return buf.getvalue()


def doc(
    name: str = "scan.pdf",
    *,
    size: int = 10,
    fmt: DocumentFormat = DocumentFormat.PDF,
    pages: tuple[PageSize, ...] | None = None,
) -> Document:
    """A loaded document as validate_document sees it, without building a real file of that size."""
    return Document(name=name, uri=f"file:///in/{name}", data=b"\0" * size, format=fmt, pages=pages)


def pages(count: int, width: int = 1240, height: int = 1755) -> tuple[PageSize, ...]:
    return (PageSize(width, height),) * count


# --- file size ----------------------------------------------------------------------------------


def test_a_file_of_exactly_the_size_limit_is_accepted_and_one_byte_more_is_not() -> None:
    edge = doc("edge.pdf", size=MAX_FILE_BYTES)
    assert validate_document(edge, mode="async") is edge
    with pytest.raises(DocumentTooLargeError) as err:
        validate_document(doc("edge.pdf", size=MAX_FILE_BYTES + 1))
    assert str(err.value) == (
        "edge.pdf: 50.0 MiB (52,428,801 bytes) is over the API's 50 MiB limit per file; "
        "split the document or compress its images"
    )


def test_prepare_accepts_a_real_file_of_exactly_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "padded.png"
    head = png()
    path.write_bytes(head + b"\0" * (MAX_FILE_BYTES - len(head)))  # bytes after IEND: still a PNG
    prepared = prepare_document(path, mode="async")
    assert prepared.size == MAX_FILE_BYTES
    assert prepared == load_document(path)  # the same Document, uri included


def test_a_size_limit_that_is_not_whole_megabytes_is_given_in_bytes() -> None:
    assert validate_document(doc(size=1_500_000), max_bytes=1_500_000).size == 1_500_000
    with pytest.raises(DocumentTooLargeError) as err:
        validate_document(doc("a.pdf", size=1_500_001), max_bytes=1_500_000)
    assert str(err.value) == (
        "a.pdf: 1.4 MiB (1,500,001 bytes) is over the API's 1,500,000 bytes limit per file; "
        "split the document or compress its images"
    )


# --- empty --------------------------------------------------------------------------------------


def test_one_byte_is_not_empty() -> None:
    one = doc("one.pdf", size=1)
    assert validate_document(one) is one
    with pytest.raises(UnsupportedDocumentError) as err:  # judged by its content, not as empty
        prepare_document(b"x", name="one.bin")
    assert not isinstance(err.value, EmptyDocumentError)


def test_every_empty_check_names_the_document() -> None:
    with pytest.raises(EmptyDocumentError) as validated:
        validate_document(doc("blank.pdf", size=0, pages=pages(1)))
    with pytest.raises(EmptyDocumentError) as detected:
        detect_format(b"", name="blank.pdf")
    with pytest.raises(EmptyDocumentError) as unnamed:
        detect_format(b"")
    assert str(validated.value) == str(detected.value) == f"blank.pdf: {EMPTY_ADVICE}"
    assert str(unnamed.value) == f"document: {EMPTY_ADVICE}"


def test_an_unsupported_format_without_a_name_is_called_document() -> None:
    with pytest.raises(UnsupportedDocumentError) as err:
        detect_format(b"GIF89a" + bytes(20))
    assert str(err.value).startswith("document: the content is ")


# --- page count ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "limit"), [("sync", 100), ("async", 1000)])  # the API's documented limits
def test_the_page_limit_itself_is_allowed(mode: str, limit: int) -> None:
    edge = doc(pages=pages(limit))
    assert validate_document(edge, mode=mode) is edge  # type: ignore[arg-type]
    with pytest.raises(TooManyPagesError, match=f"{limit + 1:,} pages is over the {mode} limit of {limit:,}"):
        validate_document(doc(pages=pages(limit + 1)), mode=mode)  # type: ignore[arg-type]


def test_a_stricter_page_limit_is_honoured_in_both_modes() -> None:
    three = doc("three.pdf", pages=pages(3))
    assert validate_document(three, mode="sync", max_pages=3) is three
    assert validate_document(three, mode="async", max_pages=3) is three
    with pytest.raises(TooManyPagesError) as sync:
        validate_document(three, mode="sync", max_pages=2)
    assert str(sync.value) == (
        "three.pdf: 3 pages is over the sync limit of 2 pages; "
        "use mode='auto' (UpstageOCROperator's default: sync up to the limit, async above) or the async path "
        f"(mode='async' / UpstageOCRSubmitOperator), which takes up to {MAX_ASYNC_PAGES:,}"
    )
    with pytest.raises(TooManyPagesError) as async_:
        validate_document(three, mode="async", max_pages=2)
    assert str(async_.value) == (
        "three.pdf: 3 pages is over the async limit of 2 pages; "
        "split the document into parts of at most 2 pages"
    )
    with pytest.raises(TooManyPagesError, match=r"^three\.pdf: 3 pages is over the sync limit of 1 page; "):
        validate_document(three, mode="sync", max_pages=1)  # "1 page", never "1 pages"


# --- page pixels --------------------------------------------------------------------------------


def test_an_image_over_the_pixel_limit_gets_the_whole_message() -> None:
    big = doc("big.png", fmt=DocumentFormat.PNG, pages=(PageSize(20001, 10000),))
    with pytest.raises(PageTooLargeError) as err:
        validate_document(big)
    assert str(err.value) == (
        "big.png: page 1 is 20001 x 10000 = 200,010,000 pixels, over the API's "
        "200,000,000-pixel limit per page; downscale it"
    )
    edge = doc("edge.png", fmt=DocumentFormat.PNG, pages=(PageSize(20000, 10000),))
    assert validate_document(edge) is edge


def test_a_rendered_page_over_the_pixel_limit_names_the_first_and_counts_the_rest() -> None:
    plan = doc(
        "plan.pdf",
        pages=(PageSize(100, 100), PageSize(300, 200), PageSize(100, 100), PageSize(400, 400)),
    )
    with pytest.raises(PageTooLargeError) as err:
        validate_document(plan, max_page_pixels=50_000)
    assert str(err.value) == (
        "plan.pdf: page 2 (and 1 more page) is 300 x 200 = 60,000 pixels when rendered at "
        f"{RENDER_DPI} DPI, over the API's 50,000-pixel limit per page; "
        "reduce the page size (or scan at a lower resolution)"
    )
    assert validate_document(plan, max_page_pixels=160_000) is plan  # 400 x 400 exactly


def test_slide_sizes_are_rounded_up_to_whole_pixels() -> None:
    # 914,400 EMU is an inch, 150 pixels at the render DPI; one EMU more is a pixel more.
    deck = load_document(pptx(914_401, 914_400, slides=2), name="deck.pptx")
    assert deck.pages == (PageSize(151, 150),) * 2
    assert all(type(n) is int for page in deck.pages for n in (page.width, page.height))
