"""What a document is, and whether the Upstage OCR API will take it, decided before any upload.

A rejected upload costs a round trip (and for async, a request that fails minutes later), so the
format is sniffed from the content and the API's documented limits (file size, pages per
endpoint, pixels per page) are checked locally with messages that say what to do. Nothing here
renders pages or decodes pixels: headers are enough, which keeps loading cheap on a worker.

No Airflow import: the hook, the operators and the emulator all share this module.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import io
import logging
import math
import os
import re
import struct
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias, runtime_checkable
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from upstage_provider.exceptions import (
    CorruptDocumentError,
    DocumentSourceError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
    PageTooLargeError,
    TooManyPagesError,
    UnsupportedDocumentError,
)

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_SYNC_PAGES = 100
MAX_ASYNC_PAGES = 1000
MAX_PAGE_PIXELS = 200_000_000
RENDER_DPI = 150

#: PDFium is not thread-safe, even across documents: every call into it in this process should
#: hold this lock (re-entrant, so a caller that already holds it may call :func:`inspect_pages`).
PDFIUM_LOCK = threading.RLock()

_MIB = 1024 * 1024
_POINTS_PER_INCH = 72
_EMU_PER_INCH = 914_400


class DocumentFormat(str, enum.Enum):
    """The formats the API reads; the value is the lower-case short name."""

    JPEG = "jpeg"
    PNG = "png"
    BMP = "bmp"
    TIFF = "tiff"
    HEIC = "heic"
    PDF = "pdf"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    HWP = "hwp"
    HWPX = "hwpx"

    def __str__(self) -> str:
        return self.value

    @property
    def mime_type(self) -> str:
        """The Content-Type to send with the upload."""
        return _MIME_TYPES[self]

    @property
    def is_image(self) -> bool:
        """One page, measured in its own pixels rather than rendered at 150 DPI."""
        return self in _IMAGE_FORMATS

    @property
    def is_office(self) -> bool:
        """Word processor, slide and sheet formats, whose pages only the API's renderer knows."""
        return self in _OFFICE_FORMATS


_MIME_TYPES: dict[DocumentFormat, str] = {
    DocumentFormat.JPEG: "image/jpeg",
    DocumentFormat.PNG: "image/png",
    DocumentFormat.BMP: "image/bmp",
    DocumentFormat.TIFF: "image/tiff",
    DocumentFormat.HEIC: "image/heic",
    DocumentFormat.PDF: "application/pdf",
    DocumentFormat.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    DocumentFormat.PPTX: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    DocumentFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    DocumentFormat.HWP: "application/x-hwp",
    DocumentFormat.HWPX: "application/hwp+zip",
}
_IMAGE_FORMATS = frozenset(
    {DocumentFormat.JPEG, DocumentFormat.PNG, DocumentFormat.BMP, DocumentFormat.TIFF, DocumentFormat.HEIC}
)
_OFFICE_FORMATS = frozenset(
    {DocumentFormat.DOCX, DocumentFormat.PPTX, DocumentFormat.XLSX, DocumentFormat.HWP, DocumentFormat.HWPX}
)
_SUPPORTED_TEXT = "supported: " + ", ".join(f.name for f in DocumentFormat)


