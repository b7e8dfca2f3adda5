"""Worker-slot seconds of one async document with the deferrable sensor, against its wall time.

A slot is held only in ``execute`` (until it defers) and ``execute_complete`` (download and
Parquet); the wait in between runs in the triggerer's event loop. The emulator is slowed down
(``--latency-per-page``) so the document takes a while, as a real one does.

    python benchmarks/worker_slots.py --pages 40 --latency-per-page 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="upstage-bench-airflow-"))

from upstage_provider.compat import TaskDeferred
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import EmulatorConfig, FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.emulator.synthetic import SyntheticEngine, blank_pdf
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.sensors.ocr import UpstageOCRSensor

KEY = "bench-key-0000"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--latency-per-page", type=float, default=0.5)
    parser.add_argument("--words-per-page", type=int, default=300)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    args = parser.parse_args()

    config = EmulatorConfig(api_key=KEY, faults=FaultConfig(latency_per_page=args.latency_per_page))
    engine = SyntheticEngine(words_per_page=args.words_per_page)
    with EmulatorServer(config, engine=engine) as server, tempfile.TemporaryDirectory() as out:
        os.environ["AIRFLOW_CONN_UPSTAGE_BENCH"] = json.dumps(
            {"conn_type": "upstage", "host": server.url, "password": KEY}
        )
        hook = UpstageOCRHook("upstage_bench")
        wall_start = time.perf_counter()
        request_id = hook.submit(load_document(blank_pdf(args.pages), name="bench.pdf"))
        submit_s = time.perf_counter() - wall_start

        sensor = UpstageOCRSensor(
            task_id="wait",
            request_id=request_id,
            output_uri=out,
            conn_id="upstage_bench",
            deferrable=True,
            poll_interval=args.poll_interval,
        )
        t0 = time.perf_counter()
        try:
            sensor.execute({})
        except TaskDeferred as deferred:
            trigger = deferred.trigger
        else:
            print(
                "the request finished before the sensor deferred; raise --latency-per-page", file=sys.stderr
            )
            return 1
        execute_s = time.perf_counter() - t0

        async def wait() -> dict[str, Any]:
            async for event in trigger.run():
                return event.payload
            raise RuntimeError("the trigger ended without an event")

        event = asyncio.run(wait())
        t1 = time.perf_counter()
        result = sensor.execute_complete({}, event)
        complete_s = time.perf_counter() - t1
        wall_s = time.perf_counter() - wall_start

    slot_s = submit_s + execute_s + complete_s
    print(
        f"document: {args.pages} pages, {result['words']:,} words, "
        f"{args.latency_per_page} s/page at the emulator"
    )
    print(f"submit (validate + upload, as the operator): {submit_s:6.2f} s")
    print(f"sensor execute, until it deferred:          {execute_s:7.2f} s")
    print(f"sensor execute_complete (download+Parquet): {complete_s:7.2f} s")
    print(f"worker-slot seconds in all:                 {slot_s:7.2f} s")
    print(f"wall time, submit to Parquet:               {wall_s:7.2f} s")
    print(f"slot share of wall time:                    {100 * slot_s / wall_s:6.1f} %")
    print(f"Parquet: {Path(result['words_uri']).name} ({result['pages']} pages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
