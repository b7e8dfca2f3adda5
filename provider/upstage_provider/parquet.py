"""Word- and page-level Parquet files from OCR results, written batch by batch and atomically.

No Airflow import: the operator hands over an ``ObjectStoragePath`` (or any ``.fs``/``.path`` object,
fsspec URI or local path) and this module does the rest with fsspec and pyarrow, so it is fast to
test and reusable outside Airflow. The layout, schema and guarantees are described in
``docs/parquet.md``; column names and types are a public contract.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import time
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Protocol, Union, runtime_checkable
from urllib.parse import unquote

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from upstage_provider import __version__
from upstage_provider.columnar import PAGE_COLUMNS, POLYGON_TYPE, WORD_COLUMNS, OCRBatch, from_result
from upstage_provider.exceptions import ParquetPairMismatchError, ParquetWriteError
from upstage_provider.models import OCRResult

try:
    import fcntl
except ImportError:  # not POSIX: no per-document lock, the write id check still guards the pair
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

__all__ = [
    "PAGES_SCHEMA",
    "POLYGON_TYPE",
    "WORDS_SCHEMA",
    "DocumentMeta",
    "ParquetPairMismatchError",
    "ParquetWriteError",
    "WriteSummary",
    "output_file_name",
    "result_batches",
    "write_ocr_parquet",
]

COMPRESSION = "zstd"
WORDS_DIR = "words"
PAGES_DIR = "pages"
METADATA_PREFIX = "upstage."

#: A hidden temporary file of the same target untouched for this long was left by a writer that
#: was killed (SIGKILL, OOM, a lost node): no ``finally`` ran for it. Younger ones may belong to a
#: run still writing the same document, so they are left alone.
STALE_TEMP_SECONDS = 300.0

#: Footer key naming the write a file came from; the words and pages files of one write share it.
WRITE_ID_KEY = METADATA_PREFIX + "write_id"

_TIMESTAMP = pa.timestamp("us", tz="UTC")


def _schema(columns: pa.Schema) -> pa.Schema:
    """The response's columns with the document's around them, so a lake reads without joins."""
    return pa.schema(
        [
            pa.field("document_uri", pa.string(), nullable=False),
            pa.field("document_sha256", pa.string(), nullable=False),
            pa.field("request_id", pa.string()),
            pa.field("model_version", pa.string()),
            *columns,
            pa.field("processed_at", _TIMESTAMP, nullable=False),
        ]
    )


WORDS_SCHEMA: pa.Schema = _schema(WORD_COLUMNS)
PAGES_SCHEMA: pa.Schema = _schema(PAGE_COLUMNS)


@dataclass(frozen=True)
class DocumentMeta:
    """Facts about the source document that every row carries."""

    document_uri: str
    document_sha256: str
    request_id: str | None = None


@dataclass(frozen=True)
class WriteSummary:
    """What ``write_ocr_parquet`` wrote: small enough for an XCom."""

    words_uri: str
    pages_uri: str
    pages: int
    words: int
    seconds: float
    model_version: str | None
    #: ``upstage.write_id`` in both files' footers: the two files belong together when it matches.
    write_id: str | None = None


@runtime_checkable
class StorageLocation(Protocol):
    """Anything with an fsspec filesystem and a path on it: ``ObjectStoragePath``, ``upath.UPath``."""

    @property
    def fs(self) -> AbstractFileSystem: ...

    @property
    def path(self) -> str: ...


OutputLocation = Union[str, "os.PathLike[str]", StorageLocation]


# --- file naming --------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM = 64
_HASH_CHARS = 12


def output_file_name(document_uri: str) -> str:
    """A stable, filesystem-safe ``<stem>-<hash>.parquet`` name for one document.

    The same URI always gives the same name, so a rerun replaces its own files instead of adding
    rows; the hash of the full URI keeps ``a/scan.pdf`` and ``b/scan.pdf`` apart. The stem is only
    for people reading a listing and never starts with ``.`` or ``_`` (readers would skip it).
    """
    digest = hashlib.sha256(document_uri.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{_readable_stem(document_uri)}-{digest}.parquet"


def _readable_stem(document_uri: str) -> str:
    path = document_uri
    if "://" in path:  # drop scheme, host, query and fragment: they say nothing about the document
        path = re.split(r"[?#]", path.split("://", 1)[1], maxsplit=1)[0].partition("/")[2]
    name = unquote(path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
    stem, dot, _suffix = name.rpartition(".")
    if not dot or not stem:
        stem = name
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    safe = _UNSAFE.sub("-", ascii_stem).strip("._-")[:_MAX_STEM].strip("._-")
    return safe or "document"


# --- Arrow conversion ---------------------------------------------------------------------------


def _utc(processed_at: datetime) -> datetime:
    if processed_at.tzinfo is None or processed_at.utcoffset() is None:
        raise ValueError(f"processed_at must be timezone-aware, got naive {processed_at.isoformat()}")
    return processed_at.astimezone(timezone.utc)


def _constant(value: object, type_: pa.DataType, length: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, type=type_), length)


def result_batches(
    result: OCRResult | OCRBatch, meta: DocumentMeta, processed_at: datetime
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """One OCR result as a words batch and a pages batch, matching ``WORDS_SCHEMA``/``PAGES_SCHEMA``.

    The response's own columns come from ``columnar`` (vectorized for downloaded bytes, the
    reference conversion for parsed dataclasses); the document's columns are constants around them.
    """
    batch = result if isinstance(result, OCRBatch) else from_result(result)
    stamp = _utc(processed_at)
    return (
        _with_document(batch.words, WORDS_SCHEMA, batch, meta, stamp),
        _with_document(batch.pages, PAGES_SCHEMA, batch, meta, stamp),
    )


def _with_document(
    columns: pa.RecordBatch, schema: pa.Schema, batch: OCRBatch, meta: DocumentMeta, stamp: datetime
) -> pa.RecordBatch:
    length = columns.num_rows
    document = {
        "document_uri": _constant(meta.document_uri, pa.string(), length),
        "document_sha256": _constant(meta.document_sha256, pa.string(), length),
        "request_id": _constant(meta.request_id, pa.string(), length),
        "model_version": _constant(batch.model_version, pa.string(), length),
        "processed_at": _constant(stamp, _TIMESTAMP, length),
    }
    arrays = [document[name] if name in document else columns.column(name) for name in schema.names]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --- where to write -----------------------------------------------------------------------------


def _resolve(output_uri: OutputLocation) -> tuple[AbstractFileSystem, str]:
    """The filesystem and root path; ``.fs`` wins so an ObjectStoragePath keeps its connection."""
    fs = getattr(output_uri, "fs", None)
    path = getattr(output_uri, "path", None)
    if isinstance(fs, AbstractFileSystem) and isinstance(path, str):
        return fs, path.rstrip("/") or "/"
    if isinstance(output_uri, os.PathLike):
        output_uri = os.fspath(output_uri)
    if not isinstance(output_uri, str) or not output_uri:
        raise TypeError(
            f"output_uri must be a path, an fsspec URI or an object with .fs and .path, got {output_uri!r}"
        )
    fs, path = fsspec.core.url_to_fs(output_uri)
    return fs, path.rstrip("/") or "/"


def _is_local(fs: AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _display_uri(fs: AbstractFileSystem, path: str) -> str:
    """Local files as absolute paths, everything else with its scheme (``s3://...``)."""
    return path if _is_local(fs) else fs.unstrip_protocol(path)


def _join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/"), *(part.strip("/") for part in parts[1:])])


# --- one file, staged under a hidden name -------------------------------------------------------


class _StagedFile:
    """A Parquet file written under a hidden temporary name and moved into place on commit.

    Readers never see it half-written: the ``.`` prefix hides it from pyarrow.dataset and Spark,
    and the ``.tmp-<uuid>`` suffix from ``*.parquet`` globs; the uuid keeps concurrent runs apart.
    """

    def __init__(self, fs: AbstractFileSystem, folder: str, name: str, schema: pa.Schema) -> None:
        self.fs = fs
        self.folder = folder
        self.final = _join(folder, name)
        self.temp = _join(folder, f".{name}.tmp-{uuid.uuid4().hex}")
        self.target = _display_uri(fs, self.final)
        self.schema = schema
        self._handle: IO[bytes] | None = None
        self._writer: pq.ParquetWriter | None = None

    def open(self, metadata: dict[str, str]) -> None:
        with _as_write_error(self.target):
            self.fs.makedirs(self.folder, exist_ok=True)
            self._handle = self.fs.open(self.temp, "wb")
            self._writer = pq.ParquetWriter(
                self._handle, self.schema.with_metadata(metadata), compression=COMPRESSION
            )

    def write(self, batch: pa.RecordBatch) -> None:
        """One call, one row group; empty batches are skipped (they would be empty row groups)."""
        if batch.num_rows == 0:
            return
        assert self._writer is not None, "open() first"
        with _as_write_error(self.target):
            self._writer.write_batch(batch)

    def finish(self, late_metadata: dict[str, str]) -> None:
        """Write the footer; the file stays hidden until ``publish``."""
        assert self._writer is not None, "open() first"
        assert self._handle is not None, "open() first"
        with _as_write_error(self.target):
            self._writer.add_key_value_metadata(late_metadata)
            self._writer.close()
            self._writer = None
            self._handle.close()
            self._handle = None

    def publish(self) -> None:
        """Rename over any earlier file (one atomic step on local disk)."""
        assert self._writer is None, "finish() first"
        assert self._handle is None, "finish() first"
        with _as_write_error(self.target):
            if _is_local(self.fs):
                os.replace(self.temp, self.final)
            else:
                self.fs.mv(self.temp, self.final)

    def remove_stale_temps(self) -> None:
        _remove_stale_temps(self.fs, self.folder, self.final.rsplit("/", 1)[-1])

    def discard(self) -> None:
        """Best effort: the error that brought us here matters more than one from cleaning up."""
        if self._writer is not None:
            with suppress(Exception):
                self._writer.close()
        if self._handle is not None:
            with suppress(Exception):
                self._handle.close()
        self._writer = self._handle = None
        with suppress(Exception):
            if self.fs.exists(self.temp):
                self.fs.rm(self.temp)


def _remove_stale_temps(fs: AbstractFileSystem, folder: str, name: str) -> int:
    """Delete the hidden temporaries of ``name`` that killed writers left; returns how many.

    Only this target's own ``.<name>.tmp-<uuid hex>`` files older than ``STALE_TEMP_SECONDS`` go:
    other documents' files and a concurrent run's fresh ones are never touched. Best effort: a
    failure here must not fail a write that has already been published.
    """
    pattern = re.compile(re.escape(f".{name}.tmp-") + r"[0-9a-f]{32}")
    removed = 0
    try:
        entries = fs.ls(folder, detail=True)
    except Exception as exc:
        log.debug("could not list %s for stale temporary files: %s", folder, exc)
        return 0
    now = time.time()
    for entry in entries:
        path = str(entry.get("name", ""))
        if not pattern.fullmatch(path.rsplit("/", 1)[-1]):
            continue
        try:
            modified = fs.modified(path).timestamp()
            if now - modified < STALE_TEMP_SECONDS:
                continue
            fs.rm(path)
            removed += 1
        except Exception as exc:
            log.debug("could not remove stale temporary file %s: %s", path, exc)
    if removed:
        log.info(
            "removed %d stale temporary file(s) of %s left by killed writers", removed, _join(folder, name)
        )
    return removed


@contextmanager
def _as_write_error(target: str) -> Iterator[None]:
    """Turns any failure while writing into a ParquetWriteError naming the target file."""
    try:
        yield
    except ParquetWriteError:
        raise
    except Exception as exc:
        raise ParquetWriteError(target, exc) from exc


# --- one document's pair, published together ---------------------------------------------------

#: ``flock`` errors that mean "this filesystem has no locks" rather than "something is wrong".
_NO_LOCK_ERRNOS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL})


