"""The emulator's offline OCR engine on real documents, compared with real Upstage answers.

Each sample is OCRed once per module (a few seconds); the other tests use small crops of the
150-DPI scan so the file stays well under a minute on two cores.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import shutil
import struct
import sys
import threading
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from upstage_provider.emulator import office
from upstage_provider.emulator.engine import (
    MAX_PAGE_PIXELS,
    EnginePage,
    EngineWord,
    TesseractEngine,
    UnreadableDocumentError,
    UnsupportedFormatError,
)
from upstage_provider.emulator.engine.hangul import join_gap
from upstage_provider.emulator.engine.light import flatten
from upstage_provider.emulator.engine.skew import estimate_skew
from upstage_provider.emulator.engine.tuning import HANGUL_JOIN_GAP, SKEW_MIN_DEGREES
from upstage_provider.emulator.responses import build_ocr_response

REPO_ROOT = Path(__file__).resolve().parents[2]
SOFFICE = shutil.which("soffice")
# `make test` installs LibreOffice and Korean OCR data (scripts/system-deps.sh): their absence is a
# set-up error to fix, not a reason to skip.
MISSING_SOFFICE = "LibreOffice (soffice) is not installed: run `make system-deps`"
MISSING_KOR = "kor.traineddata is not installed: run `make system-deps` (apt-get install tesseract-ocr-kor)"

# (width, height) of every page, as the real API reported them.
SAMPLE_SIZES = {
    "check_box.png": [(1460, 608)],
    "dpi_150.jpg": [(1242, 1755)],
    "multi_page.pdf": [(1242, 1755), (1240, 1755), (1240, 1755)],
    "water_mark.jpg": [(602, 699)],
}
# Share of Upstage's words the engine must find (same text, box IoU >= 0.5). Measured values are
# in docs/emulator.md; these floors leave room for Tesseract builds that differ a little.
MIN_FOUND = {"check_box.png": 0.80, "dpi_150.jpg": 0.85, "multi_page.pdf": 0.75}
MIN_FOUND_KOREAN = {"water_mark.jpg": 0.90}


def _load_agreement() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "ocr_agreement", REPO_ROOT / "benchmarks" / "ocr_agreement.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("ocr_agreement", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


agreement = _load_agreement()


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> TesseractEngine:
    return TesseractEngine()


@pytest.fixture(scope="module")
def sample_pages(engine: TesseractEngine, samples_dir: Path) -> dict[str, list[EnginePage]]:
    """Every sample document read once."""
    read = {}
    for name in SAMPLE_SIZES:
        document = engine.open((samples_dir / name).read_bytes(), name)
        try:
            read[name] = [document.page(i) for i in range(document.page_count)]
        finally:
            document.close()
    return read


@pytest.fixture(scope="module")
def scan(samples_dir: Path) -> Image.Image:
    """Five lines of large text from the 150-DPI scan (FT 14 to FT 16), 1142 x 300 pixels."""
    with Image.open(samples_dir / "dpi_150.jpg") as image:
        return image.convert("L").crop((100, 980, 1242, 1280))


def words(page: EnginePage) -> list[EngineWord]:
    return [word for line in page.lines for word in line.words]


def texts(page: EnginePage) -> list[str]:
    return [word.text for word in words(page)]


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def kor_available(engine: TesseractEngine) -> bool:
    return engine.retry_languages is not None


# --- the samples --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLE_SIZES))
def test_sample_page_count_and_sizes(
    name: str, sample_pages: dict[str, list[EnginePage]], samples_dir: Path
) -> None:
    pages = sample_pages[name]
    assert [(p.width, p.height) for p in pages] == SAMPLE_SIZES[name]
    recorded = json.loads((samples_dir / (Path(name).stem + ".ocr.json")).read_text())
    assert [(p["width"], p["height"]) for p in recorded["pages"]] == SAMPLE_SIZES[name]


@pytest.mark.parametrize("name", list(SAMPLE_SIZES))
def test_sample_words_are_well_formed(name: str, sample_pages: dict[str, list[EnginePage]]) -> None:
    for page in sample_pages[name]:
        assert page.lines, f"{name}: a page without lines"
        for line in page.lines:
            assert line.words, "an empty line"
            for word in line.words:
                assert word.text
                assert word.text == word.text.strip()
                assert 0.0 <= word.confidence <= 1.0
                assert len(word.vertices) == 4
                for x, y in word.vertices:
                    assert isinstance(x, int)
                    assert isinstance(y, int)
                    assert 0 <= x < page.width
                    assert 0 <= y < page.height


@pytest.mark.parametrize("name", list(MIN_FOUND) + list(MIN_FOUND_KOREAN))
def test_agreement_with_upstage(
    name: str, engine: TesseractEngine, sample_pages: dict[str, list[EnginePage]], samples_dir: Path
) -> None:
    if name in MIN_FOUND_KOREAN:
        assert kor_available(engine), MISSING_KOR
    floor = {**MIN_FOUND, **MIN_FOUND_KOREAN}[name]
    reference = json.loads((samples_dir / (Path(name).stem + ".ocr.json")).read_text())
    candidate = build_ocr_response(sample_pages[name], model_version="test")
    result = agreement.score(reference, candidate)
    assert result.ratio >= floor, f"{name}: found {result.found}/{result.total}"
    assert result.mean_iou >= 0.75


def test_pdf_page_with_text_layer_is_read_from_it(sample_pages: dict[str, list[EnginePage]]) -> None:
    first, second, third = sample_pages["multi_page.pdf"]
    assert all(w.confidence == 1.0 for w in words(first))  # straight from the text layer
    assert texts(first)[:3] == ["(FT", "1)", "The"]  # the real text, even where it is 3 px tall
    assert "windowpane," in texts(first)
    # The recipe and the screenshot are pictures: rendered and OCRed.
    assert all(w.confidence < 1.0 for w in words(second) + words(third))


def test_check_boxes_read_as_upstage_does(sample_pages: dict[str, list[EnginePage]]) -> None:
    (page,) = sample_pages["check_box.png"]
    lines = [" ".join(line_texts) for line_texts in ([w.text for w in line.words] for line in page.lines)]
    assert "□ Bacon" in lines
    assert texts(page).count("□") >= 8


# --- geometry ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upright_scan(engine: TesseractEngine, scan: Image.Image) -> EnginePage:
    return engine.ocr(scan)


# Where a pixel of a W x H image lands when Pillow turns it counter-clockwise (expand=True).
TURNS = {
    90: lambda x, y, w, h: (y, w - x),  # text reads bottom to top: OSD finds the turn
    180: lambda x, y, w, h: (w - x, h - y),  # upside down: OSD again
    270: lambda x, y, w, h: (h - y, x),  # top to bottom: Tesseract reads it as a vertical block
}


@pytest.mark.parametrize("angle", sorted(TURNS))
def test_turned_image_gives_turned_quads_in_its_own_frame(
    engine: TesseractEngine, scan: Image.Image, upright_scan: EnginePage, angle: int
) -> None:
    turned = engine.ocr(scan.rotate(angle, expand=True))
    size = scan.size if angle == 180 else (scan.height, scan.width)
    assert (turned.width, turned.height) == size
    assert {"windowpane,", "curious", "raindrops"} <= set(texts(turned))
    # Each word's quad is the upright quad carried along, corner for corner: the first vertex is
    # still the word's own top-left, wherever that now is on the page.
    unique = {w.text: w for w in words(upright_scan) if texts(upright_scan).count(w.text) == 1}
    compared = 0
    for word in words(turned):
        if word.text in unique:
            compared += 1
            expected = [TURNS[angle](x, y, scan.width, scan.height) for x, y in unique[word.text].vertices]
            for (x, y), (ex, ey) in zip(word.vertices, expected, strict=True):
                assert max(abs(x - ex), abs(y - ey)) <= 4, (word.text, word.vertices, expected)
    assert compared >= 3


def _turn_point(
    x: float, y: float, size: tuple[int, int], turned: tuple[int, int], degrees: float
) -> tuple[float, float]:
    """Where a point of an image of ``size`` lands when Pillow turns it by ``degrees`` (expand=True)."""
    theta = math.radians(degrees)
    dx, dy = x - size[0] / 2, y - size[1] / 2
    return (
        turned[0] / 2 + math.cos(theta) * dx + math.sin(theta) * dy,
        turned[1] / 2 - math.sin(theta) * dx + math.cos(theta) * dy,
    )


@pytest.mark.parametrize("angle", [30, -30, 12, -5])
def test_skewed_image_gives_quads_along_the_words(
    engine: TesseractEngine, scan: Image.Image, upright_scan: EnginePage, angle: int
) -> None:
    photo = scan.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    turned = engine.ocr(photo)
    assert (turned.width, turned.height) == photo.size
    assert {"windowpane,", "curious", "raindrops"} <= set(texts(turned))

    # Every vertex is the upright word's vertex turned with the page: the quad leans with the
    # word, and its first vertex is the word's own top-left. Words pair up by their text and
    # how many times it came before (both readings go in the same order).
    def keyed(page: EnginePage) -> dict[tuple[str, int], EngineWord]:
        seen: dict[str, int] = {}
        out = {}
        for word in words(page):
            seen[word.text] = seen.get(word.text, 0) + 1
            out[(word.text, seen[word.text])] = word
        return out

    upright = keyed(upright_scan)
    compared = 0
    for key, word in keyed(turned).items():
        if key in upright:
            compared += 1
            expected = [_turn_point(x, y, scan.size, photo.size, angle) for x, y in upright[key].vertices]
            for (x, y), (ex, ey) in zip(word.vertices, expected, strict=True):
                assert math.hypot(x - ex, y - ey) <= 5, (word.text, word.vertices, expected)
    assert compared >= 10


@pytest.mark.parametrize("angle", [30, -17])
def test_sample_photographed_askew_agrees_with_upstage(
    engine: TesseractEngine, samples_dir: Path, angle: int
) -> None:
    """dpi_150.jpg on a grey desk at an angle, scored against Upstage's words turned with it."""
    reference = json.loads((samples_dir / "dpi_150.ocr.json").read_text())
    name, data, turned_reference = agreement.turned(samples_dir / "dpi_150.jpg", reference, angle)
    document = engine.open(data, name)
    try:
        pages = [document.page(i) for i in range(document.page_count)]
    finally:
        document.close()
    result = agreement.score(turned_reference, build_ocr_response(pages, model_version="test"))
    assert result.ratio >= MIN_FOUND["dpi_150.jpg"], f"found {result.found}/{result.total}"


