"""The table operator after mapped sensors in a dag.test() run against the emulator: once per word."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.emulator_fixtures import WORDS_PER_PAGE
from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.integration.test_dags import DAY, load_dag
from tests.tables.conftest import Warehouse
from upstage_provider.emulator.server import EmulatorServer


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("table_format", ["iceberg", "delta"])
def test_the_dag_run_twice_leaves_every_word_once_and_a_second_day_adds_its_own(
    table_format: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    emulator: EmulatorServer,
    connect: Callable[..., str],
) -> None:
    connect(emulator.url, conn_id="upstage_default")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    documents = {"scan-2.pdf": 2, "scan-3.pdf": 3}
    for name, pages in documents.items():
        (inbox / name).write_bytes(make_pdf(pages))
    warehouse = Warehouse(table_format, tmp_path / "tables")
    warehouse.root.mkdir()
    monkeypatch.setenv("UPSTAGE_TABLE_TEST_DOCUMENTS", json.dumps([str(inbox / n) for n in documents]))
    monkeypatch.setenv("UPSTAGE_TABLE_TEST_OUTPUT", str(tmp_path / "lake"))
    monkeypatch.setenv("UPSTAGE_INGEST_TABLE_FORMAT", table_format)
    monkeypatch.setenv(
        "UPSTAGE_INGEST_WAREHOUSE",
        str(warehouse.root / ("warehouse" if table_format == "iceberg" else "delta")),
    )
    monkeypatch.setenv("UPSTAGE_INGEST_CATALOG_URI", warehouse.catalog_properties["uri"])
    dag = load_dag("upstage_table_dags.py", "upstage_test_tables")

    assert dag.test(logical_date=DAY).state == "success"
    assert dag.test(logical_date=DAY).state == "success"
    assert dag.test(logical_date=DAY.add(days=1)).state == "success"

    words = warehouse.read("words")
    per_day = collections.Counter(
        zip(words["ds"].to_pylist(), words["document_uri"].to_pylist(), strict=True)
    )
    expected = {
        (day, str(inbox / name)): pages * WORDS_PER_PAGE
        for day in ("2026-11-24", "2026-11-25")
        for name, pages in documents.items()
    }
    assert per_day == expected
    keys = collections.Counter(
        zip(
            words["ds"].to_pylist(),
            words["document_uri"].to_pylist(),
            words["word_id"].to_pylist(),
            strict=True,
        )
    )
    assert set(keys.values()) == {1}
    assert warehouse.read("pages").num_rows == 2 * sum(documents.values())
