"""Whole DAGs with dag.test() against the emulator: Parquet read back and checked word for word."""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pendulum
import pyarrow.dataset as pads
import pytest
import requests
from airflow.sdk import DAG
from sqlalchemy import select

from tests.emulator_fixtures import API_KEY
from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.models import parse_ocr_response

DAGS = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
DAY = pendulum.datetime(2026, 11, 24, tz="UTC")


def load_dag(file: str, dag_id: str) -> DAG:
    """Parse the DAG file as Airflow does, with the environment the test has set."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS / file)).get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {file}"
    return dag


def expected_words(server: EmulatorServer, path: Path) -> list[tuple[int, str, tuple[Any, ...]]]:
    """What the emulator answers for this document, through the sync endpoint, in page order."""
    raw = requests.post(
        server.url + "/v1/document-digitization",
        headers={"Authorization": f"Bearer {API_KEY}"},
        files={"document": (path.name, path.read_bytes())},
        data={"model": "ocr"},
        timeout=60,
    ).json()
    result = parse_ocr_response(raw)
    return [(p.page, w.text, w.polygon) for p in result.pages for w in p.words]


@pytest.fixture
def inbox(tmp_path: Path, samples_dir: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in ("check_box.png", "multi_page.pdf"):
        shutil.copy(samples_dir / name, folder / name)
    (folder / "scan-12-pages.pdf").write_bytes(make_pdf(12))
    (folder / "scan-23-pages.pdf").write_bytes(make_pdf(23))
    (folder / ".hidden").write_text("ignored")
    return folder


@pytest.fixture
def configured(
    monkeypatch: pytest.MonkeyPatch, connect: Callable[..., str], tmp_path: Path
) -> Callable[[EmulatorServer], Path]:
    def configure(server: EmulatorServer) -> Path:
        connect(server.url, conn_id="upstage_default")
        lake = tmp_path / "lake"
        monkeypatch.setenv("UPSTAGE_INGEST_INPUT", str(tmp_path / "inbox"))
        monkeypatch.setenv("UPSTAGE_INGEST_OUTPUT", str(lake))
        monkeypatch.setenv("UPSTAGE_POLL_INTERVAL", "0.1")
        return lake

    return configure


@pytest.mark.usefixtures("airflow_db")
def test_ingest_lands_every_word_once_and_a_rerun_replaces_them(
    make_emulator: Callable[..., EmulatorServer], configured: Callable[[EmulatorServer], Path], inbox: Path
) -> None:
    server = make_emulator(
        url_ttl=2.0,
        faults=FaultConfig(
            rate_429=0.2, retry_after=0.0, seed=11, endpoints=("submit", "status", "download")
        ),
    )
    lake = configured(server)
    dag = load_dag("upstage_ocr_ingest.py", "upstage_ocr_ingest")

    run = dag.test(logical_date=DAY)
    assert run.state == "success"
    words_dir = lake / "ds=2026-11-24" / "words"
    table = pads.dataset(words_dir, format="parquet").to_table()
    documents = sorted(p for p in inbox.iterdir() if not p.name.startswith("."))
    assert sorted(set(table["document_uri"].to_pylist())) == sorted(str(p) for p in documents)
    assert server.stats()["submissions"] == len(documents)

    for doc in documents:
        rows = table.filter(pads.field("document_uri") == str(doc)).sort_by(
            [("page", "ascending"), ("word_id", "ascending")]
        )
        landed = [
            (r["page"], r["text"], tuple((pt["x"], pt["y"]) for pt in r["polygon"])) for r in rows.to_pylist()
        ]
        assert landed == expected_words(server, doc), doc.name
        assert len(set(rows["request_id"].to_pylist())) == 1

    pages = pads.dataset(lake / "ds=2026-11-24" / "pages", format="parquet").to_table()
    assert pages.num_rows == 1 + 3 + 12 + 23

    # The same day again: every file is replaced, no row is duplicated.
    rerun = dag.test(logical_date=DAY)
    assert rerun.state == "success"
    again = pads.dataset(words_dir, format="parquet").to_table()
    assert again.num_rows == table.num_rows
    assert len(list(words_dir.glob("*.parquet"))) == len(documents)
    assert not [p for p in lake.rglob("*") if p.name.startswith(".")]  # no temp file left
    count = duckdb.execute(
        "select count(*) from read_parquet(?, hive_partitioning = true)", [f"{lake}/*/words/*.parquet"]
    ).fetchall()[0][0]
    assert count == table.num_rows

    # Downstream: the review DAG, scheduled on the asset, reads the same lake.
    review = load_dag("upstage_ocr_review.py", "upstage_ocr_review")
    assert review.test(logical_date=DAY).state == "success"
    with open(lake / "review" / "low_confidence.csv", newline="") as f:
        reviewed = list(csv.DictReader(f))
    assert all(float(r["confidence"]) < 0.8 for r in reviewed)
    assert len(reviewed) == sum(1 for c in table["confidence"].to_pylist() if c < 0.8)


@pytest.mark.usefixtures("airflow_db")
def test_a_retried_submit_reattaches_instead_of_paying_twice(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    connect(emulator.url, conn_id="upstage_default")
    doc = tmp_path / "retried.pdf"
    doc.write_bytes(make_pdf(14))
    monkeypatch.setenv("UPSTAGE_TEST_DOCUMENT", str(doc))
    monkeypatch.setenv("UPSTAGE_TEST_OUTPUT", str(tmp_path / "out"))
    dag = load_dag("upstage_test_dags.py", "upstage_test_retry_submit")
    run = dag.test()
    assert run.state == "success"
    submit_ti = next(ti for ti in run.get_task_instances() if ti.task_id == "submit")
    assert submit_ti.try_number == 2
    assert emulator.stats()["submissions"] == 1
    table = pads.dataset(tmp_path / "out" / "words", format="parquet").to_table()
    assert set(table["page"].to_pylist()) == set(range(1, 15))
    assert set(table["document_uri"].to_pylist()) == {str(doc)}


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(("pages", "path"), [(3, "sync"), (120, "async")])
def test_one_task_operator_picks_the_path_and_emits_an_asset_event(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pages: int,
    path: str,
) -> None:
    connect(emulator.url, conn_id="upstage_default")
    doc = tmp_path / f"doc-{pages}.pdf"
    doc.write_bytes(make_pdf(pages))
    monkeypatch.setenv("UPSTAGE_TEST_DOCUMENT", str(doc))
    monkeypatch.setenv("UPSTAGE_TEST_OUTPUT", str(tmp_path / "out"))
    run = load_dag("upstage_test_dags.py", "upstage_test_one_task").test()
    assert run.state == "success"
    stats = server_counts(emulator)
    assert stats == ({"sync": 1} if path == "sync" else {"submit": 1})
    table = pads.dataset(tmp_path / "out" / "pages", format="parquet").to_table()
    assert table.num_rows == pages
    assert (table["request_id"].null_count == pages) is (path == "sync")

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent).where(AssetEvent.source_run_id == run.run_id).order_by(AssetEvent.id.desc())
        ).first()
    assert event is not None
    assert event.extra["pages"] == pages
    assert event.extra["words"] == pads.dataset(tmp_path / "out" / "words", format="parquet").count_rows()


def server_counts(server: EmulatorServer) -> dict[str, int]:
    endpoints = server.stats()["endpoints"]
    return {name: e["total"] for name, e in endpoints.items() if name in ("sync", "submit") and e["total"]}