def test_skew_estimate(scan: Image.Image, samples_dir: Path) -> None:
    for angle in (-40, -30, -3, 2, 8, 30, 44):
        photo = scan.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        assert estimate_skew(photo) == pytest.approx(-angle, abs=0.5), angle
    # Nothing to straighten: a blank page, a page of noise, and the upright samples (the fast path).
    assert estimate_skew(Image.new("L", (800, 600), 255)) == 0.0
    noise = Image.effect_noise((800, 600), 64)
    assert estimate_skew(noise) == 0.0
    for name in ("dpi_150.jpg", "check_box.png", "water_mark.jpg"):
        with Image.open(samples_dir / name) as image:
            assert abs(estimate_skew(image.convert("L"))) < SKEW_MIN_DEGREES, name


def _shaded_photo(scan: Image.Image) -> Image.Image:
    """The scan on a dark desk, lit from one side: grey print on paper that fades to shadow."""
    import numpy as np

    page = np.asarray(scan, dtype=np.float32)
    light = np.linspace(1.0, 0.35, page.shape[1], dtype=np.float32)[None, :]
    print_grey = 140 + page * (115 / 255)  # thermal print: ink at 140, not black
    desk = np.full((page.shape[0] + 200, page.shape[1] + 200), 60, dtype=np.float32)
    desk[100:-100, 100:-100] = print_grey * light
    return Image.fromarray(desk.astype(np.uint8), "L")


