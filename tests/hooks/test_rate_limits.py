"""UpstageOCRHook under the emulator's rate limits: 429s are waited out, within a budget, never billed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.exceptions import UpstageRateLimitError, UpstageServerError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.retry import Clock

CALLERS = 24


class Advancing(Clock):
    """Time that moves only when a retry waits: hours of back-pressure in milliseconds."""

    def __init__(self) -> None:
        self.at = time.time()
        self.waits: list[float] = []

    def now(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.at += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def test_24_concurrent_callers_at_3_requests_a_second_all_succeed_each_billed_once(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(rate_limit_rps=3)
    conn_id = connect(server.url)
    document = load_document(make_pdf(1), name="one-page.pdf")
    start = threading.Barrier(CALLERS)
    pages: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def caller() -> None:
        hook = UpstageOCRHook(conn_id)  # default budget, default retries: what a task gets
        try:
            start.wait()
            result = hook.ocr(document)
            with lock:
                pages.append(len(result.pages))
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            hook.close()

    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert pages == [1] * CALLERS
    stats = server.stats()
    sync = stats["endpoints"]["sync"]["by_status"]
    assert sync["200"] == CALLERS  # each document OCR'd once
    assert stats["pages_processed"] == CALLERS  # a 429 is not billed
    assert sync["429"] == stats["rate_limited"]["rps"] > 0  # the limit did push back
    assert set(sync) == {"200", "429"}


def test_a_limit_that_never_lifts_fails_after_the_default_budget_naming_it(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    # One model call a minute; the clock moves only with the hook's waits, so the emulator's
    # minute never passes and the hook waits out its whole budget of 600 s (in no real time).
    server = make_emulator(rate_limit_rpm=1)
    clock = Advancing()
    hook = UpstageOCRHook(connect(server.url), clock=clock)
    document = load_document(make_pdf(1), name="one-page.pdf")
    hook.ocr(document)

    with pytest.raises(UpstageRateLimitError) as caught:
        hook.ocr(document)

    message = str(caught.value)
    assert "rate limit of 1 requests per minute" in message  # the API's own words first
    assert "the API kept answering 429 for" in message
    assert "rate_limit_budget=600 s" in message
    assert "raise rate_limit_budget, in the hook's arguments or the connection's extra" in message
    assert not caught.value.permanent
    # It waited as asked (the emulator's Retry-After is the rest of the minute), up to the budget.
    assert all(59 <= wait <= 60 * 1.25 for wait in clock.waits), clock.waits
    assert 500 <= sum(clock.waits) <= 600
    assert len(clock.waits) >= 7  # far past max_retries=5: 429s do not spend them
    assert server.stats()["endpoints"]["sync"]["by_status"] == {"200": 1, "429": len(clock.waits) + 1}


def test_a_retry_after_past_a_small_budget_fails_at_once(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(rate_limit_rpm=1)
    # The budget from the connection's extra; no fake clock: nothing is slept.
    hook = UpstageOCRHook(connect(server.url, rate_limit_budget=5))
    document = load_document(make_pdf(1), name="one-page.pdf")
    hook.submit(document)
    with pytest.raises(UpstageRateLimitError, match=r"asked to wait 60 s more, past rate_limit_budget=5 s"):
        hook.submit(document)
    assert server.stats()["submissions"] == 1


async def test_the_triggerer_waits_out_429s_on_the_same_budget(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(rate_429=1.0, retry_after=30, endpoints=("status",)))
    clock = Advancing()
    hook = UpstageOCRHook(connect(server.url), clock=clock, rate_limit_budget=100, max_retries=0)
    with pytest.raises(
        UpstageRateLimitError, match=r"kept answering 429 for \d+ s\b.*past rate_limit_budget=100 s"
    ):
        await hook.aget_request("00000000-0000-4000-8000-000000000000")
    # 30-37.5 s each (the jitter is random), the last one cut to the budget's end; it gives up
    # once what is left of the budget is shorter than the 30 s the API asks for.
    assert len(clock.waits) in (2, 3)
    assert sum(clock.waits) <= 100
    assert 100 - sum(clock.waits) < 30
    assert all(30 <= wait <= 37.5 for wait in clock.waits)  # a cut wait is still >= Retry-After


def test_5xx_stay_bounded_by_max_retries_while_429s_come_between_them(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(rate_429=0.5, rate_5xx=0.5, retry_after=1, seed=7))
    clock = Advancing()
    hook = UpstageOCRHook(connect(server.url), max_retries=2, clock=clock, backoff_base=1.0)
    with pytest.raises(UpstageServerError, match=r"gave up after 3 attempts"):
        hook.list_requests()
    # Seed 7 answers 429 429 503 429 503 429 429 503: five 429s between three 503s, which
    # alone spend the three attempts.
    assert server.stats()["endpoints"]["list"]["by_status"] == {"429": 5, "503": 3}


def test_the_constructor_budget_wins_over_the_connections_extra(connect: Callable[..., str]) -> None:
    with_extra = connect("http://127.0.0.1:1", rate_limit_budget=42)
    assert UpstageOCRHook(with_extra)._retry(UpstageOCRHook(with_extra).connection).rate_limit_budget == 42
    hook = UpstageOCRHook(with_extra, rate_limit_budget=7)
    assert hook._retry(hook.connection).rate_limit_budget == 7
    plain = UpstageOCRHook(connect("http://127.0.0.1:1", conn_id="plain"))
    assert plain._retry(plain.connection).rate_limit_budget == 600
