"""``UpstageOCRTrigger`` waiting hours in milliseconds: a simulated clock and a simulated request.

Not a fixture module: the trigger tests and ``benchmarks/bench_polling.py`` both use it.

- :class:`SimulatedRequest`: an async request whose batches finish at set times, answering the
  status call the way the emulator does (``completed_pages`` grows as batches finish);
- :func:`run_trigger`: the real trigger's ``run()`` with its clock, its sleeps and its hook's
  status call replaced by simulated ones; returns the status calls it made, its waits and how
  long after completion its event came.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from upstage_provider.status import RequestInfo
from upstage_provider.triggers import ocr as trigger_module
from upstage_provider.triggers.ocr import UpstageOCRTrigger

#: Simulated time starts here (an epoch time in 2027), so ``started_at`` and deadlines look real.
EPOCH = 1_800_000_000.0


class SimulatedClock:
    """``time.time``/``time.monotonic`` that move only when the trigger sleeps."""

    def __init__(self, start: float = EPOCH) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)  # the loop still turns


@dataclass
class SimulatedRequest:
    """
    ``batches`` batches of ``pages_per_batch`` pages, ``workers`` at a time, each taking
    ``seconds_per_batch``, starting ``delay`` seconds after ``submitted_at``.
    ``report_progress=False`` answers without page counts, as an API that reports none.
    """

    batches: int
    seconds_per_batch: float
    pages_per_batch: int = 10
    workers: int = 1
    delay: float = 0.0
    submitted_at: float = EPOCH
    report_progress: bool = True
    calls: list[float] = field(default_factory=list)  # the times of the status calls

    @property
    def duration(self) -> float:
        rounds = -(-self.batches // self.workers)
        return self.delay + rounds * self.seconds_per_batch

    @property
    def completed_at(self) -> float:
        return self.submitted_at + self.duration

    def _batch_status(self, index: int, elapsed: float) -> str:
        begins = self.delay + (index // self.workers) * self.seconds_per_batch
        if elapsed >= begins + self.seconds_per_batch:
            return "completed"
        return "started" if elapsed >= begins else "scheduled"

    def status(self, now: float) -> RequestInfo:
        self.calls.append(now)
        elapsed = now - self.submitted_at
        statuses = [self._batch_status(i, elapsed) for i in range(self.batches)]
        done = sum(self.pages_per_batch for s in statuses if s == "completed")
        payload: dict[str, Any] = {
            "id": "simulated",
            "status": "completed" if now >= self.completed_at else "started",
            "batches": [
                {
                    "id": i,
                    "status": s,
                    "start_page": i * self.pages_per_batch + 1,
                    "end_page": (i + 1) * self.pages_per_batch,
                }
                for i, s in enumerate(statuses)
            ],
        }
        if self.report_progress:
            payload["total_pages"] = self.batches * self.pages_per_batch
            payload["completed_pages"] = done
        return RequestInfo.from_api(payload)


@dataclass
class Outcome:
    event: dict[str, Any] | None  # None: stopped (a triggerer going down) before its event
    calls: int  # status calls the trigger made
    late: float  # seconds from completion to the event (negative: it ended before completion)
    waits: list[float]
    trigger: UpstageOCRTrigger


class _Hook:
    def __init__(self, request: SimulatedRequest, clock: SimulatedClock) -> None:
        self._request, self._clock = request, clock

    async def aget_request(self, request_id: str, max_retries: int | None = None) -> RequestInfo:
        return self._request.status(self._clock.now)


@contextmanager
def simulated(
    request: SimulatedRequest, clock: SimulatedClock, stop_at: float | None = None
) -> Iterator[list[float]]:
    """
    The trigger module's clock, sleeps and hook replaced; yields the list of its waits. A sleep
    that would pass ``stop_at`` ends there, cancelled, as a triggerer that stops.
    """
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if stop_at is not None and clock.now + seconds > stop_at:
            clock.now = stop_at
            raise asyncio.CancelledError
        await clock.sleep(seconds)

    fake_asyncio = types.SimpleNamespace(
        **{n: getattr(asyncio, n) for n in dir(asyncio) if not n.startswith("_")}
    )
    fake_asyncio.sleep = sleep
    fake_time = types.SimpleNamespace(time=clock.time, monotonic=clock.monotonic)
    with (
        mock.patch.object(trigger_module, "asyncio", fake_asyncio),
        mock.patch.object(trigger_module, "time", fake_time),
        mock.patch.object(trigger_module, "UpstageOCRHook", return_value=_Hook(request, clock)),
    ):
        yield waits


async def run_trigger(
    request: SimulatedRequest,
    clock: SimulatedClock | None = None,
    *,
    stop_at: float | None = None,
    **trigger_kwargs: Any,
) -> Outcome:
    """
    Defer at the clock's time (the submission's, unless given) and run the trigger to its event,
    or until ``stop_at``. ``calls`` counts every status call the request has answered so far.
    """
    clock = clock or SimulatedClock(request.submitted_at)
    with simulated(request, clock, stop_at) as waits:
        trigger_kwargs.setdefault("request_id", "simulated")
        trigger = UpstageOCRTrigger(**trigger_kwargs)
        try:
            events = [e.payload async for e in trigger.run()]
        except asyncio.CancelledError:
            events = [None]
    (event,) = events
    return Outcome(event, len(request.calls), clock.now - request.completed_at, waits, trigger)


def run(request: SimulatedRequest, **trigger_kwargs: Any) -> Outcome:
    """:func:`run_trigger` in an event loop of its own (for code that is not async)."""
    return asyncio.run(run_trigger(request, **trigger_kwargs))
