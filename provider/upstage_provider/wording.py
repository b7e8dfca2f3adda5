"""Units and plurals in messages: one home, so every message says MiB and "1 page", not "1 pages"."""

from __future__ import annotations

_MIB = 1024 * 1024


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``plural(1, "page")`` is "1 page", ``plural(1200, "page")`` is "1,200 pages"."""
    word = noun if count == 1 else (plural_noun or f"{noun}s")
    return f"{count:,} {word}"


def mib_limit(size: int) -> str:
    """A limit as people read it: "50 MiB", or the exact bytes when it is no whole MiB."""
    return f"{size // _MIB} MiB" if size % _MIB == 0 else f"{size:,} bytes"


def mib(size: int) -> str:
    """A measured size with its exact bytes: "52.3 MiB (54,840,000 bytes)"."""
    return f"{size / _MIB:.1f} MiB ({size:,} bytes)"
