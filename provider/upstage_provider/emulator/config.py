"""What an emulator run looks like: the server's settings and the faults it injects.

Both are plain frozen dataclasses so a test can build one in a line, a benchmark can load one
from JSON (``--config faults.json``), and ``PUT /_emulator/faults`` can swap the faults of a
running server without restarting it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

#: The endpoints faults can be injected into (the admin routes never are).
FAULT_ENDPOINTS: tuple[str, ...] = ("sync", "submit", "status", "list", "download")
ERROR_STYLES: tuple[str, ...] = ("openai", "flat")
BATCH_PAGE_IDS: tuple[str, ...] = ("relative", "absolute")
ENGINES: tuple[str, ...] = ("tesseract", "synthetic")

#: Upstage's documented limit of the ``ocr`` model: 3 requests per second. Its RPM and PPM are
#: not published for OCR (they depend on the organization's tier), so they are off by default.
DEFAULT_RATE_LIMIT_RPS = 3
DEFAULT_RATE_LIMIT_RPM = 0
DEFAULT_RATE_LIMIT_PPM = 0

ErrorStyle = Literal["openai", "flat"]
BatchPageIds = Literal["relative", "absolute"]


def _rate(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
    return value


def _count(name: str, value: Any) -> int:
    """A limit: a whole number, 0 or more (0: no limit)."""
    try:
        number = float(value)
        valid = not isinstance(value, bool) and number >= 0 and number.is_integer()
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{name} must be a whole number, 0 or more (0: no limit), got {value!r}")
    return int(number)


def _non_negative(name: str, value: float) -> float:
    value = float(value)
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """
    Misbehaviour to inject, so clients can be tested against a bad day of the real API.

    Each request on one of ``endpoints`` draws one number from a ``random.Random(seed)``:
    below ``rate_429`` it is answered 429 (with ``Retry-After: retry_after`` unless that is
    None), below ``rate_429 + rate_5xx`` it is answered ``status_5xx``; otherwise it goes
    through after ``latency_per_request`` seconds. OCR work sleeps ``latency_per_page`` per
    page (sync calls and async batches alike). Downloads only: below ``rate_429 + rate_5xx +
    rate_reset`` the connection is closed after half of the body was sent; below that plus
    ``rate_stall`` half of the body is sent, then nothing for ``stall_seconds`` (longer than a
    client's read timeout), then the rest. ``burst_5xx`` answers ``status_5xx`` to that many
    consecutive calls of each faulted endpoint before every call it serves (deterministic, no
    draw). ``fail_batches`` (0-based batch indexes) end
    ``failed``; ``fail_request_message`` fails every async request as a whole with that text.
    Async faults are read when a request is submitted, so changing them later does not change
    requests already under way.
    """

    latency_per_request: float = 0.0
    latency_per_page: float = 0.0
    rate_429: float = 0.0
    retry_after: float | None = None
    rate_5xx: float = 0.0
    status_5xx: int = 503
    rate_reset: float = 0.0
    rate_stall: float = 0.0
    stall_seconds: float = 5.0
    burst_5xx: int = 0
    fail_batches: tuple[int, ...] = ()
    fail_request_message: str | None = None
    endpoints: tuple[str, ...] = FAULT_ENDPOINTS
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once, at construction
        set_(self, "latency_per_request", _non_negative("latency_per_request", self.latency_per_request))
        set_(self, "latency_per_page", _non_negative("latency_per_page", self.latency_per_page))
        set_(self, "rate_429", _rate("rate_429", self.rate_429))
        set_(self, "rate_5xx", _rate("rate_5xx", self.rate_5xx))
        set_(self, "rate_reset", _rate("rate_reset", self.rate_reset))
        set_(self, "rate_stall", _rate("rate_stall", self.rate_stall))
        set_(self, "stall_seconds", _non_negative("stall_seconds", self.stall_seconds))
        total = self.rate_429 + self.rate_5xx + self.rate_reset + self.rate_stall
        if total > 1.0 + 1e-9:
            raise ValueError(f"rate_429 + rate_5xx + rate_reset + rate_stall must not exceed 1, got {total}")
        if int(self.burst_5xx) < 0:
            raise ValueError(f"burst_5xx must not be negative, got {self.burst_5xx}")
        set_(self, "burst_5xx", int(self.burst_5xx))
        if self.retry_after is not None:
            set_(self, "retry_after", _non_negative("retry_after", self.retry_after))
        if not 500 <= int(self.status_5xx) <= 599:
            raise ValueError(f"status_5xx must be a 5xx status, got {self.status_5xx}")
        set_(self, "status_5xx", int(self.status_5xx))
        batches = tuple(int(b) for b in self.fail_batches)
        if any(b < 0 for b in batches):
            raise ValueError(f"fail_batches are 0-based batch indexes, got {list(batches)}")
        set_(self, "fail_batches", batches)
        endpoints = (self.endpoints,) if isinstance(self.endpoints, str) else tuple(self.endpoints)
        unknown = sorted(set(endpoints) - set(FAULT_ENDPOINTS))
        if unknown:
            raise ValueError(f"unknown fault endpoints {unknown}; choose from {list(FAULT_ENDPOINTS)}")
        set_(self, "endpoints", endpoints)
        set_(self, "seed", int(self.seed))

    def applies_to(self, endpoint: str) -> bool:
        return endpoint in self.endpoints

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the same keys :meth:`from_mapping` reads."""
        data = asdict(self)
        data["fail_batches"] = list(self.fail_batches)
        data["endpoints"] = list(self.endpoints)
        return data

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON keys named like the fields; unknown keys are an error, not ignored."""
        _reject_unknown(data, _field_names(cls), "fault")
        return cls(**dict(data))


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """
    How the emulator server behaves.

    ``api_key`` None means any non-empty bearer token is accepted (the server says so at
    start-up). ``snake_case`` answers the documented-but-never-recorded variant of the
    response; ``error_style`` picks one of the two error shapes the docs show;
    ``batch_page_ids`` says whether a downloaded batch numbers its pages from 0 or from the
    page's index in the whole document (the real API's choice is unknown).

    ``rate_limit_rps``, ``rate_limit_rpm`` and ``rate_limit_ppm`` limit each API key's model
    calls (sync OCR and async submissions) per second, per minute and in pages per minute, as
    Upstage does (``emulator.ratelimit``); 0 turns one off. The defaults are the ``ocr`` model's
    documented 3 requests per second.
    """

    api_key: str | None = None
    url_ttl: float = 900.0
    batch_size: int = 10
    workers: int = 2
    snake_case: bool = False
    error_style: ErrorStyle = "openai"
    batch_page_ids: BatchPageIds = "relative"
    model_version: str = "ocr-2.2.1"
    faults: FaultConfig = field(default_factory=FaultConfig)
    engine: str = "tesseract"
    rate_limit_rps: int = DEFAULT_RATE_LIMIT_RPS
    rate_limit_rpm: int = DEFAULT_RATE_LIMIT_RPM
    rate_limit_ppm: int = DEFAULT_RATE_LIMIT_PPM

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.api_key is not None and not self.api_key.strip():
            set_(self, "api_key", None)
        set_(self, "url_ttl", _non_negative("url_ttl", self.url_ttl))
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if int(self.workers) < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        set_(self, "batch_size", int(self.batch_size))
        set_(self, "workers", int(self.workers))
        _choice("error_style", self.error_style, ERROR_STYLES)
        _choice("batch_page_ids", self.batch_page_ids, BATCH_PAGE_IDS)
        _choice("engine", self.engine, ENGINES)
        if not self.model_version:
            raise ValueError("model_version must not be empty")
        if isinstance(self.faults, Mapping):
            set_(self, "faults", FaultConfig.from_mapping(self.faults))
        for name in ("rate_limit_rps", "rate_limit_rpm", "rate_limit_ppm"):
            set_(self, name, _count(name, getattr(self, name)))

    def to_dict(self, *, with_key: bool = False) -> dict[str, Any]:
        """JSON-ready; the key is left out unless asked for, so this is safe to log or return."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "faults"}
        if not with_key:
            data["api_key"] = "<set>" if self.api_key else None
        data["faults"] = self.faults.to_dict()
        return data

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EmulatorConfig:
        """
        Build from a JSON object.

        Fault keys may sit in a nested ``"faults"`` object or at the top level (so a file of
        faults alone is a valid config); a key that is neither is an error.
        """
        server_keys = _field_names(cls) - {"faults"}
        fault_keys = _field_names(FaultConfig)
        _reject_unknown(data, server_keys | fault_keys | {"faults"}, "emulator config")
        nested = data.get("faults") or {}
        if not isinstance(nested, Mapping):
            raise ValueError("'faults' must be a JSON object")
        faults = {k: v for k, v in data.items() if k in fault_keys}
        faults.update(nested)
        server = {k: v for k, v in data.items() if k in server_keys}
        return cls(faults=FaultConfig.from_mapping(faults), **server)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file into a dict (validated later, with the CLI flags merged in)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    return data


def _field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def _reject_unknown(data: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; allowed: {sorted(allowed)}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
