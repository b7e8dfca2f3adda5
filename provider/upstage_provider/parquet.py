"""Word- and page-level Parquet files from OCR results, written batch by batch and atomically.

No Airflow import: the operator hands over an ``ObjectStoragePath`` (or any ``.fs``/``.path`` object,
fsspec URI or local path) and this module does the rest with fsspec and pyarrow, so it is fast to
test and reusable outside Airflow. How the files get into place whole (staging, the lock, the write id
check) is ``publish``'s. The layout, schema and guarantees are described in
``docs/parquet.md``; column names and types are a public contract.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol, Union, runtime_checkable
from urllib.parse import unquote

import fsspec
import pyarrow as pa
from fsspec import AbstractFileSystem

from upstage_provider import __version__
from upstage_provider.columnar import PAGE_COLUMNS, POLYGON_TYPE, WORD_COLUMNS, OCRBatch, from_result
from upstage_provider.cost import billed_pages_column
from upstage_provider.exceptions import ParquetPairMismatchError, ParquetWriteError
from upstage_provider.models import OCRResult
from upstage_provider.publish import METADATA_PREFIX as METADATA_PREFIX
from upstage_provider.publish import STALE_TEMP_SECONDS as STALE_TEMP_SECONDS
from upstage_provider.publish import WRITE_ID_KEY as WRITE_ID_KEY
from upstage_provider.publish import StagedFile, as_write_error, check_same_write, document_lock, join_path

log = logging.getLogger(__name__)

__all__ = [
    "PAGES_SCHEMA",
    "POLYGON_TYPE",
    "WORDS_SCHEMA",
    "DocumentMeta",
    "ParquetPairMismatchError",
    "ParquetWriteError",
    "WriteSummary",
    "check_partition",
    "output_file_name",
    "result_batches",
    "write_ocr_parquet",
]

COMPRESSION = "zstd"
WORDS_DIR = "words"
PAGES_DIR = "pages"
# METADATA_PREFIX, WRITE_ID_KEY and STALE_TEMP_SECONDS live in ``publish`` and are re-exported here.

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
#: Columns added after the first release go at the end (``docs/parquet.md``, "Schema").
PAGES_SCHEMA: pa.Schema = _schema(PAGE_COLUMNS).append(pa.field("billed_pages", pa.int32()))


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
    #: The responses' ``numBilledPages`` summed; None when no response gave one (``cost``).
    billed_pages: int | None = None
    #: The Hive-style partition the files went to (``ds=2026-11-24``), None for none.
    partition: str | None = None


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


# --- partitions ---------------------------------------------------------------------------------

_PARTITION_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*=[^/\\]+")


def check_partition(partition: str | None) -> str | None:
    """``partition`` as it goes into the path (``ds=2026-11-24``, ``a=1/b=2``), or None for none.

    Each segment must be ``key=value`` (what Hive, Glue, Spark, Trino and DuckDB read as a
    partition column); ``..``, a leading ``/``, empty segments and names starting with ``.`` or
    ``_`` (which readers skip as hidden) are refused, so a partition never leaves its table.
    """
    if partition is None:
        return None
    if not isinstance(partition, str):
        raise TypeError(f"partition must be a string such as 'ds=2026-11-24', got {partition!r}")
    text = partition.rstrip("/")
    problem = None
    if not text:
        problem = "it is empty"
    elif text.startswith("/"):
        problem = "it starts with '/'"
    else:
        for segment in text.split("/"):
            if ".." in segment:
                problem = f"segment {segment!r} contains '..'"
            elif segment.startswith((".", "_")):
                problem = f"segment {segment!r} starts with {segment[0]!r}, which readers skip as hidden"
            elif not _PARTITION_SEGMENT.fullmatch(segment):
                problem = f"segment {segment!r} is not key=value"
            if problem:
                break
    if problem:
        raise ValueError(
            f"partition {partition!r} is not a Hive-style partition path: {problem}; "
            "use key=value segments separated by '/', e.g. 'ds=2026-11-24' or 'year=2026/month=11'"
        )
    return text


def table_folder(root: str, table: str, partition: str | None) -> str:
    """``<root>/<table>`` or ``<root>/<table>/<partition>``: each table one Hive-style dataset."""
    return join_path(root, table, partition) if partition else join_path(root, table)


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
        "request_id": _constant(batch.request_id or meta.request_id, pa.string(), length),
        "model_version": _constant(batch.model_version, pa.string(), length),
        "processed_at": _constant(stamp, _TIMESTAMP, length),
    }
    if "billed_pages" in schema.names:
        document["billed_pages"] = billed_pages_column(batch.billed_pages, length)
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
    #: Summed over the responses that gave a count, as SQL's SUM over the column: None if none did.
    billed_pages: int | None = None

    def add(self, result: OCRResult | OCRBatch, words: int, pages: int) -> None:
        self.batches += 1
        self.words += words
        self.pages += pages
        if result.billed_pages is not None:
            self.billed_pages = (self.billed_pages or 0) + result.billed_pages
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
        if self.billed_pages is not None:
            values["billed_pages"] = str(self.billed_pages)
        if not opened_with_model and self.model_versions:
            values["model_version"] = self.model_versions[0]
        return {METADATA_PREFIX + key: value for key, value in values.items()}


def write_ocr_parquet(
    results: Iterable[OCRResult | OCRBatch],
    *,
    output_uri: OutputLocation,
    meta: DocumentMeta,
    processed_at: datetime | None = None,
    partition: str | None = None,
) -> WriteSummary:
    """Write one document's OCR results to ``<output_uri>/words/`` and ``<output_uri>/pages/``.

    With ``partition`` (``ds=2026-11-24``, or several levels ``a=1/b=2``) the files go to
    ``<output_uri>/words/<partition>/`` and ``<output_uri>/pages/<partition>/``: ``output_uri`` is
    the lake root, and each table is one Hive-style partitioned dataset. A bad partition raises
    ``ValueError`` before anything is read or written.

    ``results`` is consumed lazily, one result (one async batch) at a time, each becoming a row
    group, so a 1,000-page document never sits in memory whole. Each file appears whole or not at
    all and replaces the document's earlier file; on any failure the temporary files are removed
    and an earlier file is left as it was. Errors raised by ``results`` itself propagate unchanged;
    errors while writing become ``ParquetWriteError``.
    """
    partition = check_partition(partition)
    started = time.monotonic()
    stamp = _utc(processed_at) if processed_at is not None else datetime.now(timezone.utc)
    fs, root = _resolve(output_uri)
    name = output_file_name(meta.document_uri)
    write_id = uuid.uuid4().hex
    words_dir, pages_dir = table_folder(root, WORDS_DIR, partition), table_folder(root, PAGES_DIR, partition)
    words_file = StagedFile(fs, words_dir, name, WORDS_SCHEMA, compression=COMPRESSION)
    pages_file = StagedFile(fs, pages_dir, name, PAGES_SCHEMA, compression=COMPRESSION)
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
            with as_write_error(words_file.target):
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
        # One lock per document and partition; the same document on another day is another file.
        with document_lock(fs, root, f"{partition.replace('/', '.')}.{name}" if partition else name):
            pages_file.publish()
            words_file.publish()
            check_same_write(pages_file, words_file, write_id)
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
        billed_pages=tally.billed_pages,
        partition=partition,
    )
