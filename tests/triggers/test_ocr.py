"""UpstageOCRTrigger driven in an event loop against a live emulator."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import structlog
from airflow.triggers.base import BaseTrigger, TriggerEvent

from tests.emulator_fixtures import API_KEY, WORDS_PER_PAGE
from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.loop_lag import MAX_LOOP_GAP, loop_lag
from upstage_provider.compat import HAS_TRIGGER_ON_KILL
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.emulator.synthetic import SyntheticEngine
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.triggers import ocr as trigger_module
from upstage_provider.triggers.ocr import UpstageOCRTrigger, bounded

try:  # where Airflow stores trigger events: the task SDK's serde from 3.2, the core's before
    from airflow.sdk.serde import deserialize, serialize
except ImportError:  # Airflow 3.1
    from airflow.serialization.serde import deserialize, serialize  # type: ignore[no-redef]


def submit(server: EmulatorServer, conn_id: str, pages: int) -> str:
    hook = UpstageOCRHook(conn_id, backoff_base=0.01, backoff_max=0.05)
    return hook.submit(load_document(make_pdf(pages), name=f"{pages}.pdf"))


async def events(trigger: UpstageOCRTrigger) -> list[TriggerEvent]:
    return [e async for e in trigger.run()]


async def test_serialize_round_trip_holds_only_primitives_and_no_key(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    # The key is the connection's password, and the trigger has used it: had it kept the key
    # (or anything holding it), serialize(), and so the triggerer's table and repr, would show it.
    conn_id = connect(emulator.url, password=API_KEY)
    request_id = submit(emulator, conn_id, 1)
    trigger = UpstageOCRTrigger(
        request_id, conn_id, poll_interval=0.05, deadline=1_900_000_000.5, max_poll_interval=120
    )
    (event,) = await events(trigger)
    assert event.payload["status"] == "success"
    path, kwargs = trigger.serialize()
    assert path == "upstage_provider.triggers.ocr.UpstageOCRTrigger"
    assert kwargs == {
        "request_id": request_id,
        "conn_id": conn_id,
        "poll_interval": 0.05,
        "deadline": 1_900_000_000.5,
        "max_poll_interval": 120.0,
        "adaptive_polling": True,
        "started_at": trigger.started_at,
    }
    assert abs(trigger.started_at - time.time()) < 60  # an absolute epoch time, set when built
    assert all(isinstance(v, (str, float, int, bool, type(None))) for v in kwargs.values())
    assert UpstageOCRTrigger(**kwargs).serialize() == (path, kwargs)
    for text in (repr(kwargs), repr(trigger), str(event.payload)):
        assert API_KEY not in text


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


async def test_events_keep_their_wire_form(emulator: EmulatorServer, connect: Callable[..., str]) -> None:
    """Airflow stores the payload between triggerer and worker: plain primitives, the old strings."""
    assert (trigger_module.SUCCESS, trigger_module.FAILED) == ("success", "failed")
    assert (trigger_module.TIMEOUT, trigger_module.ERROR) == ("timeout", "error")
    conn_id = connect(emulator.url)
    bad_key = connect(emulator.url, password="up_wrong_key_123456", conn_id="wrong_key")
    (success,) = await events(UpstageOCRTrigger(submit(emulator, conn_id, 1), conn_id, poll_interval=0.05))
    (error,) = await events(UpstageOCRTrigger("some-request", bad_key, poll_interval=0.05))
    for event, status in ((success, "success"), (error, "error")):
        assert type(event.payload) is dict
        assert type(event.payload["status"]) is str
        assert event.payload["status"] == status
        assert all(type(v) in (str, int, float, bool, type(None)) for v in event.payload.values())
        assert deserialize(serialize(event.payload)) == event.payload


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
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    # Every status call takes 0.3 s: a client that blocks holds the loop that long per call,
    # twice the most this test lets the loop go without turning.
    server = make_emulator(FaultConfig(latency_per_request=0.3, endpoints=("status",)))
    conn_id = connect(server.url)
    request_ids = [submit(server, conn_id, 2) for _ in range(5)]
    async with loop_lag() as lag:
        got = await asyncio.gather(
            *(events(UpstageOCRTrigger(r, conn_id, poll_interval=0.05)) for r in request_ids)
        )
    assert [e[0].payload["status"] for e in got] == ["success"] * 5
    assert status_calls(server)["total"] >= 5
    assert lag.worst < MAX_LOOP_GAP, f"the loop stood still {lag.worst:.3f} s at once"


# --- API outages while a trigger waits ----------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every line logged through Airflow's (structlog) loggers during the test, as it is logged."""
    with structlog.testing.capture_logs() as entries:
        yield entries


