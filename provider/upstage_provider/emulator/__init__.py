"""A local Upstage-compatible OCR API, for tests, the demo and benchmarks.

The provider never imports this package: it only knows a base URL. Names are resolved lazily
so that importing ``upstage_provider.emulator.config`` does not pull in FastAPI or an engine.

    from upstage_provider.emulator import EmulatorConfig, EmulatorServer, SyntheticEngine

    with EmulatorServer(EmulatorConfig(api_key="k"), engine=SyntheticEngine()) as server:
        ...  # server.url, server.stats(), server.set_faults(FaultConfig(rate_429=0.2))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upstage_provider.emulator.app import create_app
    from upstage_provider.emulator.config import EmulatorConfig, FaultConfig
    from upstage_provider.emulator.server import EmulatorServer, run
    from upstage_provider.emulator.synthetic import SyntheticEngine

_EXPORTS = {
    "EmulatorConfig": "upstage_provider.emulator.config",
    "FaultConfig": "upstage_provider.emulator.config",
    "EmulatorServer": "upstage_provider.emulator.server",
    "run": "upstage_provider.emulator.server",
    "create_app": "upstage_provider.emulator.app",
    "SyntheticEngine": "upstage_provider.emulator.synthetic",
}

__all__ = ["EmulatorConfig", "EmulatorServer", "FaultConfig", "SyntheticEngine", "create_app", "run"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
