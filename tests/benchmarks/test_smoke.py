"""The benchmark suite runs end to end at tiny sizes: every result, plot and report section.

Nothing here looks at how fast anything was (``--quick`` sizes measure nothing); it checks that
``make bench`` will produce every table and plot the performance report promises.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import report  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--out",
            str(out / "results"),
            "--plots",
            str(out / "performance"),
            "--doc",
            str(out / "performance.md"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", report.ORDER)
def test_each_benchmark_writes_a_complete_result(smoke_run: Path, name: str) -> None:
    result = json.loads((smoke_run / "results" / f"{name}.json").read_text())
    assert result["name"] == name
    assert result["quick"] is True
    assert result["title"]
    assert result["setup"]
    assert result["rows"], "a benchmark without a table row"
    assert any(row["met"] is not None for row in result["rows"]), "no row is checked against a goal"
    for row in result["rows"]:
        assert isinstance(row["ours"], (int, float)), row
        assert math.isfinite(row["ours"]), row
        assert row["goal"], row
        if row["met"] is not None:
            assert isinstance(row["met"], bool), row
    for plot in result["plots"]:
        path = smoke_run / plot
        assert path.read_bytes()[:8] == PNG_MAGIC, f"{plot} is not a PNG"


@pytest.mark.timeout(900)
def test_the_report_has_a_section_and_a_summary_line_per_benchmark(smoke_run: Path) -> None:
    text = (smoke_run / "performance.md").read_text()
    assert "Smoke run" in text
    assert "not run" not in text
    for number, name in enumerate(report.ORDER, start=1):
        result = json.loads((smoke_run / "results" / f"{name}.json").read_text())
        assert f"## {number}. {result['title']}" in text
        for plot in result["plots"]:
            assert f"]({plot})" in text


@pytest.mark.timeout(900)
def test_the_memory_and_triggerer_benchmarks_plot_their_curves(smoke_run: Path) -> None:
    plots = {Path(plot).name for name in ("memory", "triggerer") for plot in _plots(smoke_run, name)}
    assert {"memory.png", "triggerer.png"} <= plots


def _plots(smoke_run: Path, name: str) -> list[str]:
    return list(json.loads((smoke_run / "results" / f"{name}.json").read_text())["plots"])
