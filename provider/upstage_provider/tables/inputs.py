"""A run's landed Parquet files, found and read into the two tables' rows with the partition column.

The table operator commits what the sensors (or the one-task operator) already landed: given their
XCom summaries, or the run's output folder and partition. Reading goes through a ``resolve``
callable (the operator passes ``upstage_provider.locations.location``) so object-storage URIs use
Airflow's connections while this module imports no Airflow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from upstage_provider.parquet import METADATA_PREFIX, PAGES_DIR, WORDS_DIR
from upstage_provider.tables.schema import (
    Partition,
    TableInputError,
    TableKind,
    conform,
    one_partition,
    parse_partition,
    partition_from_path,
    sort_rows,
    table_schema,
)

log = logging.getLogger(__name__)

Resolve = Callable[[str], Any]
_DOCUMENT_KEY = (METADATA_PREFIX + "document_uri").encode()


@dataclass(frozen=True)
class RunFiles:
    """The files one run landed, per table, and the partition they belong to."""

    partition: Partition
    words: tuple[str, ...]
    pages: tuple[str, ...]


@dataclass(frozen=True)
class RunRows:
    """What a run commits: each table's rows (sorted, with the partition column) and its documents."""

    partition: Partition
    documents: tuple[str, ...]
    words: pa.Table
    pages: pa.Table
    files: int

    def rows(self, kind: TableKind) -> pa.Table:
        return self.words if kind == "words" else self.pages


def files_from_summaries(summaries: Iterable[Mapping[str, Any] | None], partition: str | None) -> RunFiles:
    """The files named by the sensors' XCom summaries; ``None`` entries (failed documents) are skipped.

    The partition is ``partition`` when given, else each summary's ``partition`` key, else the
    files' folder (``.../words/ds=2026-11-24/``); all must agree.
    """
    landed = [s for s in summaries if s]
    words = tuple(str(s["words_uri"]) for s in landed if s.get("words_uri"))
    pages = tuple(str(s["pages_uri"]) for s in landed if s.get("pages_uri"))
    if partition:
        found: list[Partition | None] = [parse_partition(partition)]
    else:
        found = [parse_partition(s["partition"]) if s.get("partition") else None for s in landed]
        found += [partition_from_path(uri) for uri in (*words, *pages)]
    where = f"{len(landed)} landed summaries"
    if not landed:
        if not partition:
            raise TableInputError(
                "no landed summaries and no partition: nothing says which partition to commit"
            )
        return RunFiles(parse_partition(partition), (), ())
    return RunFiles(one_partition(found, where), words, pages)


def files_in_folder(output_uri: str, partition: str, resolve: Resolve = str) -> RunFiles:
    """Every landed file of ``<output_uri>/words/<partition>/`` and ``<output_uri>/pages/<partition>/``."""
    part = parse_partition(partition)
    base = str(output_uri).rstrip("/")
    listed: dict[str, tuple[str, ...]] = {}
    for folder in (WORDS_DIR, PAGES_DIR):
        uri = f"{base}/{folder}/{part.path}"
        fs, path = _fs_path(resolve(uri))
        names = sorted(
            p.rsplit("/", 1)[-1] for p in fs.glob(f"{path.rstrip('/')}/*.parquet") if not _hidden(p)
        )
        listed[folder] = tuple(f"{uri}/{name}" for name in names)
    return RunFiles(part, listed[WORDS_DIR], listed[PAGES_DIR])


def read_run(files: RunFiles, resolve: Resolve = str) -> RunRows:
    """Load the run's files into the two tables' rows; files lacking a newer column get nulls there."""
    partition = files.partition
    documents: set[str] = set()
    tables: dict[TableKind, pa.Table] = {}
    per_table: tuple[tuple[TableKind, tuple[str, ...]], ...] = (
        ("words", files.words),
        ("pages", files.pages),
    )
    for kind, uris in per_table:
        loaded = [(uri, _read(resolve(uri))) for uri in uris]
        schema = table_schema(kind, partition.column, [t.schema for _, t in loaded])
        parts = [conform(table, schema, partition, source=uri) for uri, table in loaded]
        for uri, table in loaded:
            documents |= _documents(uri, table)
        merged = pa.concat_tables(parts) if parts else schema.empty_table()
        tables[kind] = sort_rows(merged, kind)
    rows = RunRows(
        partition=partition,
        documents=tuple(sorted(documents)),
        words=tables["words"],
        pages=tables["pages"],
        files=len(files.words) + len(files.pages),
    )
    log.info(
        "read %d files of %s: %d documents, %d words, %d pages",
        rows.files,
        partition.path,
        len(rows.documents),
        rows.words.num_rows,
        rows.pages.num_rows,
    )
    return rows


def _documents(uri: str, table: pa.Table) -> set[str]:
    """The documents a file holds: its footer's ``upstage.document_uri`` (there even with zero rows)."""
    found = (
        set(table.column("document_uri").unique().to_pylist())
        if "document_uri" in table.column_names
        else set()
    )
    metadata = table.schema.metadata or {}
    if _DOCUMENT_KEY in metadata:
        found.add(metadata[_DOCUMENT_KEY].decode())
    if not found and table.num_rows == 0:
        log.warning("%s has no rows and no %s: it replaces nothing", uri, _DOCUMENT_KEY.decode())
    return {d for d in found if d is not None}


def _read(location: Any) -> pa.Table:
    fs, path = _fs_path(location)
    try:
        return pq.read_table(path, filesystem=fs)
    except FileNotFoundError as exc:
        raise TableInputError(f"landed file {path} is gone: {exc}") from exc


def _fs_path(location: Any) -> tuple[AbstractFileSystem, str]:
    """The filesystem and path of a location: ``.fs``/``.path`` (``ObjectStoragePath``) win."""
    fs, path = getattr(location, "fs", None), getattr(location, "path", None)
    if isinstance(fs, AbstractFileSystem) and isinstance(path, str):
        return fs, path
    return fsspec.core.url_to_fs(os.fspath(location) if isinstance(location, os.PathLike) else str(location))


def _hidden(path: str) -> bool:
    """Staging temporaries and markers start with ``.`` or ``_``: never a landed file."""
    return path.rsplit("/", 1)[-1].startswith((".", "_"))
