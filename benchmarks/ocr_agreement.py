"""How closely the emulator's offline OCR agrees with the real Upstage OCR API.

A reference word (from a recorded Upstage response) is FOUND when the candidate response has a
word with the same text (both stripped) whose box overlaps it with IoU >= 0.5. Boxes are the
axis-aligned rectangles around each word's four vertices, in the page's pixels; words are matched
one-to-one, best IoU first. The score is found/total, plus the mean IoU of the found words.

    python benchmarks/ocr_agreement.py                      # the four samples in ../shared/upstage-samples
    python benchmarks/ocr_agreement.py --doc scan.jpg --ref scan.ocr.json [--doc ... --ref ...]
    python benchmarks/ocr_agreement.py --url http://127.0.0.1:8000 --api-key KEY   # a running emulator
    python benchmarks/ocr_agreement.py --turn 30 --turn -12         # the samples photographed askew

``--turn DEG`` turns each document's pages counter-clockwise by DEG degrees onto a grey
background, as a photo taken askew would be, and turns the reference's word quads with them: the
real Upstage words stay the yardstick for text at an angle (PDF pages are rendered at the
reference's pixel size first and sent as a TIFF).

``score(reference, candidate)`` works on any two API-shaped JSON responses (the recorded
camelCase shape, or the snake_case variant with normalized vertices), so tests and other tools
can score the emulator's HTTP answers too. The engine is scored through the same JSON the app
serves (``upstage_provider.emulator.responses.build_ocr_response``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT.parent / "shared" / "upstage-samples"
SAMPLES = ("check_box.png", "dpi_150.jpg", "multi_page.pdf", "water_mark.jpg")
MIN_IOU = 0.5

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PageScore:
    """Agreement on one page (pages are paired by position)."""

    found: int
    total: int
    candidate_words: int
    iou_sum: float

    @property
    def ratio(self) -> float:
        return self.found / self.total if self.total else 1.0


@dataclass(frozen=True)
class AgreementScore:
    """Agreement on a document: reference words found, and how well their boxes overlap."""

    pages: tuple[PageScore, ...]

    @property
    def found(self) -> int:
        return sum(p.found for p in self.pages)

    @property
    def total(self) -> int:
        return sum(p.total for p in self.pages)

    @property
    def candidate_words(self) -> int:
        return sum(p.candidate_words for p in self.pages)

    @property
    def ratio(self) -> float:
        """Share of the reference's words found (1.0 for a reference without words)."""
        return self.found / self.total if self.total else 1.0

    @property
    def mean_iou(self) -> float:
        """Mean IoU of the found words (0.0 when none was found)."""
        found = self.found
        return sum(p.iou_sum for p in self.pages) / found if found else 0.0


def page_words(response: dict[str, Any]) -> list[tuple[tuple[int, int], list[tuple[str, Box]]]]:
    """Each page's (width, height) and its words as (stripped text, pixel box)."""
    pages = sorted(response.get("pages") or [], key=lambda p: p.get("id", 0))
    sizes = {m.get("page"): m for m in (response.get("metadata") or {}).get("pages") or []}
    out = []
    for index, page in enumerate(pages):
        meta = sizes.get(index + 1, {})
        width = int(page.get("width") or meta.get("width") or 0)
        height = int(page.get("height") or meta.get("height") or 0)
        words = []
        for word in page.get("words") or []:
            box = word.get("boundingBox") or word.get("bounding_box") or {}
            vertices = box.get("vertices") or []
            if not vertices:
                continue
            xs = [float(v.get("x", 0)) for v in vertices]
            ys = [float(v.get("y", 0)) for v in vertices]
            if all(isinstance(v.get("x", 0), float) and 0 <= v.get("x", 0) <= 1 for v in vertices) and width:
                xs = [x * width for x in xs]  # the snake_case variant: normalized floats
                ys = [y * height for y in ys]
            words.append((str(word.get("text", "")).strip(), (min(xs), min(ys), max(xs), max(ys))))
        out.append(((width, height), words))
    return out


def iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score_page(
    reference: Sequence[tuple[str, Box]], candidate: Sequence[tuple[str, Box]], *, min_iou: float = MIN_IOU
) -> PageScore:
    """Greedy one-to-one matching of same-text words, best IoU first."""
    by_text: dict[str, list[int]] = {}
    for j, (text, _) in enumerate(candidate):
        by_text.setdefault(text, []).append(j)
    pairs = []
    for i, (text, box) in enumerate(reference):
        for j in by_text.get(text, ()):
            overlap = iou(box, candidate[j][1])
            if overlap >= min_iou:
                pairs.append((overlap, i, j))
    pairs.sort(reverse=True)
    used_ref: set[int] = set()
    used_cand: set[int] = set()
    iou_sum = 0.0
    for overlap, i, j in pairs:
        if i in used_ref or j in used_cand:
            continue
        used_ref.add(i)
        used_cand.add(j)
        iou_sum += overlap
    return PageScore(len(used_ref), len(reference), len(candidate), iou_sum)


