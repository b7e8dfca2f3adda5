"""The example DAGs with their table step, in dag.test() runs against the emulator: once per word."""

from __future__ import annotations

import collections
import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.emulator_fixtures import WORDS_PER_PAGE
from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.integration.test_dags import DAY, load_dag
from tests.tables.conftest import Warehouse
from upstage_provider.emulator.server import EmulatorServer


@pytest.mark.usefixtures("fresh_ingest_dag")
@pytest.mark.parametrize("table_format", ["iceberg", "delta"])
def test_the_example_dags_commit_each_day_once_and_the_review_reads_the_table(
    table_format: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    emulator: EmulatorServer,
    connect: Callable[..., str],
) -> None:
    """upstage_ocr_ingest's optional last step, configured by the contract's variables only."""
    connect(emulator.url, conn_id="upstage_default", price_per_page=0.0015)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    documents = {inbox / "scan-2.pdf": 2, inbox / "scan-3.pdf": 3}
    for path, pages in documents.items():
        path.write_bytes(make_pdf(pages))
    lake = tmp_path / "lake"
    warehouse = Warehouse(table_format, tmp_path / "tables")
    warehouse.root.mkdir()
    monkeypatch.setenv("UPSTAGE_INGEST_INPUT", str(inbox))
    monkeypatch.setenv("UPSTAGE_INGEST_OUTPUT", str(lake))
    monkeypatch.setenv("UPSTAGE_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("UPSTAGE_INGEST_TABLE_FORMAT", table_format)
    monkeypatch.setenv(
        "UPSTAGE_INGEST_WAREHOUSE",
        str(warehouse.root / ("warehouse" if table_format == "iceberg" else "delta")),
    )
    monkeypatch.setenv("UPSTAGE_INGEST_CATALOG_URI", warehouse.catalog_properties["uri"])
    dag = load_dag("upstage_ocr_ingest.py", "upstage_ocr_ingest")
    assert "commit_tables" in dag.task_ids

    for day in (DAY, DAY, DAY.add(days=1)):
        run = dag.test(logical_date=day)
        assert run.state == "success", day
    rows = run.get_task_instance("summarize").xcom_pull(task_ids="summarize")
    assert [(row["pages"], row["billed_pages"]) for row in rows] == [(2, 2), (3, 3)]
    assert [row["estimated_cost"] for row in rows] == [0.003, 0.0045]

    words = warehouse.read("words")
    per_day = collections.Counter(
        zip(words["ds"].to_pylist(), words["document_uri"].to_pylist(), strict=True)
    )
    assert per_day == {
        (day, str(path)): pages * WORDS_PER_PAGE
        for day in ("2026-11-24", "2026-11-25")
        for path, pages in documents.items()
    }
    keys = zip(*(words[c].to_pylist() for c in ("ds", "document_uri", "word_id")), strict=True)
    assert set(collections.Counter(keys).values()) == {1}
    pages = warehouse.read("pages")
    assert pages.num_rows == 2 * sum(documents.values())
    assert sum(pages["billed_pages"].to_pylist()) == 2 * sum(documents.values())

    # The review DAG reads the tables' current files, not the lake's folders: a stray file in the
    # lake that no table commit took in must not show up in the review.
    stray = lake / "words" / "ds=2026-11-26"
    stray.mkdir()
    (stray / "stray.parquet").write_bytes(
        (lake / "words" / "ds=2026-11-25")
        .joinpath(next(p.name for p in (lake / "words" / "ds=2026-11-25").iterdir()))
        .read_bytes()
    )
    review = load_dag("upstage_ocr_review.py", "upstage_ocr_review")
    assert review.test(logical_date=DAY).state == "success"
    with open(lake / "review" / "low_confidence.csv", newline="") as f:
        reviewed = list(csv.DictReader(f))
    assert {r["ds"] for r in reviewed} <= {"2026-11-24", "2026-11-25"}
    assert len(reviewed) == sum(1 for c in words["confidence"].to_pylist() if c is not None and c < 0.8)
