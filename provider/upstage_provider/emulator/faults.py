"""Deciding, request by request, which call the emulator answers badly.

One seeded ``random.Random`` per fault configuration, drawn under a lock, so the same sequence
of requests meets the same sequence of 429s and 5xxs on every run.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from upstage_provider.emulator.config import FaultConfig


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """An error response to send instead of doing the work."""

    status: int
    message: str
    retry_after: float | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": format_seconds(self.retry_after)}


def format_seconds(value: float) -> str:
    """``Retry-After`` in seconds: whole numbers as integers, fractions as short decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0")


@dataclass(frozen=True, slots=True)
class BodyFault:
    """A download served badly: ``reset`` closes the connection mid-body, ``stall`` pauses it."""

    kind: str  # "reset" or "stall"
    stall_seconds: float = 0.0


class FaultInjector:
    """The current :class:`FaultConfig` and the random stream its decisions come from."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._rng = random.Random(self._config.seed)
        self._bursts: dict[str, int] = {}

    @property
    def config(self) -> FaultConfig:
        return self._config

    def replace(self, config: FaultConfig) -> None:
        """Switch to new faults and restart the random stream from their seed."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)
            self._bursts = {}

    def reseed(self) -> None:
        """Start the random stream over, so a run after a reset repeats the first one."""
        self.replace(self._config)

    def draw(self, endpoint: str) -> InjectedFault | None:
        """One decision for one request: an error to answer with, or None to serve it."""
        return self.decide(endpoint)[0]

    def decide(self, endpoint: str) -> tuple[InjectedFault | None, BodyFault | None]:
        """
        One decision for one request: an error to answer instead, or a way to spoil the body
        of a download that is served, or neither.
        """
        with self._lock:
            config = self._config
            if not config.applies_to(endpoint):
                return None, None
            if config.burst_5xx:
                seen = self._bursts.get(endpoint, 0)
                self._bursts[endpoint] = (seen + 1) % (config.burst_5xx + 1)
                if seen < config.burst_5xx:
                    return InjectedFault(
                        config.status_5xx,
                        f"Server error {config.status_5xx} (injected by the emulator, burst)",
                    ), None
            rates = config.rate_429 + config.rate_5xx + config.rate_reset + config.rate_stall
            if rates == 0:
                return None, None
            roll = self._rng.random()
        if roll < config.rate_429 + config.rate_5xx:
            return self._error(config, roll), None
        if endpoint != "download":
            return None, None
        if roll < config.rate_429 + config.rate_5xx + config.rate_reset:
            return None, BodyFault("reset")
        if roll < rates:
            return None, BodyFault("stall", config.stall_seconds)
        return None, None

    @staticmethod
    def _error(config: FaultConfig, roll: float) -> InjectedFault | None:
        if roll < config.rate_429:
            return InjectedFault(
                429, "Too many requests: rate limit exceeded (injected by the emulator)", config.retry_after
            )
        if roll < config.rate_429 + config.rate_5xx:
            return InjectedFault(
                config.status_5xx, f"Server error {config.status_5xx} (injected by the emulator)"
            )
        return None

    def request_latency(self, endpoint: str) -> float:
        config = self._config
        return config.latency_per_request if config.applies_to(endpoint) else 0.0