@dataclass(frozen=True)
class PageSize:
    """A page's size in pixels: an image's own, or a page's rendered at :data:`RENDER_DPI` (rounded up)."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Document:
    """A document read once into memory, with its format and (when countable) its pages."""

    name: str
    uri: str
    data: bytes = field(repr=False)
    format: DocumentFormat
    pages: tuple[PageSize, ...] | None

    @property
    def page_count(self) -> int | None:
        return None if self.pages is None else len(self.pages)

    @property
    def size(self) -> int:
        return len(self.data)

    @functools.cached_property
    def sha256(self) -> str:
        """Content hash, the identity of a submission (computed once: the data can be 50 MB)."""
        # cached_property writes the instance __dict__ directly, so it works on a frozen dataclass.
        return hashlib.sha256(self.data).hexdigest()


@runtime_checkable
class SupportsReadBytes(Protocol):
    """A path-like object that reads itself (``ObjectStoragePath``, ``upath.UPath``, ``pathlib.Path``)."""

    def read_bytes(self) -> bytes: ...


DocumentSource: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | memoryview | SupportsReadBytes"


# --- loading ------------------------------------------------------------------------------------


def load_document(source: DocumentSource, *, name: str | None = None) -> Document:
    """
    Read a document once and describe it: format from its content, pages from its headers.

    Raises a :class:`DocumentError` for anything that could never be uploaded as it is (missing,
    empty, unsupported, corrupt, encrypted); limits are :func:`validate_document`'s job.
    """
    doc_name, uri, data = _read_source(source, name)
    if not data:
        raise _empty_error(doc_name)
    return _describe(doc_name, uri, data)


def prepare_document(
    source: DocumentSource, *, name: str | None = None, mode: Literal["sync", "async"] = "sync"
) -> Document:
    """Load and validate for ``mode``: the one call to make before an upload."""
    _check_mode(mode)
    doc_name, uri, data = _read_source(source, name)
    # Size before sniffing, so a 2 GB file of any kind gets the size message, not a format one.
    _check_bytes(doc_name, len(data), MAX_FILE_BYTES)
    doc = validate_document(_describe(doc_name, uri, data), mode=mode)
    pages = "?" if doc.page_count is None else doc.page_count
    log.info("%s: %s, %s pages, %s", doc.name, doc.format.name, pages, _format_bytes(doc.size))
    return doc


def _describe(name: str, uri: str, data: bytes) -> Document:
    fmt = detect_format(data, name)
    return Document(name=name, uri=uri, data=data, format=fmt, pages=inspect_pages(data, fmt, name))


def _read_source(source: Any, name: str | None) -> tuple[str, str, bytes]:
    """(name, uri, data) for any supported kind of source."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not name:
            raise DocumentSourceError(
                f"a document given as {len(source):,} bytes needs a file name; "
                "pass name='scan.pdf' (it is the upload's file name and appears in messages)"
            )
        return name, name, bytes(source)
    if isinstance(source, str):
        return _read_location(source, name)
    if callable(getattr(source, "read_bytes", None)):
        uri = str(source)
        doc_name = name or _object_name(source, uri)
        data = _guarded_read(doc_name, uri, source.read_bytes)
        return doc_name, uri, _as_bytes(data, doc_name)
    if isinstance(source, os.PathLike):
        return _read_location(os.fspath(source), name)
    raise DocumentSourceError(
        f"cannot read a document from {type(source).__name__}; pass a path, a URI, an "
        "ObjectStoragePath, or bytes with name="
    )


def _read_location(location: str | bytes, name: str | None) -> tuple[str, str, bytes]:
    if isinstance(location, bytes):
        location = os.fsdecode(location)
    if not location:
        raise DocumentSourceError("the document path is empty; pass a file path or a URI")
    parsed = urlparse(location)
    if "://" in location and parsed.scheme and parsed.scheme != "file":
        doc_name = name or _last_segment(parsed.netloc + parsed.path) or location
        return doc_name, location, _read_fsspec(location, doc_name)
    path = url2pathname(parsed.path) if parsed.scheme == "file" else location
    doc_name = name or os.path.basename(path.rstrip("/\\")) or location

    def read_local() -> bytes:
        with open(path, "rb") as f:
            return f.read()

    return doc_name, location, _guarded_read(doc_name, location, read_local)


def _read_fsspec(uri: str, name: str) -> bytes:
    try:
        import fsspec

        opened = fsspec.open(uri, "rb")
    except ImportError as exc:
        raise DocumentSourceError(
            f"{name}: cannot read {uri}: the filesystem for it is not installed ({exc}); "
            "install the fsspec backend for that scheme (e.g. s3fs, gcsfs, adlfs)"
        ) from exc
    except ValueError as exc:
        raise DocumentSourceError(f"{name}: cannot read {uri}: {exc}; check the URI's scheme") from exc

    def read() -> bytes:
        with opened as f:
            return bytes(f.read())

    return _guarded_read(name, uri, read)


def _guarded_read(name: str, where: str, read: Any) -> bytes:
    """Turn the permanent "not there / not a file / not allowed" errors into clear messages.

    Other errors (network, timeouts) propagate as they are: a retry may fix those.
    """
    try:
        data: bytes = read()
    except FileNotFoundError as exc:
        raise DocumentSourceError(
            f"{name}: no such file at {where}; check the path and that the upstream task wrote it"
        ) from exc
    except IsADirectoryError as exc:
        raise DocumentSourceError(
            f"{name}: {where} is a directory, not a file; point at one document"
        ) from exc
    except PermissionError as exc:
        raise DocumentSourceError(
            f"{name}: permission denied reading {where}; give the worker read access to it"
        ) from exc
    return data