@contextmanager
def _document_lock(fs: AbstractFileSystem, root: str, name: str) -> Iterator[None]:
    """Keep other writers of the same document out while this one publishes its pair.

    Local disk only: an exclusive ``flock`` on the hidden ``<root>/.<name>.lock``, which readers
    skip like the temporaries. Elsewhere (object stores have no locks) and where ``flock`` is not
    supported it does nothing, and the write id check is the guard. The lock file is removed
    before the lock is released; one left by a killed writer is simply taken over.
    """
    if fcntl is None or not _is_local(fs):
        yield
        return
    path = _join(root, f".{name}.lock")
    with _as_write_error(path):
        fd = _lock_file(path)
    if fd is None:
        yield
        return
    try:
        yield
    finally:
        with suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _lock_file(path: str) -> int | None:
    """A descriptor holding the lock on the file now at ``path``; None if locks are not supported.

    A writer that waited may get the lock on a file the previous holder has just removed; it then
    tries again on the file at ``path``, so two writers never hold locks on different files.
    """
    assert fcntl is not None
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
        except OSError as exc:
            os.close(fd)
            if exc.errno in _NO_LOCK_ERRNOS:
                with suppress(OSError):
                    os.unlink(path)
                log.warning("no file locks on %s (%s): relying on the write id check", path, exc)
                return None
            raise
        except BaseException:
            os.close(fd)
            raise
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)


