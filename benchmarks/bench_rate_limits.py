"""Rate limits: callers and a day's documents against the emulator's Upstage-like limits.

Two runs, each against an in-process emulator (synthetic engine) with its default limits,
Upstage's documented ``ocr`` limit of 3 requests per second per key (RPM and PPM off):

1. The burst: 24 threads call ``UpstageOCRHook.ocr`` on a one-page document at once, each with
   its own hook at the default ``rate_limit_budget``. The limit allows 3 a second, so the burst
   takes at least (24 - 3) / 3 = 7 s; the issue's yardstick is 24 / 3 = 8 s, the goal at most
   1.5x that. Every caller must succeed and the emulator must have OCR'd 24 documents, once each.
2. The day's inbox: 200 one-page documents through the example DAG's task logic, driven by
   ``bench_end_to_end``'s harness (worker-slot threads, one triggerer event loop). No task may
   fail, and the wall time must be within 1.3x of the rate-bound limit, computed from the limits:
   max(N / RPS, N * 60 / RPM, pages * 60 / PPM) over the limits that are on.

``--quick`` runs 6 callers and 6 documents.

    python benchmarks/bench_rate_limits.py [--quick] [--out DIR] [--plots DIR]
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import common
from bench_end_to_end import DS, Pipeline, Sizes, check_landing, write_documents

NAME = "rate_limits"
BURST_GOAL = 1.5
INBOX_GOAL = 1.3

INBOX_FULL = Sizes(
    documents=200,
    max_pages=1,
    latency_per_page=0.05,
    emulator_workers=4,
    slots=8,
    poll_interval=2.0,
    words_per_page=300,
    run_timeout=900.0,
)
INBOX_QUICK = Sizes(
    documents=6,
    max_pages=1,
    latency_per_page=0.01,
    emulator_workers=2,
    slots=4,
    poll_interval=0.2,
    words_per_page=100,
    run_timeout=120.0,
)


def rate_bound(documents: int, pages: int, limits: dict[str, int]) -> float:
    """The shortest time the limits allow for ``documents`` model calls of ``pages`` pages in all."""
    bounds = [0.0]
    if limits["rps"]:
        bounds.append(documents / limits["rps"])
    if limits["rpm"]:
        bounds.append(documents * 60 / limits["rpm"])
    if limits["ppm"]:
        bounds.append(pages * 60 / limits["ppm"])
    return max(bounds)


def burst(callers: int) -> dict[str, Any]:
    """``callers`` threads OCR a one-page document at once; wall time and what the emulator saw."""
    from upstage_provider.documents import load_document
    from upstage_provider.emulator.synthetic import blank_pdf
    from upstage_provider.hooks.upstage import UpstageOCRHook

    document = load_document(blank_pdf(1), name="one-page.pdf")
    start = threading.Barrier(callers + 1)
    finished: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def caller() -> None:
        hook = UpstageOCRHook(common.CONN_ID)
        try:
            start.wait()
            pages = len(hook.ocr(document).pages)
            with lock:
                finished.append(time.perf_counter())
                if pages != 1:
                    errors.append(f"{pages} pages")
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            hook.close()

    with common.emulator(words_per_page=100, rate_limits=True) as server:
        threads = [threading.Thread(target=caller) for _ in range(callers)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join(900)
        stats = server.stats()
    sync = stats["endpoints"].get("sync", {}).get("by_status", {})
    return {
        "wall": max(finished) - began if finished else float("nan"),
        "done": sorted(t - began for t in finished),
        "errors": errors,
        "ok": int(sync.get("200", 0)),
        "answered_429": int(sync.get("429", 0)),
        "pages_processed": stats["pages_processed"],
        "limits": stats["rate_limits"],
    }


def inbox(sizes: Sizes) -> dict[str, Any]:
    """The example DAG's tasks over ``sizes.documents`` one-page documents at the default limits."""
    with tempfile.TemporaryDirectory(prefix="upstage-rate-") as tmp:
        folder = Path(tmp) / "inbox"
        folder.mkdir()
        pages = [1] * sizes.documents
        paths = write_documents(folder, pages)
        output = Path(tmp) / "lake"
        with common.emulator(
            words_per_page=sizes.words_per_page,
            workers=sizes.emulator_workers,
            rate_limits=True,
            latency_per_page=sizes.latency_per_page,
        ) as server:
            pipeline = Pipeline(paths, str(output), sizes, partition=f"ds={DS}")
            error = ""
            try:
                wall = pipeline.run()
            except RuntimeError as exc:  # a failed task: reported as a row, not a crash
                wall, error = float("nan"), str(exc)
            stats = server.stats()
        landing = check_landing(output, paths, pages, sizes, partition=f"ds={DS}") if not error else None
    submits = [t.submitted for t in pipeline.tracks]
    return {
        "wall": wall,
        "error": error,
        "task_errors": pipeline.errors[:10],
        "landing_problems": landing.problems[:10] if landing else ["not checked: the run failed"],
        "landed_documents": landing.documents if landing else 0,
        "submissions": stats["submissions"],
        "answered_429": int(stats["endpoints"].get("submit", {}).get("by_status", {}).get("429", 0)),
        "limits": stats["rate_limits"],
        "pages": sum(pages),
        "last_submission": max(submits),
        "landed": sorted(t.landed for t in pipeline.tracks),
    }


