"""Format sniffing: which format the content is (never the extension), or what it is instead.

Signatures first, then the containers that need a look inside: ISO base media brands (HEIC vs
AVIF/MP4), ZIP entries (DOCX/PPTX/XLSX/HWPX) and OLE streams (HWP 5 vs the old Office formats).
"""

from __future__ import annotations

import io
import struct
import zipfile
from typing import NamedTuple

from upstage_provider.documents.limits import _empty_error
from upstage_provider.documents.model import _SUPPORTED_TEXT, DocumentFormat
from upstage_provider.documents.ole import _OleError, _OleFile
from upstage_provider.exceptions import CorruptDocumentError, UnsupportedDocumentError


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