def trigger_lines(logged: list[dict[str, Any]], request_id: str) -> list[tuple[str, str]]:
    """(level, message) of the trigger's own lines (the hook's retry lines start ``Upstage status:``)."""
    lines = [(e["log_level"], str(e["event"])) for e in logged]
    return [(level, m) for level, m in lines if m.startswith(f"Upstage request {request_id}")]


@pytest.fixture
def quick_hook_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trigger's hook backs off 10-50 ms between its own retries instead of 1-60 s."""
    monkeypatch.setattr(
        trigger_module,
        "UpstageOCRHook",
        functools.partial(UpstageOCRHook, backoff_base=0.01, backoff_max=0.05),
    )


@pytest.fixture
def trigger_waits(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """
    Record the trigger's waits in ``waits``; ``on_wait[n]`` (a coroutine function) runs when
    the trigger starts its wait number ``n`` (1-based), before it sleeps: the test's script.
    """
    waits: list[float] = []
    actions: dict[int, Callable[[], Awaitable[None]]] = {}

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        action = actions.pop(len(waits), None)
        if action is not None:
            await action()
        await asyncio.sleep(seconds)

    fake = types.SimpleNamespace(**{n: getattr(asyncio, n) for n in dir(asyncio) if not n.startswith("_")})
    fake.sleep = sleep
    monkeypatch.setattr(trigger_module, "asyncio", fake)
    return types.SimpleNamespace(waits=waits, on_wait=actions)


def stop_once_completed(server: EmulatorServer) -> None:
    """The API goes down right after it finished the request (the trigger has not seen that yet)."""
    for _ in range(1000):
        if server.stats()["requests"] == {"completed": 1}:
            break
        time.sleep(0.01)
    else:
        raise AssertionError(f"the request did not complete: {server.stats()['requests']}")
    server.stop()


def start_again(server: EmulatorServer, *, keep_requests: bool = True) -> EmulatorServer:
    """
    The API back on the same port after an outage. The real API keeps its requests through one;
    the emulator holds them in memory, so the new server takes over the stopped one's.
    """
    back = EmulatorServer(
        server.config, engine=SyntheticEngine(words_per_page=WORDS_PER_PAGE), port=server.port
    ).start()
    if keep_requests:
        own, back.state.jobs = back.state.jobs, server.state.jobs
        own.close()
    return back


def status_calls(server: EmulatorServer) -> dict[str, int]:
    entry = server.stats()["endpoints"].get("status", {"total": 0, "by_status": {}})
    return {"total": entry["total"], **entry["by_status"]}


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("quick_hook_retries")
async def test_an_outage_longer_than_the_hooks_retries_does_not_end_the_wait(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    trigger_waits: types.SimpleNamespace,
    logged: list[dict[str, Any]],
) -> None:
    # The request takes about a second; the hook itself tries each status call twice.
    api = make_emulator(FaultConfig(latency_per_page=0.5))
    conn_id = connect(api.url, max_retries=1)
    request_id = submit(api, conn_id, 2)
    back: list[EmulatorServer] = []

    async def outage_starts() -> None:  # the first poll saw the request under way
        await asyncio.to_thread(stop_once_completed, api)

    async def outage_ends() -> None:  # three polls in a row found nobody listening
        back.append(await asyncio.to_thread(start_again, api))

    # Wait 1 comes before the first poll (the operator polled just before deferring).
    trigger_waits.on_wait[2] = outage_starts
    trigger_waits.on_wait[5] = outage_ends
    try:
        got = await events(
            UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05, deadline=time.time() + 25)
        )
    finally:
        for server in back:
            server.stop()

    assert [e.payload["status"] for e in got] == ["success"]
    assert got[0].payload["total_pages"] == 2
    assert back, "the API never came back: the wait ended during the outage"
    # One poll before the outage, three refused during it (not counted by any server), one after.
    assert status_calls(api) == {"total": 1, "200": 1}
    assert status_calls(back[0]) == {"total": 1, "200": 1}
    # Waits: the poll interval before the first poll and after it (a single batch reports no
    # progress; 25 % of the elapsed time is less), then a backoff doubling from it while the API
    # is down.
    assert trigger_waits.waits == pytest.approx([0.05, 0.05, 0.05, 0.1, 0.2], abs=0.002)
    log = trigger_lines(logged, request_id)
    started = [m for level, m in log if level == "warning"]
    ended = [m for level, m in log if level == "info" and "outage" in m]
    assert len(started) == 1, log
    assert "outage" in started[0]
    assert f"could not connect to 127.0.0.1:{api.port}" in started[0]
    assert len(ended) == 1, log
    assert "3 failed polls" in ended[0]
    assert [level for level, _ in log].count("warning") == 1  # not one line per failed poll


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("quick_hook_retries")
async def test_a_permanent_error_after_an_outage_ends_the_wait_at_once(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    trigger_waits: types.SimpleNamespace,
) -> None:
    # The API comes back without the request (as if it had lost it): 404, for good.
    api = make_emulator(FaultConfig(latency_per_page=0.5))
    conn_id = connect(api.url, max_retries=1)
    request_id = submit(api, conn_id, 2)
    back: list[EmulatorServer] = []

    async def outage_starts() -> None:
        await asyncio.to_thread(stop_once_completed, api)

    async def forgetful_api_returns() -> None:
        back.append(await asyncio.to_thread(start_again, api, keep_requests=False))

    trigger_waits.on_wait[2] = outage_starts
    trigger_waits.on_wait[4] = forgetful_api_returns
    try:
        (event,) = await events(
            UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05, deadline=time.time() + 25)
        )
    finally:
        for server in back:
            server.stop()

    assert event.payload["status"] == "error"
    assert event.payload["permanent"] is True
    assert "HTTP 404" in event.payload["message"]
    assert status_calls(back[0]) == {"total": 1, "404": 1}  # one answer, no further poll
    assert len(trigger_waits.waits) == 4