def plot(
    burst_run: dict[str, Any], inbox_run: dict[str, Any], bounds: tuple[float, float], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, run, bound, title in (
        (axes[0], burst_run, bounds[0], f"{len(burst_run['done'])} concurrent sync OCR callers"),
        (axes[1], inbox_run, bounds[1], f"{len(inbox_run['landed'])} documents through the DAG's tasks"),
    ):
        times = run["done"] if "done" in run else run["landed"]
        ax.step([0.0, *times], range(len(times) + 1), where="post", label="ours")
        limits = run["limits"]
        ax.plot([0, bound], [0, len(times)], linestyle=":", label=f"rate-bound ({limits['rps']}/s)")
        ax.set_xlabel("seconds")
        ax.set_ylabel("done")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
    common.save_figure(fig, path)


def main() -> int:
    args = common.arguments(__doc__)
    callers = 6 if args.quick else 24
    sizes = INBOX_QUICK if args.quick else INBOX_FULL

    common.log(f"burst: {callers} callers at the default limits")
    burst_run = burst(callers)
    limits = burst_run["limits"]
    burst_bound = rate_bound(callers, callers, limits)
    burst_ratio = burst_run["wall"] / burst_bound
    burst_ok = (
        not burst_run["errors"] and burst_run["ok"] == callers and burst_run["pages_processed"] == callers
    )
    common.log(
        f"burst: {burst_run['wall']:.1f} s, {burst_run['answered_429']} 429s, "
        f"errors {burst_run['errors'][:3]}"
    )

    common.log(f"inbox: {sizes.documents} documents through the example DAG's tasks")
    inbox_run = inbox(sizes)
    inbox_bound = rate_bound(sizes.documents, inbox_run["pages"], inbox_run["limits"])
    inbox_ratio = inbox_run["wall"] / inbox_bound
    inbox_ok = (
        not inbox_run["error"]
        and not inbox_run["landing_problems"]
        and inbox_run["submissions"] == sizes.documents
    )
    common.log(f"inbox: {inbox_run['wall']:.1f} s (bound {inbox_bound:.1f} s), error {inbox_run['error']!r}")

    result = common.Result(
        name=NAME,
        title="Rate limits: back-pressure against the emulator's Upstage-like limits",
        setup=(
            f"In-process emulator (synthetic engine) at its default limits per API key: "
            f"{limits['rps']} requests/s (Upstage's documented ocr limit), RPM {limits['rpm'] or 'off'}, "
            f"PPM {limits['ppm'] or 'off'}; only sync OCR and async submissions count. Burst: {callers} "
            f"threads call UpstageOCRHook.ocr on a one-page PDF at once, each with its own hook at the "
            f"default rate_limit_budget (600 s); the yardstick is {callers} / {limits['rps']} = "
            f"{burst_bound:.0f} s. Inbox: {sizes.documents} one-page PDFs through the example DAG's task "
            f"logic with bench_end_to_end's harness ({sizes.slots} worker-slot threads for the submit "
            f"operators and sensors, one triggerer loop, poll_interval {sizes.poll_interval} s); the "
            f"rate-bound limit is max(N/RPS, N*60/RPM, pages*60/PPM) over the limits that are on."
        ),
        quick=args.quick,
    )
    result.rows = [
        common.Row(
            metric=f"{callers} concurrent callers: wall time of the burst",
            baseline=round(burst_bound, 2),
            ours=round(burst_run["wall"], 2),
            unit="s",
            goal=f"at most {BURST_GOAL}x the time the limit allows",
            met=burst_ratio <= BURST_GOAL and burst_ok,
            ratio=round(burst_ratio, 3),
            note=f"ratio: ours / baseline; {burst_run['answered_429']} 429s answered",
        ),
        common.Row(
            metric=f"{callers} concurrent callers: succeeded, each OCR'd once",
            baseline=callers,
            ours=burst_run["ok"],
            unit="calls",
            goal="all succeed, each document OCR'd once",
            met=burst_ok,
            ratio=None,
            note=f"{burst_run['pages_processed']} pages OCR'd; errors: {len(burst_run['errors'])}",
        ),
        common.Row(
            metric=f"{sizes.documents} documents through the DAG's tasks: wall time",
            baseline=round(inbox_bound, 2),
            ours=round(inbox_run["wall"], 2),
            unit="s",
            goal=f"within {INBOX_GOAL}x of the rate-bound limit",
            met=inbox_ratio <= INBOX_GOAL and inbox_ok,
            ratio=round(inbox_ratio, 3),
            note=f"ratio: ours / baseline; {inbox_run['answered_429']} 429s on submissions",
        ),
        common.Row(
            metric=f"{sizes.documents} documents: tasks failed",
            baseline=0,
            ours=len(inbox_run["task_errors"]) + (1 if inbox_run["error"] else 0),
            unit="tasks",
            goal="no task fails; every document lands once",
            met=inbox_ok,
            ratio=None,
            note=(
                f"{inbox_run['landed_documents']}/{sizes.documents} documents landed, "
                f"{inbox_run['submissions']} submissions"
            ),
        ),
    ]
    gaps = [b - a for a, b in zip(burst_run["done"], burst_run["done"][1:], strict=False)]
    result.notes = [
        f"Burst: the callers finished between {burst_run['done'][0]:.2f} s and {burst_run['wall']:.2f} s "
        f"(median gap between two successes {statistics.median(gaps) if gaps else 0.0:.2f} s; the limit "
        f"spaces them {1 / limits['rps']:.2f} s apart on average).",
        f"Inbox: the last submission passed at {inbox_run['last_submission']:.1f} s, the last Parquet "
        f"file landed at {inbox_run['wall']:.1f} s.",
    ]
    result.extra = {"burst": burst_run, "inbox": inbox_run, "sizes": sizes.__dict__}
    plot(burst_run, inbox_run, (burst_bound, inbox_bound), args.plots / f"{NAME}.png")
    result.plots.append(f"performance/{NAME}.png")
    result.save(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
