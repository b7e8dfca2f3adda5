"""Triggerer load: many ``UpstageOCRTrigger``s waiting in one event loop against the emulator.

Each trigger runs as the triggerer runs it (``async for event in trigger.run()`` in a task of its
own) and polls a request that stays in progress for the whole benchmark: the emulator, in a
process of its own so its CPU is not ours, reads every page for an hour, and answers status
calls after 50 ms, a round trip to a remote API. A probe task in the same loop sleeps 10 ms over
and over; how late it wakes is the event-loop lag. CPU is ``time.process_time()`` of this process
(all threads); new TCP connections are counted at ``socket.connect``; status calls come from the
emulator's counters. Lag and CPU are medians over sub-windows of one poll interval each.

The baseline is the naive trigger: the same polling loop written with the synchronous client,
a blocking ``requests.get`` per poll (a new connection each time). For CPU it is the same polls
made with a bare ``httpx.AsyncClient``: what the HTTP client alone costs. A restart (every
trigger starting in the same loop iteration) is measured too.

    python benchmarks/bench_triggerer.py [--quick] [--out DIR] [--plots DIR]
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import random
import socket
import statistics
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import common

NAME = "triggerer"
GOAL_LAG_MS = 100.0  # p99
GOAL_MEMORY_KB = 50.0  # per waiting trigger
GOAL_CPU = 10.0  # % of one core
GOAL_CALLS = 0.10  # status calls per second, adaptive over the fixed interval's
WAIT_HOURS = 6.0  # the triggers' waits began evenly over this many hours before the benchmark
GOAL_CONNECTS = 0.01  # new TCP connections per status call
PROBE_INTERVAL = 0.010
LATENCY_PER_PAGE = 3600.0  # no request finishes while we measure

Wait = Callable[[str, float], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Sizes:
    counts: tuple[int, ...]  # the lag curve; the last one is the load the goals are about
    poll_interval: float
    latency: float  # seconds the emulator takes to answer a status call
    window: float  # steady state measured at the largest count
    curve_window: float  # at the other counts, and for the baseline

    @property
    def largest(self) -> int:
        return self.counts[-1]


FULL = Sizes(counts=(0, 100, 250, 500, 1000), poll_interval=5.0, latency=0.05, window=60.0, curve_window=20.0)
QUICK = Sizes(counts=(0, 10, 20), poll_interval=0.5, latency=0.05, window=2.0, curve_window=1.0)


@dataclass
class Window:
    """What one loop did over its measured window, whole and per poll interval."""

    label: str
    count: int
    seconds: float
    lags: list[float]  # every probe wake-up in the window: how late, s
    cpu_seconds: float
    status_calls: int
    connects: int
    warmed_up: bool  # every trigger had polled once before the window began
    rss_delta: int = 0  # bytes, from just before the first trigger started to the window's end
    open_connections: int = 0
    chunks: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(c[key] for c in self.chunks) if self.chunks else 0.0

    @property
    def lag_p50_ms(self) -> float:
        return self.median("lag_p50_ms")

    @property
    def lag_p99_ms(self) -> float:
        return self.median("lag_p99_ms")

    @property
    def cpu_percent(self) -> float:
        return self.median("cpu_percent")

    @property
    def pooled_p99_ms(self) -> float:
        return 1000 * percentile(self.lags, 99)

    @property
    def pooled_cpu_percent(self) -> float:
        return 100 * self.cpu_seconds / self.seconds

    @property
    def calls_per_second(self) -> float:
        return self.status_calls / self.seconds

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "lags"}
        data.update(
            samples=len(self.lags),
            lag_p50_ms=round(self.lag_p50_ms, 3),
            lag_p99_ms=round(self.lag_p99_ms, 3),
            pooled_lag_p99_ms=round(self.pooled_p99_ms, 3),
            lag_max_ms=round(1000 * max(self.lags, default=0.0), 3),
            cpu_percent=round(self.cpu_percent, 3),
            pooled_cpu_percent=round(self.pooled_cpu_percent, 3),
            calls_per_second=round(self.calls_per_second, 3),
        )
        return data

    def describe(self) -> str:
        return (
            f"{self.label}: {self.count} triggers, {self.seconds:.0f} s, lag p50 {self.lag_p50_ms:.2f} ms "
            f"p99 {self.lag_p99_ms:.2f} ms (pooled {self.pooled_p99_ms:.2f}, max "
            f"{1000 * max(self.lags, default=0):.0f}), CPU {self.cpu_percent:.1f} %, "
            f"{self.calls_per_second:.1f} status calls/s, {self.connects} new connections"
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- the emulator's side ---------------------------------------------------------------------------


def submit_all(count: int) -> list[str]:
    """``count`` one-page PDFs, submitted four at a time; returns their request ids."""
    from upstage_provider.documents import load_document
    from upstage_provider.emulator.synthetic import blank_pdf
    from upstage_provider.hooks.upstage import UpstageOCRHook

    pdf = blank_pdf(1)

    def submit_share(share: range) -> list[str]:
        hook = UpstageOCRHook(common.CONN_ID)
        try:
            return [hook.submit(load_document(pdf, name=f"wait-{i}.pdf")) for i in share]
        finally:
            hook.close()

    with ThreadPoolExecutor(4) as pool:
        return [rid for ids in pool.map(submit_share, [range(i, count, 4) for i in range(4)]) for rid in ids]


def wait_until_started(url: str, count: int, timeout: float = 60.0) -> dict[str, int]:
    """Every request opened by an emulator worker, its batch under way: what triggers wait for."""
    deadline = time.monotonic() + timeout
    while True:
        requests = common.emulator_stats(url)["requests"]
        if requests.get("started", 0) >= count or time.monotonic() > deadline:
            return dict(requests)
        time.sleep(0.2)


def set_status_latency(url: str, seconds: float) -> None:
    """``PUT /_emulator/faults``: status calls answered after ``seconds``; running requests unchanged."""
    import requests

    faults = {
        "latency_per_page": LATENCY_PER_PAGE,
        "latency_per_request": seconds,
        "endpoints": ["status"],
        "seed": common.SEED,
    }
    headers = {"Authorization": f"Bearer {common.KEY}"}
    requests.put(f"{url}/_emulator/faults", json=faults, headers=headers, timeout=10).raise_for_status()


# --- the triggers ------------------------------------------------------------------------------------------


#: Each request's age when the benchmark starts: spread over ``WAIT_HOURS`` (set by ``main``).
AGES: dict[str, float] = {}


def set_ages(request_ids: list[str]) -> None:
    span = WAIT_HOURS * 3600.0
    # Golden-ratio steps: any first k of them are spread over the whole span too.
    AGES.update({rid: span * ((i * 0.6180339887498949) % 1.0) for i, rid in enumerate(request_ids)})


async def run_trigger(request_id: str, poll_interval: float, *, adaptive: bool, steady: bool) -> None:
    """
    One ``UpstageOCRTrigger``, run the way the triggerer runs it. Adaptive, its wait began
    ``AGES[request_id]`` ago; ``steady`` starts it at a random point of its current wait between
    two calls (as in a triggerer running for hours), else it polls at once (as after a restart).
    """
    from upstage_provider.polling import PollSchedule
    from upstage_provider.triggers.ocr import UpstageOCRTrigger

    started_at = time.time() - AGES.get(request_id, 0.0) if adaptive else None
    if adaptive and steady:
        schedule = PollSchedule(poll_interval, started_at=started_at or 0.0)
        await asyncio.sleep(PHASES.random() * schedule.next_wait(time.time(), None))
    trigger = UpstageOCRTrigger(
        request_id,
        conn_id=common.CONN_ID,
        poll_interval=poll_interval,
        adaptive_polling=adaptive,
        started_at=started_at,
    )
    async for event in trigger.run():
        raise RuntimeError(f"trigger for {request_id} ended while it should wait: {event.payload}")


PHASES = random.Random(common.SEED)


async def our_trigger(request_id: str, poll_interval: float) -> None:
    """The default (adaptive) trigger in a triggerer that has run for hours."""
    await run_trigger(request_id, poll_interval, adaptive=True, steady=True)


async def restarted_trigger(request_id: str, poll_interval: float) -> None:
    """The default trigger rebuilt by a restarted triggerer: it polls at once."""
    await run_trigger(request_id, poll_interval, adaptive=True, steady=False)


async def fixed_trigger(request_id: str, poll_interval: float) -> None:
    """``adaptive_polling=False``: the fixed interval, the trigger as it was before."""
    await run_trigger(request_id, poll_interval, adaptive=False, steady=False)


def blocking_trigger(url: str) -> Wait:
    """The naive trigger: the sync client inside the loop, a new connection per poll."""
    import requests

    from upstage_provider.hooks.upstage import REQUESTS_PATH

    async def wait(request_id: str, poll_interval: float) -> None:
        while True:
            response = requests.get(
                f"{url}{REQUESTS_PATH}/{request_id}",
                headers={"Authorization": f"Bearer {common.KEY}"},
                timeout=(10, 60),
            )
            response.raise_for_status()
            if response.json()["status"] in ("completed", "failed"):
                raise RuntimeError(f"request {request_id} ended while it should wait")
            await asyncio.sleep(poll_interval)

    return wait


def bare_httpx_poller(url: str) -> Wait:
    """
    The same polls with nothing but the HTTP client: one httpx.AsyncClient per loop with the
    hook's pool limits, and the trigger's limit on calls in flight. What the client alone costs.
    """
    import weakref

    import httpx

    from upstage_provider.hooks.upstage import MAX_STATUS_CALLS_PER_LOOP, REQUESTS_PATH

    per_loop: weakref.WeakKeyDictionary[
        asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, asyncio.Semaphore]
    ]
    per_loop = weakref.WeakKeyDictionary()
    headers = {"Authorization": f"Bearer {common.KEY}"}

    async def wait(request_id: str, poll_interval: float) -> None:
        loop = asyncio.get_running_loop()
        if loop not in per_loop:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
            per_loop[loop] = (httpx.AsyncClient(limits=limits), asyncio.Semaphore(MAX_STATUS_CALLS_PER_LOOP))
        client, slots = per_loop[loop]
        while True:
            async with slots:
                response = await client.get(
                    f"{url}{REQUESTS_PATH}/{request_id}",
                    headers=headers,
                    timeout=httpx.Timeout(60, connect=10),
                )
            response.raise_for_status()
            if response.json()["status"] in ("completed", "failed"):
                raise RuntimeError(f"request {request_id} ended while it should wait")
            await asyncio.sleep(poll_interval)

    return wait


async def started_after(delay: float, wait: Wait, request_id: str, poll_interval: float) -> None:
    if delay:
        await asyncio.sleep(delay)
    await wait(request_id, poll_interval)


# --- measuring --------------------------------------------------------------------------------------------


class ConnectCounter:
    """Counts ``socket.connect`` calls in this process: one per new TCP connection."""

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def installed(self) -> Iterator[ConnectCounter]:
        original = socket.socket.connect

        def connect(sock: socket.socket, address: Any) -> None:
            self.count += 1
            original(sock, address)

        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            socket.socket.connect = original  # type: ignore[method-assign]


async def probe(samples: list[tuple[float, float]]) -> None:
    """Sleep ``PROBE_INTERVAL`` over and over; record when and how late each wake-up is."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(PROBE_INTERVAL)
        woke = loop.time()
        samples.append((woke, max(0.0, woke - asked - PROBE_INTERVAL)))


