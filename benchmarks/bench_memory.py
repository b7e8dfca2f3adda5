"""Peak memory while landing a finished request as Parquet, against document size.

Ours is what the sensor and the operators run after the wait (``land_request``): batches
downloaded a bounded window at a time, parsed to Arrow, written one row group each. The naive
approach is the hand-written one: every batch's JSON in memory, a list of per-word dicts,
one ``pandas.DataFrame``, ``to_parquet``. Each run is a fresh process (the peak RSS of a
process never goes down); the emulator runs in a process of its own.

    python benchmarks/bench_memory.py [--quick] [--out DIR] [--plots DIR]
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import common

NAME = "memory"
GOAL_GROWTH = 1.1
GOAL_VS_NAIVE = 0.25


@dataclass(frozen=True)
class Sizes:
    pages: tuple[int, ...]
    repeat: int


FULL = Sizes(pages=(100, 250, 500, 1000), repeat=3)
QUICK = Sizes(pages=(10, 30), repeat=1)


def child(mode: str, request_id: str, out: str) -> None:
    """
    Runs in the measured process: land one request, then print the RSS after imports and the peak.

    Both run as an Airflow task would, with the task SDK imported; each imports what it needs.
    """
    import airflow.sdk  # noqa: F401

    if mode == "ours":
        from upstage_provider.hooks.upstage import UpstageOCRHook
        from upstage_provider.parquet import DocumentMeta
        from upstage_provider.runtime import land_request

        imported = _peak_rss()
        hook = UpstageOCRHook(common.CONN_ID)
        meta = DocumentMeta(
            document_uri="file:///bench/doc.pdf", document_sha256="0" * 64, request_id=request_id
        )
        land_request(hook, request_id, None, output_uri=out, meta=meta, context={})
        hook.close()
    else:
        import pandas  # noqa: F401
        import requests  # noqa: F401

        imported = _peak_rss()
        naive(request_id, out)
    print(imported, _peak_rss())


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def naive(request_id: str, out: str) -> None:
    import pandas as pd

    url = json.loads(os.environ[f"AIRFLOW_CONN_{common.CONN_ID.upper()}"])["host"]
    status, results = common.example_loop(url, request_id)
    rows = []
    for batch, result in zip(status["batches"], results, strict=True):
        rows.extend(common.word_rows(result, first_page=batch["start_page"]))
    pd.DataFrame(rows).to_parquet(Path(out) / "words.parquet")


def peak(mode: str, request_id: str) -> tuple[int, int]:
    """(RSS after imports, peak RSS) of a fresh process landing ``request_id``, in bytes."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, __file__, "--child", mode, request_id, out],
            check=True,
            capture_output=True,
            text=True,
        )
    imported, top = done.stdout.strip().splitlines()[-1].split()
    return int(imported), int(top)


def plot(curves: dict[str, dict[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, style in (("naive", "o--"), ("ours", "o-")):
        points = sorted(curves[label].items())
        ax.plot([p for p, _ in points], [mb for _, mb in points], style, label=label)
    ax.set_xlabel("pages in the document")
    ax.set_ylabel("peak RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title("Peak memory landing a finished request as Parquet")
    ax.legend(
        [
            "naive: all JSON, per-word dicts, pandas, to_parquet",
            "ours: land_request (bounded window, row group per batch)",
        ]
    )
    ax.grid(alpha=0.3)
    common.save_figure(fig, path)


def main() -> int:
    args = common.arguments(__doc__)
    sizes = QUICK if args.quick else FULL
    curves: dict[str, dict[int, float]] = {"ours": {}, "naive": {}}
    imported: dict[str, dict[int, float]] = {"ours": {}, "naive": {}}
    with common.emulator_process(workers=2):
        requests_by_size = {pages: common.submit_and_wait(pages) for pages in sizes.pages}
        for pages, request_id in requests_by_size.items():
            for mode in ("ours", "naive"):
                runs = [peak(mode, request_id) for _ in range(sizes.repeat)]
                curves[mode][pages] = statistics.median(top for _, top in runs) / 1e6
                imported[mode][pages] = statistics.median(base for base, _ in runs) / 1e6
                common.log(f"{pages} pages, {mode}: peak RSS {curves[mode][pages]:.0f} MB")

    small, large = min(sizes.pages), max(sizes.pages)
    growth = curves["ours"][large] / curves["ours"][small]
    vs_naive = curves["ours"][large] / curves["naive"][large]
    added = {mode: curves[mode][large] - imported[mode][large] for mode in curves}
    result = common.Result(
        name=NAME,
        title="Peak memory landing a request",
        setup=(
            f"Finished requests of {', '.join(map(str, sizes.pages))} pages (300 words a page, 10 pages a "
            "batch) on the seeded emulator in its own process. Each figure is the peak RSS of a fresh "
            "process (ru_maxrss) that imports what an Airflow task running it would (the task SDK, "
            f"then the provider: {statistics.median(imported['ours'].values()):.0f} MB; or pandas and "
            f"requests: {statistics.median(imported['naive'].values()):.0f} MB) and lands one request. "
            "Ours runs "
            "landing.land_request (the hook's bounded download window feeding write_ocr_parquet one row "
            "group per batch); naive downloads every batch with requests, json() each, builds per-word "
            f"dicts, one pandas DataFrame and to_parquet. Median of {sizes.repeat} process(es) per point."
        ),
        quick=args.quick,
    )
    result.rows = [
        common.Row(
            metric=f"peak RSS, {large} pages against {small} pages (ours)",
            baseline=round(curves["ours"][small], 1),
            ours=round(curves["ours"][large], 1),
            unit="MB",
            goal=f"at most {GOAL_GROWTH}x",
            met=growth <= GOAL_GROWTH,
            ratio=round(growth, 3),
            note=f"baseline: ours at {small} pages; ratio: {large} / {small} pages",
        ),
        common.Row(
            metric=f"peak RSS at {large} pages, against the naive approach",
            baseline=round(curves["naive"][large], 1),
            ours=round(curves["ours"][large], 1),
            unit="MB",
            goal=f"at most {GOAL_VS_NAIVE}x of naive",
            met=vs_naive <= GOAL_VS_NAIVE,
            ratio=round(vs_naive, 3),
            note="ratio: ours / naive",
        ),
        common.Row(
            metric=f"memory the landing itself adds at {large} pages (peak above the RSS after imports)",
            baseline=round(added["naive"], 1),
            ours=round(added["ours"], 1),
            unit="MB",
            goal="-",
            met=None,
            ratio=round(added["ours"] / added["naive"], 3),
            note="ratio: ours / naive",
        ),
    ]
    result.extra = {
        "curves_mb": {mode: dict(sorted(c.items())) for mode, c in curves.items()},
        "after_imports_mb": {mode: dict(sorted(values.items())) for mode, values in imported.items()},
    }
    plot(curves, args.plots / f"{NAME}.png")
    result.plots.append(f"performance/{NAME}.png")
    result.save(args.out)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
    else:
        raise SystemExit(main())
