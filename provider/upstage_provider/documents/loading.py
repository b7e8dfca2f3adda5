"""The entry points that turn a source into a described, and optionally validated, :class:`Document`."""

from __future__ import annotations

import logging
from typing import Literal

from upstage_provider.documents.formats import detect_format
from upstage_provider.documents.limits import (
    MAX_FILE_BYTES,
    _check_bytes,
    _check_mode,
    _empty_error,
    _format_bytes,
    validate_document,
)
from upstage_provider.documents.model import Document
from upstage_provider.documents.pages import inspect_pages
from upstage_provider.documents.sources import DocumentSource, _read_source

# The package's name, as before it was split into modules, so logging configuration keeps matching.
from upstage_provider.wording import plural

log = logging.getLogger("upstage_provider.documents")


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
    pages = "? pages" if doc.page_count is None else plural(doc.page_count, "page")
    log.info("%s: %s, %s, %s", doc.name, doc.format.name, pages, _format_bytes(doc.size))
    return doc


def _describe(name: str, uri: str, data: bytes) -> Document:
    fmt = detect_format(data, name)
    return Document(name=name, uri=uri, data=data, format=fmt, pages=inspect_pages(data, fmt, name))
