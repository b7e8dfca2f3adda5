"""The one retry policy of every API call, sync and async: what may be tried again, how long to wait.

A call is a function making one attempt. It returns the answer, raises a final error, or raises
the :class:`TransientFailure` that :meth:`RetryPolicy.after_answer` or
:meth:`RetryPolicy.after_no_answer` made of its failure. Tenacity's ``Retrying`` (workers) and
``AsyncRetrying`` (the triggerer) are built from the same arguments (:meth:`RetryPolicy._tenacity`),
so both worlds retry, wait, log and give up alike. Waits go through a :class:`Clock`, the one seam
for tests to record and shorten them.
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

from upstage_provider.api_errors import gave_up
from upstage_provider.exceptions import (
    UpstageAPIError,
    UpstageConnectionError,
    UpstageRateLimitError,
    UpstageServerError,
)

_T = TypeVar("_T")

MAX_RETRY_AFTER = 300.0

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
    """How many attempts a call gets, which failures earn another, and the wait before it."""

    max_retries: int
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    clock: Clock = SYSTEM_CLOCK

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
        """The arguments shared by the sync and the async retrying."""

        def wait(state: tenacity.RetryCallState) -> float:
            return self.delay(state.attempt_number, _failure(state).retry_after)

        def log_retry(state: tenacity.RetryCallState) -> None:
            failure = _failure(state)
            log.warning(
                "Upstage %s: %s%s; retry %d/%d in %.1f s",
                what,
                failure.error.message,
                failure.note,
                state.attempt_number,
                self.attempts - 1,
                state.next_action.sleep if state.next_action else 0.0,
            )

        def give_up(state: tenacity.RetryCallState) -> NoReturn:
            raise gave_up(_failure(state).error, self.attempts)

        return {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "retry": tenacity.retry_if_exception_type(TransientFailure),
            "wait": wait,
            "before_sleep": log_retry,
            "retry_error_callback": give_up,
        }


def _failure(state: tenacity.RetryCallState) -> TransientFailure:
    exc = state.outcome.exception() if state.outcome is not None else None
    assert isinstance(exc, TransientFailure)  # only these are retried
    return exc