def score(
    reference: dict[str, Any], candidate: dict[str, Any], *, min_iou: float = MIN_IOU
) -> AgreementScore:
    """Agreement of two API-shaped responses for the same document, page by page.

    When the candidate's page has another pixel size than the reference's, its boxes are scaled
    to the reference's page first. A reference page the candidate lacks scores zero found.
    """
    ref_pages = page_words(reference)
    cand_pages = page_words(candidate)
    scores = []
    for index, (ref_size, ref_words) in enumerate(ref_pages):
        if index >= len(cand_pages):
            scores.append(PageScore(0, len(ref_words), 0, 0.0))
            continue
        (cand_w, cand_h), cand_words = cand_pages[index]
        sx = ref_size[0] / cand_w if cand_w and ref_size[0] else 1.0
        sy = ref_size[1] / cand_h if cand_h and ref_size[1] else 1.0
        if (sx, sy) != (1.0, 1.0):
            cand_words = [(t, (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)) for t, b in cand_words]
        scores.append(score_page(ref_words, cand_words, min_iou=min_iou))
    return AgreementScore(tuple(scores))


# --- producing candidates -------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    response: dict[str, Any]
    pages: int
    seconds: float


def run_engine(engine: Any, path: Path, data: bytes | None = None) -> Run:
    """OCR a document (``path``'s bytes, or ``data`` named as ``path``) and shape it as the app does."""
    from upstage_provider.emulator.responses import build_ocr_response

    data = path.read_bytes() if data is None else data
    started = time.perf_counter()
    document = engine.open(data, path.name)
    try:
        pages = [document.page(i) for i in range(document.page_count)]
    finally:
        document.close()
    seconds = time.perf_counter() - started
    return Run(build_ocr_response(pages, model_version="emulator"), len(pages), seconds)


def run_http(url: str, api_key: str, path: Path, *, timeout: float = 600.0) -> Run:
    """OCR a document through a running emulator (or any Upstage-compatible endpoint)."""
    import requests

    started = time.perf_counter()
    with path.open("rb") as handle:
        answer = requests.post(
            url.rstrip("/") + "/v1/document-digitization",
            headers={"Authorization": f"Bearer {api_key}"},
            files={"document": (path.name, handle)},
            data={"model": "ocr"},
            timeout=timeout,
        )
    seconds = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"{path.name}: HTTP {answer.status_code}: {answer.text[:300]}")
    body = answer.json()
    return Run(body, len(body.get("pages") or []), seconds)


def warm_up(engine: Any) -> None:
    """Load Tesseract's models once so the timings measure reading, not start-up."""
    import io

    if hasattr(engine, "preload"):
        engine.preload()

    from PIL import Image, ImageDraw

    image = Image.new("L", (400, 80), 255)
    ImageDraw.Draw(image).text((10, 30), "warm up", fill=0)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    document = engine.open(buffer.getvalue(), "warm-up.png")
    try:
        document.page(0)
    finally:
        document.close()


# --- documents at an angle ------------------------------------------------------------------

#: What shows around a turned page: a desk's grey, darker than paper.
BACKGROUND = 96


def _page_images(path: Path, reference: dict[str, Any]) -> list[Any]:
    """The document's pages as greyscale images at the reference's pixel sizes."""
    from PIL import Image

    if path.suffix.lower() != ".pdf":
        with Image.open(path) as image:
            return [image.convert("L")]
    import pypdfium2

    pdf = pypdfium2.PdfDocument(path.read_bytes())
    try:
        images = []
        for index, ((width, height), _) in enumerate(page_words(reference)):
            page = pdf[index]
            image = page.render(scale=width / page.get_width()).to_pil().convert("L")
            images.append(image.resize((width, height)) if image.size != (width, height) else image)
        return images
    finally:
        pdf.close()


def turned(path: Path, reference: dict[str, Any], degrees: float) -> tuple[str, bytes, dict[str, Any]]:
    """The document turned counter-clockwise by ``degrees`` (a name, its bytes) and its reference with it."""
    import copy
    import io
    import math

    images = _page_images(path, reference)
    out = copy.deepcopy(reference)
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    pages = sorted(out.get("pages") or [], key=lambda p: p.get("id", 0))
    sizes = {m.get("page"): m for m in (out.get("metadata") or {}).get("pages") or []}
    frames = []
    for index, (image, page) in enumerate(zip(images, pages, strict=False)):
        frame = image.rotate(degrees, resample=3, expand=True, fillcolor=BACKGROUND)
        cx, cy, tx, ty = image.width / 2, image.height / 2, frame.width / 2, frame.height / 2
        for word in page.get("words") or []:
            for vertex in (word.get("boundingBox") or {}).get("vertices") or []:
                dx, dy = vertex["x"] - cx, vertex["y"] - cy
                vertex["x"] = round(tx + cos * dx + sin * dy)
                vertex["y"] = round(ty - sin * dx + cos * dy)
        page["width"], page["height"] = frame.size
        if index + 1 in sizes:
            sizes[index + 1]["width"], sizes[index + 1]["height"] = frame.size
        frames.append(frame)
    buffer = io.BytesIO()
    if len(frames) == 1:
        frames[0].save(buffer, "PNG")
        suffix = "png"
    else:
        frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw")
        suffix = "tiff"
    return f"{path.stem}@{degrees:g}.{suffix}", buffer.getvalue(), out


