"""Emulator OCR speed: pages per second per core of the offline engine on 150-DPI A4 scans.

The pages are A4 at 150 DPI (about 1240 x 1754 pixels): the real scan ``dpi_150.jpg`` from
``../shared/upstage-samples``, page 1 of ``multi_page.pdf`` rendered to pixels (so the engine
must OCR it instead of reading its text layer), and three generated pages (a letter, a report
with a list, an invoice table) drawn with PIL and given a scanner's faults: a slight skew, blur,
noise and JPEG compression. ``TesseractEngine.ocr`` reads them one after another in this process
on one thread (``OMP_THREAD_LIMIT=1``), models loaded; pages per CPU-second is pages per second
per core. The same pages also go through the emulator's sync endpoint from as many client threads
as there are cores. ``--quick`` reads two pages, twice.

    python benchmarks/bench_emulator_ocr.py [--quick] [--out DIR] [--plots DIR]
"""

from __future__ import annotations

import io
import os
import queue
import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

NAME = "emulator_ocr"
FLOOR = 1.0  # pages per second per core
DPI = 150
A4 = (1240, 1754)  # 210 x 297 mm at 150 DPI
SAMPLES = common.ROOT.parent / "shared" / "upstage-samples"
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF")


@dataclass(frozen=True)
class Sizes:
    kinds: tuple[str, ...]
    repeat: int
    sync_rounds: int
    picture_repeat: int


FULL = Sizes(
    kinds=("dpi_150 scan", "multi_page p1 rendered", "letter", "report", "invoice"),
    repeat=5,
    sync_rounds=3,
    picture_repeat=3,
)
QUICK = Sizes(kinds=("dpi_150 scan", "letter"), repeat=2, sync_rounds=1, picture_repeat=0)


# --- pages --------------------------------------------------------------------------------------

_WORDS = (
    "the", "of", "and", "to", "in", "for", "with", "on", "by", "from", "at", "as", "this", "that",
    "is", "are", "was", "will", "be", "has", "have", "not", "all", "any", "each", "our", "your",
    "company", "customer", "agreement", "contract", "payment", "invoice", "account", "services",
    "delivery", "order", "period", "report", "quarter", "revenue", "growth", "market", "product",
    "review", "meeting", "schedule", "project", "budget", "team", "results", "office", "policy",
    "information", "following", "request", "received", "approved", "department", "management",
    "shipment", "warehouse", "total", "amount", "balance", "date", "number", "terms", "conditions",
    "notice", "section", "within", "days", "after", "before", "during", "under", "between",
    "provided", "required", "including", "described", "responsible", "additional", "original",
    "annual", "monthly", "current", "previous", "expected", "approximately", "significant",
    "increase", "decrease", "support", "quality", "process", "system", "data", "analysis",
    "performance", "operations", "financial", "statement", "records", "documents", "please",
    "contact", "regarding", "questions", "address", "street", "city", "phone", "email",
)  # fmt: skip
_ITEMS = (
    "Steel brackets, galvanized", "Copy paper A4, 80 g/m2", "Toner cartridge, black", "Desk lamp LED",
    "Network cable Cat6, 5 m", "Office chair, mesh back", "Printer maintenance", "Shipping and handling",
    "Consulting hours", "Software licence, annual", "USB-C docking station", "Whiteboard markers",
    "Archive boxes", "Monitor 27 inch", "Cleaning service", "Label printer tape",
)  # fmt: skip


def _font(size: int, *, bold: bool = False, serif: bool = False) -> Any:
    from PIL import ImageFont

    name = f"DejaVu{'Serif' if serif else 'Sans'}{'-Bold' if bold else ''}.ttf"
    for folder in FONT_DIRS:
        path = Path(folder) / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _points(pt: float) -> int:
    """A font size in points as pixels at 150 DPI."""
    return round(pt * DPI / 72)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
    if rng.random() < 0.4:
        words.insert(rng.randrange(len(words)), str(rng.choice([rng.randint(2, 999), 2024, 2025, 2026])))
    text = " ".join(words)
    if rng.random() < 0.3:
        cut = rng.randrange(2, len(words) - 1)
        text = " ".join(words[:cut]) + ", " + " ".join(words[cut:])
    return text[0].upper() + text[1:] + "."


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


