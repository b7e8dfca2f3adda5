"""Iceberg tables through pyiceberg: create on first use, and replace a run's rows in one commit.

A commit is one pyiceberg transaction: ``overwrite`` with the filter ``<partition column> = value
AND document_uri IN (this run's documents)`` deletes those rows (dropping or rewriting the data
files that hold them) and appends the new rows; the catalog swaps the table's metadata once, so a
reader sees the whole run or none of it. The table is created in the same kind of transaction,
with an identity partition on the partition column and a sort order by document, page (and word).

Why the rows are rewritten instead of registering the landed files with ``add_files``: the landed
files carry no partition column (the partition is only in their folder name, and ``add_files``
takes partition values from the files' own column statistics), and a rerun replaces a landed file
in place under the same name, which would change the bytes under a data file an earlier snapshot
still references. Data files the table owns are never touched again by the landing step.

pyiceberg is imported here only: ``pip install 'airflow-provider-upstage[iceberg]'``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from upstage_provider.tables.commit import (
    DEFAULT_COMMIT_ATTEMPTS,
    BeforeCommit,
    CatalogAccessError,
    CommitResult,
    with_retries,
)
from upstage_provider.tables.inputs import RunRows
from upstage_provider.tables.schema import SORT_COLUMNS, TableKind

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table, Transaction

log = logging.getLogger(__name__)

EXTRA = "iceberg"


def _import_pyiceberg() -> None:
    try:
        import pyiceberg  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"Iceberg tables need pyiceberg: pip install 'airflow-provider-upstage[{EXTRA}]' ({exc})"
        ) from None
    # A first run's delete matches nothing by design; pyiceberg warns about it on every such commit.
    warnings.filterwarnings("ignore", message="Delete operation did not match any records")


#: Property names whose values are secrets, kept out of error messages (pyiceberg echoes none, a
#: server's error message might).
_SECRET_HINTS = ("token", "credential", "secret", "password", "key")


def secret_values(properties: Mapping[str, Any]) -> list[str]:
    """The secrets among catalog properties: values of secret-named keys (a credential's secret
    part alone too) and the password in a URI (``postgresql://user:password@host/db``)."""
    from urllib.parse import urlsplit

    found: set[str] = set()
    for name, value in properties.items():
        if not value:
            continue
        text = str(value)
        if any(hint in str(name).lower() for hint in _SECRET_HINTS):
            found |= {text, text.rpartition(":")[2]}
        elif "://" in text:
            try:
                password = urlsplit(text).password
            except ValueError:
                password = None
            if password:
                found.add(password)
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def _redact(text: str, properties: Mapping[str, Any]) -> str:
    for secret in secret_values(properties):
        text = text.replace(secret, "***")
    return text


@contextmanager
def _catalog_access(name: str, properties: Mapping[str, Any], *, loading: bool) -> Iterator[None]:
    """A refused catalog (401, 403, OAuth; while loading also 400 and 404) as a CatalogAccessError.

    Server errors (5xx) and lost commits stay as they are: those are worth a retry.
    """
    from pyiceberg.exceptions import (
        BadRequestError,
        ForbiddenError,
        OAuthError,
        RESTError,
        UnauthorizedError,
    )

    try:
        yield
    except (UnauthorizedError, ForbiddenError, OAuthError) as exc:
        raise CatalogAccessError(
            _redact(
                f"Iceberg catalog {name!r} at {properties.get('uri')} refused the credentials "
                f"({type(exc).__name__}: {exc}); check its token or credential (catalog_properties, "
                "or the catalog connection's password and login)",
                properties,
            )
        ) from None
    except (BadRequestError, RESTError) as exc:
        if not loading or type(exc) not in (BadRequestError, RESTError):
            raise
        raise CatalogAccessError(
            _redact(
                f"Iceberg catalog {name!r} at {properties.get('uri')} refused the configuration "
                f"({exc}); check its properties, e.g. 'warehouse'",
                properties,
            )
        ) from None


def load_catalog(name: str, properties: Mapping[str, Any]) -> Catalog:
    """A pyiceberg catalog from its properties (``type``, ``uri``, ``warehouse``, ``credential``, ...).

    A REST catalog is contacted here (its config endpoint): a refusal is a CatalogAccessError,
    with no secret of ``properties`` in its message.
    """
    _import_pyiceberg()
    from pyiceberg.catalog import load_catalog as pyiceberg_load_catalog

    given = {k: str(v) for k, v in properties.items() if v is not None}
    with _catalog_access(name, given, loading=True):
        return pyiceberg_load_catalog(name, **given)


def _is_conflict(exc: BaseException) -> bool:
    """Lost races: the metadata moved under us, a concurrent commit touched our rows, or a twin created it."""
    from pyiceberg.exceptions import CommitFailedException, TableAlreadyExistsError, ValidationException

    return isinstance(exc, (CommitFailedException, ValidationException, TableAlreadyExistsError))


def commit_iceberg(
    catalog: Catalog,
    identifier: str,
    kind: TableKind,
    run: RunRows,
    *,
    attempts: int = DEFAULT_COMMIT_ATTEMPTS,
    before_commit: BeforeCommit | None = None,
) -> CommitResult:
    """Replace the run's rows of ``identifier`` (creating it on first use) in one atomic commit.

    Rows of other partitions, and of documents this run did not land, are never touched. A lost
    race is retried from a fresh load (pyiceberg first retries a failed metadata swap itself, per
    the table's ``commit.retry.*`` properties; what it cannot resolve comes back here).
    """
    _import_pyiceberg()
    data = run.rows(kind)
    namespace = identifier.rsplit(".", 1)[0] if "." in identifier else None
    if namespace:
        with _catalog_access(catalog.name, catalog.properties, loading=False):
            catalog.create_namespace_if_not_exists(namespace)

    def attempt(number: int) -> CommitResult:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            table: Table | None = catalog.load_table(identifier)
        except NoSuchTableError:
            table = None
        if table is None:
            tx: Transaction = _create_transaction(
                catalog, identifier, kind, data.schema, run.partition.column
            )
            loaded = None
            if data.num_rows:
                tx.append(data)
        else:
            tx = table.transaction()
            current = table.current_snapshot()
            loaded = current.snapshot_id if current is not None else None
            _evolve(tx, data.schema)
            _replace(tx, run, data)
        if before_commit is not None:
            before_commit(identifier, number, loaded)
        committed = tx.commit_transaction()
        return _result(committed, identifier, data, number, created=table is None)

    with _catalog_access(catalog.name, catalog.properties, loading=False):
        result = with_retries(attempt, _is_conflict, table=identifier, attempts=attempts)
    log.info(
        "%s: committed %d rows of %s for %d documents (%d bytes in %d files), snapshot %s, %d attempt(s)%s",
        identifier,
        result.rows,
        run.partition.path,
        len(run.documents),
        result.bytes,
        result.files,
        result.snapshot_id,
        result.attempts,
        ", table created" if result.created else "",
    )
    return result


def _create_transaction(
    catalog: Catalog, identifier: str, kind: TableKind, schema: pa.Schema, partition_column: str
) -> Transaction:
    """A transaction creating the table: identity partition on the partition column, sorted by document."""
    from pyiceberg.transforms import IdentityTransform

    tx = catalog.create_table_transaction(identifier, schema=schema)
    with tx.update_spec() as spec:
        spec.add_identity(partition_column)
    with tx.update_sort_order() as order:
        for column in SORT_COLUMNS[kind]:
            order.asc(column, IdentityTransform())
    return tx


def _evolve(tx: Transaction, schema: pa.Schema) -> None:
    """Add the columns the run's rows have and the table lacks (a newer Parquet schema), as optional."""
    current = set(tx.table_metadata.schema().column_names)
    new = [f for f in schema if f.name not in current]
    if not new:
        return
    relaxed = pa.schema([f if f.name in current else f.with_nullable(True) for f in schema])
    with tx.update_schema() as update:
        update.union_by_name(relaxed)
    log.info("evolving the table schema: adding %s", ", ".join(f.name for f in new))


def _replace(tx: Transaction, run: RunRows, data: pa.Table) -> None:
    """Delete the run's own rows and append the new ones, staged in ``tx``."""
    from pyiceberg.expressions import And, EqualTo, In

    # pyiceberg's expressions are pydantic models whose positional constructors mypy cannot see.
    equal: Any = EqualTo
    member: Any = In
    mine = And(equal(run.partition.column, run.partition.value), member("document_uri", set(run.documents)))
    if data.num_rows:
        tx.overwrite(data, overwrite_filter=mine)
    else:  # documents with no rows (blank pages): their earlier rows still go
        tx.delete(mine)


def _result(table: Table, identifier: str, data: pa.Table, attempts: int, *, created: bool) -> CommitResult:
    snapshot = table.current_snapshot()
    summary: dict[str, str] = {}
    if snapshot is not None and snapshot.summary is not None:
        summary = {k: v for k, v in snapshot.summary.additional_properties.items()}
    return CommitResult(
        table=identifier,
        format="iceberg",
        rows=data.num_rows,
        bytes=int(summary.get("added-files-size", 0)) if data.num_rows else 0,
        files=int(summary.get("added-data-files", 0)) if data.num_rows else 0,
        snapshot_id=snapshot.snapshot_id if snapshot is not None else None,
        version=None,
        attempts=attempts,
        created=created,
        location=table.location(),
    )