@pytest.mark.usefixtures("quick_hook_retries")
async def test_a_permanent_error_ends_the_wait_with_one_status_call(
    emulator: EmulatorServer, connect: Callable[..., str], trigger_waits: types.SimpleNamespace
) -> None:
    conn_id = connect(emulator.url)
    (event,) = await events(
        UpstageOCRTrigger("0b6f3c1e-1111-4222-8333-944455556666", conn_id, poll_interval=0.05)
    )
    assert event.payload["status"] == "error"
    assert event.payload["permanent"] is True
    assert "HTTP 404" in event.payload["message"]
    assert status_calls(emulator) == {"total": 1, "404": 1}
    assert trigger_waits.waits == pytest.approx([0.05], abs=0.002)  # the first poll's, no other


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("quick_hook_retries")
async def test_a_deadline_passing_during_an_outage_gives_a_timeout_naming_the_outage(
    connect: Callable[..., str], trigger_waits: types.SimpleNamespace
) -> None:
    port = closed_port()
    conn_id = connect(f"http://127.0.0.1:{port}", max_retries=1)
    (event,) = await events(
        UpstageOCRTrigger(
            "0b6f3c1e-1111-4222-8333-944455556666", conn_id, poll_interval=0.05, deadline=time.time() + 0.5
        )
    )
    assert event.payload["status"] == "timeout"
    message = event.payload["message"]
    assert "outage" in message
    assert f"could not connect to 127.0.0.1:{port}" in message  # the last error
    assert len(trigger_waits.waits) >= 2


@pytest.mark.usefixtures("quick_hook_retries")
async def test_an_unexpected_exception_is_ridden_out_like_an_outage(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    logged: list[dict[str, Any]],
) -> None:
    conn_id = connect(emulator.url)
    request_id = submit(emulator, conn_id, 2)
    real = UpstageOCRHook.aget_request
    calls = 0

    async def flaky(self: UpstageOCRHook, *args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("something odd in the client")
        return await real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(UpstageOCRHook, "aget_request", flaky)
    (event,) = await events(
        UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05, deadline=time.time() + 25)
    )
    assert event.payload["status"] == "success"
    warnings = [m for level, m in trigger_lines(logged, request_id) if level == "warning"]
    assert len(warnings) == 1
    assert "RuntimeError: something odd in the client" in warnings[0]