def _check_same_write(pages: _StagedFile, words: _StagedFile, write_id: str) -> None:
    """Raise if this write's words file now stands beside another write's pages file.

    Run after both renames (pages first). The writer whose words rename comes last always finds
    its own words file, and finds another write's pages file exactly when the pair is mixed, so a
    mixed pair always fails at least one run. A writer whose words file was already replaced
    again has been superseded: the later writer checks the pair.
    """
    try:
        theirs = _published_write_id(pages)
        if theirs == write_id:
            return
        superseding = _published_write_id(words)
    except Exception as exc:
        raise ParquetPairMismatchError(
            words.target, pages.target, write_id, f"reading them back failed ({exc})", footer_key=WRITE_ID_KEY
        ) from exc
    if superseding != write_id:
        log.warning(
            "%s and %s were replaced by a concurrent write (%s %s) right after this one (%s)",
            words.target,
            pages.target,
            WRITE_ID_KEY,
            superseding,
            write_id,
        )
        return
    raise ParquetPairMismatchError(
        words.target,
        pages.target,
        write_id,
        f"{pages.target} has {WRITE_ID_KEY} {theirs or 'none'}, this run wrote {write_id}",
        footer_key=WRITE_ID_KEY,
    )


def _published_write_id(file: _StagedFile) -> str | None:
    with file.fs.open(file.final, "rb") as handle:
        found = (pq.read_metadata(handle).metadata or {}).get(WRITE_ID_KEY.encode())
    return found.decode(errors="replace") if found is not None else None


