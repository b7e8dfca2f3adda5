"""The tables' shape: partition column, Arrow schemas, sort keys, and conforming landed files to them.

The tables are the landed Parquet schema (``WORDS_SCHEMA``/``PAGES_SCHEMA``, a public contract whose
new columns only ever come at the end) plus one partition column taken from the run's Hive-style
partition (``ds=2026-11-24`` -> column ``ds``, a string). Building the table schema from those
constants, and filling the columns a file lacks with nulls, is what lets a column added to the
Parquet schema flow into existing tables (which then evolve) while older files still load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

import pyarrow as pa

from upstage_provider.parquet import PAGES_SCHEMA, WORDS_SCHEMA

TableKind = Literal["words", "pages"]

#: The columns rows are sorted by: a document's rows together, in reading order.
SORT_COLUMNS: dict[TableKind, tuple[str, ...]] = {
    "words": ("document_uri", "page", "word_id"),
    "pages": ("document_uri", "page"),
}
#: The landed Parquet schema of each table (the table adds the partition column).
FILE_SCHEMAS: dict[TableKind, pa.Schema] = {"words": WORDS_SCHEMA, "pages": PAGES_SCHEMA}

_HIVE_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$")


class TableInputError(ValueError):
    """The run's input cannot go into the tables as given (bad partition, mixed partitions, ...)."""


@dataclass(frozen=True)
class Partition:
    """One Hive-style partition, ``column=value``: the table's partition column and this run's value."""

    column: str
    value: str

    @property
    def path(self) -> str:
        return f"{self.column}={self.value}"


def parse_partition(text: str) -> Partition:
    """``"ds=2026-11-24"`` -> ``Partition("ds", "2026-11-24")``; one level only, with a valid column name."""
    cleaned = str(text).strip().strip("/")
    match = _HIVE_SEGMENT.match(cleaned)
    if not match or "/" in cleaned:
        raise TableInputError(
            f"partition {text!r} is not one Hive-style segment such as 'ds=2026-11-24' "
            "(a column name of letters, digits and _, then '=' and a value; one level only)"
        )
    column, value = match.group(1), unquote(match.group(2))
    taken = set(WORDS_SCHEMA.names) | set(PAGES_SCHEMA.names)
    if column in taken:
        raise TableInputError(f"partition column {column!r} is already a column of the OCR tables")
    return Partition(column, value)


def partition_from_path(uri: str) -> Partition | None:
    """The partition in a landed file's folder (``.../words/ds=2026-11-24/x.parquet``), if it has one."""
    parts = str(uri).replace("\\", "/").rstrip("/").split("/")
    if len(parts) < 2:
        return None
    match = _HIVE_SEGMENT.match(parts[-2])
    return parse_partition(parts[-2]) if match else None


def one_partition(found: Iterable[Partition | None], where: str) -> Partition:
    """The single partition a run writes; several, or none, is an error naming where they came from."""
    values = {p for p in found if p is not None}
    if not values:
        raise TableInputError(
            f"no partition for {where}: pass partition='ds=...' (or land the files under "
            "<output_uri>/words/ds=.../, whose folder names the partition)"
        )
    if len(values) > 1:
        listed = ", ".join(sorted(p.path for p in values))
        raise TableInputError(
            f"{where} spans several partitions ({listed}); one table operator run commits one partition"
        )
    return values.pop()


def table_schema(kind: TableKind, partition_column: str, file_schemas: Sequence[pa.Schema] = ()) -> pa.Schema:
    """The Arrow schema a run writes: the file schema, newer columns the files carry, the partition column.

    A column some of the run's files lack (written before it was added) becomes nullable: those
    files' rows get nulls there rather than failing the run.
    """
    base = FILE_SCHEMAS[kind]
    fields = list(base)
    for schema in file_schemas:
        fields += [f for f in schema if f.name not in {g.name for g in fields} and f.name != partition_column]
    missing = {f.name for f in fields for schema in file_schemas if f.name not in schema.names}
    fields = [f.with_nullable(True) if f.name in missing else f for f in fields]
    return pa.schema([*fields, pa.field(partition_column, pa.string(), nullable=False)])


def conform(table: pa.Table, schema: pa.Schema, partition: Partition, source: str = "input") -> pa.Table:
    """``table`` in ``schema``'s columns and order, with the partition column; missing columns are nulls.

    ``table_schema`` makes the columns some files lack nullable; a missing not-null column is an error.
    """
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for field in schema:
        if field.name == partition.column:
            arrays.append(pa.repeat(pa.scalar(partition.value, pa.string()), table.num_rows))
        elif field.name in table.column_names:
            arrays.append(table.column(field.name).cast(field.type))
        elif field.nullable:
            arrays.append(pa.nulls(table.num_rows, field.type))
        else:
            raise TableInputError(f"{source} has no column {field.name!r}, which the table requires")
    return pa.Table.from_arrays(arrays, schema=schema)


def sort_rows(table: pa.Table, kind: TableKind) -> pa.Table:
    """Rows in the table's sort order, so data files are clustered by document for readers that prune."""
    return table.sort_by([(name, "ascending") for name in SORT_COLUMNS[kind]])
