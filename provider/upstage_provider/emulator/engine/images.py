"""Raster documents: image files, TIFF and HEIC frames as pages, decoded per page and OCRed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from PIL import Image, ImageOps

from upstage_provider.emulator.engine.formats import check_pixels, open_image
from upstage_provider.emulator.engine.interface import EnginePage, RasterReader, UnreadableDocumentError


class ImageDocument:
    """A raster file; TIFF and HEIC may hold several pages (frames)."""

    def __init__(self, engine: RasterReader, data: bytes, filename: str) -> None:
        self._engine, self._data, self._filename = engine, data, filename
        with self._frame(0) as first:
            self.page_count = max(1, int(getattr(first, "n_frames", 1)))

    @contextlib.contextmanager
    def _frame(self, index: int) -> Iterator[Image.Image]:
        # Each call decodes from the bytes: PIL images are not safe to seek from several threads.
        try:
            with open_image(self._data) as image:
                if index:
                    image.seek(index)
                check_pixels(image.width, image.height, where=f"{self._filename}: page {index + 1}")
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
