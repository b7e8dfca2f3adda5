"""The emulator's rate limits: requests per second, per minute and pages per minute, per API key.

Upstage documents its limits per organization and per model, as RPS, RPM and PPM; going over
answers 429. Only model calls count, the billed ones: sync OCR and async submissions. Status
calls, request lists and result downloads are not model calls and are never limited here.

Each key has a sliding window of the calls it was let through (when, how many pages): a call is
let through when every enabled limit has room for it over the last second (RPS) and the last
minute (RPM, PPM), and is then counted. A refused call counts nothing, so a client that waits
as it is told is never locked out. A document with more pages than the whole PPM allowance is
let through alone, once the minute holds no other pages, and is counted in full.

The answer's headers are the emulator's own (Upstage's names are not documented): on a counted
call ``X-RateLimit-Limit-<RPS|RPM|PPM>`` and ``X-RateLimit-Remaining-<RPS|RPM|PPM>`` for each
enabled limit; on a 429 also ``Retry-After`` (whole seconds, at least 1, until the call would be
let through), ``X-RateLimit-Reset`` (the same in fractional seconds) and ``X-RateLimit-Scope``
(the limit that refused it: ``rps``, ``rpm`` or ``ppm``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from upstage_provider.emulator.errors import ApiError
from upstage_provider.emulator.limits import check_pages

#: The limits, each with the window it counts over, in seconds.
WINDOWS: dict[str, float] = {"rps": 1.0, "rpm": 60.0, "ppm": 60.0}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call was refused: the limit, its value, and how long until the call would pass."""

    scope: str
    limit: int
    wait: float  # seconds until the call would be let through

    @property
    def retry_after(self) -> int:
        """``Retry-After`` in whole seconds, rounded up and at least 1, as the header takes it."""
        return max(1, math.ceil(self.wait - 1e-9))

    @property
    def message(self) -> str:
        unit = {"rps": "requests per second", "rpm": "requests per minute", "ppm": "pages per minute"}
        return (
            f"Too many requests: rate limit of {self.limit} {unit[self.scope]} for this API key exceeded; "
            f"retry after {self.retry_after} s"
        )

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after),
            "X-RateLimit-Reset": f"{max(self.wait, 0.0):.3f}",
            "X-RateLimit-Scope": self.scope,
        }


class RateLimiter:
    """Per-key sliding windows; ``0`` turns a limit off. Thread-safe."""

    def __init__(
        self, rps: int = 0, rpm: int = 0, ppm: int = 0, *, now: Callable[[], float] = time.monotonic
    ):
        self.limits = {"rps": int(rps), "rpm": int(rpm), "ppm": int(ppm)}
        self._now = now
        self._lock = threading.Lock()
        self._calls: dict[str, deque[tuple[float, int]]] = {}
        enabled = [WINDOWS[scope] for scope, limit in self.limits.items() if limit > 0]
        self._horizon = max(enabled, default=0.0)

    @property
    def enabled(self) -> bool:
        return self._horizon > 0

    @property
    def counts_pages(self) -> bool:
        return self.limits["ppm"] > 0

    def admit(self, key: str, pages: int = 1) -> tuple[Refusal | None, dict[str, str]]:
        """
        Let one call of ``pages`` pages through (and count it) or refuse it; with the answer's
        rate-limit headers either way.
        """
        if not self.enabled:
            return None, {}
        pages = max(1, int(pages))
        with self._lock:
            now = self._now()
            calls = self._calls.setdefault(key, deque())
            while calls and calls[0][0] <= now - self._horizon:
                calls.popleft()
            refusals = [r for r in (self._check(scope, calls, now, pages) for scope in WINDOWS) if r]
            if refusals:
                refusal = max(refusals, key=lambda r: r.wait)
                return refusal, {**self._usage(calls, now), **refusal.headers()}
            calls.append((now, pages))
            return None, self._usage(calls, now)

    def _check(self, scope: str, calls: deque[tuple[float, int]], now: float, pages: int) -> Refusal | None:
        limit = self.limits[scope]
        if limit <= 0:
            return None
        window = WINDOWS[scope]
        recent = [(at, n) for at, n in calls if at > now - window]
        if scope == "ppm":
            used = sum(n for _, n in recent)
            if used == 0 or used + pages <= limit:
                return None
            # Wait until enough of the oldest calls leave the window for these pages to fit.
            for at, n in recent:
                used -= n
                if used == 0 or used + pages <= limit:
                    return Refusal(scope, limit, at + window - now)
            raise AssertionError("unreachable: the window empties eventually")
        if len(recent) < limit:
            return None
        # The call fits once all but limit - 1 of the recent calls have left the window.
        leaving = recent[len(recent) - limit][0]
        return Refusal(scope, limit, leaving + window - now)

    def _usage(self, calls: deque[tuple[float, int]], now: float) -> dict[str, str]:
        headers = {}
        for scope, limit in self.limits.items():
            if limit <= 0:
                continue
            recent = [n for at, n in calls if at > now - WINDOWS[scope]]
            used = sum(recent) if scope == "ppm" else len(recent)
            name = scope.upper()
            headers[f"X-RateLimit-Limit-{name}"] = str(limit)
            headers[f"X-RateLimit-Remaining-{name}"] = str(max(0, limit - used))
        return headers

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()

    def to_dict(self) -> dict[str, Any]:
        return dict(self.limits)


def billed_pages(data: bytes, fmt: Any, filename: str) -> int:
    """
    The pages a call is counted for under PPM: the document's page count, as the limits count it
    (without rendering); 1 when it is unknown before OCR (office formats) or the document breaks a
    limit (the call fails later with its own error).
    """
    try:
        return check_pages(data, fmt, filename, sync=False) or 1
    except ApiError:
        return 1
