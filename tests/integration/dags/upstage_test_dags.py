"""DAGs the integration tests run with dag.test(); configured through environment variables."""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, dag

from upstage_provider.operators.ocr import UpstageOCROperator, UpstageOCRSubmitOperator
from upstage_provider.sensors.ocr import UpstageOCRSensor

DOCUMENT = os.environ.get("UPSTAGE_TEST_DOCUMENT", "/nonexistent.pdf")
OUTPUT = os.environ.get("UPSTAGE_TEST_OUTPUT", "/tmp/upstage-test-output")
TEST_ASSET = Asset(name="upstage_test_words", uri="file:///tmp/upstage-test-words")


class SubmitThenDie(UpstageOCRSubmitOperator):
    """Fails its first try right after the submission reached the API, as a killed worker would."""

    def execute(self, context: Any) -> str:
        request_id = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost after submitting")
        return request_id


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_test_retry_submit() -> None:
    submitted = SubmitThenDie(task_id="submit", document=DOCUMENT, retries=1, retry_delay=0)
    UpstageOCRSensor(
        task_id="wait_and_land",
        request_id=submitted.output,
        output_uri=OUTPUT,
        deferrable=True,
        poll_interval=0.1,
    )


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_test_one_task() -> None:
    UpstageOCROperator(
        task_id="ocr",
        document=DOCUMENT,
        output_uri=OUTPUT,
        deferrable=True,
        poll_interval=0.1,
        outlets=[TEST_ASSET],
    )


upstage_test_retry_submit()
upstage_test_one_task()