class _Page:
    """A white A4 page and a cursor moving down it."""

    def __init__(self, margin: int = 150) -> None:
        from PIL import Image, ImageDraw

        self.image = Image.new("L", A4, 255)
        self.draw = ImageDraw.Draw(self.image)
        self.margin = margin
        self.y = margin
        self.width = A4[0] - 2 * margin

    @property
    def room(self) -> bool:
        return self.y < A4[1] - self.margin - 60

    def text(self, text: str, font: Any, *, indent: int = 0, gap: float = 1.35) -> None:
        height = font.size if hasattr(font, "size") else 20
        for line in _wrap(self.draw, text, font, self.width - indent):
            if not self.room:
                return
            self.draw.text((self.margin + indent, self.y), line, font=font, fill=20)
            self.y += round(height * gap)

    def skip(self, pixels: int) -> None:
        self.y += pixels


def letter_page(rng: random.Random) -> Any:
    page = _Page()
    body = _font(_points(11), serif=True)
    page.text("Northwind Supplies Ltd., 14 Harbour Street, Leeds LS1 4AB", _font(_points(9)))
    page.text(f"Reference {rng.randint(10000, 99999)}, {rng.randint(1, 28)} March 2026", _font(_points(9)))
    page.skip(40)
    page.text("Dear Ms. Robertson,", body)
    page.skip(15)
    while page.room:
        page.text(" ".join(_sentence(rng) for _ in range(rng.randint(3, 6))), body)
        page.skip(20)
    return page.image


def report_page(rng: random.Random) -> Any:
    page = _Page(margin=130)
    heading, body = _font(_points(15), bold=True), _font(_points(10))
    page.text(f"{rng.randint(2, 9)}. Quarterly operations review", heading)
    page.skip(20)
    while page.room:
        page.text(" ".join(_sentence(rng) for _ in range(rng.randint(2, 5))), body)
        page.skip(14)
        if rng.random() < 0.35:
            for _ in range(rng.randint(2, 4)):
                page.text("- " + _sentence(rng), body, indent=40)
            page.skip(14)
        if rng.random() < 0.25:
            page.text(f"{rng.randint(2, 9)}.{rng.randint(1, 9)} {_sentence(rng)[:40].rstrip('.')}", heading)
            page.skip(10)
    return page.image


def invoice_page(rng: random.Random) -> Any:
    page = _Page(margin=120)
    title, body, small = _font(_points(18), bold=True), _font(_points(10)), _font(_points(9))
    page.text(f"INVOICE No. {rng.randint(100000, 999999)}", title)
    page.skip(10)
    for line in ("Billed to: Harbour Logistics GmbH, Speicherstrasse 8, 20457 Hamburg",
                 f"Invoice date: 2026-03-{rng.randint(10, 28)}    Due date: 2026-04-{rng.randint(10, 28)}",
                 f"Customer number: {rng.randint(1000, 9999)}-{rng.randint(100, 999)}"):  # fmt: skip
        page.text(line, small)
    page.skip(30)
    columns = (0, 90, 640, 760, 880)
    header = ("Pos.", "Description", "Qty", "Unit", "Amount")
    left = page.margin
    for x, name in zip(columns, header, strict=True):
        page.draw.text((left + x, page.y), name, font=body, fill=0)
    page.y += 34
    page.draw.line((left, page.y, left + page.width, page.y), fill=60, width=2)
    page.y += 12
    total = 0.0
    position = 1
    while page.y < A4[1] - 330:
        qty, unit = rng.randint(1, 40), rng.randint(150, 99000) / 100
        total += qty * unit
        cells = (str(position), rng.choice(_ITEMS), str(qty), f"{unit:,.2f}", f"{qty * unit:,.2f}")
        for x, cell in zip(columns, cells, strict=True):
            page.draw.text((left + x, page.y), cell, font=body, fill=20)
        page.y += 38
        page.draw.line((left, page.y - 6, left + page.width, page.y - 6), fill=190, width=1)
        position += 1
    page.skip(20)
    for label, value in (("Subtotal", total), ("VAT 19%", total * 0.19), ("Total due", total * 1.19)):
        page.draw.text((left + 640, page.y), label, font=body, fill=0)
        page.draw.text((left + 880, page.y), f"{value:,.2f} EUR", font=body, fill=0)
        page.y += 38
    page.skip(30)
    page.text(
        "Please pay within 30 days to IBAN DE44 5001 0517 5407 3249 31, quoting the invoice number.", small
    )
    return page.image


