"""The tesserocr wrapper: a pool of Tesseract APIs, and one pass's lines and picture regions read out."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from PIL import Image, ImageOps

from upstage_provider.emulator.engine.checkboxes import find_check_boxes
from upstage_provider.emulator.engine.interface import UnreadableDocumentError
from upstage_provider.emulator.engine.raw import Box, RawLine, RawWord, Reading
from upstage_provider.emulator.engine.tuning import MIN_ORIENTATION_CONFIDENCE

log = logging.getLogger(__name__)


class TesseractPool:
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

    def read(self, image: Image.Image, lang: str, *, sparse: bool = False, dpi: int = 300) -> Reading:
        """Lines in Tesseract's reading order, with the picture regions its layout skipped in place."""
        from tesserocr import PSM

        with self.api(lang) as api:
            api.SetPageSegMode(PSM.SPARSE_TEXT if sparse else PSM.AUTO)
            _set_image(api, image, dpi)
            api.Recognize()
            return collect(api)

    def read_line(self, image: Image.Image, box: Box, lang: str, dpi: int) -> RawLine:
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
            reading = collect(api)
        return [_shift(w, left, top) for item in reading if isinstance(item, list) for w in item]

    def read_region(self, image: Image.Image, box: Box, lang: str, dpi: int) -> list[RawLine]:
        """Read a picture region as sparse text: Tesseract's page layout leaves text in pictures out."""
        from tesserocr import PSM

        left, top, right, bottom = (int(v) for v in box)
        with self.api(lang) as api:
            api.SetPageSegMode(PSM.SPARSE_TEXT)
            _set_image(api, image.crop((left, top, right, bottom)), dpi)
            api.Recognize()
            reading = collect(api)
        return [[_shift(w, left, top) for w in item] for item in reading if isinstance(item, list)]

    def orientation(self, image: Image.Image, dpi: int) -> int:
        """Degrees the page is turned clockwise (0, 90, 180, 270); 0 when OSD is unsure or fails."""
        with self.api("osd") as api:
            _set_image(api, image, dpi)
            try:
                found = api.DetectOrientationScript()
            except RuntimeError:
                found = None
        if not found or found.get("orient_conf", 0.0) < MIN_ORIENTATION_CONFIDENCE:
            return 0
        return int(found["orient_deg"]) % 360


def _set_image(api: Any, image: Image.Image, dpi: int) -> None:
    api.SetImageBytes(image.tobytes(), image.width, image.height, 1, image.width)
    api.SetSourceResolution(dpi)


def _shift(word: RawWord, dx: float, dy: float) -> RawWord:
    left, top, right, bottom = word.box
    return RawWord(word.text, word.confidence, (left + dx, top + dy, right + dx, bottom + dy), word.turns)


def collect(api: Any) -> Reading:
    """The recognised lines, block by block, with a box in place of each picture block."""
    from tesserocr import PT, RIL, iterate_level

    iterator = api.GetIterator()
    if iterator is None:
        return []
    pictures = (PT.FLOWING_IMAGE, PT.HEADING_IMAGE, PT.PULLOUT_IMAGE)
    blocks: list[tuple[bool, Box]] = []
    for block in iterate_level(iterator, RIL.BLOCK):
        box = block.BoundingBox(RIL.BLOCK)
        if box:
            blocks.append((block.BlockType() in pictures, tuple(float(v) for v in box)))  # type: ignore[arg-type]
    ink = api.GetThresholdedImage()
    by_block: dict[Box, list[RawLine]] = {}
    iterator = api.GetIterator()
    current: RawLine = []
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
            current.append(RawWord(text.strip(), confidence, _snap_to_ink(ink, box), turns))
        if not iterator.Next(RIL.WORD):
            break
    if ink is not None:
        find_check_boxes(ImageOps.invert(ink), [line for lines in by_block.values() for line in lines])
    reading: Reading = []
    for is_picture, box in blocks:
        if is_picture:
            reading.append(box)
        else:
            reading.extend(line for line in by_block.pop(box, []) if line)
    reading.extend(line for lines in by_block.values() for line in lines if line)
    return reading


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


def _snap_to_ink(ink: Image.Image | None, box: tuple[int, int, int, int]) -> Box:
    """Shrink a word's box to the dark pixels inside it (Tesseract's CJK boxes run loose)."""
    left, top, right, bottom = box
    if ink is not None and right > left and bottom > top:
        found = ImageOps.invert(ink.crop(box)).getbbox()
        if found:
            return (left + found[0], top + found[1], left + found[2], top + found[3])
    return (float(left), float(top), float(right), float(bottom))
