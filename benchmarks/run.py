"""Run the benchmarks, each in a fresh process, then write ``docs/performance.md``.

A fresh process each keeps one benchmark's memory, threads and imports out of the next one's
figures. A benchmark that fails is reported and the others still run; the exit status says so.

    python benchmarks/run.py                      # everything, as `make bench` does
    python benchmarks/run.py fetch parquet        # some of them (the report keeps earlier results)
    python benchmarks/run.py --quick --out DIR --plots DIR --doc DIR/performance.md   # smoke run
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402  (next to this file, like common)
from common import PLOTS_DIR, RESULTS_DIR  # noqa: E402

#: In the order of the performance issue's goals; report.py keeps it.
BENCHMARKS: tuple[str, ...] = report.ORDER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery, not speed")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON results go")
    parser.add_argument("--plots", type=Path, default=PLOTS_DIR, help="where the PNG plots go")
    parser.add_argument("--doc", type=Path, default=report.DOC, help="the Markdown report to write")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    failed = []
    for name in args.names or BENCHMARKS:
        command = [
            sys.executable,
            str(HERE / f"bench_{name}.py"),
            "--out",
            str(args.out),
            "--plots",
            str(args.plots),
        ]
        if args.quick:
            command.append("--quick")
        print(f"== {name}", flush=True)
        started = time.monotonic()
        done = subprocess.run(command, check=False)
        print(
            f"== {name}: {'ok' if done.returncode == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s"
        )
        if done.returncode != 0:
            failed.append(name)
    report.write(args.out, args.doc)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
