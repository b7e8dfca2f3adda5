"""OCR results as Iceberg and Delta tables: the pure logic behind ``UpstageOCRTableOperator``.

No Airflow import (the operator in ``upstage_provider.operators.table`` is thin): ``schema`` owns
the tables' shape, ``inputs`` finds and reads a run's landed files, ``iceberg`` and ``delta``
commit them, ``commit`` retries lost races, ``storage`` turns S3 credentials into each format's
options. pyiceberg and deltalake are optional extras, imported only when a commit needs them.
See docs/lakehouse.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

TableFormat = Literal["iceberg", "delta"]
TABLE_FORMATS: tuple[str, ...] = ("iceberg", "delta")

#: The Iceberg namespace and table names the example DAG uses (``upstage_ocr.words``, ...).
NAMESPACE = "upstage_ocr"
#: The environment variables the example DAGs read (a contract of issue 13).
FORMAT_VARIABLE = "UPSTAGE_INGEST_TABLE_FORMAT"
WAREHOUSE_VARIABLE = "UPSTAGE_INGEST_WAREHOUSE"
CATALOG_URI_VARIABLE = "UPSTAGE_INGEST_CATALOG_URI"

_SQL_SCHEMES = ("sqlite", "postgresql", "mysql")


def _as_uri(location: str) -> str:
    """A folder becomes an absolute ``file://`` URI (what an Iceberg warehouse needs); URIs stay."""
    return location if "://" in location else Path(location).expanduser().resolve().as_uri()


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """``UpstageOCRTableOperator`` keyword arguments from the example DAG's variables; None for files only.

    ``UPSTAGE_INGEST_TABLE_FORMAT`` is ``iceberg``, ``delta`` or empty. Delta tables are
    ``<UPSTAGE_INGEST_WAREHOUSE>/words`` and ``.../pages``; Iceberg tables are ``upstage_ocr.words``
    and ``upstage_ocr.pages`` in the catalog at ``UPSTAGE_INGEST_CATALOG_URI`` (a SQL catalog URI
    such as ``sqlite:////path/catalog.db``, with the warehouse as its default table location, or
    an ``http(s)://`` REST catalog, with the warehouse as that server's warehouse name). A REST
    catalog's token comes from pyiceberg's own ``PYICEBERG_CATALOG__UPSTAGE__TOKEN`` variable.
    """
    env = os.environ if environ is None else environ
    table_format = env.get(FORMAT_VARIABLE, "").strip().lower()
    if not table_format:
        return None
    if table_format not in TABLE_FORMATS:
        raise ValueError(
            f"{FORMAT_VARIABLE}={table_format!r}: use iceberg, delta, or leave it empty for files only"
        )
    warehouse = env.get(WAREHOUSE_VARIABLE, "").strip().rstrip("/")
    if table_format == "delta":
        if not warehouse:
            raise ValueError(
                f"{FORMAT_VARIABLE}=delta needs {WAREHOUSE_VARIABLE}: the folder or URI of the tables"
            )
        root = warehouse if "://" in warehouse else str(Path(warehouse).expanduser().resolve())
        return {"table_format": "delta", "words_table": f"{root}/words", "pages_table": f"{root}/pages"}
    catalog_uri = env.get(CATALOG_URI_VARIABLE, "").strip()
    if not catalog_uri:
        raise ValueError(
            f"{FORMAT_VARIABLE}=iceberg needs {CATALOG_URI_VARIABLE}, e.g. sqlite:////path/catalog.db"
        )
    properties: dict[str, str] = {"uri": catalog_uri}
    if catalog_uri.split(":", 1)[0].split("+", 1)[0] in _SQL_SCHEMES:
        properties["type"] = "sql"
    if warehouse:
        # A SQL catalog's warehouse is where it writes (a folder becomes file://); a REST catalog's
        # is whatever that server names its warehouses by (a name or a URI), passed as given.
        properties["warehouse"] = _as_uri(warehouse) if properties.get("type") == "sql" else warehouse
    elif properties.get("type") == "sql":
        raise ValueError(f"an Iceberg SQL catalog needs {WAREHOUSE_VARIABLE}: where the tables' files go")
    return {
        "table_format": "iceberg",
        "words_table": f"{NAMESPACE}.words",
        "pages_table": f"{NAMESPACE}.pages",
        "catalog_properties": properties,
    }


def current_files(table_kwargs: Mapping[str, Any], kind: Literal["words", "pages"]) -> list[str]:
    """The data files of a table's current snapshot, for DuckDB's ``read_parquet`` (no extensions needed).

    ``table_kwargs`` is what :func:`from_environment` returns. Delta files keep the partition column
    in their folder names: read them with ``hive_partitioning = true``.
    """
    table = str(table_kwargs[f"{kind}_table"])
    if table_kwargs["table_format"] == "delta":
        from deltalake import DeltaTable

        return list(DeltaTable(table).file_uris())
    from upstage_provider.tables.iceberg import load_catalog

    catalog = load_catalog(
        str(table_kwargs.get("catalog_name", "upstage")), table_kwargs["catalog_properties"]
    )
    return [task.file.file_path for task in catalog.load_table(table).scan().plan_files()]
