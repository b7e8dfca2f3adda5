"""The DAG the submission-ledger tests (tests/reliability/test_ledger.py) run; configured by env vars.

One mapped task group per document, submit -> deferrable sensor, as the example DAG has it. The
submit task retries once at once, so a test can break its first try and watch what the retry does.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.sdk import dag, task_group

from upstage_provider.operators.ocr import UpstageOCRSubmitOperator
from upstage_provider.sensors.ocr import UpstageOCRSensor

DOCUMENTS = json.loads(os.environ.get("UPSTAGE_LEDGER_DOCUMENTS", "[]"))
OUTPUT = os.environ.get("UPSTAGE_LEDGER_OUTPUT", "/tmp/upstage-ledger-output")
MODEL = os.environ.get("UPSTAGE_LEDGER_MODEL", "ocr")
REATTACH_UNRECORDED = os.environ.get("UPSTAGE_LEDGER_REATTACH_UNRECORDED") == "1"


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def upstage_ledger_pipeline() -> None:
    @task_group
    def ocr_document(document: str) -> None:
        submitted = UpstageOCRSubmitOperator(
            task_id="submit",
            document=document,
            conn_id="upstage_ledger",
            model=MODEL,
            **({"reattach_unrecorded": True} if REATTACH_UNRECORDED else {}),
            retries=1,
            retry_delay=0,
        )
        UpstageOCRSensor(
            task_id="wait_and_land",
            request_id=submitted.output,
            conn_id="upstage_ledger",
            output_uri=OUTPUT,
            deferrable=True,
            poll_interval=0.05,
        )

    ocr_document.expand(document=DOCUMENTS)


upstage_ledger_pipeline()
