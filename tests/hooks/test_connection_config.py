"""Configuration errors fail fast: a bad base URL before any call, a TLS mismatch without retries.

Against the real emulator (plain HTTP on 127.0.0.1) and a closed port; a recording clock shows
whether the hook waited to retry.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from tests.emulator_fixtures import EmulatorServer
from tests.hooks.test_upstage import RecordedWaits as RecordingClock
from upstage_provider.documents import load_document
from upstage_provider.exceptions import InvalidConnectionURLError, UpstageTLSError
from upstage_provider.hooks.upstage import UpstageOCRHook


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_host_without_scheme_on_a_plain_http_server_fails_at_once_naming_http(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    netloc = urlsplit(emulator.url).netloc  # "127.0.0.1:PORT": https:// is assumed, the server speaks HTTP
    clock = RecordingClock()
    hook = UpstageOCRHook(connect(netloc), max_retries=5, clock=clock)
    with pytest.raises(UpstageTLSError, match=rf"set the connection's host to http://{netloc}") as err:
        hook.list_requests()
    assert err.value.permanent
    assert clock.waits == [], "a TLS handshake failure is not retried"
    assert "gave up after" not in str(err.value)


def test_the_trigger_path_treats_a_tls_failure_as_permanent_too(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    netloc = urlsplit(emulator.url).netloc
    clock = RecordingClock()
    hook = UpstageOCRHook(connect(netloc), max_retries=5, clock=clock)
    with pytest.raises(UpstageTLSError, match=rf"http://{netloc}"):
        asyncio.run(hook.aget_request("req-1"))
    assert clock.waits == []


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("ftp://files.example.com", "scheme must be http or https, not 'ftp'"),
        ("http://", "names no host"),
        ("http://127.0.0.1:80a", "Port could not be cast"),
        ("https://api.upstage.ai/?key=1", "no query or fragment"),
    ],
)
def test_a_host_that_is_no_base_url_is_refused_before_any_call(
    host: str, problem: str, connect: Callable[..., str]
) -> None:
    clock = RecordingClock()
    hook = UpstageOCRHook(connect(host, conn_id="bad_url"), clock=clock)
    with pytest.raises(InvalidConnectionURLError, match="connection 'bad_url'") as err:
        hook.list_requests()
    assert problem in str(err.value)
    assert "http://127.0.0.1:8765" in str(err.value)
    assert clock.waits == []
    ok, message = hook.test_connection()
    assert not ok
    assert problem in message


def test_the_connection_test_answers_a_closed_port_without_retrying(connect: Callable[..., str]) -> None:
    clock = RecordingClock()
    hook = UpstageOCRHook(connect(f"http://127.0.0.1:{_closed_port()}"), max_retries=5, clock=clock)
    ok, message = hook.test_connection()
    assert not ok
    assert "could not connect to 127.0.0.1" in message
    assert clock.waits == [], "the UI's test tries once"
    with pytest.raises(Exception, match="gave up after 6 attempts"):  # other calls still retry
        hook.list_requests()
    assert len(clock.waits) == 5


def test_the_connection_test_says_one_recent_request_in_the_singular(
    make_emulator: Callable[..., EmulatorServer],
    make_pdf: Callable[..., bytes],
    connect: Callable[..., str],
) -> None:
    server = make_emulator()
    hook = UpstageOCRHook(connect(server.url))
    assert hook.test_connection()[1].endswith("(0 recent requests)")
    hook.submit(load_document(make_pdf(1), name="one.pdf"))
    assert hook.test_connection()[1].endswith("(1 recent request)")


# --- the Port field, which the form asks for (the UI's Test button needs a stored port) ---------


def _calls(server: EmulatorServer) -> int:
    return sum(server.stats()["endpoints"].get("list", {}).get("by_status", {}).values())


@pytest.mark.parametrize("in_url", [True, False], ids=["port-in-both", "port-in-the-field-only"])
def test_a_port_in_the_port_field_reaches_the_server(
    in_url: bool, emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    """The form's way (Port filled in), with the port also in the Base URL or only in the field."""
    parts = urlsplit(emulator.url)
    host = emulator.url if in_url else f"http://{parts.hostname}"
    hook = UpstageOCRHook(connect(host, port=parts.port))
    ok, message = hook.test_connection()
    assert ok, message
    assert message == f"Connected to Upstage at {emulator.url} (0 recent requests)"
    assert _calls(emulator) == 1


def test_a_port_field_that_disagrees_with_the_base_url_is_refused_before_any_call(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    port = urlsplit(emulator.url).port
    hook = UpstageOCRHook(connect(emulator.url, port=443, conn_id="two_ports"))
    with pytest.raises(InvalidConnectionURLError) as err:
        hook.list_requests()
    assert str(err.value) == (
        f"connection 'two_ports': host '{emulator.url}' has port {port}, but its Port field says 443; "
        "make them agree, or leave the Port empty"
    )
    ok, message = hook.test_connection()
    assert not ok
    assert "make them agree" in message
    assert _calls(emulator) == 0


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("", 443, "https://api.upstage.ai"),  # the public API, Port 443 as the form suggests
        ("https://api.upstage.ai/", 443, "https://api.upstage.ai"),
        ("http://127.0.0.1", 80, "http://127.0.0.1"),
        ("https://gateway.example/upstage/", 8443, "https://gateway.example:8443/upstage"),
    ],
)
def test_the_port_joins_the_host_and_the_schemes_own_is_not_written(
    host: str, port: int, url: str, connect: Callable[..., str]
) -> None:
    assert UpstageOCRHook(connect(host, port=port)).base_url == url
