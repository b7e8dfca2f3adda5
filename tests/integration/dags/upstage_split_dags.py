"""The DAGs the split-document tests (tests/operators/test_ocr_split.py) run; configured by env vars.

``upstage_split_one_task``: one ``UpstageOCROperator`` that retries once at once, so a test can
break its first try between part submissions. ``upstage_split_submit``: the submit operator,
and with ``UPSTAGE_SPLIT_FLAG=1`` (``split_long_documents=True``) a sensor mapped over its parts.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import dag

from upstage_provider.operators.ocr import UpstageOCROperator, UpstageOCRSubmitOperator
from upstage_provider.sensors.ocr import UpstageOCRSensor

DOCUMENT = os.environ.get("UPSTAGE_SPLIT_DOCUMENT", "/nonexistent.pdf")
OUTPUT = os.environ.get("UPSTAGE_SPLIT_OUTPUT", "/tmp/upstage-split-output")
DEFERRABLE = os.environ.get("UPSTAGE_SPLIT_DEFERRABLE", "1") == "1"
FLAG = os.environ.get("UPSTAGE_SPLIT_FLAG") == "1"


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_split_one_task() -> None:
    UpstageOCROperator(
        task_id="ocr",
        document=DOCUMENT,
        output_uri=OUTPUT,
        conn_id="upstage_split",
        deferrable=DEFERRABLE,
        poll_interval=0.05,
        retries=1,
        retry_delay=0,
    )


def _request_id(part: dict[str, Any]) -> str:
    return str(part["request_id"])


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_split_submit() -> None:
    submitted = UpstageOCRSubmitOperator(
        task_id="submit", document=DOCUMENT, conn_id="upstage_split", split_long_documents=FLAG
    )
    if FLAG:  # each part is a document of its own to the sensor
        UpstageOCRSensor.partial(
            task_id="wait_and_land",
            conn_id="upstage_split",
            output_uri=OUTPUT,
            deferrable=True,
            poll_interval=0.05,
        ).expand(request_id=submitted.output.map(_request_id))


upstage_split_one_task()
upstage_split_submit()
