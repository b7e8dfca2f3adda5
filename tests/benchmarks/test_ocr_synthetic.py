"""The synthetic OCR yardstick: seeded documents come out the same, and their truth sits on their ink.

A yardstick whose boxes were off (untransformed by the photo's perspective, in the wrong vertex
order, or padded too much) would score a good engine low; these tests look at the pixels under
every ground-truth quad to catch that.
"""

from __future__ import annotations

import io
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import ocr_synthetic  # noqa: E402
from ocr_agreement import score  # noqa: E402

# How far (in pixels) a quad's side may sit from the ink it frames: 2 px of padding, up to 1 px
# of rounding, and the blur's faint edge.
EDGE = 5.0


def vertices(word: dict) -> list[tuple[float, float]]:
    return [(float(v["x"]), float(v["y"])) for v in word["boundingBox"]["vertices"]]


def sample_quad(
    gray: np.ndarray, quad: list[tuple[float, float]], columns: int = 32, rows: int = 10
) -> np.ndarray:
    """The pixels at a rows x columns grid spread over the quad, in the word's own frame."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad
    u = (np.arange(columns) + 0.5) / columns
    v = ((np.arange(rows) + 0.5) / rows)[:, None]
    xs = (1 - v) * ((1 - u) * x0 + u * x1) + v * ((1 - u) * x3 + u * x2)
    ys = (1 - v) * ((1 - u) * y0 + u * y1) + v * ((1 - u) * y3 + u * y2)
    height, width = gray.shape
    return gray[
        np.clip(np.round(ys).astype(int), 0, height - 1), np.clip(np.round(xs).astype(int), 0, width - 1)
    ]


def ink_misses(data: bytes, truth: dict) -> list[str]:
    """Words whose quad does not frame dark ink spanning it (ink from near one end to the other)."""
    gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)
    misses = []
    for word in truth["pages"][0]["words"]:
        quad = vertices(word)
        # a sample per pixel or finer, so one-pixel strokes of a 75-DPI scan are not stepped over
        grid = sample_quad(
            gray, quad, 2 * round(math.dist(quad[0], quad[1])), 2 * round(math.dist(quad[1], quad[2]))
        )
        paper = np.percentile(grid, 85)
        dark = grid < paper - max(15.0, 0.3 * (paper - grid.min()))  # faint thermal print too
        columns = np.flatnonzero(dark.any(axis=0))
        rows = np.flatnonzero(dark.any(axis=1))
        # ink reaches within a few pixels of each side (the ~2 px padding, blur and rounding)
        per_px = grid.shape[1] / max(1.0, math.dist(quad[0], quad[1]))
        per_px_down = grid.shape[0] / max(1.0, math.dist(quad[1], quad[2]))
        spans = (
            len(columns)
            and columns[0] <= EDGE * per_px
            and columns[-1] >= grid.shape[1] - 1 - EDGE * per_px
            and rows[0] <= EDGE * per_px_down
            and rows[-1] >= grid.shape[0] - 1 - EDGE * per_px_down
        )
        if not spans:
            misses.append(word["text"])
    return misses


@pytest.mark.parametrize("kind", list(ocr_synthetic.KINDS))
def test_a_seed_gives_the_same_document(kind: str) -> None:
    first = ocr_synthetic.generate(kind, 1, seed=5)
    again = ocr_synthetic.generate(kind, 1, seed=5)
    other = ocr_synthetic.generate(kind, 1, seed=6)
    assert (first.name, first.data, first.truth) == (again.name, again.data, again.truth)
    assert first.data != other.data
    assert first.truth["pages"][0]["text"] != other.truth["pages"][0]["text"]


@pytest.mark.parametrize("kind", list(ocr_synthetic.KINDS))
def test_truth_has_the_recorded_response_shape_and_scores_itself_full(kind: str) -> None:
    doc = ocr_synthetic.generate(kind, 0, seed=3)
    page = doc.truth["pages"][0]
    with Image.open(io.BytesIO(doc.data)) as image:
        assert (page["width"], page["height"]) == image.size
    assert doc.truth["metadata"]["pages"] == [{"height": page["height"], "page": 1, "width": page["width"]}]
    assert len(page["words"]) >= 30
    for word in page["words"]:
        assert word["text"]
        assert word["text"] == word["text"].strip()
        assert all(
            isinstance(v["x"], int) and 0 <= v["x"] < page["width"] for v in word["boundingBox"]["vertices"]
        )
        assert all(
            isinstance(v["y"], int) and 0 <= v["y"] < page["height"] for v in word["boundingBox"]["vertices"]
        )
    assert [w["id"] for w in page["words"]] == list(range(len(page["words"])))
    json.dumps(doc.truth)  # plain JSON
    itself = score(doc.truth, doc.truth)
    assert (itself.found, itself.total) == (len(page["words"]), len(page["words"]))
    assert itself.mean_iou == pytest.approx(1.0)


@pytest.mark.parametrize("kind", list(ocr_synthetic.KINDS))
def test_every_quad_frames_its_ink(kind: str) -> None:
    doc = ocr_synthetic.generate(kind, 0, seed=11)
    assert ink_misses(doc.data, doc.truth) == []


@pytest.mark.parametrize("index", [0, 1, 2])
def test_angled_receipts_have_turned_quads_from_each_words_top_left(index: int) -> None:
    """Clockwise from the word's own top-left: the first edge runs along the text's turned baseline."""
    doc = ocr_synthetic.generate("receipt_angled", index, seed=0)
    angles = []
    for word in doc.truth["pages"][0]["words"]:
        (x0, y0), (x1, y1), (x2, y2), _ = vertices(word)
        if math.hypot(x1 - x0, y1 - y0) < 20:  # short words' integer corners give rough angles
            continue
        angles.append(math.degrees(math.atan2(y1 - y0, x1 - x0)))
        # clockwise on screen (y down): the turn from edge 0-1 to edge 1-2 is positive
        assert (x1 - x0) * (y2 - y1) - (y1 - y0) * (x2 - x1) > 0, word["text"]
    median = statistics.median(angles)
    assert 20 <= abs(median) <= 40
    assert all(abs(a - median) < 10 for a in angles)
    # a box that ignored the turn would hold ink only along its diagonal: this one frames it
    assert ink_misses(doc.data, doc.truth) == []


def test_the_cli_scores_the_engine_and_saves_what_it_read(tmp_path: Path) -> None:
    """Through the engine and the app's response JSON, as ocr_agreement does: a clean scan scores high."""
    assert (
        ocr_synthetic.main(
            ["--kinds", "scan_75dpi", "--count", "1", "--save", str(tmp_path), "--out", str(tmp_path)]
        )
        == 0
    )
    figures = json.loads((tmp_path / "ocr_synthetic.json").read_text())["kinds"]["scan_75dpi"]
    truth = json.loads(next(tmp_path.glob("scan_75dpi-00.ocr.json")).read_text())
    assert figures["total"] == len(truth["pages"][0]["words"])
    assert figures["ratio"] >= 0.8
    answer = json.loads((tmp_path / "scan_75dpi-00.emulator.json").read_text())
    assert score(truth, answer).found == figures["found"]
