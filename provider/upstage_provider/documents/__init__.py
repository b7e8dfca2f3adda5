"""What a document is, and whether the Upstage OCR API will take it, decided before any upload.

A rejected upload costs a round trip (and for async, a request that fails minutes later), so the
format is sniffed from the content and the API's documented limits (file size, pages per
endpoint, pixels per page) are checked locally with messages that say what to do. Nothing here
renders pages or decodes pixels: headers are enough, which keeps loading cheap on a worker.

No Airflow import: the hook, the operators and the emulator all share this package. Its modules,
in import order (each imports only those before it):

- :mod:`~upstage_provider.documents.model`: :class:`Document`, :class:`DocumentFormat`, :class:`PageSize`
- :mod:`~upstage_provider.documents.limits`: the API's limits and :func:`validate_document`
- :mod:`~upstage_provider.documents.ole`: a minimal OLE2 compound-file reader
- :mod:`~upstage_provider.documents.formats`: :func:`detect_format`, sniffing the content
- :mod:`~upstage_provider.documents.heif`: a minimal HEIF box parser
- :mod:`~upstage_provider.documents.pages`: :func:`inspect_pages`, measuring pages from headers
- :mod:`~upstage_provider.documents.sources`: reading bytes from paths, URIs, objects and bytes
- :mod:`~upstage_provider.documents.loading`: :func:`load_document` and :func:`prepare_document`
"""

from __future__ import annotations

from upstage_provider.documents.formats import detect_format
from upstage_provider.documents.limits import (
    MAX_ASYNC_PAGES,
    MAX_FILE_BYTES,
    MAX_PAGE_PIXELS,
    MAX_SYNC_PAGES,
    RENDER_DPI,
    validate_document,
)
from upstage_provider.documents.loading import load_document, prepare_document
from upstage_provider.documents.model import Document, DocumentFormat, PageSize
from upstage_provider.documents.pages import PDFIUM_LOCK, inspect_pages
from upstage_provider.documents.sources import DocumentSource, SupportsReadBytes

# The errors this package raises, importable from here as they always were.
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

__all__ = [
    "MAX_ASYNC_PAGES",
    "MAX_FILE_BYTES",
    "MAX_PAGE_PIXELS",
    "MAX_SYNC_PAGES",
    "PDFIUM_LOCK",
    "RENDER_DPI",
    "CorruptDocumentError",
    "Document",
    "DocumentFormat",
    "DocumentSource",
    "DocumentSourceError",
    "DocumentTooLargeError",
    "EmptyDocumentError",
    "EncryptedDocumentError",
    "PageSize",
    "PageTooLargeError",
    "SupportsReadBytes",
    "TooManyPagesError",
    "UnsupportedDocumentError",
    "detect_format",
    "inspect_pages",
    "load_document",
    "prepare_document",
    "validate_document",
]
