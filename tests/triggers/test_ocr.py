"""UpstageOCRTrigger driven in an event loop against a live emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from airflow.triggers.base import TriggerEvent

from tests.emulator_fixtures import API_KEY
from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.triggers.ocr import UpstageOCRTrigger


def submit(server: EmulatorServer, conn_id: str, pages: int) -> str:
    hook = UpstageOCRHook(conn_id, backoff_base=0.01, backoff_max=0.05)
    return hook.submit(load_document(make_pdf(pages), name=f"{pages}.pdf"))


async def events(trigger: UpstageOCRTrigger) -> list[TriggerEvent]:
    return [e async for e in trigger.run()]


def test_serialize_round_trip_holds_only_primitives_and_no_key() -> None:
    trigger = UpstageOCRTrigger(request_id="r-1", conn_id="c", poll_interval=2, deadline=1_900_000_000.5)
    path, kwargs = trigger.serialize()
    assert path == "upstage_provider.triggers.ocr.UpstageOCRTrigger"
    assert kwargs == {"request_id": "r-1", "conn_id": "c", "poll_interval": 2.0, "deadline": 1_900_000_000.5}
    assert all(isinstance(v, (str, float, int, type(None))) for v in kwargs.values())
    assert UpstageOCRTrigger(**kwargs).serialize() == (path, kwargs)
    assert API_KEY not in repr(kwargs)


async def test_completed_request_gives_one_success_event(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    conn_id = connect(emulator.url)
    request_id = submit(emulator, conn_id, 12)
    got = await events(UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05, deadline=time.time() + 60))
    assert len(got) == 1
    assert got[0].payload["status"] == "success"
    assert got[0].payload["request_id"] == request_id
    assert got[0].payload["total_pages"] == 12


async def test_failed_request_gives_a_failed_event_with_the_reason(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(fail_request_message="the document is unreadable"))
    conn_id = connect(server.url)
    request_id = submit(server, conn_id, 3)
    (event,) = await events(UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05))
    assert event.payload["status"] == "failed"
    assert event.payload["failure_message"] == "the document is unreadable"


async def test_failed_batch_names_its_pages(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(fail_batches=(2,)))
    conn_id = connect(server.url)
    request_id = submit(server, conn_id, 25)
    (event,) = await events(UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05))
    assert event.payload["status"] == "failed"
    assert event.payload["pages"] == [21, 25]
    assert "pages 21-25" in event.payload["message"]


async def test_deadline_gives_a_timeout_event(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(latency_per_page=1.0))
    conn_id = connect(server.url)
    request_id = submit(server, conn_id, 30)
    started = time.time()
    (event,) = await events(UpstageOCRTrigger(request_id, conn_id, poll_interval=5, deadline=started + 0.5))
    assert event.payload["status"] == "timeout"
    assert time.time() - started < 5  # the last sleep was cut to the deadline, not a full poll


async def test_errors_become_one_error_event(emulator: EmulatorServer, connect: Callable[..., str]) -> None:
    bad_key = connect(emulator.url, password="up_wrong_key_123456", conn_id="wrong_key")
    (event,) = await events(UpstageOCRTrigger("some-request", bad_key, poll_interval=0.05))
    assert event.payload["status"] == "error"
    assert event.payload["permanent"] is True
    assert "401" in event.payload["message"]
    assert "up_wrong_key_123456" not in str(event.payload)
    (event,) = await events(UpstageOCRTrigger("some-request", "no_such_connection", poll_interval=0.05))
    assert event.payload["status"] == "error"
    assert "no_such_connection" in event.payload["message"]


async def test_a_trigger_rebuilt_from_serialize_resumes_the_same_wait(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(latency_per_page=0.05))
    conn_id = connect(server.url)
    request_id = submit(server, conn_id, 20)
    first = UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05, deadline=time.time() + 60)
    task = asyncio.ensure_future(events(first))
    await asyncio.sleep(0.3)
    task.cancel()  # the triggerer stops mid-poll
    with pytest.raises(asyncio.CancelledError):
        await task
    _path, kwargs = first.serialize()
    resumed = UpstageOCRTrigger(**kwargs)
    assert resumed.deadline == first.deadline
    (event,) = await events(resumed)
    assert event.payload["status"] == "success"
    assert server.stats()["submissions"] == 1


async def test_many_triggers_share_one_loop_without_blocking_it(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    conn_id = connect(emulator.url)
    request_ids = [submit(emulator, conn_id, 2) for _ in range(5)]
    lags: list[float] = []

    async def probe() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    prober = asyncio.ensure_future(probe())
    got = await asyncio.gather(
        *(events(UpstageOCRTrigger(r, conn_id, poll_interval=0.05)) for r in request_ids)
    )
    prober.cancel()
    assert [e[0].payload["status"] for e in got] == ["success"] * 5
    assert lags  # the loop kept turning while the triggers waited