def scanned(image: Any, rng: random.Random) -> Any:
    """What a flatbed scanner does to a clean page: skew, softness, grain, JPEG."""
    from PIL import Image, ImageFilter

    page = image.rotate(rng.uniform(-0.6, 0.6), resample=Image.Resampling.BICUBIC, fillcolor=255)
    page = page.filter(ImageFilter.GaussianBlur(0.6))
    grain = Image.effect_noise(page.size, 12).point(lambda v: v - 128)
    page = Image.blend(page, Image.eval(grain, lambda v: 255 - abs(v)), 0.08)
    buffer = io.BytesIO()
    page.save(buffer, format="JPEG", quality=85)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


def pdf_page_image(path: Path, index: int) -> Any:
    """A PDF page rendered at 150 DPI: a scan of it, whatever text layer the file has."""
    import pypdfium2 as pdfium

    from upstage_provider.documents import PDFIUM_LOCK

    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(path.read_bytes())
        try:
            bitmap = pdf[index].render(scale=DPI / 72, grayscale=True)
            image = bitmap.to_pil().convert("L")
        finally:
            pdf.close()
    return image


def build_page(kind: str) -> Any:
    from PIL import Image

    rng = random.Random(f"{common.SEED}:{kind}")
    makers: dict[str, Callable[[], Any]] = {
        "dpi_150 scan": lambda: Image.open(SAMPLES / "dpi_150.jpg").convert("RGB"),
        "multi_page p1 rendered": lambda: pdf_page_image(SAMPLES / "multi_page.pdf", 0),
        "multi_page p2 (recipe photo)": lambda: pdf_page_image(SAMPLES / "multi_page.pdf", 1),
        "multi_page p3 (phone screenshot)": lambda: pdf_page_image(SAMPLES / "multi_page.pdf", 2),
        "letter": lambda: scanned(letter_page(rng), rng),
        "report": lambda: scanned(report_page(rng), rng),
        "invoice": lambda: scanned(invoice_page(rng), rng),
    }
    image = makers[kind]()
    image.load()
    return image


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Pass:
    """One read of every page: CPU and wall seconds in all, and per page."""

    cpu: float
    wall: float
    per_page: dict[str, float]
    words: dict[str, int]


def read_all(engine: Any, pages: dict[str, Any]) -> Pass:
    per_page: dict[str, float] = {}
    words: dict[str, int] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for kind, image in pages.items():
        started = time.process_time()
        page = engine.ocr(image)
        per_page[kind] = time.process_time() - started
        words[kind] = sum(len(line.words) for line in page.lines)
    return Pass(time.process_time() - cpu0, time.perf_counter() - wall0, per_page, words)


