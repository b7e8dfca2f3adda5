"""The document module against real generated files: every format, every limit, every source kind."""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import subprocess
import sys
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import upstage_provider.documents as documents_package
from upstage_provider.documents import (
    MAX_ASYNC_PAGES,
    MAX_FILE_BYTES,
    MAX_PAGE_PIXELS,
    MAX_SYNC_PAGES,
    RENDER_DPI,
    Document,
    DocumentFormat,
    DocumentSourceError,
    PageSize,
    detect_format,
    inspect_pages,
    load_document,
    prepare_document,
    validate_document,
)
from upstage_provider.emulator.synthetic import blank_pdf as pdf_bytes
from upstage_provider.exceptions import (
    CorruptDocumentError,
    DocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
    PageTooLargeError,
    TooManyPagesError,
    UnsupportedDocumentError,
)

# --- builders: small real files ------------------------------------------------------------------


def pillow_bytes(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB", **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, "white").save(buf, format=fmt, **save)
    return buf.getvalue()


def tiff_bytes(sizes: list[tuple[int, int]]) -> bytes:
    frames = [Image.new("L", size, 255) for size in sizes]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def heif_bytes(size: tuple[int, int], fmt: str = "HEIF") -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return pillow_bytes(fmt, size)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but carries no pixels: header readers must not care."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def zip_bytes(entries: dict[str, bytes], *, stored_first: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if stored_first is not None:
            zf.writestr(zipfile.ZipInfo(stored_first), entries[stored_first], zipfile.ZIP_STORED)
        for name, body in entries.items():
            if name != stored_first:
                zf.writestr(name, body)
    return buf.getvalue()


CONTENT_TYPES = (
    b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
)


def docx_bytes() -> bytes:
    return zip_bytes({"[Content_Types].xml": CONTENT_TYPES, "word/document.xml": b"<w:document/>"})


def xlsx_bytes() -> bytes:
    return zip_bytes({"[Content_Types].xml": CONTENT_TYPES, "xl/workbook.xml": b"<workbook/>"})


def pptx_bytes(slides: int = 3, cx: int = 12_192_000, cy: int = 6_858_000) -> bytes:
    ids = "".join(f'<p:sldId id="{256 + i}" r:id="rId{i + 2}"/>' for i in range(slides))
    presentation = (
        '<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<p:sldIdLst>{ids}</p:sldIdLst><p:sldSz cx="{cx}" cy="{cy}"/></p:presentation>'
    ).encode()
    entries = {"[Content_Types].xml": CONTENT_TYPES, "ppt/presentation.xml": presentation}
    entries.update({f"ppt/slides/slide{i + 1}.xml": b"<p:sld/>" for i in range(slides)})
    return zip_bytes(entries)


def hwpx_bytes(*, with_mimetype: bool = True) -> bytes:
    entries = {
        "Contents/content.hpf": b"<opf:package/>",
        "Contents/section0.xml": b"<hs:sec/>",
        "META-INF/container.xml": b"<ocf:container/>",
    }
    if with_mimetype:
        entries = {"mimetype": b"application/hwp+zip", **entries}
        return zip_bytes(entries, stored_first="mimetype")
    return zip_bytes(entries)


_FREE, _END, _FAT_SECTOR, _NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def ole_bytes(streams: dict[str, bytes]) -> bytes:
    """A version 3 compound file ([MS-CFB]) holding small streams in its mini stream.

    Sector 0 is the FAT, 1 the directory, 2 the mini FAT, 3.. the mini stream (the root entry's).
    """
    assert 1 <= len(streams) <= 3
    assert all(len(b) < 4096 for b in streams.values())
    ministream, minifat, starts = bytearray(), [], []
    for body in streams.values():
        first = len(ministream) // 64
        count = max(1, -(-len(body) // 64))
        starts.append(first)
        minifat.extend([*range(first + 1, first + count), _END])
        ministream += body.ljust(count * 64, b"\0")
    mini_sectors = -(-len(ministream) // 512)
    fat = [_FAT_SECTOR, _END, _END, *range(4, 3 + mini_sectors), _END]
    fat += [_FREE] * (128 - len(fat))

    def entry(name: str, kind: int, start: int, size: int, child: int, right: int) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0"
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBB", len(raw), kind, 1)
            + struct.pack("<III", _NO_STREAM, right, child)
            + b"\0" * 36
            + struct.pack("<IQ", start, size)
        )

    names = list(streams)
    directory = entry("Root Entry", 5, 3, len(ministream), 1, _NO_STREAM)
    for i, name in enumerate(names):
        right = i + 2 if i + 1 < len(names) else _NO_STREAM
        directory += entry(name, 2, starts[i], len(streams[name]), _NO_STREAM, right)
    directory = directory.ljust(512, b"\0")

    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, 2, 1, _END, 0)
        + struct.pack("<109I", 0, *([_FREE] * 108))
    )
    assert len(header) == 512
    minifat_sector = struct.pack(f"<{len(minifat)}I", *minifat).ljust(512, b"\xff")
    return (
        header
        + struct.pack("<128I", *fat)
        + directory
        + minifat_sector
        + bytes(ministream).ljust(mini_sectors * 512, b"\0")
    )


def hwp_bytes() -> bytes:
    file_header = b"HWP Document File".ljust(32, b"\0") + struct.pack("<II", 0x05000300, 0)
    return ole_bytes(
        {
            "FileHeader": file_header.ljust(256, b"\0"),
            "DocInfo": b"\x10\x00\x00\x00" * 30,
            "PrvText": "미리보기".encode("utf-16-le"),
        }
    )


def doc_bytes() -> bytes:
    return ole_bytes({"WordDocument": b"\xec\xa5" + b"\0" * 200, "1Table": b"\0" * 100})


@pytest.fixture(scope="module")
def pdf_101() -> bytes:
    return pdf_bytes(MAX_SYNC_PAGES + 1)


@pytest.fixture(scope="module")
def pdf_1001() -> bytes:
    return pdf_bytes(MAX_ASYNC_PAGES + 1)


# --- formats ------------------------------------------------------------------------------------

FORMAT_CASES = [
    pytest.param(lambda: pillow_bytes("JPEG"), DocumentFormat.JPEG, "x.pdf", id="jpeg"),
    pytest.param(lambda: pillow_bytes("PNG"), DocumentFormat.PNG, "x.pdf", id="png"),
    pytest.param(lambda: pillow_bytes("BMP"), DocumentFormat.BMP, "x.png", id="bmp"),
    pytest.param(lambda: tiff_bytes([(40, 30), (20, 10)]), DocumentFormat.TIFF, "x.jpg", id="tiff"),
    pytest.param(lambda: heif_bytes((37, 23)), DocumentFormat.HEIC, "x.jpg", id="heic"),
    pytest.param(lambda: pdf_bytes(2), DocumentFormat.PDF, "x.png", id="pdf"),
    pytest.param(docx_bytes, DocumentFormat.DOCX, "x.xlsx", id="docx"),
    pytest.param(pptx_bytes, DocumentFormat.PPTX, "x.docx", id="pptx"),
    pytest.param(xlsx_bytes, DocumentFormat.XLSX, "x.pptx", id="xlsx"),
    pytest.param(hwp_bytes, DocumentFormat.HWP, "x.hwpx", id="hwp"),
    pytest.param(hwpx_bytes, DocumentFormat.HWPX, "x.hwp", id="hwpx"),
    pytest.param(
        lambda: hwpx_bytes(with_mimetype=False), DocumentFormat.HWPX, "x.zip", id="hwpx-no-mimetype"
    ),
]


@pytest.mark.parametrize(("make", "expected", "misleading_name"), FORMAT_CASES)
def test_format_comes_from_content_not_extension(
    make: Callable[[], bytes], expected: DocumentFormat, misleading_name: str, tmp_path: Path
) -> None:
    data = make()
    path = tmp_path / misleading_name
    path.write_bytes(data)

    doc = load_document(path)

    assert detect_format(data, misleading_name) is expected
    assert doc.format is expected
    assert doc.name == misleading_name
    assert doc.data == data


def test_bigtiff_and_big_endian_tiff_are_tiff() -> None:
    assert detect_format(pillow_bytes("TIFF", big_tiff=True)) is DocumentFormat.TIFF
    big_endian = b"MM\x00*" + tiff_bytes([(4, 4)])[4:]
    assert detect_format(big_endian) is DocumentFormat.TIFF


def test_pdf_header_after_junk_is_pdf() -> None:
    assert detect_format(b"\r\n" * 100 + pdf_bytes()) is DocumentFormat.PDF


def test_format_properties() -> None:
    assert [f.value for f in DocumentFormat] == [
        "jpeg",
        "png",
        "bmp",
        "tiff",
        "heic",
        "pdf",
        "docx",
        "pptx",
        "xlsx",
        "hwp",
        "hwpx",
    ]
    assert DocumentFormat.PDF.mime_type == "application/pdf"
    assert DocumentFormat.DOCX.mime_type.endswith("wordprocessingml.document")
    assert all(f.mime_type for f in DocumentFormat)
    assert {f for f in DocumentFormat if f.is_image} == {
        DocumentFormat.JPEG,
        DocumentFormat.PNG,
        DocumentFormat.BMP,
        DocumentFormat.TIFF,
        DocumentFormat.HEIC,
    }
    assert {f for f in DocumentFormat if f.is_office} == {
        DocumentFormat.DOCX,
        DocumentFormat.PPTX,
        DocumentFormat.XLSX,
        DocumentFormat.HWP,
        DocumentFormat.HWPX,
    }
    assert not DocumentFormat.PDF.is_image
    assert not DocumentFormat.PDF.is_office
    assert DocumentFormat("pdf") is DocumentFormat.PDF
    assert str(DocumentFormat.PDF) == "pdf"


def test_ole_builder_is_a_real_compound_file() -> None:
    """The hand-built HWP is read by olefile exactly as a real one would be (when olefile exists)."""
    import olefile

    ole = olefile.OleFileIO(hwp_bytes())
    assert ole.openstream("FileHeader").read().startswith(b"HWP Document File")


# --- pages --------------------------------------------------------------------------------------


def test_samples(samples_dir: Path) -> None:
    expected = {
        "check_box.png": (DocumentFormat.PNG, [(1460, 608)]),
        # The .jpg samples are PNG inside: content decides, so they upload as image/png.
        "dpi_150.jpg": (DocumentFormat.PNG, [(1242, 1755)]),
        "water_mark.jpg": (DocumentFormat.PNG, [(602, 699)]),
        # A4-ish pages (596/595 x 842 pt) at 150 DPI, rounded up as the API's own metadata reports.
        "multi_page.pdf": (DocumentFormat.PDF, [(1242, 1755), (1240, 1755), (1240, 1755)]),
    }
    for name, (fmt, sizes) in expected.items():
        doc = prepare_document(samples_dir / name)
        assert doc.format is fmt, name
        assert doc.page_count == len(sizes)
        assert [(p.width, p.height) for p in doc.pages or ()] == sizes
        assert all(p.width > 0 and p.height > 0 for p in doc.pages or ())


def test_pdf_pages_are_measured_at_150_dpi() -> None:
    data = pdf_bytes(1, (144, 72))  # 2 x 1 inches
    assert inspect_pages(data, DocumentFormat.PDF) == (PageSize(2 * RENDER_DPI, RENDER_DPI),)


def test_every_tiff_frame_is_a_page() -> None:
    pages = inspect_pages(tiff_bytes([(40, 30), (20, 10), (7, 9)]), DocumentFormat.TIFF)
    assert pages == (PageSize(40, 30), PageSize(20, 10), PageSize(7, 9))


def test_heic_size_is_the_displayed_one() -> None:
    # The encoder pads to its block size (ispe) and crops back with a clean aperture (clap).
    assert inspect_pages(heif_bytes((37, 23)), DocumentFormat.HEIC) == (PageSize(37, 23),)


def test_image_sizes_from_headers() -> None:
    assert inspect_pages(pillow_bytes("JPEG", (41, 17)), DocumentFormat.JPEG) == (PageSize(41, 17),)
    assert inspect_pages(pillow_bytes("BMP", (41, 17)), DocumentFormat.BMP) == (PageSize(41, 17),)
    assert inspect_pages(png_header_only(5, 6), DocumentFormat.PNG) == (PageSize(5, 6),)


def test_pptx_slides_are_pages_at_the_slide_size() -> None:
    doc = load_document(pptx_bytes(slides=3), name="deck.pptx")
    assert doc.pages == (PageSize(2000, 1125),) * 3  # 13.333 x 7.5 in at 150 DPI


@pytest.mark.parametrize("make", [docx_bytes, xlsx_bytes, hwp_bytes, hwpx_bytes])
def test_office_pages_are_unknown(make: Callable[[], bytes]) -> None:
    doc = validate_document(load_document(make(), name="office"), mode="sync")
    assert doc.pages is None
    assert doc.page_count is None


def test_huge_image_header_reaches_our_limit_not_pillows(tmp_path: Path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        doc = load_document(png_header_only(20000, 12000), name="poster.png")
    assert before == Image.MAX_IMAGE_PIXELS
    assert doc.pages == (PageSize(20000, 12000),)
    with pytest.raises(PageTooLargeError) as err:
        validate_document(doc)
    message = str(err.value)
    assert "poster.png" in message
    assert "page 1 is 20000 x 12000 = 240,000,000 pixels" in message
    assert "200,000,000-pixel limit" in message
    assert "downscale" in message


# --- limits -------------------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"")
    for call in (lambda: load_document(path), lambda: prepare_document(path)):
        with pytest.raises(EmptyDocumentError) as err:
            call()
        assert (
            str(err.value) == "scan.pdf: the file is empty (0 bytes); check the upstream task that wrote it"
        )


def test_over_50_mb(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    padding = MAX_FILE_BYTES + 10 * 1024 * 1024 - 1000  # trailing bytes after IEND: still a PNG
    path.write_bytes(pillow_bytes("PNG") + b"\0" * padding)

    with pytest.raises(DocumentTooLargeError) as err:
        prepare_document(path)
    message = str(err.value)
    assert message.startswith("scan.png: 60.0 MiB (")
    assert "bytes) is over the API's 50 MiB limit per file" in message
    assert "split the document or compress its images" in message

    doc = load_document(path)  # loading alone does not judge size
    with pytest.raises(DocumentTooLargeError):
        validate_document(doc, mode="async")


def test_size_checked_before_format() -> None:
    with pytest.raises(DocumentTooLargeError):
        prepare_document(b"GIF89a" + bytes(MAX_FILE_BYTES), name="big.gif")


def test_size_limit_override() -> None:
    doc = load_document(pillow_bytes("PNG"), name="a.png")
    with pytest.raises(DocumentTooLargeError, match=r"over the API's 10 bytes limit per file"):
        validate_document(doc, max_bytes=10)


def test_101_pages_needs_async(pdf_101: bytes) -> None:
    doc = load_document(pdf_101, name="scan.pdf")
    assert doc.page_count == 101
    with pytest.raises(TooManyPagesError) as err:
        validate_document(doc, mode="sync")
    assert str(err.value) == (
        "scan.pdf: 101 pages is over the sync limit of 100 pages; "
        "use mode='auto' (UpstageOCROperator's default: sync up to the limit, async above) or the async path "
        "(mode='async' / UpstageOCRSubmitOperator), which takes up to 1,000"
    )
    assert validate_document(doc, mode="async") is doc
    assert prepare_document(pdf_101, name="scan.pdf", mode="async").page_count == 101


def test_1001_pages_must_be_split(pdf_1001: bytes) -> None:
    with pytest.raises(TooManyPagesError) as err:
        prepare_document(pdf_1001, name="book.pdf", mode="async")
    message = str(err.value)
    assert "book.pdf" in message
    assert "1,001 pages is over the async limit of 1,000 pages" in message
    assert "split the document" in message


def test_pdf_page_over_pixel_limit() -> None:
    with pytest.raises(PageTooLargeError) as err:
        prepare_document(pdf_bytes(2, (14400, 14400)), name="plan.pdf")
    message = str(err.value)
    assert "plan.pdf: page 1 (and 1 more page) is 30000 x 30000 = 900,000,000 pixels" in message
    assert f"rendered at {RENDER_DPI} DPI" in message
    assert f"{MAX_PAGE_PIXELS:,}-pixel limit" in message
    assert "reduce the page size" in message


def test_page_limit_is_inclusive() -> None:
    # 200,000,000 exactly is allowed: 20000 x 10000.
    doc = load_document(png_header_only(20000, 10000), name="edge.png")
    assert validate_document(doc) is doc


def test_truncated_pdf_is_corrupt() -> None:
    data = pdf_bytes(3)
    with pytest.raises(CorruptDocumentError) as err:
        load_document(data[: len(data) // 2], name="cut.pdf")
    assert not isinstance(err.value, EncryptedDocumentError)
    assert "cut.pdf" in str(err.value)
    assert "re-export or re-download" in str(err.value)


def test_encrypted_pdf() -> None:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(EncryptedDocumentError) as err:
        load_document(buf.getvalue(), name="locked.pdf")
    assert "locked.pdf" in str(err.value)
    assert "password-protected" in str(err.value)
    assert "remove the password" in str(err.value)


def test_owner_password_only_pdf_opens() -> None:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(72, 72)
    writer.encrypt("", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    assert load_document(buf.getvalue(), name="perm.pdf").pages == (PageSize(150, 150),)


def test_zero_page_pdf() -> None:
    # Right after an encrypted PDF, PDFium's stale error code says "password" for this one too.
    test_encrypted_pdf()
    with pytest.raises(CorruptDocumentError) as err:
        load_document(pdf_bytes(0), name="blank.pdf")
    assert type(err.value) is CorruptDocumentError
    assert str(err.value) == "blank.pdf: the PDF has 0 pages; check the step that produced it"


@pytest.mark.parametrize(
    ("data", "name", "looks_like", "advice"),
    [
        pytest.param(
            bytes(range(256)) * 8, "noise.pdf", "not a format this provider recognises", "check", id="random"
        ),
        pytest.param(pillow_bytes("GIF"), "anim.png", "a GIF image", "convert it to PNG or JPEG", id="gif"),
        pytest.param(
            pillow_bytes("WEBP"), "photo.jpg", "a WEBP image", "convert it to PNG or JPEG", id="webp"
        ),
        pytest.param(
            b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\0" * 40,
            "pic.heic",
            "an AVIF image",
            "convert it to PNG or JPEG",
            id="avif-ftyp",
        ),
        pytest.param(
            b"Dear team,\nplease OCR this.\n" * 20, "note.pdf", "plain text", "convert it to PDF", id="text"
        ),
        pytest.param(
            zip_bytes({"readme.txt": b"hi", "data/a.csv": b"1,2"}),
            "bundle.docx",
            "a ZIP archive (2 entries)",
            "extract the document",
            id="zip",
        ),
        pytest.param(
            doc_bytes(), "old.hwp", "an old Word document (.doc)", "save it as DOCX or PDF", id="doc"
        ),
        pytest.param(
            ole_bytes({"Contents": b"\0" * 80}),
            "thing.hwp",
            "an OLE compound file that is not an HWP document",
            "save it as",
            id="other-ole",
        ),
    ],
)
def test_unsupported_content_is_named(data: bytes, name: str, looks_like: str, advice: str) -> None:
    with pytest.raises(UnsupportedDocumentError) as err:
        load_document(data, name=name)
    message = str(err.value)
    assert message.startswith(f"{name}: the content is {looks_like}")
    assert advice in message
    assert "supported: JPEG, PNG, BMP, TIFF, HEIC, PDF, DOCX, PPTX, XLSX, HWP, HWPX" in message


def test_real_avif_is_unsupported() -> None:
    with pytest.raises(UnsupportedDocumentError, match="AVIF"):
        detect_format(heif_bytes((16, 16), fmt="AVIF"), "real.avif")


@pytest.mark.parametrize(
    ("data", "name", "what"),
    [
        pytest.param(docx_bytes()[:-30], "cut.docx", "ZIP container", id="zip-without-directory"),
        pytest.param(pillow_bytes("PNG")[:20], "cut.png", "PNG header", id="png"),
        pytest.param(pillow_bytes("JPEG")[:30], "cut.jpg", "JPEG header", id="jpeg"),
        pytest.param(tiff_bytes([(8, 8)])[:6], "cut.tiff", "TIFF header", id="tiff"),
        pytest.param(heif_bytes((16, 16))[:60], "cut.heic", "HEIC structure", id="heic"),
        pytest.param(hwp_bytes()[:1100], "cut.hwp", "OLE compound file", id="hwp"),
    ],
)
def test_corrupt_content(data: bytes, name: str, what: str) -> None:
    with pytest.raises(CorruptDocumentError) as err:
        load_document(data, name=name)
    message = str(err.value)
    assert message.startswith(f"{name}: ")
    assert what in message
    assert "re-export" in message


def test_validate_rejects_unknown_mode() -> None:
    doc = load_document(pillow_bytes("PNG"), name="a.png")
    with pytest.raises(ValueError, match="mode"):
        validate_document(doc, mode="batch")  # type: ignore[arg-type]


# --- the Document -------------------------------------------------------------------------------


def test_document_value() -> None:
    data = pillow_bytes("PNG")
    doc = load_document(data, name="a.png")
    assert doc.size == len(data)
    import hashlib

    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert doc.sha256 is doc.sha256  # computed once
    assert "data=" not in repr(doc)
    with pytest.raises(AttributeError):
        doc.name = "b.png"  # type: ignore[misc]
    assert doc == Document("a.png", "a.png", data, DocumentFormat.PNG, (PageSize(40, 30),))


def test_prepare_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="upstage_provider.documents"):
        prepare_document(pdf_bytes(2), name="two.pdf")
    (record,) = caplog.records
    assert record.getMessage().startswith("two.pdf: PDF, 2 pages, 0.0 MiB (")


# --- sources ------------------------------------------------------------------------------------


@pytest.fixture
def memory_dir() -> Iterator[str]:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/docs-{uuid.uuid4().hex}"
    yield root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_source_str_path_and_pathlib(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(pdf_bytes())
    by_str = load_document(str(path))
    by_path = load_document(path)
    assert by_str.name == by_path.name == "scan.pdf"
    assert by_str.uri == by_path.uri == str(path)
    assert by_str.data == by_path.data


def test_source_file_uri(tmp_path: Path) -> None:
    path = tmp_path / "with space.png"
    path.write_bytes(pillow_bytes("PNG"))
    uri = path.as_uri()
    doc = load_document(uri)
    assert doc.name == "with space.png"
    assert doc.uri == uri
    assert doc.format is DocumentFormat.PNG


def test_source_fsspec_uri(memory_dir: str) -> None:
    import fsspec

    fsspec.filesystem("memory").pipe(f"{memory_dir}/in/scan.pdf", pdf_bytes(2))
    doc = load_document(f"memory://{memory_dir}/in/scan.pdf")
    assert doc.name == "scan.pdf"
    assert doc.page_count == 2
    assert doc.uri == f"memory://{memory_dir}/in/scan.pdf"


def test_source_object_with_read_bytes(memory_dir: str) -> None:
    from upath import UPath

    path = UPath(f"memory://{memory_dir}/up/photo.heic")
    path.write_bytes(pillow_bytes("JPEG"))
    doc = load_document(path)
    assert doc.name == "photo.heic"
    assert doc.format is DocumentFormat.JPEG
    assert doc.uri == str(path)


def test_source_bytes_like() -> None:
    data = pillow_bytes("PNG")
    for source in (data, bytearray(data), memoryview(data)):
        doc = load_document(source, name="mem.png")
        assert doc.name == doc.uri == "mem.png"
        assert doc.data == data
        assert type(doc.data) is bytes


def test_name_overrides(tmp_path: Path) -> None:
    path = tmp_path / "tmp123"
    path.write_bytes(pillow_bytes("PNG"))
    assert load_document(path, name="invoice.png").name == "invoice.png"


def test_bytes_without_name() -> None:
    with pytest.raises(DocumentSourceError, match=r"needs a file name; pass name="):
        load_document(pillow_bytes("PNG"))


def test_missing_sources(tmp_path: Path, memory_dir: str) -> None:
    from upath import UPath

    for source in (
        tmp_path / "gone.pdf",
        str(tmp_path / "gone.pdf"),
        (tmp_path / "gone.pdf").as_uri(),
        f"memory://{memory_dir}/gone.pdf",
        UPath(f"memory://{memory_dir}/gone.pdf"),
    ):
        with pytest.raises(DocumentSourceError) as err:
            load_document(source)
        message = str(err.value)
        assert message.startswith("gone.pdf: no such file at ")
        assert "upstream task" in message
        assert isinstance(err.value, DocumentError)
        assert isinstance(err.value, ValueError)


def test_directory_and_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(DocumentSourceError, match="is a directory"):
        load_document(tmp_path)
    with pytest.raises(DocumentSourceError, match="Protocol not known"):
        load_document("nosuchscheme://bucket/a.pdf")
    with pytest.raises(DocumentSourceError, match="cannot read a document from int"):
        load_document(42)  # type: ignore[arg-type]


def test_os_pathlike_without_read_bytes(tmp_path: Path) -> None:
    target = tmp_path / "scan.png"
    target.write_bytes(pillow_bytes("PNG"))

    class Plain(os.PathLike):
        def __fspath__(self) -> str:
            return str(target)

    assert load_document(Plain()).name == "scan.png"


# --- never anything but a DocumentError ---------------------------------------------------------

_PREFIXES = [
    b"",
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",
    b"%PDF-1.7\n",
    b"PK\x03\x04",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
    b"\x00\x00\x00\x18ftypheic",
    b"\x00\x00\x00\x18ftypmif1",
    b"GIF89a",
]


def _mutations() -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, plus real files with bytes flipped or cut, to reach the deep parsers."""
    seeds = [pillow_bytes("PNG"), tiff_bytes([(8, 8), (4, 4)]), pdf_bytes(1), docx_bytes(), hwp_bytes()]
    with_heif = [*seeds, heif_bytes((16, 16))]

    def damage(seed: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
        out = bytearray(seed[: max(1, cut % (len(seed) + 1))])
        for pos, value in flips:
            out[pos % len(out)] = value
        return bytes(out)

    damaged = st.builds(
        damage,
        st.sampled_from(with_heif),
        st.integers(min_value=0, max_value=1 << 20),
        st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8),
    )
    prefixed = st.builds(lambda p, rest: p + rest, st.sampled_from(_PREFIXES), st.binary(max_size=2048))
    return st.one_of(st.binary(max_size=4096), prefixed, damaged)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damaged TIFFs it is fed
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutations())
def test_load_never_raises_anything_else(data: bytes) -> None:
    try:
        doc = load_document(data, name="x")
    except DocumentError:
        return
    assert isinstance(doc, Document)
    assert doc.pages is None or all(p.width > 0 and p.height > 0 for p in doc.pages)


def test_import_loads_no_airflow_nor_heavy_parsers() -> None:
    """The hook, the operators and the emulator share this package: importing it must stay cheap.

    PIL, PDFium and fsspec are imported only when a document needs them.
    """
    code = (
        "import json, sys, upstage_provider.documents as d\n"
        "heavy = {'airflow', 'pyarrow', 'PIL', 'pypdfium2', 'fsspec'}\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "print('RESULT', json.dumps([d.__file__, loaded]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    (result,) = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    where, loaded = json.loads(result.removeprefix("RESULT "))
    assert where == documents_package.__file__  # the child imported the code under test
    assert loaded == []
