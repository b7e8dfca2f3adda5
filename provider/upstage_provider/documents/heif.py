"""A minimal ISO base media (HEIF) box parser: the primary image's displayed size from `meta`."""

from __future__ import annotations

import struct
from collections.abc import Iterator


class _BoxError(Exception):
    pass


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """ISO BMFF boxes in ``data[start:end]`` as (type, payload start, box end)."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise _BoxError(f"'{kind.decode('latin-1')}' box is cut short")
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise _BoxError(f"'{kind.decode('latin-1')}' box overruns its container")
        yield kind, pos + header, pos + size
        pos += size


def _heic_primary_size(data: bytes) -> tuple[int, int] | None:
    """The primary image's displayed size: `ispe`, then `clap` and `irot` as associated in order.

    None for image sequences (no `meta`, only tracks): their frames are not pages we can size.
    """
    has_tracks = False
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind == b"meta":
            return _heic_meta_size(data, start + 4, end)  # a full box: skip version and flags
        has_tracks = has_tracks or kind == b"moov"
    if has_tracks:
        return None
    raise _BoxError("no 'meta' box")


def _heic_meta_size(data: bytes, start: int, end: int) -> tuple[int, int]:
    primary: int | None = None
    properties: list[tuple[bytes, int, int]] = []
    associations: dict[int, list[int]] = {}
    for kind, p, box_end in _boxes(data, start, end):
        if kind == b"pitm":
            primary = struct.unpack_from(">H" if data[p] == 0 else ">I", data, p + 4)[0]
        elif kind == b"iprp":
            for sub, q, sub_end in _boxes(data, p, box_end):
                if sub == b"ipco":
                    properties = list(_boxes(data, q, sub_end))
                elif sub == b"ipma":
                    associations.update(_parse_ipma(data, q))
    if primary in associations:
        chosen = [properties[i - 1] for i in associations[primary] if 0 < i <= len(properties)]
    else:
        chosen = properties[:]
    width = height = 0
    for kind, p, _ in chosen:
        if kind == b"ispe" and not width:
            width, height = struct.unpack_from(">II", data, p + 4)
        elif kind == b"clap" and width:
            wn, wd, hn, hd = struct.unpack_from(">IIII", data, p)
            if wd and hd:
                width, height = round(wn / wd), round(hn / hd)
        elif kind == b"irot" and width and data[p] & 1:
            width, height = height, width
    if not width:
        raise _BoxError("no image size ('ispe') for the primary image")
    return width, height


def _parse_ipma(data: bytes, p: int) -> dict[int, list[int]]:
    version, flags = data[p], int.from_bytes(data[p + 1 : p + 4], "big")
    (count,) = struct.unpack_from(">I", data, p + 4)
    pos, out = p + 8, {}
    for _ in range(count):
        if version < 1:
            (item,) = struct.unpack_from(">H", data, pos)
            pos += 2
        else:
            (item,) = struct.unpack_from(">I", data, pos)
            pos += 4
        n = data[pos]
        pos += 1
        indices = []
        for _ in range(n):
            if flags & 1:
                (value,) = struct.unpack_from(">H", data, pos)
                indices.append(value & 0x7FFF)
                pos += 2
            else:
                indices.append(data[pos] & 0x7F)
                pos += 1
        out[item] = indices
    return out
