"""Worker-slot seconds of one slow async document: the deferrable sensor against a poking one.

A deferrable sensor holds a worker slot only in ``execute`` (one status call, then it defers)
and ``execute_complete`` (download and Parquet); the wait in between runs in the triggerer's
event loop. A sensor in ``mode="poke"`` holds its slot for the whole wait. Both count the
submission (validate and upload, as the submit operator does) as slot time too.

The emulator takes about 5 minutes for each document (100 pages in 10 batches of 10 pages, 30 s
a page, enough workers to read every batch at once). Both sensors wait at the same time, each
for its own submission of the same document, so the whole benchmark takes about as long as one
document. ``--quick`` uses 3 pages at 0.3 s a page and repeats three times.

    python benchmarks/bench_worker_slots.py [--quick] [--out DIR] [--plots DIR]
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

NAME = "worker_slots"
GOAL_SHARE = 0.05


@dataclass(frozen=True)
class Sizes:
    pages: int
    latency_per_page: float
    workers: int
    poll_interval: float
    repeat: int


FULL = Sizes(pages=100, latency_per_page=30.0, workers=20, poll_interval=5.0, repeat=1)
QUICK = Sizes(pages=3, latency_per_page=0.3, workers=4, poll_interval=0.1, repeat=3)


@dataclass
class Timeline:
    """Where one document's worker slot was held, in seconds from the start of its submission."""

    mode: str
    held: list[tuple[float, float]]  # (start, length) of each stretch in a worker slot
    wall: float
    pages: int

    @property
    def slot(self) -> float:
        return sum(length for _, length in self.held)

    @property
    def share(self) -> float:
        return self.slot / self.wall


