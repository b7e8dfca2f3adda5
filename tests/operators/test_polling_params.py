"""UpstageOCROperator passes its waiting schedule to the trigger it defers to."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.emulator_fixtures import pdf_bytes
from upstage_provider.compat import TaskDeferred
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.operators.ocr import UpstageOCROperator
from upstage_provider.triggers.ocr import UpstageOCRTrigger


def operator(conn_id: str, out: Path, **kwargs: object) -> UpstageOCROperator:
    return UpstageOCROperator(
        task_id="ocr", document="doc.pdf", output_uri=str(out), conn_id=conn_id, deferrable=True, **kwargs
    )


def test_the_waiting_schedule_reaches_the_trigger(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], tmp_path: Path
) -> None:
    server = make_emulator(faults=FaultConfig(latency_per_page=0.5))
    conn_id = connect(server.url)
    doc = load_document(pdf_bytes(150), name="doc.pdf")
    hook = UpstageOCRHook(conn_id)
    try:
        request_id = hook.submit(doc)
        op = operator(conn_id, tmp_path, poll_interval=3, max_poll_interval=40, adaptive_polling=False)
        before = time.time()
        with pytest.raises(TaskDeferred) as deferred:
            op._wait_and_land(hook, {}, request_id, doc)  # the async path, once submitted
    finally:
        hook.close()
    trigger = deferred.value.trigger
    assert isinstance(trigger, UpstageOCRTrigger)
    kwargs = trigger.serialize()[1]
    assert (kwargs["poll_interval"], kwargs["max_poll_interval"], kwargs["adaptive_polling"]) == (
        3.0,
        40.0,
        False,
    )
    assert before <= kwargs["started_at"] <= time.time()


def test_defaults_and_bad_intervals(tmp_path: Path) -> None:
    op = operator("upstage_test", tmp_path)
    assert (op.max_poll_interval, op.adaptive_polling) == (300.0, True)
    with pytest.raises(ValueError, match="poll_interval"):
        operator("upstage_test", tmp_path, poll_interval=0)
