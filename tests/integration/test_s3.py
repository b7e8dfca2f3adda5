"""Documents read from and Parquet written to S3 (moto's server) by whole DAG runs, ``dag.test()``.

Credentials come either from the Airflow connection ``aws_default`` (through ``storage_conn_id``,
with plain ``s3://bucket/key`` URIs) or from the environment only (``AWS_*``, no connection: the
amazon provider falls back to boto's chain). Every run must leave exactly one object per table
and document, none left over by a rerun, and a plain ``document_uri``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.emulator_fixtures import WORDS_PER_PAGE
from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.integration.test_dags import DAY, load_dag, returned, task_states
from tests.s3_fixtures import S3
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.parquet import output_file_name

CREDENTIALS = ["s3_connection", "s3_env_credentials"]
PARTITION = "ds=2026-11-24"


@pytest.fixture(params=CREDENTIALS, ids=["connection", "environment"])
def lake(request: pytest.FixtureRequest) -> S3:
    """moto with credentials from the ``aws_default`` connection, or from ``AWS_*`` only."""
    return request.getfixturevalue(str(request.param))


@pytest.fixture
def upstage(emulator: EmulatorServer, connect: Callable[..., str]) -> EmulatorServer:
    connect(emulator.url, conn_id="upstage_default")
    return emulator


def table_keys(s3: S3, document_uri: str, prefix: str = "ocr/") -> list[str]:
    name = output_file_name(document_uri)
    return [f"{prefix}pages/{PARTITION}/{name}", f"{prefix}words/{PARTITION}/{name}"]


def read(s3: S3, key: str) -> Any:
    return pq.read_table(io.BytesIO(s3.get("lake", key)))


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    ("dag_id", "pages"),
    [
        ("upstage_s3_one_task", 3),
        ("upstage_s3_submit_and_sensor", 12),
        ("upstage_s3_sensor_with_document", 2),
    ],
)
def test_documents_from_s3_land_as_parquet_on_s3_and_a_rerun_replaces_them(
    lake: S3, upstage: EmulatorServer, monkeypatch: pytest.MonkeyPatch, dag_id: str, pages: int
) -> None:
    uri = lake.put("inbox", "scans/스캔 문서.pdf", make_pdf(pages))
    monkeypatch.setenv("UPSTAGE_TEST_DOCUMENT", uri)
    monkeypatch.setenv("UPSTAGE_TEST_OUTPUT", "s3://lake/ocr")
    dag = load_dag("upstage_s3_dags.py", dag_id)

    run = dag.test(logical_date=DAY)
    assert run.state == "success", task_states(run)
    keys = table_keys(lake, uri)
    assert lake.keys("lake") == keys, "one object per table, no marker, no temporary"
    words = read(lake, keys[1])
    assert words.num_rows == pages * WORDS_PER_PAGE
    assert set(words["document_uri"].to_pylist()) == {uri}
    assert sorted(set(read(lake, keys[0])["page"].to_pylist())) == list(range(1, pages + 1))
    summary = returned(run, "ocr" if dag_id == "upstage_s3_one_task" else "wait_and_land")
    assert summary["partition"] == PARTITION
    assert summary["words_uri"] == f"s3://lake/{keys[1]}"
    first_write = pq.read_metadata(io.BytesIO(lake.get("lake", keys[1]))).metadata[b"upstage.write_id"]

    rerun = dag.test(logical_date=DAY)
    assert rerun.state == "success", task_states(rerun)
    assert lake.keys("lake") == keys, "replaced, not added to"
    assert read(lake, keys[1]).num_rows == pages * WORDS_PER_PAGE
    assert (
        pq.read_metadata(io.BytesIO(lake.get("lake", keys[1]))).metadata[b"upstage.write_id"] != first_write
    )
    assert lake.uploads("lake") == []
    assert lake.keys("inbox") == ["scans/스캔 문서.pdf"]


@pytest.mark.usefixtures("airflow_db")
def test_a_uri_naming_its_connection_still_works_and_lands_the_plain_uri(
    s3_connection: S3, upstage: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = s3_connection
    plain = s3.put("inbox", "a.pdf", make_pdf(2))
    monkeypatch.setenv("UPSTAGE_TEST_DOCUMENT", "s3://aws_default@inbox/a.pdf")
    monkeypatch.setenv("UPSTAGE_TEST_OUTPUT", "s3://aws_default@lake/ocr")
    monkeypatch.setenv("UPSTAGE_TEST_STORAGE_CONN_ID", "no_such_connection")
    run = load_dag("upstage_s3_dags.py", "upstage_s3_submit_and_sensor").test(logical_date=DAY)
    assert run.state == "success", task_states(run)
    keys = table_keys(s3, plain)
    assert s3.keys("lake") == keys
    assert set(read(s3, keys[1])["document_uri"].to_pylist()) == {plain}
    assert returned(run, "wait_and_land")["words_uri"] == f"s3://lake/{keys[1]}"


@pytest.mark.usefixtures("fresh_ingest_dag")
def test_the_example_ingest_dag_on_s3(
    lake: S3, upstage: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = {lake.put("inbox", f"scan-{n}-pages.pdf", make_pdf(n)): n for n in (1, 3, 12)}
    lake.put("inbox", ".hidden", b"ignored")
    monkeypatch.setenv("UPSTAGE_INGEST_INPUT", "s3://inbox")
    monkeypatch.setenv("UPSTAGE_INGEST_OUTPUT", "s3://lake")
    monkeypatch.setenv("UPSTAGE_POLL_INTERVAL", "0.1")
    dag = load_dag("upstage_ocr_ingest.py", "upstage_ocr_ingest")

    for attempt in ("run", "rerun"):
        run = dag.test(logical_date=DAY)
        assert run.state == "success", (attempt, task_states(run))
        expected = sorted(k for uri in documents for k in table_keys(lake, uri, prefix=""))
        assert lake.keys("lake") == expected, attempt
        summary = returned(run, "summarize")
        assert [row["document"] for row in summary] == sorted(documents)
        assert [row["pages"] for row in summary] == [documents[d] for d in sorted(documents)]
        assert all(row["landed"] for row in summary)
    for uri, pages in documents.items():
        words = read(lake, f"words/{PARTITION}/{output_file_name(uri)}")
        assert set(words["document_uri"].to_pylist()) == {uri}
        assert words.num_rows == pages * WORDS_PER_PAGE
    assert upstage.stats()["submissions"] == 2 * len(documents)
    assert lake.uploads("lake") == []
