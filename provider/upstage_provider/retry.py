"""The one retry policy of every API call, sync and async: what may be tried again, how long to wait.

A call is a function making one attempt. It returns the answer, raises a final error, or raises
the :class:`TransientFailure` that :meth:`RetryPolicy.after_answer` or
:meth:`RetryPolicy.after_no_answer` made of its failure. Tenacity's ``Retrying`` (workers) and
``AsyncRetrying`` (the triggerer) are built from the same arguments (:meth:`RetryPolicy._tenacity`),
so both worlds retry, wait, log and give up alike. Waits go through a :class:`Clock`, the one seam
for tests to record and shorten them.

Two kinds of transient failure, two limits. 5xx answers and calls without an answer get
``max_retries`` more attempts, with exponential backoff. A 429 is back-pressure, not a failure:
it spends none of those attempts; the call waits as the API asks (``Retry-After``, plus a jitter
of up to :data:`RETRY_AFTER_JITTER` of it, so callers turned away together do not come back
together), or backs off without one, for as long as ``rate_limit_budget`` seconds of 429s allow.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import tenacity

from upstage_provider.api_errors import gave_up, rate_limit_outlasted
from upstage_provider.exceptions import (
    UpstageAPIError,
    UpstageConnectionError,
    UpstageRateLimitError,
    UpstageServerError,
)
from upstage_provider.get_provider_info import DEFAULT_RATE_LIMIT_BUDGET

_T = TypeVar("_T")

MAX_RETRY_AFTER = 300.0
#: A wait after a 429 is its ``Retry-After`` plus a random share of it, up to this fraction.
#: Callers turned away in the same second are told the same ``Retry-After``: without the jitter
#: they come back in lockstep. A quarter spreads them without wasting the slots that free up:
#: simulated, 24 callers at 3 requests/s all pass within 8.5 s (the limit allows 8 s) with a
#: quarter, 11.6 s with a jitter as long as the Retry-After itself.
RETRY_AFTER_JITTER = 0.25
#: The shortest wait after a 429, however small the Retry-After: a limit answering
#: ``Retry-After: 0`` forever is not hammered in a tight loop for the whole budget.
MIN_RATE_LIMIT_WAIT = 0.05

#: Appended to the retry line of a billed call (sync OCR) that may have reached the API.
MAY_BILL_AGAIN = (
    "; the API may already have done and billed this call, so this retry may bill the document "
    'again (sync OCR has no request id to check; for exactly-once billing use the async path, mode="async")'
)


class Log(Protocol):
    """Where the retry lines go: the hook's logger (stdlib or structlog)."""

    def warning(self, msg: str, /, *args: Any) -> Any: ...


