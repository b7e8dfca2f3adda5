"""Delta tables through delta-rs (``deltalake``): create on first use, replace a run's rows in one commit.

A commit is one ``write_deltalake(mode="overwrite", predicate=...)``: the predicate
``<partition column> = 'value' AND document_uri IN (this run's documents)`` removes those rows
and the new rows are added in the same log entry, so a reader sees the whole run or none of it.
``schema_mode="merge"`` adds columns a newer Parquet schema brings. A new table is created empty
first (version 0, partitioned by the partition column), so the run's own write is always the
predicate overwrite and two runs creating the table at once cannot both append. Delta has no sort
order: the rows are written sorted by document, page (and word), which clusters each data file.

As with Iceberg, the rows are rewritten rather than registered: the landed files lack the
partition column and are replaced in place by a rerun (see ``tables.iceberg``).

deltalake is imported here only: ``pip install 'airflow-provider-upstage[delta]'``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa

from upstage_provider.tables.commit import (
    DEFAULT_COMMIT_ATTEMPTS,
    BeforeCommit,
    CommitResult,
    with_retries,
)
from upstage_provider.tables.inputs import RunRows
from upstage_provider.tables.schema import SORT_COLUMNS, TableKind

if TYPE_CHECKING:
    from deltalake import DeltaTable

log = logging.getLogger(__name__)

EXTRA = "delta"


def _import_deltalake() -> None:
    try:
        import deltalake  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"Delta tables need deltalake: pip install 'airflow-provider-upstage[{EXTRA}]' ({exc})"
        ) from None


def _is_conflict(exc: BaseException) -> bool:
    from deltalake.exceptions import CommitFailedError

    return isinstance(exc, CommitFailedError)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def replace_predicate(run: RunRows) -> str:
    """The rows a run replaces, as a delta-rs SQL predicate: its partition and its documents."""
    documents = ", ".join(_sql_string(d) for d in run.documents)
    return f"{run.partition.column} = {_sql_string(run.partition.value)} AND document_uri IN ({documents})"


def commit_delta(
    table_uri: str,
    kind: TableKind,
    run: RunRows,
    *,
    storage_options: Mapping[str, str] | None = None,
    attempts: int = DEFAULT_COMMIT_ATTEMPTS,
    before_commit: BeforeCommit | None = None,
) -> CommitResult:
    """Replace the run's rows of the Delta table at ``table_uri`` (created on first use) in one commit.

    delta-rs resolves some concurrent commits itself (a commit touching other partitions is
    rebased); a real conflict (``CommitFailedError``) is retried here from a fresh load.
    """
    _import_deltalake()
    from deltalake import DeltaTable, write_deltalake

    data = run.rows(kind)
    options = dict(storage_options or {}) or None
    created = _create_if_missing(table_uri, kind, data.schema, run.partition.column, options)

    def attempt(number: int) -> CommitResult:
        table = DeltaTable(table_uri, storage_options=options)
        loaded = table.version()
        if before_commit is not None:
            before_commit(table_uri, number, loaded)
        write_deltalake(
            table,
            data,
            mode="overwrite",
            predicate=replace_predicate(run),
            schema_mode="merge",
            storage_options=options,
        )
        # The table object now stands at the version this write made, whoever commits after us.
        return _result(table, table_uri, options, data, number, created=created)

    result = with_retries(attempt, _is_conflict, table=table_uri, attempts=attempts)
    log.info(
        "%s: committed %d rows of %s for %d documents (%d bytes in %d files), version %s, %d attempt(s)%s",
        table_uri,
        result.rows,
        run.partition.path,
        len(run.documents),
        result.bytes,
        result.files,
        result.version,
        result.attempts,
        ", table created" if result.created else "",
    )
    return result


def _create_if_missing(
    table_uri: str, kind: TableKind, schema: pa.Schema, partition_column: str, options: dict[str, str] | None
) -> bool:
    """Create the empty, partitioned table unless it exists; True when this call created it."""
    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError, TableNotFoundError

    # Not DeltaTable.is_deltatable: on S3 it holds the GIL through its requests (deltalake 1.6),
    # stalling every other thread of the worker, and deadlocking with a server in the same process.
    try:
        DeltaTable(table_uri, storage_options=options)
    except TableNotFoundError:
        pass
    else:
        return False
    try:
        DeltaTable.create(
            table_uri,
            schema=schema,
            mode="ignore",
            partition_by=[partition_column],
            name=f"upstage_ocr_{kind}",
            description=f"Upstage OCR {kind}; rows sorted by {', '.join(SORT_COLUMNS[kind])}",
            storage_options=options,
        )
    except CommitFailedError:  # a concurrent run created it first
        return False
    log.info("%s: created the Delta table, partitioned by %s", table_uri, partition_column)
    return True


def _result(
    table: DeltaTable,
    table_uri: str,
    options: dict[str, str] | None,
    data: pa.Table,
    attempts: int,
    *,
    created: bool,
) -> CommitResult:
    """The commit's facts: its version, and the files it added (rows, bytes) for lineage."""
    version = table.version()
    added, size = _added_files(table_uri, options, version)
    return CommitResult(
        table=table_uri,
        format="delta",
        rows=data.num_rows,
        bytes=size,
        files=added,
        snapshot_id=None,
        version=version,
        attempts=attempts,
        created=created,
        location=table_uri,
    )


def _added_files(table_uri: str, options: dict[str, str] | None, version: int) -> tuple[int, int]:
    """How many files (and bytes) ``version`` added: the difference to the version before it."""
    from deltalake import DeltaTable

    def files(at: int) -> dict[str, int]:
        if at < 0:
            return {}
        actions = DeltaTable(table_uri, version=at, storage_options=options).get_add_actions(flatten=True)
        table = pa.table(actions)
        return dict(
            zip(table.column("path").to_pylist(), table.column("size_bytes").to_pylist(), strict=True)
        )

    before, after = files(version - 1), files(version)
    new = {path: size for path, size in after.items() if path not in before}
    return len(new), sum(new.values())
