"""What every benchmark shares: the seeded emulator, repetitions, and the result file format.

Each ``bench_*.py`` runs on its own (``python benchmarks/bench_x.py [--quick] [--out DIR]``) and
writes ``DIR/<name>.json``; ``benchmarks/run.py`` runs them one process each (so one benchmark's
memory never shows in another's) and ``benchmarks/report.py`` turns the JSON files into
``docs/performance.md``. Goals are ratios measured in one run, never wall-clock thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="upstage-bench-airflow-"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
PLOTS_DIR = ROOT / "docs" / "performance"
KEY = "bench-key-0000"
CONN_ID = "upstage_bench"
SEED = 7
#: The emulator's rate limits turned off (its defaults are Upstage's: 3 requests per second).
NO_RATE_LIMITS = {"rate_limit_rps": 0, "rate_limit_rpm": 0, "rate_limit_ppm": 0}


@dataclass
class Row:
    """One line of a benchmark's table: what was measured for the baseline and for us."""

    metric: str
    baseline: float | None
    ours: float
    unit: str
    goal: str
    met: bool | None
    ratio: float | None = None  # baseline / ours unless the goal says otherwise
    note: str = ""


@dataclass
class Result:
    name: str
    title: str
    setup: str
    rows: list[Row] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)  # paths relative to docs/
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    quick: bool = False

    def save(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.name}.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        print(f"{self.title}: results in {path}")
        for row in self.rows:
            verdict = {True: "met", False: "NOT MET", None: "-"}[row.met]
            ratio = "" if row.ratio is None else f" ratio {row.ratio:.2f}"
            print(
                f"  {row.metric}: ours {row.ours:.4g} {row.unit}, baseline {row.baseline}{ratio} [{verdict}]"
            )
        return path


def arguments(description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON result goes")
    parser.add_argument("--plots", type=Path, default=PLOTS_DIR, help="where PNG plots go")
    return parser.parse_args()


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls: one slow outlier does not move it."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@contextmanager
def emulator(
    words_per_page: int = 300, workers: int = 2, *, rate_limits: bool = False, **faults: Any
) -> Iterator[Any]:
    """
    A seeded emulator with the synthetic engine on 127.0.0.1, and a connection ``upstage_bench``.

    Rate limits are off unless ``rate_limits`` (then the emulator's defaults, Upstage's), so the
    benchmarks of the client's own speed are not bound by them.
    """
    from upstage_provider.emulator.config import EmulatorConfig, FaultConfig
    from upstage_provider.emulator.server import EmulatorServer
    from upstage_provider.emulator.synthetic import SyntheticEngine

    limits = {} if rate_limits else NO_RATE_LIMITS
    config = EmulatorConfig(api_key=KEY, workers=workers, faults=FaultConfig(seed=SEED, **faults), **limits)
    engine = SyntheticEngine(words_per_page=words_per_page, seed=SEED)
    with EmulatorServer(config, engine=engine) as server:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "upstage", "host": server.url, "password": KEY}
        )
        yield server


@contextmanager
def emulator_process(words_per_page: int = 300, workers: int = 2, **options: Any) -> Iterator[str]:
    """
    The seeded synthetic emulator in a process of its own; yields its base URL.

    For benchmarks that time the client: an emulator in a thread of the same process would
    take the GIL from it while it serves. ``options`` are CLI flags (``latency_per_request=0.05``
    is ``--latency-per-request 0.05``; a tuple value gives several arguments). Rate limits are
    off unless ``options`` set them.
    """
    command = [
        sys.executable, "-m", "upstage_provider.emulator", "--engine", "synthetic", "--port", "0",
        "--api-key", KEY, "--seed", str(SEED), "--words-per-page", str(words_per_page),
        "--workers", str(workers), "--log-level", "WARNING",
    ]  # fmt: skip
    for name, value in {**NO_RATE_LIMITS, **options}.items():
        command.append("--" + name.replace("_", "-"))
        command.extend(str(v) for v in value) if isinstance(value, tuple) else command.append(str(value))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the emulator did not start ({' '.join(command)}): {line!r}")
        url = line.rsplit(" ", 1)[-1].strip()
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "upstage", "host": url, "password": KEY}
        )
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def emulator_stats(url: str) -> dict[str, Any]:
    """``GET /_emulator/stats``: calls per endpoint, pages read."""
    import requests

    response = requests.get(f"{url}/_emulator/stats", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def word_rows(result: dict[str, Any], first_page: int) -> Iterator[dict[str, Any]]:
    """The per-word dicts a user writes by hand from one parsed response (the pandas baselines)."""
    for page_number, page in enumerate(result["pages"], start=first_page):
        for word in page["words"]:
            vertices = word["boundingBox"]["vertices"]
            xs = [v["x"] for v in vertices]
            ys = [v["y"] for v in vertices]
            yield {
                "page": page_number,
                "text": word["text"],
                "confidence": word["confidence"],
                "left": min(xs),
                "top": min(ys),
                "right": max(xs),
                "bottom": max(ys),
                "polygon": vertices,
            }


def submit(pdf: bytes, name: str) -> str:
    """Submit ``pdf`` for async OCR on the benchmark connection; its request id."""
    from upstage_provider.documents import load_document
    from upstage_provider.hooks.upstage import UpstageOCRHook

    hook = UpstageOCRHook(CONN_ID)
    try:
        return hook.submit(load_document(pdf, name=name))
    finally:
        hook.close()


def submit_and_wait(pages: int) -> str:
    """Submit a blank ``pages``-page PDF and wait until the emulator has read it."""
    from upstage_provider.emulator.synthetic import blank_pdf
    from upstage_provider.hooks.upstage import UpstageOCRHook

    request_id = submit(blank_pdf(pages), f"bench-{pages}.pdf")
    hook = UpstageOCRHook(CONN_ID)
    try:
        while not (info := hook.get_request(request_id)).status.is_terminal:
            time.sleep(0.2)
    finally:
        hook.close()
    if info.failure() is not None:
        raise RuntimeError(f"the emulator failed the request: {info.failure()}")
    return request_id


def status_calls(url: str) -> int:
    """Status calls the emulator in a process of its own has answered so far."""
    return int(emulator_stats(url)["endpoints"].get("status", {}).get("total", 0))


def save_figure(fig: Any, path: Path) -> None:
    """Write a matplotlib figure as the PNG the report links to, and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def example_loop(url: str, request_id: str, timeout: float = 60) -> tuple[dict[str, Any], list[Any]]:
    """Upstage's example client: one status call, then each batch's download_url in turn, json()."""
    import requests

    status: dict[str, Any] = requests.get(
        f"{url}/v1/document-digitization/requests/{request_id}",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=timeout,
    ).json()
    results = [requests.get(batch["download_url"], timeout=timeout).json() for batch in status["batches"]]
    return status, results


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