# --- the command line ----------------------------------------------------------------------


def _pairs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    if args.doc or args.ref:
        if len(args.doc) != len(args.ref):
            raise SystemExit("give one --ref for every --doc")
        return [(Path(d), Path(r)) for d, r in zip(args.doc, args.ref, strict=True)]
    samples = Path(args.samples)
    return [(samples / name, samples / (Path(name).stem + ".ocr.json")) for name in SAMPLES]


def _table(rows: Iterable[tuple[str, AgreementScore, Run]]) -> str:
    lines = [
        f"{'document':<24} {'pages':>5} {'found/total':>12} {'found':>7} {'mean IoU':>9} "
        f"{'cand.':>6} {'seconds':>8} {'pages/s':>8}",
    ]
    for name, result, run in rows:
        per_second = run.pages / run.seconds if run.seconds else float("inf")
        lines.append(
            f"{name:<24} {run.pages:>5} {f'{result.found}/{result.total}':>12} {result.ratio:>7.1%} "
            f"{result.mean_iou:>9.3f} {result.candidate_words:>6} {run.seconds:>8.2f} {per_second:>8.2f}"
        )
        if len(result.pages) > 1:
            for number, page in enumerate(result.pages, start=1):
                mean = page.iou_sum / page.found if page.found else 0.0
                lines.append(
                    f"{'  page ' + str(number):<24} {'':>5} {f'{page.found}/{page.total}':>12} "
                    f"{page.ratio:>7.1%} {mean:>9.3f} {page.candidate_words:>6}"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doc", action="append", default=[], help="a document (repeat with --ref)")
    parser.add_argument(
        "--ref", action="append", default=[], help="the Upstage response for the --doc before"
    )
    parser.add_argument("--samples", default=str(SAMPLES_DIR), help="where the default samples live")
    parser.add_argument("--url", help="score a running emulator at this base URL instead of the engine")
    parser.add_argument("--api-key", default=os.environ.get("UPSTAGE_API_KEY", ""), help="key for --url")
    parser.add_argument("--languages", help="the engine's languages (default: its automatic choice)")
    parser.add_argument(
        "--turn",
        action="append",
        type=float,
        default=[],
        help="also score every document turned by this many degrees counter-clockwise (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--fail-under", type=float, help="exit 1 when a document's found share is below this (0..1)"
    )
    args = parser.parse_args(argv)
    pairs = _pairs(args)
    for doc, ref in pairs:
        for path in (doc, ref):
            if not path.is_file():
                raise SystemExit(f"{path}: no such file")

    engine = None
    if not args.url:
        from upstage_provider.emulator.engine import TesseractEngine

        engine = TesseractEngine(languages=args.languages)
        warm_up(engine)
    elif not args.api_key:
        raise SystemExit("--url needs --api-key (or UPSTAGE_API_KEY)")

    rows = []
    for doc, ref in pairs:
        reference = json.loads(ref.read_text())
        run = run_http(args.url, args.api_key, doc) if args.url else run_engine(engine, doc)
        rows.append((doc.name, score(reference, run.response), run))
        for degrees in args.turn:
            name, data, turned_reference = turned(doc, reference, degrees)
            if args.url:
                raise SystemExit("--turn scores the engine, not a running emulator")
            run = run_engine(engine, Path(name), data)
            rows.append((name, score(turned_reference, run.response), run))
    print(_table(rows))
    total_pages = sum(run.pages for _, _, run in rows)
    total_seconds = sum(run.seconds for _, _, run in rows)
    rate = total_pages / total_seconds if total_seconds else float("inf")
    print(f"\n{total_pages} pages in {total_seconds:.2f} s: {rate:.2f} pages/s on one thread")
    if args.json:
        figures = {
            name: {
                "found": result.found,
                "total": result.total,
                "ratio": round(result.ratio, 4),
                "mean_iou": round(result.mean_iou, 4),
                "pages": run.pages,
                "seconds": round(run.seconds, 3),
            }
            for name, result, run in rows
        }
        print(json.dumps(figures, indent=2))
    if args.fail_under is not None and any(result.ratio < args.fail_under for _, result, _ in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