def test_uneven_light_is_evened_and_read(engine: TesseractEngine, scan: Image.Image) -> None:
    assert flatten(scan) is None  # an even scan takes the fast path
    photo = _shaded_photo(scan)
    even = flatten(photo)
    assert even is not None
    import numpy as np

    pixels = np.asarray(even)
    assert pixels[:50, :50].min() == 255  # the desk is gone
    ink = np.asarray(scan) < 100
    assert np.median(pixels[100:-100, 100:-100][ink]) < 100  # print is dark, even in the shadow
    assert np.median(pixels[100:-100, 100:-100][~ink]) > 200
    expected = set(texts(engine.ocr(scan)))
    found = len(expected & set(texts(engine.ocr(photo))))
    assert found >= 0.8 * len(expected), (found, len(expected))


def test_hangul_join_gap_follows_the_line() -> None:
    # Syllable gaps and word gaps in two clear groups: the cut falls between them.
    assert join_gap([0.05, 0.1, 0.12, 0.45, 0.5]) == pytest.approx((0.12 + 0.45) / 2)
    # Too few gaps, or no clear jump in range: the default.
    assert join_gap([0.1, 0.6]) == HANGUL_JOIN_GAP
    assert join_gap([0.1, 0.12, 0.14, 0.16]) == HANGUL_JOIN_GAP
    assert join_gap([0.6, 0.62, 0.64, 1.2]) == HANGUL_JOIN_GAP  # the jumps fall out of range


