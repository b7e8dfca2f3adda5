"""The demo's box picture: a legend says what green and red mean, below the page, not over it."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("upstage_demo", ROOT / "scripts" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _box(x0: float, y0: float, x1: float, y1: float) -> list[dict[str, float]]:
    return [{"x": x0, "y": y0}, {"x": x1, "y": y0}, {"x": x1, "y": y1}, {"x": x0, "y": y1}]


def test_the_box_picture_has_a_legend_strip_with_both_colours(tmp_path: Path) -> None:
    demo = _demo()
    page = tmp_path / "page.png"
    Image.new("RGB", (600, 400), "white").save(page)
    words = tmp_path / "lake" / "words" / "ds=2026-12-03"
    words.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "document_uri": [str(page)] * 2,
                "page": [1, 1],
                "polygon": [_box(0.1, 0.1, 0.3, 0.2), _box(0.5, 0.5, 0.7, 0.6)],
                "confidence": [0.95, 0.4],
            }
        ),
        words / "page.parquet",
    )
    out = demo.render_boxes(tmp_path / "lake", "ds=2026-12-03", page, tmp_path / "boxes.png")
    img = Image.open(out).convert("RGB")
    assert img.width == 600
    assert img.height > 400, "the legend goes below the page"
    legend = img.crop((0, 400, img.width, img.height))
    colours = {pixel for _, pixel in legend.getcolors(maxcolors=1 << 20)}
    assert demo.GREEN in colours
    assert demo.RED in colours
    assert any(sum(c) < 100 for c in colours), "the legend has text"
    page_part = img.crop((0, 0, 600, 400))
    assert page_part.getpixel((int(0.1 * 600), int(0.15 * 400))) == demo.GREEN  # confident word
    assert page_part.getpixel((int(0.5 * 600), int(0.55 * 400))) == demo.RED  # unsure word


def test_the_demo_runs_for_today_unless_a_date_is_pinned(monkeypatch: object) -> None:

    assert dt.datetime.now(dt.timezone.utc).date().isoformat() == _demo().DAY
    mp = pytest.MonkeyPatch()
    mp.setenv("UPSTAGE_DEMO_DATE", "2026-11-24")
    try:
        assert _demo().DAY == "2026-11-24"
    finally:
        mp.undo()
