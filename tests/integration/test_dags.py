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

from tests.airflow_runs import parse_dag
from tests.emulator_fixtures import API_KEY, WORDS_PER_PAGE
from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.models import parse_ocr_response

DAGS = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
DAY = pendulum.datetime(2026, 11, 24, tz="UTC")


def load_dag(file: str, dag_id: str) -> DAG:
    """Parse the DAG file as Airflow does, with the environment the test has set."""
    return parse_dag(DAGS / file, dag_id)


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
    words_dir = lake / "words" / "ds=2026-11-24"
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

    pages = pads.dataset(lake / "pages" / "ds=2026-11-24", format="parquet").to_table()
    assert pages.num_rows == 1 + 3 + 12 + 23

    # The same day again: every file is replaced, no row is duplicated.
    rerun = dag.test(logical_date=DAY)
    assert rerun.state == "success"
    again = pads.dataset(words_dir, format="parquet").to_table()
    assert again.num_rows == table.num_rows
    assert len(list(words_dir.glob("*.parquet"))) == len(documents)
    assert not [p for p in lake.rglob("*") if p.name.startswith(".")]  # no temp file left
    count = duckdb.execute(
        "select count(*) from read_parquet(?, hive_partitioning = true)", [f"{lake}/words/*/*.parquet"]
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
    connect(emulator.url, conn_id="upstage_default", price_per_page=0.0015)
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
    assert event.extra["billed_pages"] == pages
    assert event.extra["estimated_cost"] == round(pages * 0.0015, 6)
    assert event.extra["price_per_page"] == 0.0015


def server_counts(server: EmulatorServer) -> dict[str, int]:
    endpoints = server.stats()["endpoints"]
    return {name: e["total"] for name, e in endpoints.items() if name in ("sync", "submit") and e["total"]}


def landed_documents(lake: Path, partition: str = "ds=2026-11-24") -> dict[str, set[str]]:
    """``{document_uri: {request_id, ...}}`` of the pages written under ``pages/<partition>`` (none: {})."""
    if not (lake / "pages" / partition).is_dir():
        return {}
    table = pads.dataset(lake / "pages" / partition, format="parquet").to_table(
        columns=["document_uri", "request_id"]
    )
    found: dict[str, set[str]] = {}
    for uri, request_id in zip(
        table["document_uri"].to_pylist(), table["request_id"].to_pylist(), strict=True
    ):
        found.setdefault(uri, set()).add(request_id)
    return found


def task_states(run: Any) -> dict[tuple[str, int], str | None]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def returned(run: Any, task_id: str) -> Any:
    """What a task of this run returned, read from the XCom table."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value")
            .with_only_columns(XComModel.value)
            .limit(1)
        ).first()
    assert row is not None, f"{task_id} returned nothing"
    return XComModel.deserialize_value(row)


@pytest.mark.usefixtures("airflow_db")
def test_ingest_lands_documents_with_korean_and_spaced_names(
    emulator: EmulatorServer,
    configured: Callable[[EmulatorServer], Path],
    tmp_path: Path,
    samples_dir: Path,
) -> None:
    lake = configured(emulator)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "스캔 문서.pdf").write_bytes(make_pdf(2))
    (inbox / "영수증.pdf").write_bytes(make_pdf(1))
    shutil.copy(samples_dir / "check_box.png", inbox / "my scan.png")
    documents = sorted(str(p) for p in inbox.iterdir())

    run = load_dag("upstage_ocr_ingest.py", "upstage_ocr_ingest").test(logical_date=DAY)

    states = task_states(run)
    assert run.state == "success", states
    assert states[("summarize", -1)] == "success"
    landed = landed_documents(lake)
    assert sorted(landed) == documents
    assert all(len(ids) == 1 for ids in landed.values())
    summary = returned(run, "summarize")
    assert [row["document"] for row in summary] == documents
    assert all(row["landed"] for row in summary)
    assert [row["pages"] for row in summary] == [1, 2, 1]  # my scan.png, 스캔 문서.pdf, 영수증.pdf


@pytest.mark.usefixtures("airflow_db")
def test_one_bad_document_fails_its_own_chain_and_the_others_land(
    emulator: EmulatorServer,
    configured: Callable[[EmulatorServer], Path],
    tmp_path: Path,
    samples_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lake = configured(emulator)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = {inbox / "a-3-pages.pdf": 3, inbox / "c-check_box.png": 1}
    (inbox / "a-3-pages.pdf").write_bytes(make_pdf(3))
    bad = inbox / "b-1001-pages.pdf"  # over the async limit: refused before any upload
    bad.write_bytes(make_pdf(1001))
    shutil.copy(samples_dir / "check_box.png", inbox / "c-check_box.png")

    run = load_dag("upstage_ocr_ingest.py", "upstage_ocr_ingest").test(logical_date=DAY)

    assert run.state == "failed"
    landed = landed_documents(lake)
    assert sorted(landed) == sorted(str(p) for p in good)
    pages = pads.dataset(lake / "pages" / "ds=2026-11-24", format="parquet").to_table().to_pylist()
    for doc, count in good.items():
        assert sorted(r["page"] for r in pages if r["document_uri"] == str(doc)) == list(range(1, count + 1))
    assert len(pages) == sum(good.values())
    words = pads.dataset(lake / "words" / "ds=2026-11-24", format="parquet").to_table(
        columns=["document_uri"]
    )
    assert set(words["document_uri"].to_pylist()) == {str(p) for p in good}
    assert words.num_rows == sum(good.values()) * WORDS_PER_PAGE
    # No upload of the bad file, one submission per good file: two calls, two distinct requests.
    assert emulator.stats()["submissions"] == len(good)
    assert emulator.stats()["endpoints"]["submit"]["total"] == len(good)
    assert len(set.union(*landed.values())) == len(good)

    states = task_states(run)
    index = {doc: i for i, doc in enumerate(sorted(inbox.iterdir()))}
    assert states[("ocr_document.submit", index[bad])] == "failed"
    assert states[("ocr_document.wait_and_land", index[bad])] == "upstream_failed"
    for doc in good:
        assert states[("ocr_document.submit", index[doc])] == "success"
        assert states[("ocr_document.wait_and_land", index[doc])] == "success"
    assert states[("summarize", -1)] == "failed"
    submit_try = next(
        ti.try_number
        for ti in run.get_task_instances()
        if ti.task_id == "ocr_document.submit" and ti.map_index == index[bad]
    )
    assert submit_try == 1  # a permanent error: not retried

    errors = task_failures(capsys.readouterr().out)
    assert any(f"{bad.name}: 1,001 pages is over the async limit" in e for e in errors), errors
    (summary_error,) = [e for e in errors if "did not land" in e]
    assert "1 of 3 documents did not land" in summary_error
    assert str(bad) in summary_error
    assert not any(str(doc) in summary_error for doc in good)


def task_failures(out: str) -> list[str]:
    """The exception line of every task failure dag.test() logged to stdout, one per failed try."""
    lines = out.splitlines()
    return [
        next(x for x in lines[i + 1 :] if "Exception: " in x or "Error: " in x)
        for i, line in enumerate(lines)
        if "Task failed with exception" in line
    ]


@pytest.mark.usefixtures("airflow_db")
def test_the_readme_snippet_runs_and_a_bad_file_fails_only_its_own_chain(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'Asset("s3://lake/ocr")' in snippet
    assert "s3://inbox/스캔 문서.pdf" in snippet
    inbox, lake = tmp_path / "inbox", tmp_path / "lake"
    inbox.mkdir()
    (inbox / "invoice-0001.pdf").write_bytes(make_pdf(1001))  # refused before upload
    (inbox / "스캔 문서.pdf").write_bytes(make_pdf(2))
    connect(emulator.url, conn_id="upstage_default")
    dag_file = DAGS / "readme_snippet.py"
    dag_file.write_text(
        snippet.replace("s3://inbox/", f"{inbox}/").replace("s3://lake/ocr", f"file://{lake}")
    )
    try:
        run = load_dag(dag_file.name, "ocr_ingest").test(logical_date=DAY)
    finally:
        dag_file.unlink()

    assert run.state == "failed"
    landed = landed_documents(lake)
    assert list(landed) == [str(inbox / "스캔 문서.pdf")]
    assert emulator.stats()["submissions"] == 1
    assert task_states(run) == {
        ("documents", -1): "success",
        ("ocr_document.submit", 0): "failed",
        ("ocr_document.wait_and_land", 0): "upstream_failed",
        ("ocr_document.submit", 1): "success",
        ("ocr_document.wait_and_land", 1): "success",
    }
