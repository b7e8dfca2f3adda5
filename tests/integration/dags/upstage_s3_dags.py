"""DAGs for the S3 tests (moto): documents and Parquet on s3://, a storage connection or the env."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag

from upstage_provider.operators.ocr import UpstageOCROperator, UpstageOCRSubmitOperator
from upstage_provider.sensors.ocr import UpstageOCRSensor

DOCUMENT = os.environ.get("UPSTAGE_TEST_DOCUMENT", "s3://inbox/nonexistent.pdf")
OUTPUT = os.environ.get("UPSTAGE_TEST_OUTPUT", "s3://lake/ocr")
STORAGE_CONN_ID = os.environ.get("UPSTAGE_TEST_STORAGE_CONN_ID", "aws_default")


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_s3_one_task() -> None:
    UpstageOCROperator(
        task_id="ocr",
        document=DOCUMENT,
        output_uri=OUTPUT,
        partition="ds={{ ds }}",
        storage_conn_id=STORAGE_CONN_ID,
        deferrable=True,
        poll_interval=0.1,
    )


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_s3_submit_and_sensor() -> None:
    submitted = UpstageOCRSubmitOperator(task_id="submit", document=DOCUMENT, storage_conn_id=STORAGE_CONN_ID)
    UpstageOCRSensor(
        task_id="wait_and_land",
        request_id=submitted.output,
        output_uri=OUTPUT,
        partition="ds={{ ds }}",
        storage_conn_id=STORAGE_CONN_ID,
        deferrable=True,
        poll_interval=0.1,
    )


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_s3_sensor_with_document() -> None:
    """The sensor given ``document``: it reads the document itself (for its hash) from S3."""
    submitted = UpstageOCRSubmitOperator(task_id="submit", document=DOCUMENT, storage_conn_id=STORAGE_CONN_ID)
    UpstageOCRSensor(
        task_id="wait_and_land",
        request_id=submitted.output,
        document=DOCUMENT,
        output_uri=OUTPUT,
        partition="ds={{ ds }}",
        storage_conn_id=STORAGE_CONN_ID,
        poll_interval=0.1,
    )


upstage_s3_one_task()
upstage_s3_submit_and_sensor()
upstage_s3_sensor_with_document()
