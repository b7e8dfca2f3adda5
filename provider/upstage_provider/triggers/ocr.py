"""Trigger that waits in the triggerer for an async Upstage request to finish.

It holds no worker slot, serializes only primitives (never the key), and survives a triggerer
restart: the deadline and the start of the wait are absolute epoch times, so a resumed trigger
keeps the original deadline and polling schedule (:mod:`upstage_provider.polling`: the first
status call ``poll_interval`` after the start, later ones following the request's progress or
growing geometrically up to ``max_poll_interval``; ``adaptive_polling=False`` polls every
``poll_interval``).

An API outage does not end the wait: while the deadline allows, transient errors (5xx, 429,
connection errors, anything unexpected) are polled through with a backoff of the trigger's own,
and only a permanent error (a bad key, an unknown request, a malformed answer, a connection
that is not defined) ends it early.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from upstage_provider.compat import HAS_TRIGGER_ON_KILL, AirflowNotFoundException
from upstage_provider.events import EventStatus, OCREvent
from upstage_provider.exceptions import UpstageConnectionError, UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.polling import DEFAULT_MAX_POLL_INTERVAL, PollSchedule, Progress, check_intervals
from upstage_provider.status import RequestInfo, RequestState

_T = TypeVar("_T")

# The event statuses as plain strings, importable here as before; ``EventStatus`` is their home.
SUCCESS: str = EventStatus.SUCCESS.value
FAILED: str = EventStatus.FAILED.value
TIMEOUT: str = EventStatus.TIMEOUT.value
ERROR: str = EventStatus.ERROR.value

#: The longest wait between status calls during an outage (unless the poll interval is longer).
OUTAGE_BACKOFF_MAX = 60.0
#: How long a status call may run past the deadline before it is cut and the wait times out.
DEADLINE_GRACE = 10.0


@dataclass
class _Outage:
    """Status calls failing one after another with transient errors, since ``started``."""

    started: float  # time.monotonic() when the first failed call began
    failed_polls: int = 0
    last_error: str = ""

    def next_wait(self, poll_interval: float) -> float:
        """The poll interval, doubled per failed poll, capped at ``OUTAGE_BACKOFF_MAX``."""
        cap = max(poll_interval, OUTAGE_BACKOFF_MAX)
        return min(cap, poll_interval * 2.0 ** min(self.failed_polls - 1, 32))

    def lasted(self) -> float:
        return time.monotonic() - self.started

    def polls_text(self) -> str:
        return f"{self.failed_polls} failed poll{'' if self.failed_polls == 1 else 's'}"

    def summary(self) -> str:
        return f"{self.lasted():.1f} s, {self.polls_text()}; last error: {self.last_error}"


class UpstageOCRTrigger(BaseTrigger):
    """
    Poll ``GET /requests/{id}`` until the request completes, fails, or the deadline passes.

    A status call that fails for a transient reason (after the hook's own retries) starts an
    outage: it is logged once as a warning, polled through with one HTTP attempt per poll and
    waits that double from ``poll_interval`` up to ``max(poll_interval, 60 s)``, and its end is
    logged once. The deadline still holds: passing it during an outage gives a ``timeout``
    event naming the outage and its last error, and a status call still running
    ``DEADLINE_GRACE`` after the deadline is cut.

    :param request_id: the async request to wait for.
    :param conn_id: the ``upstage`` connection.
    :param poll_interval: seconds before the first status call, and the shortest wait between two.
    :param deadline: absolute UNIX time after which the wait ends with a ``timeout`` event.
    :param max_poll_interval: the longest wait between two status calls.
    :param adaptive_polling: follow the request's progress (see :mod:`upstage_provider.polling`);
        False polls every ``poll_interval``.
    :param started_at: absolute UNIX time the wait began (the deferral), the schedule's anchor;
        defaults to now.
    """

    def __init__(
        self,
        request_id: str,
        conn_id: str = UpstageOCRHook.default_conn_name,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        adaptive_polling: bool = True,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        self.request_id = request_id
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.max_poll_interval = float(max_poll_interval)
        self.adaptive_polling = bool(adaptive_polling)
        self.started_at = time.time() if started_at is None else float(started_at)
        check_intervals(self.poll_interval, self.max_poll_interval)  # at deferral, not in the triggerer
        self._answered = False  # the wait produced its event
        self._killed = False  # on_kill ran: a user ended the wait

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_poll_interval": self.max_poll_interval,
                "adaptive_polling": self.adaptive_polling,
                "started_at": self.started_at,
            },
        )

    def _schedule(self) -> PollSchedule:
        return PollSchedule(
            self.poll_interval,
            self.max_poll_interval,
            started_at=self.started_at,
            adaptive=self.adaptive_polling,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self._wait(UpstageOCRHook(self.conn_id))
        self._answered = True
        yield TriggerEvent(event)

    async def on_kill(self) -> None:
        """A user ended the wait (mark failed or success, clear): Airflow 3.3+ calls this, never on
        a triggerer restart. The API has no cancel call, so the request runs on and is billed; the
        task log says so rather than leaving the user to think the work stopped."""
        self._killed = True
        self.log.warning(
            "Upstage request %s: the wait was ended by a user's action on the task. The API cannot "
            "cancel a request, so it runs to completion and its pages are billed; a cleared sensor "
            "waits for this same request again, with no new charge.",
            self.request_id,
        )

    async def cleanup(self) -> None:
        """Every exit. One that came before the request's answer and not through :meth:`on_kill`
        is a triggerer stopping or moving the trigger, or, on Airflow 3.1/3.2 (no ``on_kill``), a
        user's action too: it cannot say which, only that the request goes on."""
        if not (self._answered or self._killed):
            self.log.info(
                "Upstage request %s: stopped waiting before the request finished (the triggerer "
                "stopping or handing the trigger on%s). The request keeps running at Upstage; the "
                "next wait for it (a resumed trigger or a cleared sensor) picks it up.",
                self.request_id,
                "" if HAS_TRIGGER_ON_KILL else ", or a user's action on the task",
            )

    async def _wait(self, hook: UpstageOCRHook) -> OCREvent:
        last_progress = ""
        outage: _Outage | None = None
        schedule = self._schedule()
        first = schedule.first_wait(time.time())
        if first > 0:  # a trigger rebuilt after that time polls at once
            await self._sleep(first)
        while True:
            began = time.monotonic()
            try:
                info = await self._poll(hook, in_outage=outage is not None)
            except Exception as exc:  # one terminal event, whatever went wrong
                message, permanent = _describe(exc)
                if permanent:
                    return self._event(EventStatus.ERROR, message, permanent=True)
                outage = outage or _Outage(started=began)
                outage.failed_polls += 1
                outage.last_error = message
                remaining = self._remaining()
                if remaining is not None and remaining <= 0:
                    return self._event(
                        EventStatus.TIMEOUT,
                        f"request {self.request_id} did not finish before the sensor's timeout, "
                        f"during an ongoing Upstage API outage ({outage.summary()}); last known "
                        f"state: {last_progress or 'not seen yet'}",
                    )
                wait = outage.next_wait(self.poll_interval)
                if outage.failed_polls == 1:
                    self._log_outage_start(message, wait, remaining)
                await self._sleep(wait)
                continue
            if outage is not None:
                self.log.info(
                    "Upstage request %s: API outage over after %.1f s (%s)",
                    self.request_id,
                    outage.lasted(),
                    outage.polls_text(),
                )
                outage = None
            progress = info.progress()
            pause = None if info.is_terminal else schedule.next_wait(time.time(), Progress.of(info))
            if progress != last_progress:
                self.log.info(
                    "Upstage request %s: %s%s",
                    self.request_id,
                    progress,
                    "" if pause is None else f"; next status call in {pause:.1f} s",
                )
                last_progress = progress
            failure = info.failure()
            if failure is not None:
                event = self._event(EventStatus.FAILED, str(failure), info=info)
                event["failure_message"] = failure.message
                event["pages"] = list(failure.pages) if failure.pages else None
                return event
            if info.status is RequestState.COMPLETED:
                return self._event(EventStatus.SUCCESS, progress, info=info)
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return self._event(
                    EventStatus.TIMEOUT,
                    f"request {self.request_id} did not finish before the sensor's timeout ({progress})",
                    info=info,
                )
            await self._sleep(schedule.poll_interval if pause is None else pause)

    async def _poll(self, hook: UpstageOCRHook, *, in_outage: bool) -> RequestInfo:
        """
        One status call. In an outage it makes one HTTP attempt (the trigger's waits are the
        backoff), and no call runs more than ``DEADLINE_GRACE`` past the deadline, however many
        retries and timeouts the hook has left.
        """
        call = hook.aget_request(self.request_id, max_retries=0 if in_outage else None)
        remaining = self._remaining()
        if remaining is None:
            return await call
        try:
            return await bounded(call, timeout=max(remaining, 0.0) + DEADLINE_GRACE)
        except asyncio.TimeoutError:
            raise UpstageConnectionError(
                f"no answer by the deadline (the status call was cut {DEADLINE_GRACE:.0f} s after it)",
                endpoint="status",
            ) from None

    def _log_outage_start(self, message: str, wait: float, remaining: float | None) -> None:
        self.log.warning(
            "Upstage request %s: API outage, status calls fail: %s; still waiting, polling again "
            "in %.1f s, backing off to every %.0f s at most, %s",
            self.request_id,
            message,
            wait,
            max(self.poll_interval, OUTAGE_BACKOFF_MAX),
            "with no deadline" if remaining is None else f"for up to {remaining:.0f} s more",
        )

    async def _sleep(self, wait: float) -> None:
        """Wait, but not past the deadline (every wait ends there)."""
        remaining = self._remaining()
        await asyncio.sleep(max(0.0, wait if remaining is None else min(wait, remaining)))

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    def _event(
        self, status: EventStatus, message: str, *, info: RequestInfo | None = None, permanent: bool = True
    ) -> OCREvent:
        # The wire form: a plain dict of primitives, the status a plain str (Airflow stores it).
        event: OCREvent = {
            "status": status.value,
            "request_id": self.request_id,
            "message": message,
            "permanent": permanent,
        }
        if info is not None:
            event["total_pages"] = info.total_pages
            event["batches"] = len(info.batches)
        return event


async def bounded(call: Awaitable[_T], timeout: float) -> _T:
    """
    ``call``'s result, or ``asyncio.TimeoutError`` after ``timeout`` seconds (the call cancelled).

    Not ``asyncio.wait_for``: before Python 3.12 it returns the result when the call finishes in
    the same turn of the loop as a cancel of the caller, and the triggerer's cancel of the
    trigger (on shutdown or reassignment) is lost.
    """
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task})  # let it finish cancelling; a cancel of ours still propagates
        raise asyncio.TimeoutError
    return task.result()


def _describe(exc: Exception) -> tuple[str, bool]:
    """The event message for an error and whether it is permanent (ends the wait at once)."""
    if isinstance(exc, UpstageError):
        return str(exc), exc.permanent
    # A missing connection will not appear by waiting; anything else unexpected might pass.
    return f"{type(exc).__name__}: {exc}", isinstance(exc, AirflowNotFoundException)