def through_sync_endpoint(
    engine: Any, pages: dict[str, Any], rounds: int, cores: int
) -> tuple[float, float, int]:
    """Every page ``rounds`` times through ``POST /v1/document-digitization``, ``cores`` at a time.

    Returns the wall seconds, the CPU seconds of this process (server and clients) and the pages.
    """
    import requests

    from upstage_provider.emulator.config import EmulatorConfig
    from upstage_provider.emulator.server import EmulatorServer
    from upstage_provider.hooks.upstage import SYNC_PATH

    uploads = []
    for kind, image in pages.items():
        buffer = io.BytesIO()
        image.convert("L").save(buffer, format="JPEG", quality=90)
        uploads.append((kind, buffer.getvalue()))
    work: queue.Queue[tuple[str, bytes]] = queue.Queue()
    for _ in range(rounds):
        for upload in uploads:
            work.put(upload)
    count = work.qsize()
    failures: list[str] = []
    config = EmulatorConfig(api_key=common.KEY, workers=cores, engine="tesseract", **common.NO_RATE_LIMITS)
    with EmulatorServer(config, engine=engine) as server:
        url = server.url + SYNC_PATH

        def client() -> None:
            with requests.Session() as session:
                while True:
                    try:
                        kind, data = work.get_nowait()
                    except queue.Empty:
                        return
                    response = session.post(
                        url,
                        headers={"Authorization": f"Bearer {common.KEY}"},
                        files={"document": (f"{kind}.jpg", data, "image/jpeg")},
                        data={"model": "ocr"},
                        timeout=300,
                    )
                    if response.status_code != 200:
                        failures.append(f"{kind}: HTTP {response.status_code}")

        threads = [threading.Thread(target=client) for _ in range(cores)]
        started, cpu = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if failures:
        raise RuntimeError(f"sync OCR failed: {failures[:3]}")
    return wall, cpu, count


