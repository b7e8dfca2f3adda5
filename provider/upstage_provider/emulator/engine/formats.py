"""Which bytes the engine reads and how big a page may be: format sniffing, decoding, the pixel limit."""

from __future__ import annotations

import io
import struct

from PIL import Image

from upstage_provider.documents import DocumentFormat, detect_format
from upstage_provider.emulator.engine.interface import UnreadableDocumentError, UnsupportedFormatError
from upstage_provider.exceptions import DocumentError, UnsupportedDocumentError

#: The API's per-page limit (non-image files counted as rendered at 150 DPI).
MAX_PAGE_PIXELS = 200_000_000


def open_image(data: bytes) -> Image.Image:
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
    HEIF_ERROR: str | None = None
except ImportError:  # pragma: no cover - pillow-heif is part of the emulator extra
    HEIF_ERROR = "HEIC needs pillow-heif (pip install pillow-heif)"


def sniff_format(data: bytes, filename: str) -> DocumentFormat:
    """The format by content, with the provider's own sniffer, its errors turned into the engine's."""
    try:
        return detect_format(data, filename)
    except UnsupportedDocumentError as exc:
        raise UnsupportedFormatError(str(exc)) from exc
    except DocumentError as exc:
        raise UnreadableDocumentError(str(exc)) from exc


def check_pixels(width: int, height: int, where: str = "the page") -> None:
    """The API's per-page pixel limit, checked before anything is decoded or rendered."""
    if width * height > MAX_PAGE_PIXELS:
        raise UnreadableDocumentError(
            f"{where} is {width} x {height} = {width * height / 1e6:.0f} million pixels, over the limit "
            f"of {MAX_PAGE_PIXELS // 1_000_000} million pixels per page; scale it down"
        )
    if width < 1 or height < 1:
        raise UnreadableDocumentError(f"{where} has no pixels")
