"""A TCP proxy in front of the emulator that breaks chosen HTTP calls for real.

The faults the adversarial trial used, as a client on the wire sees them:

- ``reset_upload``: half the request body arrives, then the connection is reset; the API never
  saw the call;
- ``reset_after_answer``: the whole call goes to the API and its answer comes back to the proxy,
  then the client's connection is reset; the API did the work (and would bill it), the client
  never hears of it;
- ``rewrite``: the API's answer is passed through a function of the body (swap download URLs, ...);
- ``answer``: a fixed answer without forwarding (503 while the API is "busy").

Each rule matches on method and path and fires a given number of times. One request per
connection (``Connection: close`` both ways) keeps the proxy simple and the faults exact.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["reset_upload", "reset_after_answer", "rewrite", "answer"]


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Rule:
    action: Action
    method: str
    path_prefix: str
    times: int = 1
    when: Callable[[Call], bool] | None = None
    rewrite: Callable[[bytes], bytes] | None = None
    status: int = 503
    body: bytes = b'{"error": {"message": "busy", "type": "server_error"}}'
    fired: int = 0

    def matches(self, call: Call) -> bool:
        if self.fired >= self.times or call.method != self.method:
            return False
        if not call.path.startswith(self.path_prefix):
            return False
        return self.when is None or self.when(call)


@dataclass
class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``upstream_port`` there."""

    upstream_port: int
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, what happened)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- serving ------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _rule_for(self, call: Call) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(call):
                    rule.fired += 1
                    return rule
        return None

    def _handle(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            try:
                head, body = _read_message(client, request=True)
            except (OSError, ValueError):
                return
            call = _parse_request(head, body)
            rule = self._rule_for(call)
            what = rule.action if rule else "forwarded"
            self.log.append((call.method, call.path, what))
            if rule is not None and rule.action == "reset_upload":
                _reset(client)
                return
            if rule is not None and rule.action == "answer":
                client.sendall(_response(rule.status, rule.body))
                return
            try:
                answer = self._forward(head, body)
            except OSError:
                _reset(client)
                return
            if rule is not None and rule.action == "reset_after_answer":
                _reset(client)
                return
            if rule is not None and rule.action == "rewrite" and rule.rewrite is not None:
                status_line, headers, content = _split_response(answer)
                answer = _response(status_line, rule.rewrite(content), headers)
            client.sendall(answer)

    def _forward(self, head: bytes, body: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=120) as upstream:
            upstream.sendall(_with_close(head) + body)
            status_head, content = _read_message(upstream, request=False)
            return status_head + content


def _reset(sock: socket.socket) -> None:
    """Close with RST, not FIN: what a dropped connection or a crashed middlebox looks like."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _read_message(sock: socket.socket, *, request: bool) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("connection closed before the headers ended")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    head += b"\r\n\r\n"
    headers = _headers(head)
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ValueError("connection closed mid-body")
            rest += chunk
        return head, rest[:length]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        raise ValueError("chunked bodies are not supported by this proxy")
    if request:
        return head, rest
    while chunk := sock.recv(65536):  # a response without a length ends at close
        rest += chunk
    return head, rest


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    out: dict[str, str] = {}
    for line in lines:
        if ":" in line:
            name, _, value = line.partition(":")
            out[name.strip().lower()] = value.strip()
    return out


def _parse_request(head: bytes, body: bytes) -> Call:
    method, path, _ = head.decode("latin-1").split("\r\n", 1)[0].split(" ", 2)
    return Call(method, path, _headers(head), body)


def _with_close(head: bytes) -> bytes:
    lines = [
        line
        for line in head.decode("latin-1").split("\r\n")
        if line and not line.lower().startswith(("connection:", "keep-alive:"))
    ]
    return ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


def _split_response(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, content = answer.partition(b"\r\n\r\n")
    status_line = head.decode("latin-1").split("\r\n", 1)[0]
    return status_line, _headers(head + b"\r\n\r\n"), content


def _response(status: int | str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    status_line = status if isinstance(status, str) else f"HTTP/1.1 {status} Error"
    kept = {
        k: v
        for k, v in (headers or {"content-type": "application/json"}).items()
        if k not in ("content-length", "connection", "transfer-encoding")
    }
    lines = [status_line, *(f"{k}: {v}" for k, v in kept.items())]
    lines += [f"content-length: {len(body)}", "connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
