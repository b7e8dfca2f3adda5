"""Where a document's bytes come from: paths, file URIs, fsspec URIs, path-like objects and bytes.

Missing, directory and permission errors become :class:`DocumentSourceError` with a message to act
on; anything else (network, timeouts) propagates, since a retry may fix it.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, TypeAlias, runtime_checkable
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from upstage_provider.exceptions import DocumentSourceError


@runtime_checkable
class SupportsReadBytes(Protocol):
    """A path-like object that reads itself (``ObjectStoragePath``, ``upath.UPath``, ``pathlib.Path``)."""

    def read_bytes(self) -> bytes: ...


DocumentSource: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | memoryview | SupportsReadBytes"


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