def _chunk(
    samples: list[tuple[float, float]], t0: float, cpu0: float, t1: float, cpu1: float
) -> dict[str, float]:
    """Lag and CPU of one poll interval."""
    lags = [lag for t, lag in samples if t0 <= t < t1]
    return {
        "seconds": round(t1 - t0, 3),
        "lag_p50_ms": round(1000 * percentile(lags, 50), 3),
        "lag_p99_ms": round(1000 * percentile(lags, 99), 3),
        "cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
    }


def established_to(port: int) -> int:
    import psutil

    connections = psutil.Process().net_connections(kind="tcp")
    return sum(1 for c in connections if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED")


@dataclass(frozen=True)
class Run:
    label: str
    wait: Wait
    request_ids: list[str]
    window: float
    staggered: bool = True  # first polls spread over one poll interval; False: all at once (a restart)
    warm_up: bool = True  # measure once every trigger has polled; False: from the first poll on


class Bench:
    """One emulator, its waiting requests, and the runs measured against them."""

    def __init__(self, sizes: Sizes, url: str, request_ids: list[str]) -> None:
        self.sizes = sizes
        self.url = url
        self.request_ids = request_ids
        self.connects = ConnectCounter()

    def run(self, run: Run) -> Window:
        """A fresh event loop (and so a fresh shared HTTP client), as a new triggerer has."""
        with self.connects.installed():
            window = asyncio.run(self._measure(run))
        common.log(window.describe())
        return window

    def heap_per_trigger(self, label: str, wait: Wait) -> float:
        return float(asyncio.run(self._heap_per_trigger(label, wait)))

    async def _measure(self, run: Run) -> Window:
        """Start the triggers, let each poll once (if ``run.warm_up``), then measure ``run.window``."""
        import psutil

        loop = asyncio.get_running_loop()
        poll = self.sizes.poll_interval
        count = len(run.request_ids)
        samples: list[tuple[float, float]] = []
        prober = asyncio.create_task(probe(samples))
        await asyncio.sleep(0.1)
        rss_before = psutil.Process().memory_info().rss
        calls_before = await asyncio.to_thread(common.status_calls, self.url)
        spread = poll if run.staggered else 0.0
        tasks = [
            asyncio.create_task(started_after(spread * i / max(1, count), run.wait, rid, poll))
            for i, rid in enumerate(run.request_ids)
        ]
        if run.warm_up and count:
            # Every trigger has polled once, the first ones twice: a steady state.
            await asyncio.sleep(spread + poll / 2)
            while await asyncio.to_thread(common.status_calls, self.url) - calls_before < count:
                await asyncio.sleep(poll / 10)
            calls_before = await asyncio.to_thread(common.status_calls, self.url)
        connects_before = self.connects.count
        start = loop.time()
        marks = [(start, time.process_time())]
        while marks[-1][0] - start < run.window - 1e-3:
            await asyncio.sleep(min(poll, run.window - (marks[-1][0] - start)))
            marks.append((loop.time(), time.process_time()))
        # Everything read and every trigger cancelled before the loop runs again: a loop that
        # fell behind (the blocking baseline) would first run every poll that came due.
        connects = self.connects.count - connects_before
        rss_delta = psutil.Process().memory_info().rss - rss_before if count else 0
        open_connections = established_to(int(self.url.rsplit(":", 1)[1]))
        ended = [t for t in tasks if t.done()]
        for task in (*tasks, prober):
            task.cancel()
        await asyncio.gather(*tasks, prober, return_exceptions=True)
        if ended:
            raise RuntimeError(f"{run.label}: {len(ended)} triggers ended early: {ended[0].exception()!r}")
        calls = await asyncio.to_thread(common.status_calls, self.url) - calls_before
        end = marks[-1][0]
        return Window(
            label=run.label,
            count=count,
            seconds=end - start,
            lags=[lag for t, lag in samples if start <= t < end],
            cpu_seconds=marks[-1][1] - marks[0][1],
            status_calls=calls,
            connects=connects,
            warmed_up=run.warm_up,
            rss_delta=rss_delta,
            open_connections=open_connections,
            chunks=[_chunk(samples, *a, *b) for a, b in itertools.pairwise(marks)],
        )

    async def _heap_per_trigger(self, label: str, wait: Wait) -> float:
        """Python heap (tracemalloc) held per trigger once every trigger has polled once."""
        poll = self.sizes.poll_interval
        count = len(self.request_ids)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            calls_before = await asyncio.to_thread(common.status_calls, self.url)
            tasks = [asyncio.create_task(wait(rid, poll)) for rid in self.request_ids]
            while await asyncio.to_thread(common.status_calls, self.url) - calls_before < count:
                await asyncio.sleep(poll / 20)
            await asyncio.sleep(poll / 4)  # every one back in asyncio.sleep between two polls
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        common.log(f"{label}: {held / count / 1024:.1f} KB of Python heap per waiting trigger")
        return held / count


# --- report ----------------------------------------------------------------------------------------------


def plot(m: Measured, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve, naive, bare, restart, sizes = m.curve, m.naive, m.bare, m.restart, m.sizes
    fig, (lag_ax, cpu_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    counts = [w.count for w in curve]
    lag_ax.plot(counts, [w.lag_p50_ms for w in curve], "o-", color="#2980b9", label="p50")
    lag_ax.plot(counts, [w.lag_p99_ms for w in curve], "s-", color="#c0392b", label="p99")
    lag_ax.plot(
        [restart.count], [restart.pooled_p99_ms], "D", color="#8e44ad", label="p99, all started at once"
    )
    lag_ax.plot(
        [naive.count], [naive.lag_p99_ms], "x", color="#7f8c8d", ms=9, label="p99, blocking requests.get"
    )
    lag_ax.axhline(GOAL_LAG_MS, color="#333333", linestyle="--", linewidth=1, label="goal (p99)")
    lag_ax.set_yscale("log")
    lag_ax.set_xlabel("waiting UpstageOCRTriggers in the loop")
    lag_ax.set_ylabel("event-loop lag, ms")
    lag_ax.set_title(f"Event-loop lag, polling every {sizes.poll_interval:g} s")
    lag_ax.legend(fontsize=8)
    cpu_ax.plot(counts, [w.cpu_percent for w in curve], "o-", color="#27ae60", label="UpstageOCRTrigger")
    cpu_ax.plot([naive.count], [naive.cpu_percent], "x", color="#7f8c8d", ms=9, label="blocking requests.get")
    cpu_ax.plot([bare.count], [bare.cpu_percent], "+", color="#e67e22", ms=10, label="bare httpx.AsyncClient")
    cpu_ax.axhline(GOAL_CPU, color="#333333", linestyle="--", linewidth=1, label="goal")
    cpu_ax.set_xlabel("waiting UpstageOCRTriggers in the loop")
    cpu_ax.set_ylabel("CPU, % of one core")
    cpu_ax.set_title("CPU of the triggerer process")
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.legend(fontsize=8)
    common.save_figure(fig, path)


@dataclass
class Measured:
    curve: list[Window]  # by trigger count, the idle loop first
    naive: Window
    bare: Window  # the HTTP client alone, same polls
    restart: Window
    fixed: Window  # adaptive_polling=False: the fixed interval
    heap: float  # bytes per waiting trigger
    naive_heap: float
    sizes: Sizes

    @property
    def ours(self) -> Window:
        return self.curve[-1]

    @property
    def idle(self) -> Window:
        return self.curve[0]


def rows(m: Measured) -> list[common.Row]:
    ours, naive, bare, idle, restart, fixed = m.ours, m.naive, m.bare, m.idle, m.restart, m.fixed
    n = ours.count
    heap_kb, naive_heap_kb = m.heap / 1024, m.naive_heap / 1024
    # Reuse is measured where calls are many: the fixed interval's warmed-up window. The adaptive
    # run makes so few calls that the connections its first concurrent calls open dominate it.
    connects_per_call = fixed.connects / max(1, fixed.status_calls)
    return [
        common.Row(
            metric=f"event-loop lag p99, {n} waiting triggers",
            baseline=round(naive.lag_p99_ms, 2),
            ours=round(ours.lag_p99_ms, 2),
            unit="ms",
            goal=f"under {GOAL_LAG_MS:.0f} ms",
            met=ours.lag_p99_ms < GOAL_LAG_MS,
            ratio=round(naive.lag_p99_ms / ours.lag_p99_ms, 1) if ours.lag_p99_ms else None,
            note=(
                f"median of {len(ours.chunks)} intervals; whole window {ours.pooled_p99_ms:.1f} ms, "
                f"worst interval {max(c['lag_p99_ms'] for c in ours.chunks):.1f} ms; "
                f"p50 {ours.lag_p50_ms:.2f} ms; idle loop {idle.lag_p99_ms:.2f} ms"
            ),
        ),
        common.Row(
            metric=f"event-loop lag p99, {n} triggers started at once (a triggerer restart)",
            baseline=round(idle.lag_p99_ms, 2),
            ours=round(restart.pooled_p99_ms, 2),
            unit="ms",
            goal=f"under {GOAL_LAG_MS:.0f} ms",
            met=restart.pooled_p99_ms < GOAL_LAG_MS,
            ratio=None,
            note=(
                f"first {restart.seconds:.0f} s, every wake-up pooled; baseline: the idle loop; "
                f"{restart.calls_per_second:.0f} status calls/s"
            ),
        ),
        common.Row(
            metric="memory per waiting trigger (Python heap, tracemalloc)",
            baseline=round(naive_heap_kb, 2),
            ours=round(heap_kb, 2),
            unit="KB",
            goal=f"under {GOAL_MEMORY_KB:.0f} KB",
            met=heap_kb < GOAL_MEMORY_KB,
            ratio=round(naive_heap_kb / heap_kb, 2) if heap_kb else None,
            note=f"RSS growth over the {n}-trigger run: {ours.rss_delta / n / 1024:.1f} KB per trigger",
        ),
        common.Row(
            metric=f"CPU, {n} waiting triggers",
            baseline=round(fixed.cpu_percent, 2),
            ours=round(ours.cpu_percent, 2),
            unit="% of one core",
            goal=f"under {GOAL_CPU:.0f} %",
            met=ours.cpu_percent < GOAL_CPU,
            ratio=round(fixed.cpu_percent / ours.cpu_percent, 2) if ours.cpu_percent else None,
            note=(
                f"baseline: the fixed interval (adaptive_polling=False); {_ms_per_call(ours):.2f} ms a "
                f"call (fixed {_ms_per_call(fixed):.2f}, a bare httpx.AsyncClient {_ms_per_call(bare):.2f} "
                f"at {bare.cpu_percent:.1f} %); median of {len(ours.chunks)} intervals, whole window "
                f"{ours.pooled_cpu_percent:.1f} %; idle loop with the probe {idle.cpu_percent:.1f} %; "
                f"the blocking trigger {naive.cpu_percent:.1f} % (its loop stands still, waiting on sockets)"
            ),
        ),
        common.Row(
            metric=f"status calls per second, {n} waiting triggers",
            baseline=round(fixed.calls_per_second, 2),
            ours=round(ours.calls_per_second, 2),
            unit="calls/s",
            goal=f"under {100 * GOAL_CALLS:.0f} % of the fixed interval's",
            met=ours.calls_per_second < GOAL_CALLS * fixed.calls_per_second,
            ratio=round(fixed.calls_per_second / ours.calls_per_second, 1) if ours.status_calls else None,
            note=(
                f"baseline: the fixed interval ({fixed.calls_per_second / (n / m.sizes.poll_interval):.2f} "
                f"of triggers / poll interval); waits begun evenly over the last {WAIT_HOURS:g} h; the "
                f"blocking trigger managed {naive.calls_per_second:.0f} calls/s"
            ),
        ),
        common.Row(
            metric="new TCP connections per status call (fixed interval, warmed up)",
            baseline=round(naive.connects / max(1, naive.status_calls), 3),
            ours=round(connects_per_call, 5),
            unit="connections",
            goal=f"under {GOAL_CONNECTS} (connections reused)",
            met=connects_per_call < GOAL_CONNECTS,
            ratio=None,
            note=(
                f"{fixed.connects} opened for {fixed.status_calls} calls in {fixed.seconds:.0f} s; adaptive "
                f"(from a fresh loop): {ours.connects} opened for {ours.status_calls} calls, "
                f"{ours.open_connections} open at the end"
            ),
        ),
    ]


def measure_all(sizes: Sizes, url: str, request_ids: list[str]) -> Measured:
    bench = Bench(sizes, url, request_ids)
    n = sizes.largest
    set_status_latency(url, sizes.latency)
    windows: dict[int, Window] = {}
    # The largest count right after the idle loop, so its RSS growth is not memory the
    # allocator kept from an earlier run.
    for count in (sizes.counts[0], n, *reversed(sizes.counts[1:-1])):
        seconds = sizes.window if count == n else sizes.curve_window
        # Steady state from the start: every trigger is at a random point between two calls.
        windows[count] = bench.run(
            Run(f"UpstageOCRTrigger x{count}", our_trigger, request_ids[:count], seconds, warm_up=False)
        )
    fixed = bench.run(Run(f"fixed interval x{n}", fixed_trigger, request_ids, sizes.curve_window))
    naive_wait = blocking_trigger(url)
    # It never settles (each poll stops the loop for a whole status call), so it is measured from
    # its first poll on.
    naive = bench.run(
        Run(f"blocking requests.get x{n}", naive_wait, request_ids, sizes.curve_window, warm_up=False)
    )
    bare = bench.run(Run(f"bare httpx x{n}", bare_httpx_poller(url), request_ids, sizes.curve_window))
    restart = bench.run(
        Run(
            f"restart x{n}",
            restarted_trigger,
            request_ids,
            3 * sizes.poll_interval,
            staggered=False,
            warm_up=False,
        )
    )
    # Memory does not depend on the answer's latency; without it the blocking trigger's first
    # round takes seconds instead of a minute.
    set_status_latency(url, 0.0)
    heap = bench.heap_per_trigger("UpstageOCRTrigger", restarted_trigger)
    naive_heap = bench.heap_per_trigger("blocking requests.get", naive_wait)
    curve = [windows[c] for c in sizes.counts]
    return Measured(curve, naive, bare, restart, fixed, heap, naive_heap, sizes)


def setup_text(sizes: Sizes) -> str:
    n = sizes.largest
    others = ", ".join(str(c) for c in sizes.counts[:-1])
    return (
        f"{n} one-page PDFs submitted to the seeded emulator (synthetic engine, in a process of its "
        f"own, {n + 8} workers, {LATENCY_PER_PAGE:.0f} s a page), so every request stays 'started' "
        f"with its batch under way for the whole benchmark; the emulator answers each status call "
        f"after {1000 * sizes.latency:.0f} ms (injected latency, a round trip to a remote API). In a "
        f"fresh asyncio loop per run, N UpstageOCRTriggers (poll_interval {sizes.poll_interval:g} s, "
        f"the default adaptive schedule, max_poll_interval 300 s, no deadline) each run in a task of "
        f"their own, their waits begun over the last {WAIT_HOURS:g} h (golden-ratio spread) and each "
        f"started at a random point between two of its status calls, as in a triggerer that has run "
        f"for hours: a steady state from the first second, measured for {sizes.window:g} s at N={n} "
        f"and {sizes.curve_window:g} s at N={others}. The fixed interval (adaptive_polling=False, the "
        f"trigger as it was), N={n}, first polls spread over one interval, measured for "
        f"{sizes.curve_window:g} s once each has polled once: the baseline for CPU and calls. Lag: a "
        f"probe task in the same loop sleeps {1000 * PROBE_INTERVAL:.0f} ms over and over; lag = how "
        f"late it wakes; p50 and p99 per poll interval, median over the intervals. CPU: "
        f"time.process_time() of this process (all threads; the emulator excluded) per poll interval, "
        f"median over the intervals. Memory: tracemalloc's traced bytes once all {n} triggers have "
        f"polled once and sleep, minus before the first started (so the shared HTTP client and its "
        f"connections count too), divided by {n}, in a loop of its own; RSS growth over the N={n} run "
        f"as a second view. Status calls: the emulator's counters; new connections: socket.connect "
        f"calls in this process. Baseline: the naive trigger, the same polling loop with a blocking "
        f"requests.get (a new connection per poll) in place of the async hook, N={n}, same stagger, "
        f"measured from its first poll on; and, for CPU, the same polls made with a bare "
        f"httpx.AsyncClient (the hook's pool limits, the trigger's limit on calls in flight), N={n}, "
        f"{sizes.curve_window:g} s, as a note. Restart: all {n} adaptive triggers start in the same "
        f"loop iteration and poll at once, as after a triggerer restart; lag pooled over the first "
        f"{3 * sizes.poll_interval:g} s."
    )


def main() -> int:
    from upstage_provider.hooks.upstage import MAX_STATUS_CALLS_PER_LOOP

    args = common.arguments(__doc__)
    sizes = QUICK if args.quick else FULL
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    n = sizes.largest
    with common.emulator_process(words_per_page=50, workers=n + 8, latency_per_page=LATENCY_PER_PAGE) as url:
        common.log(f"submitting {n} one-page documents to the emulator at {url}")
        request_ids = submit_all(n)
        set_ages(request_ids)
        states = wait_until_started(url, n)
        common.log(f"emulator requests: {states} after {time.monotonic() - began:.1f} s")
        m = measure_all(sizes, url, request_ids)
        final_states = common.emulator_stats(url)["requests"]
    if final_states != {"started": n}:
        raise RuntimeError(f"requests did not all stay in progress: {final_states}")
    elapsed = time.monotonic() - began
    load_after = os.getloadavg()[0]
    ours, naive = m.ours, m.naive
    fixed = m.fixed
    seconds_per_poll = n / fixed.calls_per_second - sizes.poll_interval if fixed.status_calls else 0.0

    result = common.Result(
        name=NAME,
        title="Triggerer load: waiting UpstageOCRTriggers in one event loop",
        setup=setup_text(sizes),
        quick=args.quick,
    )
    result.rows = rows(m)
    result.notes = [
        f"Ratios are baseline / ours (higher is better). Baselines: the blocking trigger at N={n} for "
        f"lag, memory and connections; the fixed interval (adaptive_polling=False) for CPU and status "
        f"calls; the idle loop (the probe alone) for the restart.",
        f"A status call took about {1000 * seconds_per_poll:.0f} ms from the triggers' side (poll period "
        f"minus poll interval), {1000 * sizes.latency:.0f} ms of it injected. The blocking trigger stops "
        f"the loop for each of its calls: {n} of them need longer than one poll interval, so the loop "
        f"falls behind, and every poll that came due meanwhile runs in the next loop iteration, stopping "
        f"it again for seconds on end. It never settles, so it is measured from its first poll on; it "
        f"managed {naive.calls_per_second:.0f} of the {n / sizes.poll_interval:.0f} calls/s asked for.",
        f"The hook lets at most {MAX_STATUS_CALLS_PER_LOOP} status calls per event loop be in flight; "
        "the rest wait their turn on a semaphore (hooks/upstage.py, MAX_STATUS_CALLS_PER_LOOP, "
        "taken per HTTP call). The restart row is what that is for.",
        f"Per interval at N={n}: lag p99 {_spread(ours.chunks, 'lag_p99_ms')} ms, CPU "
        f"{_spread(ours.chunks, 'cpu_percent')} %.",
        f"The whole benchmark took {elapsed:.0f} s. The machine's 1-minute load average was "
        f"{load_before:.1f} before and {load_after:.1f} after ({os.cpu_count()} CPUs): lag is wall-clock "
        f"and grows when other processes take the CPU.",
    ]
    result.extra = {
        "sizes": asdict(sizes),
        "probe_interval_s": PROBE_INTERVAL,
        "windows": [w.summary() for w in (*m.curve, m.fixed, naive, m.bare, m.restart)],
        "heap_per_trigger_bytes": {
            "UpstageOCRTrigger": round(m.heap),
            "blocking requests.get": round(m.naive_heap),
        },
        "emulator_requests": final_states,
        "seconds": round(elapsed, 1),
        "load_average_1min": {"before": load_before, "after": load_after},
        "cpus": os.cpu_count(),
    }
    plot(m, args.plots / f"{NAME}.png")
    result.plots.append(f"performance/{NAME}.png")
    result.save(args.out)
    return 0


def _ms_per_call(window: Window) -> float:
    return 1000 * window.cpu_seconds / max(1, window.status_calls)


def _spread(chunks: list[dict[str, float]], key: str) -> str:
    values = [c[key] for c in chunks]
    return f"{min(values):.1f}-{max(values):.1f}" if values else "-"


if __name__ == "__main__":
    raise SystemExit(main())
