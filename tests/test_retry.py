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
from upstage_provider.retry import (
    MAX_RETRY_AFTER,
    MAY_BILL_AGAIN,
    RETRY_AFTER_JITTER,
    Clock,
    RetryPolicy,
    TransientFailure,
)


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


# --- 429: back-pressure within a time budget ----------------------------------------------------


class Advancing(Frozen):
    """Wall time that moves only when a retry waits."""

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.at += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def limited(policy: RetryPolicy, retry_after: str | None = "1") -> None:
    raise policy.after_answer(
        UpstageRateLimitError("slow down", status_code=429, endpoint="sync OCR"), retry_after
    )


def test_429s_spend_none_of_max_retries_and_pass_when_the_limit_lifts() -> None:
    clock = Advancing(0.0)
    policy = RetryPolicy(0, clock=clock)  # no retries at all for 5xx and connection errors
    answers = iter([None] * 9)

    def attempt() -> str:
        if next(answers, "done") is None:
            limited(policy)
        return "done"

    assert policy.call(attempt, what="sync OCR", log=Lines()) == "done"
    assert len(clock.waits) == 9


def test_a_retry_after_wait_is_jittered_so_callers_turned_away_together_spread_out() -> None:
    waits = []
    for _ in range(200):
        clock = Advancing(0.0)
        policy = RetryPolicy(5, clock=clock, rate_limit_budget=1.5)
        with pytest.raises(UpstageRateLimitError):
            policy.call(lambda: limited(policy), what="sync OCR", log=Lines())  # noqa: B023
        waits.append(clock.waits[0])
    assert all(1.0 <= wait <= 1.0 * (1 + RETRY_AFTER_JITTER) for wait in waits)
    assert max(waits) - min(waits) > 0.2  # spread over most of the jitter, not in lockstep


def test_without_retry_after_429s_back_off_until_the_budget_is_spent() -> None:
    clock = Advancing(0.0)
    policy = RetryPolicy(1, backoff_base=1.0, backoff_max=8.0, clock=clock, rate_limit_budget=30.0)
    with pytest.raises(UpstageRateLimitError) as caught:
        policy.call(lambda: limited(policy, None), what="sync OCR", log=Lines())
    for attempt, wait in enumerate(clock.waits[:4], start=1):
        assert 2 ** (attempt - 2) <= wait <= 2 ** (attempt - 1)
    assert sum(clock.waits) == pytest.approx(30.0)  # the last wait is cut to the budget's end
    assert "kept answering 429 for 30 s, past rate_limit_budget=30 s" in str(caught.value)


async def test_sync_and_async_calls_wait_out_429s_and_give_up_alike() -> None:
    def run_sync() -> tuple[list[float], list[str], str]:
        clock, log = Advancing(0.0), Lines()
        policy = RetryPolicy(5, clock=clock, rate_limit_budget=2.0)
        with pytest.raises(UpstageRateLimitError) as caught:
            policy.call(lambda: limited(policy, "1"), what="sync OCR", log=log)
        return [round(w) for w in clock.waits], log.lines, str(caught.value)

    async def run_async() -> tuple[list[float], list[str], str]:
        clock, log = Advancing(0.0), Lines()
        policy = RetryPolicy(5, clock=clock, rate_limit_budget=2.0)

        async def attempt() -> None:
            limited(policy, "1")

        with pytest.raises(UpstageRateLimitError) as caught:
            await policy.acall(attempt, what="sync OCR", log=log)
        return [round(w) for w in clock.waits], log.lines, str(caught.value)

    sync_waits, sync_lines, sync_error = run_sync()
    async_waits, async_lines, async_error = await run_async()
    assert sync_waits == async_waits == [1]  # a second wait of 1 s would pass the 2 s budget
    assert len(sync_lines) == len(async_lines) == 1
    assert sync_lines[0].startswith("Upstage sync OCR: slow down; rate limited (HTTP 429), waiting 1.")
    assert "rate_limit_budget=2 s" in sync_lines[0]
    assert "retry 1/" not in sync_lines[0]  # no attempt of max_retries was spent
    for error in (sync_error, async_error):
        assert error.startswith(
            "Upstage API HTTP 429 from sync OCR: slow down (the API kept answering 429 for 1."
        )
        assert "and asked to wait 1.0 s more, past rate_limit_budget=2 s; raise rate_limit_budget" in error