def test_blank_page_has_no_lines(engine: TesseractEngine) -> None:
    page = engine.ocr(Image.new("L", (300, 200), 255))
    assert (page.width, page.height, page.lines) == (300, 200, ())


# --- PDFs ------------------------------------------------------------------------------------


def make_pdf(text: str, *, x: float = 72, y: float = 700, size: float = 24, rotate: int = 0) -> bytes:
    """A one-page Letter PDF with one line of Helvetica at (x, y), written by hand."""
    content = f"BT /F1 {size} Tf {x} {y} Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Rotate %d "
            b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>" % rotate
        ),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_text_layer_words_land_where_they_are_drawn(engine: TesseractEngine) -> None:
    document = engine.open(make_pdf("Hello emulator world"), "hello.pdf")
    assert document.page_count == 1
    page = document.page(0)
    document.close()
    assert (page.width, page.height) == (1275, 1650)  # Letter at 150 DPI
    assert [[w.text for w in line.words] for line in page.lines] == [["Hello", "emulator", "world"]]
    hello = words(page)[0]
    assert hello.confidence == 1.0
    (left, top), (right, _), (_, bottom), _ = hello.vertices
    baseline = (792 - 700) * 150 / 72  # 191.7 px from the top
    assert abs(left - 150) <= 3  # x = 72 pt
    assert top < baseline - 25 < baseline <= bottom + 3  # 24 pt caps stand ~36 px above the baseline
    assert 95 <= right - left <= 130  # "Hello" in 24 pt Helvetica is ~56 pt wide


def test_pdf_page_rotation_turns_the_quads(engine: TesseractEngine) -> None:
    flat = engine.open(make_pdf("Hello emulator world"), "flat.pdf").page(0)
    turned = engine.open(make_pdf("Hello emulator world", rotate=90), "turned.pdf").page(0)
    assert (turned.width, turned.height) == (flat.height, flat.width)
    # /Rotate 90 shows the page turned clockwise: (x, y) -> (H - y, x).
    for a, b in zip(words(flat), words(turned), strict=True):
        assert a.text == b.text
        for (x, y), (tx, ty) in zip(a.vertices, b.vertices, strict=True):
            assert abs((flat.height - 1 - y) - tx) <= 2
            assert abs(x - ty) <= 2


def test_damaged_pdf_is_unreadable(engine: TesseractEngine) -> None:
    with pytest.raises(UnreadableDocumentError, match="PDF cannot be read"):
        engine.open(b"%PDF-1.4\n" + b"\x00garbage" * 50, "broken.pdf")


# --- other image formats --------------------------------------------------------------------


