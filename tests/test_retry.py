"""The one retry policy: which failures earn another attempt, the waits, giving up; no HTTP, no Airflow."""

from __future__ import annotations

import email.utils
import socket

import pytest
import requests

from upstage_provider.api_errors import connection_error
from upstage_provider.exceptions import (
    UpstageConnectionError,
    UpstageRateLimitError,
    UpstageRequestError,
    UpstageServerError,
)
from upstage_provider.retry import MAX_RETRY_AFTER, MAY_BILL_AGAIN, Clock, RetryPolicy, TransientFailure


class Frozen(Clock):
    """Wall time stands still; waits are recorded, never slept."""

    def __init__(self, now: float) -> None:
        self.at = now
        self.waits: list[float] = []

    def now(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, msg: str, /, *args: object) -> None:
        self.lines.append(msg % args)


def refused() -> requests.exceptions.ConnectionError:
    """What ``requests`` raises when nothing listens: a call that was certainly never sent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    except requests.exceptions.ConnectionError as exc:
        return exc
    raise AssertionError("something answered on a port nobody listens on")


def test_never_sent_is_set_where_the_error_is_built_not_read_from_its_text() -> None:
    built = connection_error(refused(), "status", "http://127.0.0.1:1/x")
    assert built.never_sent
    assert UpstageConnectionError.NEVER_SENT in built.message
    # The same words in a message do not make a call unsent; only the attribute says so.
    assert not UpstageConnectionError(f"{UpstageConnectionError.NEVER_SENT} somewhere").never_sent
    lost = connection_error(requests.exceptions.ConnectionError("reset"), "status", "http://h/x")
    assert not lost.never_sent


def test_giving_up_keeps_whether_the_call_was_ever_sent() -> None:
    policy = RetryPolicy(2, clock=Frozen(0.0))

    def attempt() -> None:
        raise policy.after_no_answer(connection_error(refused(), "async submit", "http://127.0.0.1:1/"))

    with pytest.raises(UpstageConnectionError, match=r"gave up after 3 attempts") as caught:
        policy.call(attempt, what="async submit", log=Lines())
    assert caught.value.never_sent


def test_only_429_and_5xx_answers_earn_another_attempt() -> None:
    policy = RetryPolicy(3)
    for error in (
        UpstageRateLimitError("slow down", status_code=429),
        UpstageServerError("x", status_code=503),
    ):
        assert isinstance(policy.after_answer(error), TransientFailure)
    final = UpstageRequestError("bad model", status_code=400)
    assert policy.after_answer(final) is final


def test_a_call_that_may_have_reached_the_api_is_repeated_only_if_idempotent() -> None:
    policy = RetryPolicy(3)
    lost = connection_error(requests.exceptions.ReadTimeout(), "async submit", "http://h/")
    refused_once = policy.after_no_answer(lost, idempotent=False)
    assert isinstance(refused_once, UpstageConnectionError)
    assert "not repeated automatically" in refused_once.message
    billed = policy.after_no_answer(lost, billed=True)
    assert isinstance(billed, TransientFailure)
    assert billed.note == MAY_BILL_AGAIN
    never_sent = connection_error(refused(), "async submit", "http://h/")
    assert isinstance(policy.after_no_answer(never_sent, idempotent=False), TransientFailure)


def test_retry_after_as_an_http_date_is_read_against_the_clock() -> None:
    clock = Frozen(1_700_000_000.0)
    policy = RetryPolicy(3, clock=clock)
    assert policy.parse_retry_after(email.utils.formatdate(clock.at + 42, usegmt=True)) == 42.0
    assert policy.parse_retry_after(email.utils.formatdate(clock.at - 5, usegmt=True)) == 0.0
    assert policy.parse_retry_after("100000") == MAX_RETRY_AFTER
    assert policy.parse_retry_after("soon") is None


def busy(policy: RetryPolicy) -> None:
    raise policy.after_answer(UpstageServerError("busy", status_code=503, endpoint="status"), "7")


async def test_sync_and_async_calls_wait_log_and_give_up_alike() -> None:
    sync_clock, sync_log = Frozen(0.0), Lines()
    sync_policy = RetryPolicy(2, clock=sync_clock)
    with pytest.raises(UpstageServerError) as sync_error:
        sync_policy.call(lambda: busy(sync_policy), what="status", log=sync_log)

    async_clock, async_log = Frozen(0.0), Lines()
    async_policy = RetryPolicy(2, clock=async_clock)

    async def abusy() -> None:
        busy(async_policy)

    with pytest.raises(UpstageServerError) as async_error:
        await async_policy.acall(abusy, what="status", log=async_log)

    expected = (
        [7.0, 7.0],
        ["Upstage status: busy; retry 1/2 in 7.0 s", "Upstage status: busy; retry 2/2 in 7.0 s"],
        "Upstage API HTTP 503 from status: busy (gave up after 3 attempts)",
    )
    assert (sync_clock.waits, sync_log.lines, str(sync_error.value)) == expected
    assert (async_clock.waits, async_log.lines, str(async_error.value)) == expected
