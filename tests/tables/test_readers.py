"""The engines users have read the committed tables: pyiceberg, deltalake, Polars, DuckDB on the data files.

DuckDB's iceberg and delta extensions download from the internet, so DuckDB reads the files of the
table's current snapshot (listed by pyiceberg or deltalake) with ``read_parquet``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.tables.conftest import Warehouse
from tests.tables.landed import WORDS_PER_PAGE, land
from tests.tables.test_operator import run
from upstage_provider.tables import current_files


def test_every_reader_sees_the_same_rows_after_a_rerun(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # polars_iceberg is not installed
    lake = tmp_path / "lake"
    landed = [land(lake, "ds=2026-11-24", "/in/a.pdf", 2), land(lake, "ds=2026-11-24", "/in/b.pdf", 1)]
    run(warehouse, landed)
    run(warehouse, landed)  # the rerun's delete must be honoured by every reader
    run(warehouse, [land(lake, "ds=2026-11-25", "/in/a.pdf", 1)])
    expected = {
        ("2026-11-24", "/in/a.pdf"): 2,
        ("2026-11-24", "/in/b.pdf"): 1,
        ("2026-11-25", "/in/a.pdf"): 1,
    }
    expected_words = sum(expected.values()) * WORDS_PER_PAGE

    native = warehouse.read("pages")
    assert native.num_rows == 4

    if warehouse.format == "iceberg":
        table = warehouse.catalog().load_table("upstage_ocr.pages")
        scanned = pl.scan_iceberg(table)
        words = pl.scan_iceberg(warehouse.catalog().load_table("upstage_ocr.words"))
    else:
        scanned = pl.scan_delta(warehouse.table("pages"))
        words = pl.scan_delta(warehouse.table("words"))
    counts = scanned.group_by("ds", "document_uri").len().collect()
    assert {(r["ds"], r["document_uri"]): r["len"] for r in counts.to_dicts()} == expected
    assert words.filter(pl.col("ds") == "2026-11-24").select(pl.len()).collect().item() == 3 * WORDS_PER_PAGE

    files = [f.removeprefix("file://") for f in warehouse.data_files("words")]
    assert files
    assert current_files(warehouse.kwargs(), "words") == warehouse.data_files("words")
    listed = ", ".join(f"'{f}'" for f in files)
    # Iceberg's data files hold the partition column; Delta's keep it in the folder name only.
    hive = ", hive_partitioning = true" if warehouse.format == "delta" else ""
    query = "select count(*), count(distinct (document_uri, page, word_id, ds)) from read_parquet"
    got = duckdb.sql(f"{query}([{listed}]{hive})").fetchall()
    assert got == [(expected_words, expected_words)]
