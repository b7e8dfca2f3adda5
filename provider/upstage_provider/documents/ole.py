"""A minimal reader of OLE2 compound files ([MS-CFB]): list stream names, read a stream's start.

Enough to tell an HWP 5 document from the old Office formats without a third-party parser.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple


class _OleError(Exception):
    pass


class _OleEntry(NamedTuple):
    start: int
    size: int


_OLE_END_OF_CHAIN = 0xFFFFFFFE


class _OleFile:
    """Just enough of [MS-CFB] to list stream names and read the start of one stream."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 512:
            raise _OleError("shorter than its 512-byte header")
        self.data = data
        (sector_shift, mini_shift) = struct.unpack_from("<HH", data, 30)
        if sector_shift not in (9, 12) or mini_shift != 6:
            raise _OleError(f"sector shifts {sector_shift}/{mini_shift} are not valid")
        self.sector_size = 1 << sector_shift
        self.mini_size = 1 << mini_shift
        (n_fat, self.first_dir, _, self.mini_cutoff, self.first_minifat, _, first_difat, n_difat) = (
            struct.unpack_from("<IIIIIIII", data, 44)
        )
        self.max_sectors = max(0, (len(data) - self.sector_size) // self.sector_size)
        self.fat = self._read_fat(n_fat, first_difat, n_difat)
        self._minifat: list[int] | None = None
        self._ministream: bytes | None = None
        self.root = _OleEntry(0, 0)

    def _sector(self, index: int) -> bytes:
        if index >= self.max_sectors:
            raise _OleError(f"sector {index} is past the end of the file")
        offset = (index + 1) * self.sector_size
        return self.data[offset : offset + self.sector_size]

    def _read_fat(self, n_fat: int, first_difat: int, n_difat: int) -> list[int]:
        if n_fat > self.max_sectors:
            raise _OleError(f"{n_fat} FAT sectors claimed in a file of {self.max_sectors}")
        fat_sectors = [s for s in struct.unpack_from("<109I", self.data, 76) if s < _OLE_END_OF_CHAIN - 3]
        per_sector = self.sector_size // 4
        difat, seen = first_difat, 0
        while difat < _OLE_END_OF_CHAIN - 3 and seen < min(n_difat, self.max_sectors):
            entries = struct.unpack(f"<{per_sector}I", self._sector(difat))
            fat_sectors.extend(s for s in entries[:-1] if s < _OLE_END_OF_CHAIN - 3)
            difat, seen = entries[-1], seen + 1
        fat: list[int] = []
        for sector in fat_sectors[:n_fat]:
            fat.extend(struct.unpack(f"<{per_sector}I", self._sector(sector)))
        return fat

    def _chain(self, start: int, table: list[int]) -> Iterator[int]:
        current, steps = start, 0
        while current != _OLE_END_OF_CHAIN:
            if current >= len(table) or steps > len(table):
                raise _OleError(f"broken sector chain at {current}")
            yield current
            current, steps = table[current], steps + 1

    def _read_chain(self, start: int, limit: int) -> bytes:
        out = bytearray()
        for sector in self._chain(start, self.fat):
            out += self._sector(sector)
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    def streams(self) -> dict[str, _OleEntry]:
        """Every stream's name (the directory is flat enough for what we look for)."""
        directory = self._read_chain(self.first_dir, len(self.data))
        found: dict[str, _OleEntry] = {}
        for offset in range(0, len(directory) - 127, 128):
            raw_name, name_len, kind = struct.unpack_from("<64sHB", directory, offset)
            start, size = struct.unpack_from("<IQ", directory, offset + 116)
            if self.sector_size == 512:
                size &= 0xFFFFFFFF  # version 3 files leave the high half undefined
            entry = _OleEntry(start, size)
            if kind == 5:
                self.root = entry
            elif kind == 2 and 2 <= name_len <= 64:
                found[raw_name[: name_len - 2].decode("utf-16-le", "replace")] = entry
        return found

    def read(self, entry: _OleEntry, limit: int) -> bytes:
        """The first ``limit`` bytes of a stream, from the mini stream when it is small."""
        limit = min(limit, entry.size)
        if entry.size >= self.mini_cutoff:
            return self._read_chain(entry.start, limit)
        if self._minifat is None:
            raw = self._read_chain(self.first_minifat, len(self.data))
            self._minifat = list(struct.unpack(f"<{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
            self._ministream = self._read_chain(self.root.start, self.root.size)
        assert self._ministream is not None
        out = bytearray()
        for mini in self._chain(entry.start, self._minifat):
            offset = mini * self.mini_size
            if offset + self.mini_size > len(self._ministream):
                raise _OleError(f"mini sector {mini} is past the end of the mini stream")
            out += self._ministream[offset : offset + self.mini_size]
            if len(out) >= limit:
                break
        return bytes(out[:limit])