def test_multi_frame_tiff(engine: TesseractEngine, scan: Image.Image) -> None:
    top, bottom = scan.crop((0, 0, scan.width, 150)), scan.crop((0, 150, scan.width, 300))
    data = encode(top, "TIFF", save_all=True, append_images=[bottom], compression="tiff_lzw")
    document = engine.open(data, "two.tiff")
    assert document.page_count == 2
    first, second = document.page(0), document.page(1)
    document.close()
    assert (first.width, first.height) == (second.width, second.height) == (scan.width, 150)
    assert "(FT" in texts(first)
    assert "14)" in texts(first)
    assert "15)" in texts(second) or "16)" in texts(second)


def test_heic(engine: TesseractEngine, scan: Image.Image) -> None:
    data = encode(scan.convert("RGB"), "HEIF", quality=90)
    page = engine.open(data, "photo.heic").page(0)
    assert (page.width, page.height) == scan.size
    assert {"curious", "watched", "raindrops"} <= set(texts(page))


def test_transparent_png_is_read_on_white(engine: TesseractEngine, scan: Image.Image) -> None:
    # Ink as opaque black, paper fully transparent (black underneath): naive grey conversion sees nothing.
    alpha = scan.point(lambda v: 255 if v < 128 else 0)
    rgba = Image.merge("RGBA", (*Image.new("RGB", scan.size, 0).split(), alpha))
    page = engine.open(encode(rgba, "PNG"), "clear.png").page(0)
    assert "windowpane," in texts(page)


def test_unsupported_format(engine: TesseractEngine) -> None:
    with pytest.raises(UnsupportedFormatError, match="GIF"):
        engine.open(encode(Image.new("P", (10, 10)), "GIF"), "anim.gif")


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels: enough for a size check."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [15_000, 40_000])
def test_pages_over_the_pixel_limit_are_refused(engine: TesseractEngine, side: int) -> None:
    assert side * side > MAX_PAGE_PIXELS
    with pytest.raises(UnreadableDocumentError, match="200 million pixels"):
        engine.open(png_header(side, side), "poster.png").page(0)