# --- the writer ---------------------------------------------------------------------------------


def _open_metadata(
    meta: DocumentMeta, model_version: str | None, processed_at: datetime, write_id: str
) -> dict[str, str]:
    """Key-value metadata known when the files open; it also lands in the Arrow schema readers see."""
    values: dict[str, str | None] = {
        "document_uri": meta.document_uri,
        "document_sha256": meta.document_sha256,
        "request_id": meta.request_id,
        "model_version": model_version,
        "source": "upstage-ocr-async" if meta.request_id else "upstage-ocr-sync",
        "provider_version": __version__,
        "processed_at": processed_at.isoformat(),
        "write_id": write_id,
    }
    return {METADATA_PREFIX + key: value for key, value in values.items() if value is not None}


@dataclass
class _Tally:
    batches: int = 0
    pages: int = 0
    words: int = 0
    model_versions: tuple[str, ...] = ()
    api_versions: tuple[str, ...] = ()

    def add(self, result: OCRResult | OCRBatch, words: int, pages: int) -> None:
        self.batches += 1
        self.words += words
        self.pages += pages
        if result.model_version and result.model_version not in self.model_versions:
            self.model_versions += (result.model_version,)
        if result.api_version and result.api_version not in self.api_versions:
            self.api_versions += (result.api_version,)

    def late_metadata(self, opened_with_model: bool) -> dict[str, str]:
        """Facts known only at the end; they go to the Parquet footer (``pq.read_metadata``)."""
        values = {
            "batches": str(self.batches),
            "pages": str(self.pages),
            "words": str(self.words),
            "model_versions": json.dumps(list(self.model_versions)),
            "api_versions": json.dumps(list(self.api_versions)),
        }
        if not opened_with_model and self.model_versions:
            values["model_version"] = self.model_versions[0]
        return {METADATA_PREFIX + key: value for key, value in values.items()}


