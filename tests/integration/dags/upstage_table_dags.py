"""A DAG the table tests run with dag.test(): mapped submit -> mapped sensor -> the table operator.

Configured as the example DAG's optional last step is: ``tables.from_environment()`` reads
UPSTAGE_INGEST_TABLE_FORMAT / UPSTAGE_INGEST_WAREHOUSE / UPSTAGE_INGEST_CATALOG_URI.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.sdk import dag

from upstage_provider.operators.ocr import UpstageOCRSubmitOperator
from upstage_provider.operators.table import UpstageOCRTableOperator
from upstage_provider.sensors.ocr import UpstageOCRSensor
from upstage_provider.tables import from_environment

DOCUMENTS = json.loads(os.environ.get("UPSTAGE_TABLE_TEST_DOCUMENTS", "[]"))
OUTPUT = os.environ.get("UPSTAGE_TABLE_TEST_OUTPUT", "/tmp/upstage-table-test")
TABLES = from_environment() or {"table_format": "delta", "words_table": "/tmp/w", "pages_table": "/tmp/p"}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_test_tables() -> None:
    submitted = UpstageOCRSubmitOperator.partial(task_id="submit").expand(document=DOCUMENTS)
    landed = UpstageOCRSensor.partial(
        task_id="wait_and_land",
        output_uri=OUTPUT + "/ds={{ ds }}",
        deferrable=True,
        poll_interval=0.1,
    ).expand(request_id=submitted.output)
    UpstageOCRTableOperator(
        task_id="commit_tables", summaries=landed.output, partition="ds={{ ds }}", **TABLES
    )


upstage_test_tables()