def test_a_legal_page_over_pillows_own_guard_is_opened_without_touching_its_global() -> None:
    """180M pixels: under the API's 200M, over Pillow's ~179M decompression-bomb guard."""
    import subprocess
    import warnings

    script = (
        "from PIL import Image\n"
        "before = Image.MAX_IMAGE_PIXELS\n"
        "import upstage_provider.emulator.engine\n"
        "print(before == Image.MAX_IMAGE_PIXELS)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr[-2000:]

    from upstage_provider.emulator.engine import _open_image

    assert 2 * Image.MAX_IMAGE_PIXELS < 15_000 * 12_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with _open_image(png_header(15_000, 12_000)) as image:
            assert image.size == (15_000, 12_000)
    with pytest.raises(OSError, match="cannot identify"):
        _open_image(b"not an image at all")


def test_pdf_page_over_the_pixel_limit_is_refused(engine: TesseractEngine) -> None:
    big = make_pdf("x").replace(b"[0 0 612 792]", b"[0 0 14400 14400]")
    with pytest.raises(UnreadableDocumentError, match=r"page 1 at 150 DPI is 30000 x 30000"):
        engine.open(big, "poster.pdf").page(0)


# --- office documents ------------------------------------------------------------------------


def make_docx(paragraphs: Sequence[str]) -> bytes:
    """The smallest DOCX Word and LibreOffice open: content types, one relationship, the body."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(f'<w:p><w:r><w:t xml:space="preserve">{p}</w:t></w:r></w:p>' for p in paragraphs)
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Target="word/document.xml" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
            "</Relationships>"
        ),
        "word/document.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{w}">'
            f"<w:body>{body}</w:body></w:document>"
        ),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def make_hwpx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/hwp+zip")
        archive.writestr("META-INF/container.xml", "<container/>")
        archive.writestr("Contents/section0.xml", "<sec>hello</sec>")
    return buffer.getvalue()


def test_docx_is_rendered_by_libreoffice_and_read_from_its_text_layer(engine: TesseractEngine) -> None:
    assert SOFFICE, MISSING_SOFFICE
    document = engine.open(make_docx(["Quarterly report draft", "Second paragraph, with commas."]), "r.docx")
    assert document.page_count == 1
    page = document.page(0)
    document.close()
    assert (page.width, page.height) in {(1240, 1754), (1275, 1650)}  # A4 or Letter at 150 DPI
    assert [[w.text for w in line.words] for line in page.lines] == [
        ["Quarterly", "report", "draft"],
        ["Second", "paragraph,", "with", "commas."],
    ]
    assert all(w.confidence == 1.0 for w in words(page))


def test_office_conversions_run_side_by_side(engine: TesseractEngine) -> None:
    assert SOFFICE, MISSING_SOFFICE

    # Each conversion has its own LibreOffice profile: no lock on a shared one, no cross-talk.
    def convert(word: str) -> list[str]:
        document = engine.open(make_docx([f"Document {word}"]), f"{word}.docx")
        try:
            return texts(document.page(0))
        finally:
            document.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(convert, ["alpha", "bravo"])) == [["Document", "alpha"], ["Document", "bravo"]]


def test_office_document_without_libreoffice_says_what_to_install() -> None:
    engine = TesseractEngine(soffice=None)
    with pytest.raises(UnreadableDocumentError) as caught:
        engine.open(make_docx(["hello"]), "letter.docx")
    message = str(caught.value)
    assert "DOCX needs LibreOffice to be rendered" in message
    assert "no `soffice` on PATH" in message
    assert "apt-get install libreoffice-writer-nogui" in message


def test_hwpx_is_refused_with_the_reason(engine: TesseractEngine) -> None:
    assert SOFFICE, MISSING_SOFFICE
    with pytest.raises(UnreadableDocumentError, match="HWPX") as caught:
        engine.open(make_hwpx(), "memo.hwpx")
    assert "save it as PDF or DOCX" in str(caught.value)


def test_hwp5_is_refused_before_starting_libreoffice() -> None:
    ole_header = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)
    with pytest.raises(office.OfficeConversionError, match="HWP 5 document, which LibreOffice cannot render"):
        office.convert_to_pdf(ole_header, "HWP", soffice="/nonexistent/soffice")


# --- configuration and threads --------------------------------------------------------------


def test_languages_option_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TesseractEngine(languages="eng").retry_languages is None
    monkeypatch.setenv("UPSTAGE_EMULATOR_LANGS", "eng")
    assert (TesseractEngine().languages, TesseractEngine().retry_languages) == ("eng", None)
    with pytest.raises(ValueError, match="apt-get install tesseract-ocr-xyz"):
        TesseractEngine(languages="eng+xyz")


def test_korean_is_used_when_installed(
    engine: TesseractEngine, sample_pages: dict[str, list[EnginePage]]
) -> None:
    assert kor_available(engine), MISSING_KOR
    (page,) = sample_pages["water_mark.jpg"]
    assert texts(page)[:4] == ["한글에서", "워터마크를", "입력하는", "방법"]


def test_pages_read_concurrently_match_one_thread(engine: TesseractEngine, scan: Image.Image) -> None:
    frames = [scan.crop((0, 60 * i, scan.width, 60 * i + 120)) for i in range(4)]
    data = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    document = engine.open(data, "frames.tiff")
    alone = [document.page(i) for i in range(4)]
    barrier = threading.Barrier(4)

    def read(index: int) -> EnginePage:
        barrier.wait()  # start together, each on its own thread's Tesseract
        return document.page(index)

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(read, range(4)))
    document.close()
    assert together == alone
    assert all(page.lines for page in alone)


def test_pdf_pages_read_concurrently(
    engine: TesseractEngine, samples_dir: Path, sample_pages: dict[str, list[EnginePage]]
) -> None:
    document = engine.open((samples_dir / "multi_page.pdf").read_bytes(), "multi_page.pdf")
    with ThreadPoolExecutor(max_workers=3) as pool:  # PDFium under its lock, OCR in parallel
        pages = list(pool.map(document.page, [2, 1, 0]))
    document.close()
    assert pages[::-1] == sample_pages["multi_page.pdf"]