class Clock:
    """Wall time and sleeping, as the retry waits see them."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = Clock()


class TransientFailure(Exception):
    """An attempt failed in a way the next one may not: 429, 5xx, or no answer that is safe to repeat."""

    def __init__(self, error: UpstageAPIError, *, retry_after: str | None = None, note: str = "") -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after
        self.note = note  # appended to the retry's log line


@dataclass(frozen=True)
class RetryPolicy:
    """
    How many attempts a call gets, which failures earn another, and the wait before it.

    ``max_retries`` bounds the retries of 5xx answers and calls without an answer;
    ``rate_limit_budget`` bounds, in seconds, how long a call keeps waiting while the API
    answers 429 (from its first 429; 0: give up at the first).
    """

    max_retries: int
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    clock: Clock = SYSTEM_CLOCK
    rate_limit_budget: float = DEFAULT_RATE_LIMIT_BUDGET

    @property
    def attempts(self) -> int:
        return max(0, self.max_retries) + 1

    # --- which failures may pass ------------------------------------------------------------------

    def after_answer(self, error: UpstageAPIError, retry_after: str | None = None) -> Exception:
        """What an error status of the API is worth: 429 and 5xx may pass, any other is final."""
        if isinstance(error, (UpstageRateLimitError, UpstageServerError)):
            return TransientFailure(error, retry_after=retry_after)
        return error

    def after_no_answer(
        self, error: UpstageConnectionError, *, idempotent: bool = True, billed: bool = False
    ) -> Exception:
        """
        What a call without an answer is worth. One never sent is always repeated; one that may
        have reached the API is not repeated if it is not idempotent (a repeat could do the work
        twice), and a ``billed`` one is repeated with a line saying it may be billed again.
        """
        if error.permanent:  # a failed TLS handshake: the same server answers the same way
            return error
        if error.never_sent:
            return TransientFailure(error)
        if not idempotent:
            return UpstageConnectionError(
                f"{error.message}; the request may have reached the API, so it is not repeated "
                "automatically (a repeat could bill the document twice)",
                endpoint=error.endpoint,
            )
        return TransientFailure(error, note=MAY_BILL_AGAIN if billed else "")

    # --- how long to wait ---------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        # Equal jitter: half fixed, half random, so concurrent clients spread out but never hammer.
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        honoured = self.parse_retry_after(retry_after)
        return honoured if honoured is not None else self.backoff(attempt)

    def parse_retry_after(self, value: str | None) -> float | None:
        """Seconds from a ``Retry-After`` header (seconds or an HTTP date), capped; None if unusable."""
        if not value:
            return None
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:  # raises on anything but a date since Python 3.10, where it used to return None
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            seconds = parsed.timestamp() - self.clock.now()
        return min(max(seconds, 0.0), MAX_RETRY_AFTER)

    # --- running a call -------------------------------------------------------------------------------

    def call(self, attempt: Callable[[], _T], *, what: str, log: Log) -> _T:
        """``attempt()`` until it returns, raises a final error, or the attempts are spent."""
        retrying = tenacity.Retrying(sleep=self.clock.sleep, **self._tenacity(what, log))
        return retrying(attempt)

    async def acall(self, attempt: Callable[[], Awaitable[_T]], *, what: str, log: Log) -> _T:
        """:meth:`call` for the event loop: the waits are ``await``-ed, never slept."""
        retrying = tenacity.AsyncRetrying(sleep=self.clock.asleep, **self._tenacity(what, log))
        return await retrying(attempt)

    def _tenacity(self, what: str, log: Log) -> dict[str, Any]:
        """The arguments shared by the sync and the async retrying, for one call."""
        book = _Book()

        def wait(state: tenacity.RetryCallState) -> float:
            return self._next(book, state) or 0.0

        def stop(state: tenacity.RetryCallState) -> bool:
            return self._next(book, state) is None

        def log_retry(state: tenacity.RetryCallState) -> None:
            failure = _failure(state)
            sleep = state.next_action.sleep if state.next_action else 0.0
            if _rate_limited(failure):
                log.warning(
                    "Upstage %s: %s%s; rate limited (HTTP 429), waiting %.1f s "
                    "(429s for %.0f s so far, rate_limit_budget=%g s)",
                    what,
                    failure.error.message,
                    failure.note,
                    sleep,
                    book.limited_for,
                    self.rate_limit_budget,
                )
                return
            log.warning(
                "Upstage %s: %s%s; retry %d/%d in %.1f s",
                what,
                failure.error.message,
                failure.note,
                book.failures,
                self.attempts - 1,
                sleep,
            )

        def give_up(state: tenacity.RetryCallState) -> NoReturn:
            self._next(book, state)
            assert book.final is not None
            raise book.final

        return {
            "stop": stop,
            "retry": tenacity.retry_if_exception_type(TransientFailure),
            "wait": wait,
            "before_sleep": log_retry,
            "retry_error_callback": give_up,
        }

    def _next(self, book: _Book, state: tenacity.RetryCallState) -> float | None:
        """The wait before the next attempt, or None to give up; decided once per failed attempt."""
        number = state.attempt_number
        if book.decided == number:
            return book.sleep
        failure = _failure(state)
        if _rate_limited(failure):
            sleep = self._after_429(book, failure)
        else:
            book.failures += 1
            if book.failures < self.attempts:
                sleep = self.delay(book.failures, failure.retry_after)
            else:
                sleep, book.final = None, gave_up(failure.error, book.failures)
        book.decided, book.sleep = number, sleep
        return sleep

    def _after_429(self, book: _Book, failure: TransientFailure) -> float | None:
        """
        The wait after a 429, within the budget: ``Retry-After`` plus jitter, or backoff without
        one. None when the budget is spent, or when the API asks for a wait past its end.
        """
        now = self.clock.now()
        if book.limited_since is None:
            book.limited_since = now
        book.limited += 1
        # A clock that stands still (a test's) still sees the waits this call has slept.
        book.limited_for = max(now - book.limited_since, book.limited_slept)
        left = self.rate_limit_budget - book.limited_for
        asked = self.parse_retry_after(failure.retry_after)
        if left <= 0 or (asked is not None and asked > left):
            book.final = rate_limit_outlasted(failure.error, book.limited_for, self.rate_limit_budget, asked)
            return None
        if asked is None:
            wait = self.backoff(book.limited)
        else:
            wait = asked + random.uniform(0, asked * RETRY_AFTER_JITTER)
        wait = min(max(wait, MIN_RATE_LIMIT_WAIT), left)
        book.limited_slept += wait
        return wait


class _Book:
    """What one call has met so far: its other failures, its 429s, and the decision on each."""

    def __init__(self) -> None:
        self.failures = 0  # 5xx and calls without an answer: bounded by max_retries
        self.limited = 0  # 429s: bounded by the budget
        self.limited_since: float | None = None
        self.limited_slept = 0.0
        self.limited_for = 0.0
        self.decided = 0  # the attempt number the decision below is for
        self.sleep: float | None = None
        self.final: UpstageAPIError | None = None


def _rate_limited(failure: TransientFailure) -> bool:
    return isinstance(failure.error, UpstageRateLimitError)


def _failure(state: tenacity.RetryCallState) -> TransientFailure:
    exc = state.outcome.exception() if state.outcome is not None else None
    assert isinstance(exc, TransientFailure)  # only these are retried
    return exc
