"""Suite-wide fixtures for talking to a live emulator over 127.0.0.1 (a pytest plugin module).

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["tests.emulator_fixtures"]``.

- ``emulator``: a running :class:`EmulatorServer` (synthetic engine, key :data:`API_KEY`);
- ``make_emulator(faults=None, *, engine=None, **config)``: more of them, with any
  :class:`EmulatorConfig` fields, all stopped at the end of the test; rate limits are off
  (:data:`NO_RATE_LIMITS`) unless a test asks for them, so tests that submit many documents are
  not slowed by the Upstage-like default of 3 requests a second;
- ``make_pdf(pages, size=(612, 792))``: a blank PDF of ``pages`` pages, as bytes;
- ``api_headers``: the ``Authorization`` header for :data:`API_KEY`;
- ``connect(host, password=API_KEY, conn_id="upstage_test", port=None, **extra)``: an ``upstage``
  Airflow connection defined through ``AIRFLOW_CONN_<ID>`` (as a deployment would), returning its id;
- ``wait_done(hook, request_id)``: not a fixture, the status of a request once it has ended.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from upstage_provider.emulator.config import EmulatorConfig, FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.emulator.synthetic import SyntheticEngine, blank_pdf

if TYPE_CHECKING:
    from upstage_provider.hooks.upstage import UpstageOCRHook
    from upstage_provider.status import RequestInfo

#: A PDF with ``pages`` blank pages of ``size`` points.
pdf_bytes = blank_pdf

#: One key for the whole suite (the hook tests' conftest uses the same one).
API_KEY = "up_test_SECRET_9f3c2a71"
#: The emulator's rate limits turned off (its defaults are Upstage's: 3 requests per second).
NO_RATE_LIMITS = {"rate_limit_rps": 0, "rate_limit_rpm": 0, "rate_limit_ppm": 0}
#: Few words per page keep responses small and tests fast; the layout is the same at any count.
WORDS_PER_PAGE = 40


@pytest.fixture
def make_pdf() -> Callable[..., bytes]:
    return pdf_bytes


@pytest.fixture
def api_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., EmulatorServer]]:
    """Start emulators with given settings; every one is stopped when the test ends."""
    started: list[EmulatorServer] = []

    def start(faults: FaultConfig | None = None, *, engine: Any = None, **config: Any) -> EmulatorServer:
        config.setdefault("api_key", API_KEY)
        config.setdefault("engine", "synthetic")
        for name, off in NO_RATE_LIMITS.items():
            config.setdefault(name, off)
        server = EmulatorServer(
            EmulatorConfig(faults=faults or FaultConfig(), **config),
            engine=engine if engine is not None else SyntheticEngine(words_per_page=WORDS_PER_PAGE),
        )
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    """A default emulator for one test."""
    return make_emulator()


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define an ``upstage`` connection through the environment, pointing at ``host``."""

    def define(
        host: str,
        password: str | None = API_KEY,
        conn_id: str = "upstage_test",
        port: int | None = None,
        **extra: Any,
    ) -> str:
        conn: dict[str, Any] = {"conn_type": "upstage", "host": host}
        if password is not None:
            conn["password"] = password
        if port is not None:
            conn["port"] = port
        if extra:
            conn["extra"] = extra
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return define


def wait_done(hook: UpstageOCRHook, request_id: str, timeout: float = 30.0) -> RequestInfo:
    """The request's status once it has ended (completed or failed), polled every 50 ms."""
    deadline = time.monotonic() + timeout
    while True:
        info = hook.get_request(request_id)
        if info.is_terminal:
            return info
        assert time.monotonic() < deadline, f"request still {info.progress()}"
        time.sleep(0.05)


def image_pdf(pages: int, side: int = 300) -> bytes:
    """A PDF whose every page holds its own incompressible JPEG of about ``side * side`` bytes."""
    import io
    import os

    import pypdfium2 as pdfium
    from PIL import Image

    from upstage_provider.documents import PDFIUM_LOCK

    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument.new()
        try:
            for _ in range(pages):
                buffer = io.BytesIO()
                Image.frombytes("L", (side, side), os.urandom(side * side)).save(buffer, "JPEG", quality=95)
                page = pdf.new_page(612, 792)
                image = pdfium.PdfImage.new(pdf)
                image.load_jpeg(io.BytesIO(buffer.getvalue()), inline=True)
                image.set_matrix(pdfium.PdfMatrix().scale(300, 300))
                page.insert_obj(image)
                page.gen_content()
            out = io.BytesIO()
            pdf.save(out)
        finally:
            pdf.close()
    return out.getvalue()
