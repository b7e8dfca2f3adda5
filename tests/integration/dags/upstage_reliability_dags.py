"""DAGs the reliability tests (tests/reliability/) run with dag.test(); configured through env vars.

Every task has ``retries=3`` with no delay, so a test can tell "failed once, for good"
(``AirflowFailException``) from "retried until it worked".
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag

from upstage_provider.operators.ocr import UpstageOCRSubmitOperator
from upstage_provider.sensors.ocr import UpstageOCRSensor

DOCUMENT = os.environ.get("UPSTAGE_RELIABILITY_DOCUMENT", "/nonexistent.pdf")
REQUEST_ID = os.environ.get("UPSTAGE_RELIABILITY_REQUEST_ID", "none")
OUTPUT = os.environ.get("UPSTAGE_RELIABILITY_OUTPUT", "/tmp/upstage-reliability-output")
RETRIES = {"retries": 3, "retry_delay": 0}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_reliability_pipeline() -> None:
    """Submit one document, wait for it in the triggerer, land it."""
    submitted = UpstageOCRSubmitOperator(task_id="submit", document=DOCUMENT, **RETRIES)
    UpstageOCRSensor(
        task_id="wait_and_land",
        request_id=submitted.output,
        output_uri=OUTPUT,
        deferrable=True,
        poll_interval=0.05,
        **RETRIES,
    )


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_reliability_sensor() -> None:
    """Wait for a request submitted outside Airflow, then land it."""
    UpstageOCRSensor(
        task_id="wait_and_land",
        request_id=REQUEST_ID,
        output_uri=OUTPUT,
        deferrable=True,
        poll_interval=0.05,
        **RETRIES,
    )


upstage_reliability_pipeline()
upstage_reliability_sensor()