class SilentAPI:
    """Accepts connections and reads what is sent, but never answers: an API that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.mark.timeout(60)
async def test_a_status_call_hanging_past_the_deadline_is_cut_and_times_out(
    connect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hook alone would spend 3 attempts of a 5 s read timeout each (15 s and more) in one
    # status call; the wait must end soon after the deadline, with that call cut short.
    monkeypatch.setattr(trigger_module, "DEADLINE_GRACE", 0.2)
    api = SilentAPI()
    try:
        conn_id = connect(f"http://127.0.0.1:{api.port}", max_retries=2, timeout=5)
        (event,) = await events(
            UpstageOCRTrigger(
                "0b6f3c1e-1111-4222-8333-944455556666",
                conn_id,
                poll_interval=0.05,
                deadline=time.time() + 0.3,
            )
        )
    finally:
        api.close()
    assert event.payload["status"] == "timeout"
    assert "ongoing Upstage API outage" in event.payload["message"]
    assert "no answer by the deadline" in event.payload["message"]
    assert len(api.connections) == 1  # the hook's first attempt, cut; no second one


@pytest.mark.parametrize("turns", range(6))
async def test_a_cancel_that_meets_a_finishing_status_call_still_cancels(turns: int) -> None:
    # Python 3.11's asyncio.wait_for returns the result when the call finishes in the same turn
    # as the cancel, so a triggerer cancelling the trigger (reassignment, shutdown) would be
    # ignored and the trigger would go on polling. Cancel after every number of loop turns.
    async def quick() -> str:
        return "answer"

    task = asyncio.ensure_future(bounded(quick(), timeout=60.0))
    for _ in range(turns):
        await asyncio.sleep(0)
    if task.cancel():  # not done yet: the cancel must win, whatever the call did meanwhile
        with pytest.raises(asyncio.CancelledError):
            await task
    else:  # done before the cancel, which a done task ignores
        assert await task == "answer"


# --- the wait ended from outside: a user's action, a triggerer stopping ------------------------


async def _cut_short(trigger: UpstageOCRTrigger, *, user: bool) -> None:
    """End a waiting trigger as the triggerer does: cancel its run; for a user's action, call
    ``on_kill`` when this Airflow has it (3.3+; never for a triggerer stopping); ``cleanup`` always."""
    task = asyncio.ensure_future(events(trigger))
    await asyncio.sleep(0.3)  # in its first wait (poll_interval 30 s)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    if user and hasattr(BaseTrigger, "on_kill"):
        await trigger.on_kill()
    await trigger.cleanup()


def test_the_on_kill_flag_is_this_airflow_s() -> None:
    assert hasattr(BaseTrigger, "on_kill") == HAS_TRIGGER_ON_KILL


@pytest.mark.parametrize("user", [True, False], ids=["user-action", "triggerer-stop"])
async def test_a_wait_ended_from_outside_says_the_request_runs_on(
    emulator: EmulatorServer, connect: Callable[..., str], logged: list[dict[str, Any]], user: bool
) -> None:
    conn_id = connect(emulator.url)
    request_id = submit(emulator, conn_id, 1)
    await _cut_short(UpstageOCRTrigger(request_id, conn_id, poll_interval=30), user=user)
    ((level, message),) = trigger_lines(logged, request_id)
    if user and HAS_TRIGGER_ON_KILL:
        # Airflow 3.3: the user is told that killing the task did not stop (or un-bill) the work.
        assert level == "warning"
        assert "ended by a user's action" in message
        assert "runs to completion and its pages are billed" in message
    else:
        # A triggerer stopping, or (Airflow 3.1/3.2, no on_kill) a user's action it cannot tell apart.
        assert level == "info"
        assert "keeps running at Upstage" in message
        assert ("or a user's action" in message) == (not HAS_TRIGGER_ON_KILL)


async def test_a_wait_that_got_its_answer_says_nothing_on_cleanup(
    emulator: EmulatorServer, connect: Callable[..., str], logged: list[dict[str, Any]]
) -> None:
    conn_id = connect(emulator.url)
    request_id = submit(emulator, conn_id, 1)
    trigger = UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05, deadline=time.time() + 60)
    (event,) = await events(trigger)
    await trigger.cleanup()
    assert event.payload["status"] == "success"
    assert not [m for _, m in trigger_lines(logged, request_id) if "keeps running" in m]