def write_ocr_parquet(
    results: Iterable[OCRResult | OCRBatch],
    *,
    output_uri: OutputLocation,
    meta: DocumentMeta,
    processed_at: datetime | None = None,
) -> WriteSummary:
    """Write one document's OCR results to ``<output_uri>/words/`` and ``<output_uri>/pages/``.

    ``results`` is consumed lazily, one result (one async batch) at a time, each becoming a row
    group, so a 1,000-page document never sits in memory whole. Each file appears whole or not at
    all and replaces the document's earlier file; on any failure the temporary files are removed
    and an earlier file is left as it was. Errors raised by ``results`` itself propagate unchanged;
    errors while writing become ``ParquetWriteError``.
    """
    started = time.monotonic()
    stamp = _utc(processed_at) if processed_at is not None else datetime.now(timezone.utc)
    fs, root = _resolve(output_uri)
    name = output_file_name(meta.document_uri)
    write_id = uuid.uuid4().hex
    words_file = _StagedFile(fs, _join(root, WORDS_DIR), name, WORDS_SCHEMA)
    pages_file = _StagedFile(fs, _join(root, PAGES_DIR), name, PAGES_SCHEMA)
    staged = (words_file, pages_file)
    tally = _Tally()
    opened_model: str | None = None
    opened = False
    try:
        for result in results:
            if not opened:
                # Opening on the first batch puts its model version into the schema metadata.
                opened_model = result.model_version
                for file in staged:
                    file.open(_open_metadata(meta, opened_model, stamp, write_id))
                opened = True
            with _as_write_error(words_file.target):
                words, pages = result_batches(result, meta, stamp)
            words_file.write(words)
            pages_file.write(pages)
            tally.add(result, words.num_rows, pages.num_rows)
            log.debug("batch %d done, %d/%d words/pages so far", tally.batches, tally.words, tally.pages)
        if not opened:
            for file in staged:
                file.open(_open_metadata(meta, None, stamp, write_id))
        late = tally.late_metadata(opened_with_model=opened_model is not None)
        for file in staged:
            file.finish(late)
        # Pages first: a reader joining words to pages then finds every word's page, even between
        # the two renames. Only the renames and the check are done under the lock.
        with _document_lock(fs, root, name):
            pages_file.publish()
            words_file.publish()
            _check_same_write(pages_file, words_file, write_id)
    except BaseException:
        for file in staged:
            file.discard()
        raise
    for file in staged:
        file.remove_stale_temps()

    seconds = time.monotonic() - started
    log.info(
        "wrote %d words and %d pages from %d batches to 2 files (%s, %s) in %.2fs, write id %s",
        tally.words,
        tally.pages,
        tally.batches,
        words_file.target,
        pages_file.target,
        seconds,
        write_id,
    )
    return WriteSummary(
        words_uri=words_file.target,
        pages_uri=pages_file.target,
        pages=tally.pages,
        words=tally.words,
        seconds=seconds,
        model_version=tally.model_versions[0] if tally.model_versions else None,
        write_id=write_id,
    )