def plot(passes: Sequence[Pass], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(passes[0].per_page)
    medians = [statistics.median(p.per_page[kind] for p in passes) for kind in kinds]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.barh(kinds, medians, color="#2e86c1")
    ax.axvline(1 / FLOOR, color="#c0392b", linewidth=1, label=f"{FLOOR:g} page/s/core")
    for y, (seconds, kind) in enumerate(zip(medians, kinds, strict=True)):
        ax.text(seconds, y, f"  {seconds:.2f} s, {passes[0].words[kind]} words", va="center", fontsize=8)
    ax.set_xlim(0, max(1.3 / FLOOR, max(medians) * 1.4))
    ax.set_xlabel("CPU seconds per page (one core, median)")
    ax.set_title("Emulator OCR (Tesseract) on 150-DPI A4 pages")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    common.save_figure(fig, path)


def main() -> int:
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one page, one core: before Tesseract loads
    args = common.arguments(__doc__)
    sizes = QUICK if args.quick else FULL
    from upstage_provider.emulator.engine import TesseractEngine

    cores = os.cpu_count() or 1
    pages = {kind: build_page(kind) for kind in sizes.kinds}
    for kind, image in pages.items():
        common.log(f"page {kind}: {image.size[0]} x {image.size[1]}")
    engine = TesseractEngine()
    engine.preload()
    engine.ocr(pages[sizes.kinds[0]])  # warm-up: first-use costs are not a page's

    passes = []
    for repetition in range(sizes.repeat):
        one = read_all(engine, pages)
        passes.append(one)
        common.log(
            f"repetition {repetition + 1}/{sizes.repeat}: {len(pages)} pages in {one.cpu:.2f} CPU s "
            f"({one.wall:.2f} s wall)"
        )
    per_core = statistics.median(len(pages) / p.cpu for p in passes)
    per_wall = statistics.median(len(pages) / p.wall for p in passes)

    sync_wall, sync_cpu, sync_pages = through_sync_endpoint(engine, pages, sizes.sync_rounds, cores)
    sync_per_core = sync_pages / sync_cpu
    common.log(
        f"sync endpoint: {sync_pages} pages in {sync_wall:.1f} s wall, {sync_cpu:.1f} CPU s, {cores} clients"
    )

    picture_kinds = ("multi_page p2 (recipe photo)", "multi_page p3 (phone screenshot)")
    picture_passes = []
    if sizes.picture_repeat:
        pictures = {kind: build_page(kind) for kind in picture_kinds}
        picture_passes = [read_all(engine, pictures) for _ in range(sizes.picture_repeat)]

    result = common.Result(
        name=NAME,
        title="Emulator OCR speed on 150-DPI A4 scans",
        setup=(
            f"{len(pages)} A4 pages at 150 DPI ({', '.join(pages)}): the real scan dpi_150.jpg, page 1 of "
            f"multi_page.pdf rendered to pixels, and pages drawn with PIL (DejaVu fonts, 9-18 pt) then "
            f"skewed, blurred, grained and JPEG-compressed like a scan. TesseractEngine() with its "
            f"defaults (English, Korean retry for badly read lines where kor.traineddata is installed, "
            f"orientation check for poor pages), models loaded and one warm-up page, OMP_THREAD_LIMIT=1, "
            f"one thread: pages per CPU-second = pages per second per core, median of {sizes.repeat} "
            f"passes over all pages. Sync endpoint: the same pages as JPEG, {sizes.sync_rounds} round(s), "
            f"{cores} client threads against an in-process emulator on this {cores}-core machine."
        ),
        quick=args.quick,
    )
    result.rows = [
        common.Row(
            metric="pages per second per core (CPU time, one thread)",
            baseline=FLOOR,
            ours=round(per_core, 3),
            unit="pages/s/core",
            goal=f"at least {FLOOR:g} page/s/core",
            met=per_core >= FLOOR,
            ratio=round(per_core / FLOOR, 2),
            note="baseline: the floor; ratio: ours / the floor",
        ),
        common.Row(
            metric="pages per second, one thread (wall clock)",
            baseline=FLOOR,
            ours=round(per_wall, 3),
            unit="pages/s",
            goal="-",
            met=None,
            ratio=round(per_wall / FLOOR, 2),
            note="moves with whatever else runs on the machine",
        ),
        common.Row(
            metric=f"sync endpoint, {cores} clients at once, per core (CPU time)",
            baseline=FLOOR,
            ours=round(sync_per_core, 3),
            unit="pages/s/core",
            goal="-",
            met=None,
            ratio=round(sync_per_core / FLOOR, 2),
            note=(
                f"HTTP, JPEG decoding and JSON included (server and clients in one process); by the wall "
                f"clock {sync_pages / sync_wall:.2f} pages/s on {cores} cores, shared with whatever else runs"
            ),
        ),
    ]
    if picture_passes:
        picture_rate = statistics.median(len(picture_kinds) / p.cpu for p in picture_passes)
        result.rows.append(
            common.Row(
                metric="picture pages (multi_page.pdf p. 2-3, rendered), per core",
                baseline=FLOOR,
                ours=round(picture_rate, 3),
                unit="pages/s/core",
                goal="-",
                met=None,
                ratio=round(picture_rate / FLOOR, 2),
                note="not text scans: a recipe photo and a phone screenshot that need the second looks",
            )
        )
    result.extra = {
        "sizes": sizes.__dict__,
        "cores": cores,
        "languages": engine.languages,
        "retry_languages": engine.retry_languages,
        "page_sizes": {kind: list(image.size) for kind, image in pages.items()},
        "cpu_seconds_per_page_median": {
            kind: statistics.median(p.per_page[kind] for p in passes) for kind in pages
        },
        "words_per_page": passes[0].words,
        "passes": [{"cpu": p.cpu, "wall": p.wall, "per_page": p.per_page} for p in passes],
        "sync": {"pages": sync_pages, "wall": sync_wall, "cpu": sync_cpu, "clients": cores},
        "pictures": [{"cpu": p.cpu, "per_page": p.per_page, "words": p.words} for p in picture_passes],
    }
    plot(passes, args.plots / f"{NAME}.png")
    result.plots.append(f"performance/{NAME}.png")
    result.save(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