def _as_bytes(data: Any, name: str) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise DocumentSourceError(f"{name}: read_bytes() returned {type(data).__name__}, not bytes")


def _object_name(source: Any, uri: str) -> str:
    for attr in ("name", "path"):
        value = getattr(source, attr, None)
        if isinstance(value, str) and value:
            return _last_segment(value) or value
    return _last_segment(urlparse(uri).path) or uri


def _last_segment(path: str) -> str:
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])


# --- validation ---------------------------------------------------------------------------------


def validate_document(
    doc: Document,
    *,
    mode: Literal["sync", "async"] = "sync",
    max_bytes: int = MAX_FILE_BYTES,
    max_pages: int | None = None,
    max_page_pixels: int = MAX_PAGE_PIXELS,
) -> Document:
    """
    Check a loaded document against the API's limits for ``mode``; return it unchanged.

    Order: empty, size, page count, page pixels (format and readability were settled at load).
    The keyword limits default to the API's and exist for tests and for stricter callers.
    """
    _check_mode(mode)
    if doc.size == 0:
        raise _empty_error(doc.name)
    _check_bytes(doc.name, doc.size, max_bytes)
    if doc.pages is None:
        return doc
    _check_page_count(doc, mode, max_pages)
    _check_page_pixels(doc, max_page_pixels)
    return doc


def _check_mode(mode: str) -> None:
    if mode not in ("sync", "async"):
        raise ValueError(f"mode must be 'sync' or 'async', not {mode!r}")


def _empty_error(name: str) -> EmptyDocumentError:
    return EmptyDocumentError(f"{name}: the file is empty (0 bytes); check the upstream task that wrote it")


def _check_bytes(name: str, size: int, max_bytes: int) -> None:
    if size == 0:
        raise _empty_error(name)
    if size > max_bytes:
        raise DocumentTooLargeError(
            f"{name}: {_format_bytes(size)} is over the API's {_format_limit(max_bytes)} limit per file; "
            "split the document or compress its images"
        )


def _check_page_count(doc: Document, mode: str, max_pages: int | None) -> None:
    count = doc.page_count or 0
    if mode == "sync":
        limit = MAX_SYNC_PAGES if max_pages is None else max_pages
        if count > limit:
            raise TooManyPagesError(
                f"{doc.name}: {count:,} pages is over the sync limit of {limit:,} pages; use the async "
                f"path (mode='async' / UpstageOCRSubmitOperator), which takes up to {MAX_ASYNC_PAGES:,}"
            )
    else:
        limit = MAX_ASYNC_PAGES if max_pages is None else max_pages
        if count > limit:
            raise TooManyPagesError(
                f"{doc.name}: {count:,} pages is over the async limit of {limit:,} pages; "
                f"split the document into parts of at most {limit:,} pages"
            )


def _check_page_pixels(doc: Document, max_page_pixels: int) -> None:
    over = [(n, p) for n, p in enumerate(doc.pages or (), start=1) if p.pixels > max_page_pixels]
    if not over:
        return
    number, page = over[0]
    more = f" (and {len(over) - 1:,} more pages)" if len(over) > 1 else ""
    if doc.format.is_image:
        measured, advice = "", "downscale it"
    else:
        measured = f" when rendered at {RENDER_DPI} DPI"
        advice = "reduce the page size (or scan at a lower resolution)"
    raise PageTooLargeError(
        f"{doc.name}: page {number}{more} is {page.width} x {page.height} = {page.pixels:,} pixels"
        f"{measured}, over the API's {max_page_pixels:,}-pixel limit per page; {advice}"
    )


def _format_limit(size: int) -> str:
    return f"{size // _MIB} MB" if size % _MIB == 0 else f"{size:,} bytes"


def _format_bytes(size: int) -> str:
    return f"{size / _MIB:.1f} MB ({size:,} bytes)"


# --- format detection ---------------------------------------------------------------------------


class _Unsupported(NamedTuple):
    """What unsupported content looks like, and what the user can do about it."""

    what: str
    advice: str


_CONVERT_IMAGE = "convert it to PNG or JPEG"


def detect_format(data: bytes, name: str = "document") -> DocumentFormat:
    """The document's format from its content; the extension is never trusted.

    Raises :class:`UnsupportedDocumentError` (saying what the content looks like) or
    :class:`CorruptDocumentError` for a container that cannot be read far enough to tell.
    """
    if not data:
        raise _empty_error(name)
    verdict = _sniff(bytes(data), name)
    if isinstance(verdict, DocumentFormat):
        return verdict
    raise UnsupportedDocumentError(
        f"{name}: the content is {verdict.what}, which the Upstage OCR API does not read; "
        f"{verdict.advice} ({_SUPPORTED_TEXT})"
    )


