"""
The emulator as a server a developer leaves running. It listens on 127.0.0.1 unless
told otherwise, wants the key, refuses oversized uploads without reading them, issues download
URLs that cannot be forged, reused or kept, and never turns a client's text into a path.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import psutil
import pytest
import requests

from tests.emulator_fixtures import API_KEY
from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.emulator.server import EmulatorServer

KEY = "up_server_test_key_5b2e"
EXE = Path(sys.executable).with_name("upstage-emulator")
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BASE = "/v1/document-digitization"


def start_cli(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``upstage-emulator`` in a subprocess; returns it and the URL from its one stdout line."""
    command = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "upstage_provider.emulator"]
    stderr = open(tmp_path / f"emulator-{uuid.uuid4().hex[:6]}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [*command, "--port", "0", "--engine", "synthetic", "--api-key", KEY, "--log-level", "WARNING", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    stderr.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline()
            if line.startswith("Upstage emulator listening on "):
                return proc, line.strip().rsplit(" ", 1)[-1]
    proc.kill()
    raise AssertionError(f"the emulator did not start (exit code {proc.poll()})")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        proc, url = start_cli(tmp_path, *args)
        started.append(proc)
        return proc, url

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def listening_addresses(pid: int, port: int) -> set[str]:
    """The addresses the process listens on at ``port``, as the kernel reports them."""
    return {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


# --- binding -------------------------------------------------------------------------------------


def test_the_cli_listens_on_loopback_only_unless_told_otherwise(
    cli: Callable[..., tuple[subprocess.Popen[str], str]],
) -> None:
    proc, url = cli()
    port = urlsplit(url).port
    assert port is not None
    assert urlsplit(url).hostname == "127.0.0.1"
    assert listening_addresses(proc.pid, port) == {"127.0.0.1"}
    # /proc/net/tcp agrees: 0100007F is 127.0.0.1, state 0A is LISTEN; nothing on 0.0.0.0.
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    listening = {row[1] for row in rows if row[3] == "0A" and row[1].endswith(f":{port:04X}")}
    assert listening == {f"0100007F:{port:04X}"}

    proc_all, url_all = cli("--host", "0.0.0.0")  # told otherwise
    port_all = urlsplit(url_all).port
    assert port_all is not None
    assert listening_addresses(proc_all.pid, port_all) == {"0.0.0.0"}


# --- the key -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", BASE),
        ("POST", BASE + "/async"),
        ("GET", BASE + "/requests"),
        ("GET", BASE + "/requests/0b6f3c1e-1111-4222-8333-944455556666"),
        ("GET", "/_emulator/stats"),
        ("PUT", "/_emulator/faults"),
        ("POST", "/_emulator/reset"),
    ],
)
@pytest.mark.parametrize(
    "header", [None, "Bearer ", "Basic " + API_KEY, "Bearer wrong-key", "Bearer " + API_KEY + "x"]
)
def test_every_route_but_signed_downloads_wants_the_key(
    emulator: EmulatorServer, method: str, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    answer = requests.request(
        method,
        emulator.url + path,
        headers=headers,
        files={"document": ("a.pdf", make_pdf(1))} if method == "POST" and path.startswith(BASE) else None,
        data={"model": "ocr"} if method == "POST" and path.startswith(BASE) else None,
        json={"rate_429": 1.0} if method == "PUT" else None,
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    stats = emulator.stats()
    assert stats["submissions"] == 0
    assert stats["faults"]["rate_429"] == 0.0


# --- the upload cap --------------------------------------------------------------------------------

UPLOAD = 200 * 1024 * 1024
CHUNK = 256 * 1024


def stream_upload(url: str, *, declare_length: bool) -> tuple[bytes, int]:
    """
    POST a 200 MB multipart document over a raw socket, chunk by chunk, stopping as soon as
    the server answers; returns the status line and how many body bytes were sent by then.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    boundary = "b0undary7"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nocr\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="document"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    ).encode()
    framing = (
        f"Content-Length: {len(head) + UPLOAD}\r\n" if declare_length else "Transfer-Encoding: chunked\r\n"
    )
    sock.sendall(
        (
            f"POST {BASE}/async HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n{framing}\r\n"
        ).encode()
    )
    sent = 0
    chunk = bytes(CHUNK)
    first = head
    try:
        while sent < UPLOAD:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the upload ended
            payload = first + chunk
            first = b""
            sock.sendall(
                f"{len(payload):x}\r\n".encode() + payload + b"\r\n" if not declare_length else payload
            )
            sent += CHUNK
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection after answering
    sock.settimeout(30)
    answer = b""
    while b"\r\n" not in answer:
        data = sock.recv(4096)
        if not data:
            break
        answer += data
    sock.close()
    return answer.split(b"\r\n", 1)[0], sent


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
def test_a_200_mb_upload_is_refused_before_it_is_read(
    cli: Callable[..., tuple[subprocess.Popen[str], str]], declare_length: bool
) -> None:
    proc, url = cli()
    server = psutil.Process(proc.pid)
    rss_before = server.memory_info().rss

    status, sent = stream_upload(url, declare_length=declare_length)

    assert status.startswith(b"HTTP/1.1 413"), status
    if declare_length:
        # Refused from the header alone: what was sent is what the socket buffers took meanwhile.
        assert sent < 16 * 1024 * 1024, sent
    else:
        # The cap (50 MB + 256 KB) is counted as the body arrives; the answer comes right after.
        assert 50 * 1024 * 1024 <= sent < 100 * 1024 * 1024, sent
    # The server never held the upload in memory: its resident size grew by far less than 200 MB.
    grown = server.memory_info().rss - rss_before
    assert grown < 40 * 1024 * 1024, grown
    answer = requests.get(url + BASE + "/requests", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"requests": []}


# --- download URLs ---------------------------------------------------------------------------------


def completed_request(server: EmulatorServer, pages: int) -> dict[str, object]:
    request_id = requests.post(
        server.url + BASE + "/async",
        headers=AUTH,
        files={"document": ("a.pdf", make_pdf(pages))},
        data={"model": "ocr"},
        timeout=30,
    ).json()["request_id"]
    for _ in range(400):
        status = requests.get(f"{server.url}{BASE}/requests/{request_id}", headers=AUTH, timeout=10).json()
        if status["status"] == "completed":
            return status
        time.sleep(0.025)
    raise AssertionError("request did not complete")


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


def test_a_download_url_cannot_be_forged_moved_or_kept(make_emulator: Callable[..., EmulatorServer]) -> None:
    server = make_emulator(url_ttl=1.0)
    first = completed_request(server, 12)  # two batches
    second = completed_request(server, 3)
    url = first["batches"][0]["download_url"]  # type: ignore[index]
    assert requests.get(url, timeout=10).status_code == 200

    expires = dict(parse_qsl(urlsplit(url).query))["expires"]
    signature = dict(parse_qsl(urlsplit(url).query))["signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    forged = {
        "signature flipped": with_query(url, signature=flipped),
        "expiry pushed out": with_query(url, expires=str(float(expires) + 3600)),
        "no signature": url.split("?")[0] + "?" + urlencode({"expires": expires}),
        "no query": url.split("?")[0],
        "other batch": url.replace(f"/{first['id']}/0?", f"/{first['id']}/1?"),
        "other request": url.replace(f"/{first['id']}/0?", f"/{second['id']}/0?"),
        "with the key instead": url.split("?")[0],
    }
    for what, bad in forged.items():
        headers = AUTH if what == "with the key instead" else {}
        answer = requests.get(bad, headers=headers, timeout=10)
        assert answer.status_code == 403, what
        assert b'"pages"' not in answer.content, what
    time.sleep(1.1)  # past the URL's expiry
    expired = requests.get(url, timeout=10)
    assert expired.status_code == 403
    assert expired.json()["error"]["code"] == "expired_url"
    downloads = server.stats()["endpoints"]["download"]["by_status"]
    assert downloads == {"200": 1, "403": len(forged) + 1}


# --- client text never becomes a path ---------------------------------------------------------------


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation of ``..`` or ``%2F``)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {API_KEY}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_no_client_supplied_name_reaches_the_file_system(emulator: EmulatorServer, tmp_path: Path) -> None:
    secret_pdf = tmp_path / "real.pdf"  # a readable, valid document on the server's disk
    secret_pdf.write_bytes(make_pdf(2))
    relative = os.path.relpath(secret_pdf, Path.cwd())
    created = Path("/tmp") / f"upstage-emulator-must-not-exist-{uuid.uuid4().hex}.pdf"
    cwd_before = sorted(os.listdir(Path.cwd()))

    # A name pointing at a real PDF, with content that is not one: if the server opened the
    # name, it would read that PDF and succeed; it reads the upload, and refuses it.
    for name in (str(secret_pdf), "../" * 12 + str(secret_pdf).lstrip("/"), relative, "..\\..\\real.pdf"):
        for path in (BASE, BASE + "/async"):
            answer = requests.post(
                emulator.url + path,
                headers=AUTH,
                files={"document": (name, b"just some text, not a document\n")},
                data={"model": "ocr"},
                timeout=10,
            )
            assert answer.status_code == 415, (name, path, answer.text)
    # A name that would create a file: the document is read from the upload, nothing is written.
    for name in (str(created), "../../etc/passwd", "/etc/passwd"):
        answer = requests.post(
            emulator.url + BASE,
            headers=AUTH,
            files={"document": (name, make_pdf(1))},
            data={"model": "ocr"},
            timeout=10,
        )
        assert answer.status_code == 200
        assert len(answer.json()["pages"]) == 1
    assert not created.exists()
    assert sorted(os.listdir(Path.cwd())) == cwd_before

    # Request ids and batch ids with traversal in them: 4xx, and no file content comes back.
    for path in (
        f"{BASE}/requests/..%2F..%2F..%2Fetc%2Fpasswd",
        f"{BASE}/requests/../../../etc/passwd",
        f"{BASE}/requests/%2Fetc%2Fpasswd",
        f"{BASE}/results/..%2F..%2Fetc%2Fpasswd/0?expires=9999999999&signature=00",
        f"{BASE}/results/abc/..%2F..%2Fetc%2Fpasswd?expires=9999999999&signature=00",
        f"{BASE}/results/{'..%2F' * 8}etc/passwd",
    ):
        status, body = raw_get(emulator.url, path)
        assert 400 <= status < 500, (path, status)
        assert b"root:" not in body, path
    assert emulator.stats()["submissions"] == 0


# --- the new fault keys, from JSON and from the command line -----------------------------------------


def test_the_download_and_burst_faults_have_json_and_cli_keys(tmp_path: Path) -> None:
    from upstage_provider.emulator.cli import build_parser, config_from_args
    from upstage_provider.emulator.config import EmulatorConfig, FaultConfig

    config_file = tmp_path / "faults.json"
    config_file.write_text(
        '{"rate_reset": 0.25, "faults": {"rate_stall": 0.5, "stall_seconds": 3, "burst_5xx": 2}}'
    )
    from_json = EmulatorConfig.from_mapping(
        {"rate_reset": 0.25, "rate_stall": 0.5, "stall_seconds": 3, "burst_5xx": 2}
    )
    args = build_parser().parse_args(["--config", str(config_file)])
    assert config_from_args(args, environ={}).faults == from_json.faults
    flags = build_parser().parse_args(
        ["--rate-reset", "0.1", "--rate-stall", "0.2", "--stall-seconds", "1.5", "--burst-5xx", "3"]
    )
    faults = config_from_args(flags, environ={}).faults
    assert (faults.rate_reset, faults.rate_stall, faults.stall_seconds, faults.burst_5xx) == (
        0.1,
        0.2,
        1.5,
        3,
    )
    assert FaultConfig.from_mapping(faults.to_dict()) == faults  # round-trips through JSON keys
    for bad in (
        {"rate_reset": 0.6, "rate_stall": 0.6},
        {"rate_429": 0.5, "rate_reset": 0.6},
        {"burst_5xx": -1},
    ):
        with pytest.raises(ValueError, match="must"):
            FaultConfig(**bad)


def test_burst_5xx_answers_every_call_after_a_burst_of_errors(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    from upstage_provider.emulator.config import FaultConfig

    # Injected: 2 x 503 before each served call of the request list.
    server = make_emulator(FaultConfig(burst_5xx=2, endpoints=("list",)))
    codes = [
        requests.get(server.url + BASE + "/requests", headers=AUTH, timeout=10).status_code for _ in range(9)
    ]
    assert codes == [503, 503, 200] * 3
    assert server.stats()["injected"] == {"5xx": 6}
