"""Turn the benchmarks' JSON results into ``docs/performance.md``.

python benchmarks/report.py [--results DIR] [--doc PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
RESULTS = ROOT / "benchmarks" / "results"

#: The performance issue's goals, in its order: bench_<name>.py writes <name>.json.
ORDER: tuple[str, ...] = (
    "fetch",
    "parquet",
    "memory",
    "worker_slots",
    "triggerer",
    "end_to_end",
    "emulator_ocr",
    "rate_limits",
    "polling",
)

VERDICT = {True: "**met**", False: "**not met**", None: ""}


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value == int(value) and abs(value) >= 10:
            return f"{value:,.0f}"
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import pyarrow

        arrow = f", pyarrow {pyarrow.__version__}"
    except ImportError:  # pragma: no cover - a dependency of the provider
        arrow = ""
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}{arrow}, {platform.system()}"


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def load(results: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for name in ORDER:
        path = results / f"{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def render(found: dict[str, dict[str, Any]]) -> str:
    quick = any(result.get("quick") for result in found.values())
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Performance",
        "",
        f"Written by `make bench` on {stamp}, commit `{_commit()}`, on {_machine()}.",
        "",
        "Each benchmark runs in a fresh process against its own seeded emulator (the synthetic engine:",
        "deterministic words, no OCR, except benchmark 7). Wall-clock figures vary between machines, so",
        "every goal is a ratio against a baseline measured in the same run, from medians of repetitions.",
        "The source of each is `benchmarks/bench_<name>.py`; `benchmarks/run.py NAME` re-runs one.",
        "",
    ]
    if quick:
        lines += [
            "> **Smoke run (`--quick`): tiny sizes that check the machinery. These are not measurements.**",
            "",
        ]
    lines += [
        "## Summary",
        "",
        "| # | benchmark | goal | baseline | ours | ratio | |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, name in enumerate(ORDER, start=1):
        result = found.get(name)
        if result is None:
            lines.append(f"| {number} | {name} | | | | | not run |")
            continue
        for row in result["rows"]:
            if row["met"] is None:
                continue
            lines.append(
                f"| {number} | {_cell(result['title'])}: {_cell(row['metric'])} | {_cell(row['goal'])} | "
                f"{_number(row['baseline'])} {row['unit']} | {_number(row['ours'])} {row['unit']} | "
                f"{_number(row['ratio'])} | {VERDICT[row['met']]} |"
            )
    lines.append("")
    for number, name in enumerate(ORDER, start=1):
        result = found.get(name)
        if result is None:
            continue
        lines += [f"## {number}. {result['title']}", "", result["setup"], ""]
        lines += ["| metric | baseline | ours | ratio | goal | | note |", "|---|---|---|---|---|---|---|"]
        for row in result["rows"]:
            lines.append(
                f"| {_cell(row['metric'])} | {_number(row['baseline'])} {row['unit']} | "
                f"{_number(row['ours'])} {row['unit']} | {_number(row['ratio'])} | {_cell(row['goal'])} | "
                f"{VERDICT[row['met']]} | {_cell(row['note'])} |"
            )
        lines.append("")
        for note in result.get("notes", []):
            lines += [f"- {note}"]
        if result.get("notes"):
            lines.append("")
        for plot in result.get("plots", []):
            lines += [f"![{result['title']}]({plot})", ""]
    return "\n".join(lines)


def write(results: Path = RESULTS, doc: Path = DOC) -> Path:
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(load(results)))
    print(f"report: {doc}")
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="the benchmarks' JSON files")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file to write")
    args = parser.parse_args()
    write(args.results, args.doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