_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_BMP_DIB_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

#: Simple prefixes of formats we can name but not send.
_UNSUPPORTED_PREFIXES: tuple[tuple[bytes, _Unsupported], ...] = (
    (b"GIF87a", _Unsupported("a GIF image", _CONVERT_IMAGE)),
    (b"GIF89a", _Unsupported("a GIF image", _CONVERT_IMAGE)),
    (b"\xff\x0a", _Unsupported("a JPEG XL image", _CONVERT_IMAGE)),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", _Unsupported("a JPEG XL image", _CONVERT_IMAGE)),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", _Unsupported("a JPEG 2000 image", _CONVERT_IMAGE)),
    (b"\xff\x4f\xff\x51", _Unsupported("a JPEG 2000 codestream", _CONVERT_IMAGE)),
    (b"8BPS", _Unsupported("a Photoshop (PSD) file", _CONVERT_IMAGE)),
    (b"{\\rtf", _Unsupported("an RTF document", "save it as DOCX or PDF")),
    (b"HWP Document File", _Unsupported("an HWP 3 document (before HWP 5)", "save it as HWP 5, HWPX or PDF")),
    (b"\x1f\x8b", _Unsupported("a gzip archive", "extract the document from the archive")),
    (b"7z\xbc\xaf\x27\x1c", _Unsupported("a 7-Zip archive", "extract the document from the archive")),
    (b"Rar!\x1a\x07", _Unsupported("a RAR archive", "extract the document from the archive")),
)


def _sniff(data: bytes, name: str) -> DocumentFormat | _Unsupported:
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return DocumentFormat.JPEG
    if head.startswith(_PNG_MAGIC):
        return DocumentFormat.PNG
    if head.startswith(_TIFF_MAGICS):
        return DocumentFormat.TIFF
    if _looks_like_bmp(data):
        return DocumentFormat.BMP
    if data[4:8] == b"ftyp":
        return _sniff_iso_media(data)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(data, name)
    if head.startswith(_OLE_MAGIC):
        return _sniff_ole(data, name)
    if head.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _Unsupported("a WEBP image", _CONVERT_IMAGE)
    for prefix, verdict in _UNSUPPORTED_PREFIXES:
        if head.startswith(prefix):
            return verdict
    # Last of the signatures: PDF readers accept a little junk before the header.
    if b"%PDF-" in data[:1024]:
        return DocumentFormat.PDF
    if _looks_like_text(data):
        return _Unsupported("plain text", "convert it to PDF (or DOCX)")
    return _Unsupported(
        "not a format this provider recognises", "check that the file is a document or an image"
    )


def _looks_like_bmp(data: bytes) -> bool:
    if len(data) < 26 or not data.startswith(b"BM"):
        return False
    (dib_size,) = struct.unpack_from("<I", data, 14)
    (pixel_offset,) = struct.unpack_from("<I", data, 10)
    return dib_size in _BMP_DIB_HEADER_SIZES and pixel_offset >= 14 + dib_size