def seconds_per_document(sizes: Sizes, batch_size: int = 10) -> float:
    """How long the emulator takes for one document while the other one shares its workers."""
    batches = -(-sizes.pages // batch_size)
    rounds = -(-batches // max(1, sizes.workers // 2))
    return rounds * min(batch_size, sizes.pages) * sizes.latency_per_page


def sensor(request_id: str, out: str, deferrable: bool, poll_interval: float) -> Any:
    from upstage_provider.sensors.ocr import UpstageOCRSensor

    return UpstageOCRSensor(
        task_id="deferred" if deferrable else "poking",
        request_id=request_id,
        output_uri=out,
        conn_id=common.CONN_ID,
        deferrable=deferrable,
        poll_interval=poll_interval,
        mode="poke",
    )


def deferred_run(pdf: bytes, sizes: Sizes) -> Timeline:
    """Submit, ``execute`` until it defers, run the trigger to its event, ``execute_complete``."""
    from upstage_provider.compat import TaskDeferred

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        request_id = common.submit(pdf, "bench.pdf")
        submitted = time.perf_counter()
        task = sensor(request_id, out, deferrable=True, poll_interval=sizes.poll_interval)
        try:
            task.execute({})
        except TaskDeferred as deferred:
            trigger = deferred.trigger
        else:
            raise RuntimeError("the request finished before the sensor deferred; raise the latency")
        deferred_at = time.perf_counter()
        event = asyncio.run(first_event(trigger))
        resumed = time.perf_counter()
        result = task.execute_complete({}, event)
        end = time.perf_counter()
    held = [
        (0.0, submitted - start),
        (submitted - start, deferred_at - submitted),
        (resumed - start, end - resumed),
    ]
    return Timeline("deferrable=True", held, end - start, result["pages"])


async def first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise RuntimeError("the trigger ended without an event")


def poking_run(pdf: bytes, sizes: Sizes) -> Timeline:
    """Submit, then ``execute`` a sensor in poke mode: the slot is held from start to end."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        request_id = common.submit(pdf, "bench.pdf")
        task = sensor(request_id, out, deferrable=False, poll_interval=sizes.poll_interval)
        result = task.execute({})
        end = time.perf_counter()
    return Timeline("poking sensor", [(0.0, end - start)], end - start, result["pages"])


def side_by_side(runs: list[Callable[[], Timeline]]) -> list[Timeline]:
    """Run each in a thread of its own, all at once, so they wait on the emulator together."""
    results: list[Timeline | BaseException | None] = [None] * len(runs)

    def keep(index: int, run: Callable[[], Timeline]) -> None:
        try:
            results[index] = run()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=keep, args=(i, run)) for i, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timelines = []
    for outcome in results:
        if not isinstance(outcome, Timeline):
            raise RuntimeError(f"a run failed: {outcome!r}")
        timelines.append(outcome)
    return timelines


def plot(deferred: Timeline, poking: Timeline, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.6))
    for y, timeline in enumerate((poking, deferred)):
        ax.broken_barh([(0.0, timeline.wall)], (y - 0.3, 0.6), facecolors="#dddddd")
        ax.broken_barh(timeline.held, (y - 0.3, 0.6), facecolors="#c0392b")
        ax.text(
            timeline.wall,
            y,
            f"  {100 * timeline.share:.1f} % of {timeline.wall:.0f} s",
            va="center",
            fontsize=9,
        )
    ax.set_yticks([0, 1], [poking.mode, deferred.mode])
    ax.set_xlim(0, max(deferred.wall, poking.wall) * 1.25)
    ax.set_xlabel("seconds from submission")
    ax.set_title(f"Worker slot held (red) while one {deferred.pages}-page document is read (grey)")
    common.save_figure(fig, path)


def main() -> int:
    args = common.arguments(__doc__)
    sizes = QUICK if args.quick else FULL
    from upstage_provider.emulator.synthetic import blank_pdf

    pdf = blank_pdf(sizes.pages)
    document_seconds = seconds_per_document(sizes)
    common.log(
        f"{sizes.pages} pages at {sizes.latency_per_page} s/page, {sizes.workers} emulator workers: "
        f"about {document_seconds:.0f} s per document, {sizes.repeat} repetition(s)"
    )
    pairs: list[tuple[Timeline, Timeline]] = []
    with common.emulator(workers=sizes.workers, latency_per_page=sizes.latency_per_page) as server:
        for repetition in range(sizes.repeat):
            deferred, poking = side_by_side(
                [lambda: deferred_run(pdf, sizes), lambda: poking_run(pdf, sizes)]
            )
            common.log(
                f"repetition {repetition + 1}/{sizes.repeat}: "
                f"deferrable {deferred.slot:.2f}/{deferred.wall:.1f} s, "
                f"poking {poking.slot:.1f}/{poking.wall:.1f} s"
            )
            pairs.append((deferred, poking))
        stats = server.stats()

    deferred_share = 100 * statistics.median(d.share for d, _ in pairs)
    poking_share = 100 * statistics.median(p.share for _, p in pairs)
    deferred_slot = statistics.median(d.slot for d, _ in pairs)
    poking_slot = statistics.median(p.slot for _, p in pairs)
    wall = statistics.median(d.wall for d, _ in pairs)
    example = pairs[len(pairs) // 2]

    result = common.Result(
        name=NAME,
        title="Worker-slot seconds of one slow async document",
        setup=(
            f"One {sizes.pages}-page PDF that the seeded emulator (synthetic engine) reads in about "
            f"{document_seconds:.0f} s ({sizes.latency_per_page} s a page, batches of 10 pages, "
            f"{sizes.workers} workers). UpstageOCRSensor with deferrable=True (submit + execute until "
            f"TaskDeferred, the trigger run in an event loop, then execute_complete) and, at the same time "
            f"on its own submission, the same sensor with deferrable=False in mode='poke'; both poll every "
            f"{sizes.poll_interval} s and land the result as Parquet. Slot seconds = time in submit, execute "
            f"and execute_complete; wall = submission to Parquet. Median of {sizes.repeat} run(s)."
        ),
        quick=args.quick,
    )
    result.rows = [
        common.Row(
            metric="worker-slot seconds, share of wall time",
            baseline=round(poking_share, 2),
            ours=round(deferred_share, 3),
            unit="%",
            goal=f"at most {100 * GOAL_SHARE:.0f} % with deferrable=True (about 100 % for a poking sensor)",
            met=deferred_share <= 100 * GOAL_SHARE,
            ratio=round(poking_share / deferred_share, 1),
            note="baseline: the poking sensor; ratio: how many times longer it holds a slot",
        ),
        common.Row(
            metric="worker-slot seconds per document",
            baseline=round(poking_slot, 2),
            ours=round(deferred_slot, 3),
            unit="s",
            goal="-",
            met=None,
            ratio=round(poking_slot / deferred_slot, 1),
            note=f"wall time of the document about {wall:.0f} s",
        ),
    ]
    result.extra = {
        "sizes": sizes.__dict__,
        "runs": [
            {
                "deferrable": {"held": d.held, "wall": d.wall, "slot": d.slot},
                "poking": {"held": p.held, "wall": p.wall, "slot": p.slot},
            }
            for d, p in pairs
        ],
        "emulator_calls": {name: entry["total"] for name, entry in stats["endpoints"].items()},
    }
    plot(*example, args.plots / f"{NAME}.png")
    result.plots.append(f"performance/{NAME}.png")
    result.save(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
