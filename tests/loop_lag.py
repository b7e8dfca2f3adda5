"""How long the running event loop went without turning, for "never blocks the loop" tests.

A ticker wakes every :data:`TICK` seconds and records the gap since it last ran; the longest
gap, including the one still open when the measurement ends, is how long some code held the
loop. A free loop keeps it near one tick; a blocking call holds it for the whole call. Tests
make each call take far longer than their threshold (an emulator with per-request latency),
so a blocking client fails by a wide margin while a busy machine's scheduling noise does not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

#: Seconds between the ticker's wake-ups.
TICK = 0.01
#: The longest a free loop may go without turning: ten ticks, several times what a loaded 2-core
#: machine shows, and half of the 0.3 s a blocking call against the tests' slow API holds it.
MAX_LOOP_GAP = 0.15


class LoopLag:
    """The gaps between the ticker's wake-ups, in seconds."""

    def __init__(self) -> None:
        self.gaps: list[float] = []

    @property
    def worst(self) -> float:
        return max(self.gaps, default=0.0)


@asynccontextmanager
async def loop_lag() -> AsyncIterator[LoopLag]:
    """Measure the loop's gaps while the ``async with`` body runs."""
    lag = LoopLag()
    last = time.perf_counter()

    async def tick() -> None:
        nonlocal last
        while True:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            lag.gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0)  # the ticker is running before the body starts
    try:
        yield lag
    finally:
        ticker.cancel()
        lag.gaps.append(time.perf_counter() - last)  # a block at the very end shows too
        with suppress(asyncio.CancelledError):
            await ticker
