"""Fetching a finished 1,000-page request: the hook against the loop Upstage's examples show.

The baseline is that loop: one status call, then ``requests.get`` each batch's ``download_url``
in turn and ``.json()`` it. Ours is ``UpstageOCRHook.iter_arrow_batches`` with its default
settings: bounded concurrent downloads, each batch parsed into Arrow columns in its download
thread. Both end with every batch parsed in memory. A second row times the documented page API,
``iter_results``, with every page and every word of it consumed (each word's text and polygon
read). The emulator runs in its own process and adds 50 ms to each download, as a distant object
store would.

    python benchmarks/bench_fetch.py [--quick] [--out DIR]
"""

from __future__ import annotations

from dataclasses import dataclass

import common

NAME = "fetch"
GOAL_SPEEDUP = 10.0
GOAL_RESULTS_SPEEDUP = 8.0
WORDS_PER_PAGE = 300
DOWNLOAD_LATENCY = 0.05


@dataclass(frozen=True)
class Sizes:
    pages: int
    repeat_baseline: int
    repeat_ours: int


FULL = Sizes(pages=1000, repeat_baseline=3, repeat_ours=7)
QUICK = Sizes(pages=30, repeat_baseline=2, repeat_ours=2)


def baseline(url: str, request_id: str) -> int:
    """The plain loop: one status call, then each batch downloaded and parsed in turn."""
    _, results = common.example_loop(url, request_id)
    return sum(len(result["pages"]) for result in results)


def ours(request_id: str, arrow: bool = True) -> int:
    from upstage_provider.hooks.upstage import UpstageOCRHook

    hook = UpstageOCRHook(common.CONN_ID)
    try:
        if arrow:
            return sum(batch.page_count for batch in hook.iter_arrow_batches(request_id))
        return sum(len(result.pages) for result in hook.iter_batches(request_id))
    finally:
        hook.close()


def pages_and_words(request_id: str) -> tuple[int, int]:
    """``iter_results`` as a user reads it: every page, and every word's text and polygon."""
    from upstage_provider.hooks.upstage import UpstageOCRHook

    hook = UpstageOCRHook(common.CONN_ID)
    pages = words = 0
    try:
        for page in hook.iter_results(request_id):
            pages += 1
            for word in page.words:
                if word.text and word.polygon[3][1] >= 0.0:
                    words += 1
    finally:
        hook.close()
    return pages, words


def main() -> int:
    args = common.arguments(__doc__)
    sizes = QUICK if args.quick else FULL
    from upstage_provider.hooks.upstage import DEFAULT_DOWNLOAD_CONCURRENCY

    with common.emulator_process(
        words_per_page=WORDS_PER_PAGE,
        workers=2,
        latency_per_request=DOWNLOAD_LATENCY,
        fault_endpoints=("download",),
    ) as url:
        request_id = common.submit_and_wait(sizes.pages)
        batches = -(-sizes.pages // 10)
        common.log(f"{sizes.pages} pages ({batches} batches) ready; timing the baseline loop")
        checks = {"baseline": baseline(url, request_id), "ours": ours(request_id)}
        if set(checks.values()) != {sizes.pages}:
            raise RuntimeError(f"pages fetched differ from the {sizes.pages} submitted: {checks}")
        read = pages_and_words(request_id)
        if read != (sizes.pages, sizes.pages * WORDS_PER_PAGE):
            raise RuntimeError(f"iter_results gave {read} pages and words, not {sizes.pages} pages")
        baseline_s = common.median_time(lambda: baseline(url, request_id), sizes.repeat_baseline)
        common.log(f"baseline {baseline_s:.2f} s; timing the hook")
        before = common.status_calls(url)
        ours_s = common.median_time(lambda: ours(request_id), sizes.repeat_ours)
        per_run = (common.status_calls(url) - before) / sizes.repeat_ours
        objects_s = common.median_time(lambda: ours(request_id, arrow=False), sizes.repeat_ours)
        results_s = common.median_time(lambda: pages_and_words(request_id), sizes.repeat_ours)
        common.log(
            f"ours {ours_s:.2f} s (Python objects: {objects_s:.2f} s, every word read: {results_s:.2f} s)"
        )

    floor = batches * DOWNLOAD_LATENCY / DEFAULT_DOWNLOAD_CONCURRENCY
    result = common.Result(
        name=NAME,
        title="Fetching a finished request",
        setup=(
            f"A {sizes.pages}-page request ({batches} batches of 10 pages, {WORDS_PER_PAGE} words a page, "
            f"about {sizes.pages * 54 // 1000} MB of JSON) already finished on the seeded emulator, "
            f"which runs in its own process and adds {DOWNLOAD_LATENCY * 1000:.0f} ms to every download. "
            "Baseline: one status call, then requests.get(download_url).json() for each batch in turn "
            "(Upstage's example loop). Ours: UpstageOCRHook.iter_arrow_batches with its defaults "
            f"({DEFAULT_DOWNLOAD_CONCURRENCY} downloads in flight, each batch parsed to Arrow columns "
            "in a pool of one thread per core as it arrives). Both end with every batch parsed in "
            "memory. The page API row: UpstageOCRHook.iter_results, reading every page and each "
            "word's text and polygon, against the same baseline (whose words are not even read). "
            f"Median of {sizes.repeat_baseline} baseline and {sizes.repeat_ours} runs of ours."
        ),
        quick=args.quick,
    )
    result.rows = [
        common.Row(
            metric="all batches downloaded and parsed",
            baseline=round(baseline_s, 3),
            ours=round(ours_s, 3),
            unit="s",
            goal=f"at least {GOAL_SPEEDUP:.0f}x faster",
            met=baseline_s / ours_s >= GOAL_SPEEDUP,
            ratio=round(baseline_s / ours_s, 1),
        ),
        common.Row(
            metric="status calls per fetch",
            baseline=1,
            ours=per_run,
            unit="calls",
            goal="one per fetch (plus one per expired-URL refresh; none expired here)",
            met=per_run == 1,
        ),
        common.Row(
            metric="same, parsed to Python objects (iter_batches)",
            baseline=round(baseline_s, 3),
            ours=round(objects_s, 3),
            unit="s",
            goal="-",
            met=None,
            ratio=round(baseline_s / objects_s, 1),
            note="whole OCRResult batches: Arrow columns, dataclasses built as handed out",
        ),
        common.Row(
            metric="pages and words as Python objects (iter_results)",
            baseline=round(baseline_s, 3),
            ours=round(results_s, 3),
            unit="s",
            goal=f"at least {GOAL_RESULTS_SPEEDUP:.0f}x faster",
            met=baseline_s / results_s >= GOAL_RESULTS_SPEEDUP,
            ratio=round(baseline_s / results_s, 1),
            note="every page and every word's text and polygon read; each page is complete when yielded",
        ),
    ]
    result.notes = [
        f"The downloads alone cannot take less than {floor:.2f} s here "
        f"({batches} x {DOWNLOAD_LATENCY * 1000:.0f} ms / {DEFAULT_DOWNLOAD_CONCURRENCY} in flight).",
    ]
    result.extra = {"sizes": sizes.__dict__, "download_floor_s": floor}
    result.save(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