def _looks_like_text(data: bytes) -> bool:
    sample = data[:4096]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        return True
    if b"\x00" in sample:
        return False
    text = sample.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\t\r\n\f")
    return bad <= max(1, len(text) // 100) and printable >= 0.95 * len(text)


# ISO base media (HEIF/AVIF/MP4): the brands in the leading `ftyp` box say what the file is.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})


def _sniff_iso_media(data: bytes) -> DocumentFormat | _Unsupported:
    (size,) = struct.unpack_from(">I", data, 0)
    end = min(size if size >= 16 else 16, len(data))
    major = data[8:12]
    brands = {major} | {data[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _HEIC_BRANDS:
        return DocumentFormat.HEIC
    if major in _AVIF_BRANDS:
        return _Unsupported("an AVIF image", _CONVERT_IMAGE)
    if brands & _HEIC_BRANDS:
        return DocumentFormat.HEIC
    if brands & _AVIF_BRANDS:
        return _Unsupported("an AVIF image", _CONVERT_IMAGE)
    if brands & _HEIF_GENERIC_BRANDS:
        # A HEIF container that names no codec: the API's HEIC reader is the best bet.
        return DocumentFormat.HEIC
    return _Unsupported(
        "an MP4/QuickTime-style media file", "export a frame as PNG or JPEG, or convert it to PDF"
    )


# ZIP containers: OOXML (DOCX/PPTX/XLSX) and HWPX are told apart by their entries.
_HWPX_MIMETYPE = b"application/hwp+zip"


def _sniff_zip(data: bytes, name: str) -> DocumentFormat | _Unsupported:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            mimetype = _small_entry(zf, "mimetype", 256)
    except Exception as exc:  # zipfile raises many kinds on damaged input
        raise CorruptDocumentError(
            f"{name}: the content starts like a ZIP container (DOCX, PPTX, XLSX, HWPX) but it "
            f"cannot be read ({type(exc).__name__}: {exc}); the file is damaged or truncated, "
            "re-export or re-download it"
        ) from exc
    if mimetype is not None and mimetype.strip() == _HWPX_MIMETYPE:
        return DocumentFormat.HWPX
    tops = {n.split("/", 1)[0] + "/" for n in names if "/" in n}
    if "word/" in tops:
        return DocumentFormat.DOCX
    if "ppt/" in tops:
        return DocumentFormat.PPTX
    if "xl/" in tops:
        return DocumentFormat.XLSX
    if "Contents/" in tops and "META-INF/" in tops:
        return DocumentFormat.HWPX
    if mimetype is not None and mimetype.startswith(b"application/vnd.oasis.opendocument"):
        return _Unsupported(
            f"an OpenDocument file ({mimetype.decode('ascii', 'replace')})",
            "save it as DOCX, PPTX, XLSX or PDF",
        )
    if mimetype is not None and mimetype.strip() == b"application/epub+zip":
        return _Unsupported("an EPUB book", "convert it to PDF")
    return _Unsupported(
        f"a ZIP archive ({len(names):,} entries) that is not a DOCX, PPTX, XLSX or HWPX document",
        "extract the document from the archive",
    )


def _small_entry(zf: zipfile.ZipFile, entry: str, limit: int) -> bytes | None:
    """An entry's bytes when it exists and is small (never inflate a zip bomb)."""
    try:
        info = zf.getinfo(entry)
    except KeyError:
        return None
    if info.file_size > limit:
        return None
    with zf.open(info) as f:
        return f.read(limit)


# OLE2 compound files: HWP 5 is one, and so are the old Office formats it must not be taken for.
_HWP_SIGNATURE = b"HWP Document File"
_OLE_NAMED_STREAMS: tuple[tuple[str, _Unsupported], ...] = (
    ("WordDocument", _Unsupported("an old Word document (.doc)", "save it as DOCX or PDF")),
    ("Workbook", _Unsupported("an old Excel workbook (.xls)", "save it as XLSX or PDF")),
    ("Book", _Unsupported("an old Excel workbook (.xls)", "save it as XLSX or PDF")),
    ("PowerPoint Document", _Unsupported("an old PowerPoint file (.ppt)", "save it as PPTX or PDF")),
    (
        "EncryptedPackage",
        _Unsupported("a password-protected Office document", "remove the password and save it again"),
    ),
    ("__substg1.0_0037001F", _Unsupported("an Outlook message (.msg)", "save its attachments separately")),
)


def _sniff_ole(data: bytes, name: str) -> DocumentFormat | _Unsupported:
    try:
        ole = _OleFile(data)
        streams = ole.streams()
        header = streams.get("FileHeader")
        if header is not None and ole.read(header, len(_HWP_SIGNATURE)).startswith(_HWP_SIGNATURE):
            return DocumentFormat.HWP
    except (_OleError, struct.error, ValueError, IndexError) as exc:
        raise CorruptDocumentError(
            f"{name}: the content starts like an OLE compound file (HWP, or old .doc/.xls) but its "
            f"structure cannot be read ({exc}); the file is damaged or truncated, re-export it"
        ) from exc
    for stream, verdict in _OLE_NAMED_STREAMS:
        if stream in streams:
            return verdict
    return _Unsupported(
        "an OLE compound file that is not an HWP document", "save it as HWP 5, HWPX, DOCX or PDF"
    )


class _OleError(Exception):
    pass


class _OleEntry(NamedTuple):
    start: int
    size: int


_OLE_END_OF_CHAIN = 0xFFFFFFFE


class _OleFile:
    """Just enough of [MS-CFB] to list stream names and read the start of one stream."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 512:
            raise _OleError("shorter than its 512-byte header")
        self.data = data
        (sector_shift, mini_shift) = struct.unpack_from("<HH", data, 30)
        if sector_shift not in (9, 12) or mini_shift != 6:
            raise _OleError(f"sector shifts {sector_shift}/{mini_shift} are not valid")
        self.sector_size = 1 << sector_shift
        self.mini_size = 1 << mini_shift
        (n_fat, self.first_dir, _, self.mini_cutoff, self.first_minifat, _, first_difat, n_difat) = (
            struct.unpack_from("<IIIIIIII", data, 44)
        )
        self.max_sectors = max(0, (len(data) - self.sector_size) // self.sector_size)
        self.fat = self._read_fat(n_fat, first_difat, n_difat)
        self._minifat: list[int] | None = None
        self._ministream: bytes | None = None
        self.root = _OleEntry(0, 0)

    def _sector(self, index: int) -> bytes:
        if index >= self.max_sectors:
            raise _OleError(f"sector {index} is past the end of the file")
        offset = (index + 1) * self.sector_size
        return self.data[offset : offset + self.sector_size]

    def _read_fat(self, n_fat: int, first_difat: int, n_difat: int) -> list[int]:
        if n_fat > self.max_sectors:
            raise _OleError(f"{n_fat} FAT sectors claimed in a file of {self.max_sectors}")
        fat_sectors = [s for s in struct.unpack_from("<109I", self.data, 76) if s < _OLE_END_OF_CHAIN - 3]
        per_sector = self.sector_size // 4
        difat, seen = first_difat, 0
        while difat < _OLE_END_OF_CHAIN - 3 and seen < min(n_difat, self.max_sectors):
            entries = struct.unpack(f"<{per_sector}I", self._sector(difat))
            fat_sectors.extend(s for s in entries[:-1] if s < _OLE_END_OF_CHAIN - 3)
            difat, seen = entries[-1], seen + 1
        fat: list[int] = []
        for sector in fat_sectors[:n_fat]:
            fat.extend(struct.unpack(f"<{per_sector}I", self._sector(sector)))
        return fat

    def _chain(self, start: int, table: list[int]) -> Iterator[int]:
        current, steps = start, 0
        while current != _OLE_END_OF_CHAIN:
            if current >= len(table) or steps > len(table):
                raise _OleError(f"broken sector chain at {current}")
            yield current
            current, steps = table[current], steps + 1

    def _read_chain(self, start: int, limit: int) -> bytes:
        out = bytearray()
        for sector in self._chain(start, self.fat):
            out += self._sector(sector)
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    def streams(self) -> dict[str, _OleEntry]:
        """Every stream's name (the directory is flat enough for what we look for)."""
        directory = self._read_chain(self.first_dir, len(self.data))
        found: dict[str, _OleEntry] = {}
        for offset in range(0, len(directory) - 127, 128):
            raw_name, name_len, kind = struct.unpack_from("<64sHB", directory, offset)
            start, size = struct.unpack_from("<IQ", directory, offset + 116)
            if self.sector_size == 512:
                size &= 0xFFFFFFFF  # version 3 files leave the high half undefined
            entry = _OleEntry(start, size)
            if kind == 5:
                self.root = entry
            elif kind == 2 and 2 <= name_len <= 64:
                found[raw_name[: name_len - 2].decode("utf-16-le", "replace")] = entry
        return found

    def read(self, entry: _OleEntry, limit: int) -> bytes:
        """The first ``limit`` bytes of a stream, from the mini stream when it is small."""
        limit = min(limit, entry.size)
        if entry.size >= self.mini_cutoff:
            return self._read_chain(entry.start, limit)
        if self._minifat is None:
            raw = self._read_chain(self.first_minifat, len(self.data))
            self._minifat = list(struct.unpack(f"<{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
            self._ministream = self._read_chain(self.root.start, self.root.size)
        assert self._ministream is not None
        out = bytearray()
        for mini in self._chain(entry.start, self._minifat):
            offset = mini * self.mini_size
            if offset + self.mini_size > len(self._ministream):
                raise _OleError(f"mini sector {mini} is past the end of the mini stream")
            out += self._ministream[offset : offset + self.mini_size]
            if len(out) >= limit:
                break
        return bytes(out[:limit])


# --- pages --------------------------------------------------------------------------------------


def inspect_pages(data: bytes, fmt: DocumentFormat, name: str = "document") -> tuple[PageSize, ...] | None:
    """
    Every page's size in pixels, read from headers only; None when only rendering could tell.

    Raises :class:`CorruptDocumentError` when the headers cannot be read (and
    :class:`EncryptedDocumentError` for a password-protected PDF).
    """
    data = bytes(data)
    if fmt is DocumentFormat.PDF:
        return _pdf_pages(data, name)
    if fmt is DocumentFormat.HEIC:
        return _heic_pages(data, name)
    if fmt.is_image:
        return _pillow_pages(data, fmt, name)
    if fmt is DocumentFormat.PPTX:
        return _pptx_pages(data)
    return None


def _points_to_pixels(points: float) -> int:
    # Rounded up, as the API reports them: an A4 page (595 x 842 pt) comes back as 1240 x 1755.
    return math.ceil(points * RENDER_DPI / _POINTS_PER_INCH - 1e-6)


def _pdf_pages(data: bytes, name: str) -> tuple[PageSize, ...]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            # PDFium's last-error code can be stale after some failures, so a password error
            # counts only when the file really declares encryption.
            if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD and b"/Encrypt" in data:
                raise EncryptedDocumentError(
                    f"{name}: the PDF is password-protected and cannot be opened (the API cannot "
                    "open it either); remove the password (e.g. print to a new PDF) and try again"
                ) from exc
            if _declares_no_pages(data):
                raise _no_pages_error(name) from exc
            raise CorruptDocumentError(
                f"{name}: PDFium cannot open the PDF ({exc}); it is damaged or truncated, "
                "re-export or re-download it"
            ) from exc
        try:
            sizes = [pdf.get_page_size(i) for i in range(len(pdf))]
        except pdfium.PdfiumError as exc:
            raise CorruptDocumentError(
                f"{name}: a page of the PDF cannot be read ({exc}); re-export or re-download it"
            ) from exc
        finally:
            pdf.close()
    if not sizes:
        raise _no_pages_error(name)
    return tuple(PageSize(_points_to_pixels(w), _points_to_pixels(h)) for w, h in sizes)


def _declares_no_pages(data: bytes) -> bool:
    """PDFium refuses a PDF whose page tree is empty without saying why; its /Count says so."""
    return re.search(rb"/Count\s*0\b", data) is not None and re.search(rb"/Count\s*[1-9]", data) is None


def _no_pages_error(name: str) -> CorruptDocumentError:
    return CorruptDocumentError(f"{name}: the PDF has 0 pages; check the step that produced it")


def _pillow_pages(data: bytes, fmt: DocumentFormat, name: str) -> tuple[PageSize, ...]:
    # The plugin classes are built directly instead of through Image.open: that parses the same
    # header but skips Pillow's global decompression-bomb check, so a huge page reaches our own,
    # clearer pixel limit, and no global setting is touched.
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin

    opener: Any = {
        DocumentFormat.JPEG: JpegImagePlugin.JpegImageFile,
        DocumentFormat.PNG: PngImagePlugin.PngImageFile,
        DocumentFormat.BMP: BmpImagePlugin.BmpImageFile,
        DocumentFormat.TIFF: TiffImagePlugin.TiffImageFile,
    }[fmt]
    try:
        with opener(io.BytesIO(data)) as image:
            if fmt is DocumentFormat.TIFF:
                sizes = []
                for frame in range(image.n_frames):
                    image.seek(frame)
                    sizes.append(image.size)
            else:
                sizes = [image.size]
    except Exception as exc:  # Pillow raises many kinds on damaged headers
        raise CorruptDocumentError(
            f"{name}: the {fmt.name} header cannot be read ({type(exc).__name__}: {exc}); the file "
            "is damaged or truncated, re-export or re-download it"
        ) from exc
    return _checked_sizes(sizes, fmt, name)


def _checked_sizes(sizes: list[tuple[int, int]], fmt: DocumentFormat, name: str) -> tuple[PageSize, ...]:
    for number, (width, height) in enumerate(sizes, start=1):
        if width <= 0 or height <= 0:
            raise CorruptDocumentError(
                f"{name}: {fmt.name} page {number} claims a size of {width} x {height} pixels; "
                "the file is damaged, re-export it"
            )
    return tuple(PageSize(int(w), int(h)) for w, h in sizes)


class _BoxError(Exception):
    pass


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """ISO BMFF boxes in ``data[start:end]`` as (type, payload start, box end)."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise _BoxError(f"'{kind.decode('latin-1')}' box is cut short")
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise _BoxError(f"'{kind.decode('latin-1')}' box overruns its container")
        yield kind, pos + header, pos + size
        pos += size


def _heic_pages(data: bytes, name: str) -> tuple[PageSize, ...] | None:
    try:
        size = _heic_primary_size(data)
    except (_BoxError, struct.error, IndexError) as exc:
        raise CorruptDocumentError(
            f"{name}: the HEIC structure cannot be read ({exc}); the file is damaged or truncated, "
            "re-export it"
        ) from exc
    if size is None:
        return None
    return _checked_sizes([size], DocumentFormat.HEIC, name)


def _heic_primary_size(data: bytes) -> tuple[int, int] | None:
    """The primary image's displayed size: `ispe`, then `clap` and `irot` as associated in order.

    None for image sequences (no `meta`, only tracks): their frames are not pages we can size.
    """
    has_tracks = False
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind == b"meta":
            return _heic_meta_size(data, start + 4, end)  # a full box: skip version and flags
        has_tracks = has_tracks or kind == b"moov"
    if has_tracks:
        return None
    raise _BoxError("no 'meta' box")


def _heic_meta_size(data: bytes, start: int, end: int) -> tuple[int, int]:
    primary: int | None = None
    properties: list[tuple[bytes, int, int]] = []
    associations: dict[int, list[int]] = {}
    for kind, p, box_end in _boxes(data, start, end):
        if kind == b"pitm":
            primary = struct.unpack_from(">H" if data[p] == 0 else ">I", data, p + 4)[0]
        elif kind == b"iprp":
            for sub, q, sub_end in _boxes(data, p, box_end):
                if sub == b"ipco":
                    properties = list(_boxes(data, q, sub_end))
                elif sub == b"ipma":
                    associations.update(_parse_ipma(data, q))
    if primary in associations:
        chosen = [properties[i - 1] for i in associations[primary] if 0 < i <= len(properties)]
    else:
        chosen = properties[:]
    width = height = 0
    for kind, p, _ in chosen:
        if kind == b"ispe" and not width:
            width, height = struct.unpack_from(">II", data, p + 4)
        elif kind == b"clap" and width:
            wn, wd, hn, hd = struct.unpack_from(">IIII", data, p)
            if wd and hd:
                width, height = round(wn / wd), round(hn / hd)
        elif kind == b"irot" and width and data[p] & 1:
            width, height = height, width
    if not width:
        raise _BoxError("no image size ('ispe') for the primary image")
    return width, height


def _parse_ipma(data: bytes, p: int) -> dict[int, list[int]]:
    version, flags = data[p], int.from_bytes(data[p + 1 : p + 4], "big")
    (count,) = struct.unpack_from(">I", data, p + 4)
    pos, out = p + 8, {}
    for _ in range(count):
        if version < 1:
            (item,) = struct.unpack_from(">H", data, pos)
            pos += 2
        else:
            (item,) = struct.unpack_from(">I", data, pos)
            pos += 4
        n = data[pos]
        pos += 1
        indices = []
        for _ in range(n):
            if flags & 1:
                (value,) = struct.unpack_from(">H", data, pos)
                indices.append(value & 0x7FFF)
                pos += 2
            else:
                indices.append(data[pos] & 0x7F)
                pos += 1
        out[item] = indices
    return out


_SLIDE_ID = re.compile(rb"<(?:\w+:)?sldId\b")
_SLIDE_SIZE = re.compile(rb"<(?:\w+:)?sldSz\b([^>]*)>")
_PRESENTATION_XML_LIMIT = 16 * _MIB


def _pptx_pages(data: bytes) -> tuple[PageSize, ...] | None:
    """Slides from ``ppt/presentation.xml``, at its slide size rendered at 150 DPI; None if unclear."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            xml = _small_entry(zf, "ppt/presentation.xml", _PRESENTATION_XML_LIMIT)
    except Exception:  # the API's renderer is the judge of office files; we only measure if we can
        return None
    if xml is None:
        return None
    count = len(_SLIDE_ID.findall(xml))
    size = _SLIDE_SIZE.search(xml)
    if not count or size is None:
        return None
    cx = re.search(rb'\bcx="(\d+)"', size.group(1))
    cy = re.search(rb'\bcy="(\d+)"', size.group(1))
    if cx is None or cy is None:
        return None
    page = PageSize(_emu_to_pixels(int(cx.group(1))), _emu_to_pixels(int(cy.group(1))))
    return (page,) * count


def _emu_to_pixels(emu: int) -> int:
    return -(-emu * RENDER_DPI // _EMU_PER_INCH)  # rounded up, like PDF pages
