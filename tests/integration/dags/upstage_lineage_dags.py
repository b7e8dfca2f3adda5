"""DAGs the OpenLineage test (tests/integration/test_lineage.py) runs; configured through env vars."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag

from upstage_provider.operators.ocr import UpstageOCROperator, UpstageOCRSubmitOperator
from upstage_provider.operators.table import UpstageOCRTableOperator
from upstage_provider.sensors.ocr import UpstageOCRSensor

ASYNC_DOCUMENT = os.environ.get("UPSTAGE_LINEAGE_ASYNC_DOCUMENT", "/nonexistent.pdf")
ONE_TASK_DOCUMENT = os.environ.get("UPSTAGE_LINEAGE_ONE_TASK_DOCUMENT", "/nonexistent.pdf")
SYNC_DOCUMENT = os.environ.get("UPSTAGE_LINEAGE_SYNC_DOCUMENT", "/nonexistent.pdf")
BAD_DOCUMENT = os.environ.get("UPSTAGE_LINEAGE_BAD_DOCUMENT", "/nonexistent.pdf")
OUTPUT = os.environ.get("UPSTAGE_LINEAGE_OUTPUT", "/tmp/upstage-lineage-output")
CATALOG_URI = os.environ.get("UPSTAGE_LINEAGE_CATALOG_URI", "sqlite:////tmp/upstage-lineage-catalog.db")
WAREHOUSE = os.environ.get("UPSTAGE_LINEAGE_WAREHOUSE", "file:///tmp/upstage-lineage-warehouse")
START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(schedule=None, start_date=START, catchup=False)
def upstage_lineage_pipeline() -> None:
    """Every task kind once: submit + deferred sensor, the one-task operator async and sync.

    One after another: each waiting task checks its request right after the submission, while
    the emulator's page latency keeps it running, so both defer in every run.
    """
    submitted = UpstageOCRSubmitOperator(task_id="submit", document=ASYNC_DOCUMENT)
    landed = UpstageOCRSensor(
        task_id="wait_and_land",
        request_id=submitted.output,
        output_uri=OUTPUT,
        deferrable=True,
        poll_interval=0.05,
    )
    one_task = UpstageOCROperator(
        task_id="ocr_async",
        document=ONE_TASK_DOCUMENT,
        output_uri=OUTPUT,
        mode="async",
        deferrable=True,
        poll_interval=0.05,
    )
    sync = UpstageOCROperator(task_id="ocr_sync", document=SYNC_DOCUMENT, output_uri=OUTPUT, mode="sync")
    landed >> one_task >> sync


@dag(schedule=None, start_date=START, catchup=False)
def upstage_lineage_failures() -> None:
    """Requests the API fails (the emulator's fault), and a document refused before any call.

    One after another, as in the pipeline above, so both waiting tasks defer before they fail.
    """
    submitted = UpstageOCRSubmitOperator(task_id="submit", document=ASYNC_DOCUMENT)
    landed = UpstageOCRSensor(
        task_id="wait_and_land",
        request_id=submitted.output,
        output_uri=OUTPUT,
        deferrable=True,
        poll_interval=0.05,
    )
    one_task = UpstageOCROperator(
        task_id="ocr_failed",
        document=ONE_TASK_DOCUMENT,
        output_uri=OUTPUT,
        mode="async",
        deferrable=True,
        poll_interval=0.05,
        trigger_rule="all_done",
    )
    bad = UpstageOCROperator(
        task_id="bad_document", document=BAD_DOCUMENT, output_uri=OUTPUT, trigger_rule="all_done"
    )
    landed >> one_task >> bad


@dag(schedule=None, start_date=START, catchup=False)
def upstage_lineage_tables() -> None:
    """Land one document (submit + deferred sensor), commit it into Iceberg tables (SQLite catalog),
    then a second table task against a catalog that cannot be opened, which fails."""
    submitted = UpstageOCRSubmitOperator(task_id="submit", document=ASYNC_DOCUMENT)
    landed = UpstageOCRSensor(
        task_id="wait_and_land",
        request_id=submitted.output,
        output_uri=OUTPUT,
        partition="ds={{ ds }}",
        deferrable=True,
        poll_interval=0.05,
    )
    tables = {
        "table_format": "iceberg",
        "words_table": "upstage_ocr.words",
        "pages_table": "upstage_ocr.pages",
    }
    committed = UpstageOCRTableOperator(
        task_id="commit_tables",
        summaries=landed.output,
        catalog_properties={"type": "sql", "uri": CATALOG_URI, "warehouse": WAREHOUSE},
        **tables,
    )
    bad = UpstageOCRTableOperator(
        task_id="commit_bad_catalog",
        summaries=landed.output,
        catalog_properties={
            "type": "sql",
            "uri": "sqlite:////nonexistent/folder/catalog.db",
            "warehouse": WAREHOUSE,
        },
        **tables,
    )
    committed >> bad


upstage_lineage_pipeline()
upstage_lineage_failures()
upstage_lineage_tables()
