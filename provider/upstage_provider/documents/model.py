"""The document value and its format: the types every other module of this package passes around."""

from __future__ import annotations

import enum
import functools
import hashlib
from dataclasses import dataclass, field


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
