"""Running the emulator: in a background thread for tests, or in the foreground for the CLI.

Both bind the listening socket themselves before uvicorn starts, so ``port=0`` yields a known
free port, and both report ready only once uvicorn accepts connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from upstage_provider.emulator.config import EmulatorConfig, FaultConfig

if TYPE_CHECKING:
    import uvicorn

    from upstage_provider.emulator.app import EmulatorState
    from upstage_provider.emulator.engine import OCREngine

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets it sees are TCP; otherwise
    # each answer on a reused connection waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _uvicorn_server(app: Any, *, graceful: float) -> uvicorn.Server:
    import uvicorn

    # Our middleware logs each request without its query string (download URLs carry
    # signatures there); uvicorn's own access log would print it, so it is off. log_config=None
    # leaves the host process's logging set-up alone.
    config = uvicorn.Config(
        app,
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(graceful),
        timeout_keep_alive=5,
    )
    return uvicorn.Server(config)


class EmulatorServer:
    """
    An emulator on ``host:port`` in a background thread, as a context manager.

    ``url`` is its base URL, ``api_key`` the key clients must send; :meth:`stats`,
    :meth:`set_faults` and :meth:`reset` act on the running server directly, without HTTP.
    Leaving the ``with`` block stops uvicorn and the async workers.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        engine: OCREngine | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config or EmulatorConfig()
        self._engine = engine
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._state: EmulatorState | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return url_for(self.host, self.port)

    @property
    def api_key(self) -> str | None:
        return self.config.api_key

    @property
    def state(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError("the emulator is not running; use it as a context manager or call start()")
        return self._state

    def start(self) -> EmulatorServer:
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        from upstage_provider.emulator.app import create_app, engine_named

        engine = self._engine if self._engine is not None else engine_named(self.config.engine)
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        app = create_app(self.config, engine)
        self._state = app.state.emulator
        server = _uvicorn_server(app, graceful=2)
        self._server = server

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # surfaced by start() or stop(), not lost in the thread
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name=f"upstage-emulator-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start on {self.url}: {self._error!r}")
            time.sleep(0.005)
        log.info("Upstage emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                log.warning("the emulator on %s did not stop within %.0f s", self.url, STOP_TIMEOUT)
        if self._state is not None:
            self._state.close()  # normally done by the app's lifespan already; idempotent
        self._server = self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- in-process helpers ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What ``GET /_emulator/stats`` returns."""
        return self.state.snapshot()

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the injected faults (what ``PUT /_emulator/faults`` does)."""
        self.state.set_faults(faults)

    def reset(self, *, requests: bool = False) -> None:
        """Zero the counters and restart the fault stream; ``requests`` also forgets requests."""
        self.state.reset(requests=requests)


def run(
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    engine: OCREngine | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """
    Serve in the foreground until SIGINT/SIGTERM.

    Once connections are accepted, one line ``Upstage emulator listening on <url>`` goes to
    stdout (flushed), so a script that started the process can read the port from it.
    """
    from upstage_provider.emulator.app import create_app, engine_named

    engine = engine if engine is not None else engine_named(config.engine)
    sock = bind_socket(host, port)
    url = url_for(host, sock.getsockname()[1])
    server = _uvicorn_server(create_app(config, engine), graceful=5)
    say = announce or _print_flushed

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            say(f"Upstage emulator listening on {url}")
        await task

    try:
        asyncio.run(serve())
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _print_flushed(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
