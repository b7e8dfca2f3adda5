"""Table fixtures: a warehouse per test, the table operator's kwargs for each format, a REST catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest


class Warehouse:
    """Where one test's tables live, and how to read them back with each format's own library."""

    def __init__(self, table_format: str, root: Path) -> None:
        self.format = table_format
        self.root = root
        self.catalog_properties = {
            "type": "sql",
            "uri": f"sqlite:///{root}/catalog.db",
            "warehouse": (root / "warehouse").as_uri(),
        }

    def table(self, kind: str) -> str:
        return f"upstage_ocr.{kind}" if self.format == "iceberg" else str(self.root / "delta" / kind)

    def kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "table_format": self.format,
            "words_table": self.table("words"),
            "pages_table": self.table("pages"),
        }
        if self.format == "iceberg":
            kwargs["catalog_properties"] = self.catalog_properties
        return kwargs

    def catalog(self) -> Any:
        from pyiceberg.catalog import load_catalog

        return load_catalog("upstage", **self.catalog_properties)

    def read(self, kind: str) -> pa.Table:
        """The table's current rows, read by pyiceberg's scan or deltalake's DeltaTable."""
        if self.format == "iceberg":
            return self.catalog().load_table(self.table(kind)).scan().to_arrow()
        from deltalake import DeltaTable

        return DeltaTable(self.table(kind)).to_pyarrow_table()

    def data_files(self, kind: str) -> list[str]:
        """The current snapshot's data files (what DuckDB reads without the iceberg/delta extensions)."""
        if self.format == "iceberg":
            table = self.catalog().load_table(self.table(kind))
            return [task.file.file_path for task in table.scan().plan_files()]
        from deltalake import DeltaTable

        return DeltaTable(self.table(kind)).file_uris()


@pytest.fixture(params=["iceberg", "delta"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    (tmp_path / "tables").mkdir()
    return Warehouse(str(request.param), tmp_path / "tables")


#: The REST catalog's bearer token, and the OAuth2 client that may exchange its secret for it.
REST_TOKEN = "tok_rest_SECRET_4e1b9c"
REST_CLIENT = ("upstage-client", "client_SECRET_77a0d2")


@pytest.fixture
def rest_catalog(tmp_path: Path) -> Iterator[Any]:
    """A REST catalog server on 127.0.0.1 (tests/tables/rest_catalog.py), warehouse ``lake``."""
    from tests.tables.rest_catalog import RestCatalogServer

    (tmp_path / "rest").mkdir()
    server = RestCatalogServer(tmp_path / "rest", token=REST_TOKEN, client=REST_CLIENT).start()
    yield server
    server.stop()


class RestWarehouse(Warehouse):
    """Iceberg tables behind the REST catalog, read back through it too."""

    def __init__(self, root: Path, uri: str, **auth: str) -> None:
        super().__init__("iceberg", root)
        self.catalog_properties = {"type": "rest", "uri": uri, "warehouse": "lake", **auth}
