"""UpstageOCRHook against a live emulator (and small purpose-built servers) over 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import requests
import structlog

from tests.emulator_fixtures import API_KEY, wait_done
from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.loop_lag import MAX_LOOP_GAP, loop_lag
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.exceptions import (
    DownloadURLExpiredError,
    InvalidRequestIdError,
    MalformedResponseError,
    RequestFailedError,
    RequestNotCompletedError,
    TooManyPagesError,
    UpstageAuthError,
    UpstageConnectionError,
    UpstageRateLimitError,
    UpstageRequestError,
    UpstageServerError,
)
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.models import parse_ocr_response
from upstage_provider.retry import Clock
from upstage_provider.status import RequestState

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


class RecordedWaits(Clock):
    """A hook's clock that records each retry wait instead of sleeping it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def calls(server: EmulatorServer, endpoint: str) -> int:
    """How many requests the emulator received on one endpoint, whatever it answered."""
    return int(server.stats()["endpoints"].get(endpoint, {}).get("total", 0))


@pytest.fixture
def hook(emulator: EmulatorServer, connect: Callable[..., str]) -> Iterator[UpstageOCRHook]:
    h = UpstageOCRHook(connect(emulator.url), **FAST)
    yield h
    h.close()


# --- happy paths ------------------------------------------------------------------------------------


def test_hook_constructs_without_network() -> None:
    # No connection named like this exists: construction must not look it up, let alone call out.
    UpstageOCRHook("no_such_connection")


def test_sync_ocr_matches_what_the_server_returned(hook: UpstageOCRHook, emulator: EmulatorServer) -> None:
    pdf = make_pdf(3)
    result = hook.ocr(load_document(pdf, name="three.pdf"))
    raw = requests.post(
        emulator.url + "/v1/document-digitization",
        headers={"Authorization": f"Bearer {API_KEY}"},
        files={"document": ("three.pdf", pdf, "application/pdf")},
        data={"model": "ocr"},
        timeout=30,
    ).json()
    expected = parse_ocr_response(raw)
    assert [p.page for p in result.pages] == [1, 2, 3]
    assert result.pages == expected.pages
    assert result.word_count == sum(len(p["words"]) for p in raw["pages"]) > 0


def test_sync_ocr_of_a_sample_path(hook: UpstageOCRHook, samples_dir: Any) -> None:
    result = hook.ocr(samples_dir / "dpi_150.jpg")
    assert len(result.pages) == 1
    assert result.pages[0].width == 1242
    assert result.pages[0].height == 1755
    assert all(0.0 <= w.left <= w.right <= 1.0 for w in result.pages[0].words)


def test_sync_ocr_with_schema_returns_raw_json(hook: UpstageOCRHook) -> None:
    raw = hook.ocr(load_document(make_pdf(1), name="one.pdf"), schema="google")
    assert isinstance(raw, dict)


def test_async_submit_status_and_results_in_order(hook: UpstageOCRHook, emulator: EmulatorServer) -> None:
    request_id = hook.submit(load_document(make_pdf(23), name="long.pdf"))
    info = wait_done(hook, request_id)
    assert info.status is RequestState.COMPLETED
    assert [(b.start_page, b.end_page) for b in info.batches] == [(1, 10), (11, 20), (21, 23)]
    pages = list(hook.iter_results(request_id, concurrency=2))
    assert [p.page for p in pages] == list(range(1, 24))
    assert all(p.words for p in pages)
    assert calls(emulator, "submit") == 1
    assert any(r["id"] == request_id for r in hook.list_requests())


@pytest.mark.parametrize("batch_page_ids", ["relative", "absolute"])
def test_batch_pages_are_placed_by_start_page(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], batch_page_ids: str
) -> None:
    server = make_emulator(batch_page_ids=batch_page_ids)
    hook = UpstageOCRHook(connect(server.url), **FAST)
    request_id = hook.submit(load_document(make_pdf(12), name="twelve.pdf"))
    wait_done(hook, request_id)
    assert [p.page for p in hook.iter_results(request_id)] == list(range(1, 13))


def test_expired_download_urls_are_refreshed_once(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(url_ttl=1.0)
    hook = UpstageOCRHook(connect(server.url), **FAST)
    request_id = hook.submit(load_document(make_pdf(25), name="expiring.pdf"))
    info = wait_done(hook, request_id)
    status_calls = calls(server, "status")
    time.sleep(1.3)  # every URL in `info` is now past its expiry
    pages = list(hook.iter_results(request_id, info=info, concurrency=3))
    assert [p.page for p in pages] == list(range(1, 26))
    # All three stale URLs answered 403; one shared status call fetched fresh ones for all.
    assert calls(server, "status") == status_calls + 1
    assert server.stats()["endpoints"]["download"]["by_status"].get("403", 0) >= 1


def test_download_urls_that_never_work_give_up(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(url_ttl=0.0)
    hook = UpstageOCRHook(connect(server.url), **FAST)
    request_id = hook.submit(load_document(make_pdf(3), name="x.pdf"))
    wait_done(hook, request_id)
    with pytest.raises(DownloadURLExpiredError, match="refused"):
        list(hook.iter_results(request_id))


# --- failures -----------------------------------------------------------------------------------------


def test_wrong_key_fails_fast_once(emulator: EmulatorServer, connect: Callable[..., str]) -> None:
    hook = UpstageOCRHook(connect(emulator.url, password="up_wrong_key_123456"), **FAST)
    with pytest.raises(UpstageAuthError, match="upstage connection") as err:
        hook.get_request("abc")
    assert err.value.status_code == 401
    assert calls(emulator, "status") == 1
    assert "up_wrong_key_123456" not in str(err.value)


def test_missing_key_fails_before_any_call(
    emulator: EmulatorServer, connect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UPSTAGE_API_KEY", raising=False)
    hook = UpstageOCRHook(connect(emulator.url, password=None), **FAST)
    with pytest.raises(UpstageAuthError, match="UPSTAGE_API_KEY"):
        hook.list_requests()
    assert calls(emulator, "list") == 0


def test_key_falls_back_to_the_environment(
    emulator: EmulatorServer, connect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTAGE_API_KEY", API_KEY)
    hook = UpstageOCRHook(connect(emulator.url, password=None), **FAST)
    assert hook.list_requests() == []


def test_bad_document_fails_before_upload(hook: UpstageOCRHook, emulator: EmulatorServer) -> None:
    with pytest.raises(TooManyPagesError, match="async"):
        hook.ocr(load_document(make_pdf(101), name="big.pdf"))
    assert calls(emulator, "sync") == 0


def test_bad_model_is_a_permanent_4xx_with_the_api_message(
    hook: UpstageOCRHook, emulator: EmulatorServer
) -> None:
    with pytest.raises(UpstageRequestError) as err:
        hook.ocr(load_document(make_pdf(1), name="one.pdf"), model="no-such-model")
    assert err.value.status_code == 400
    assert "no-such-model" in err.value.message
    assert calls(emulator, "sync") == 1


@pytest.mark.parametrize("error_style", ["openai", "flat"])
def test_both_error_shapes_show_the_api_message(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], error_style: str
) -> None:
    server = make_emulator(error_style=error_style)
    hook = UpstageOCRHook(connect(server.url), **FAST)
    with pytest.raises(UpstageRequestError) as err:
        hook.get_request("00000000-0000-0000-0000-000000000000")
    assert err.value.status_code == 404
    assert err.value.message
    assert "HTTP 404 with no message" not in err.value.message


@pytest.mark.parametrize("retry_after", [None, 0.05])
def test_rate_limited_calls_are_retried_until_they_pass(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    retry_after: float | None,
) -> None:
    server = make_emulator(faults=FaultConfig(rate_429=0.5, retry_after=retry_after, seed=7))
    hook = UpstageOCRHook(connect(server.url), max_retries=10, **FAST)
    request_id = hook.submit(load_document(make_pdf(15), name="busy.pdf"))
    wait_done(hook, request_id)
    assert [p.page for p in hook.iter_results(request_id)] == list(range(1, 16))
    stats = server.stats()["endpoints"]
    assert sum(e["by_status"].get("429", 0) for e in stats.values()) > 0
    assert stats["submit"]["by_status"].get("200", 0) == 1  # one submission, however many 429s


def test_retry_after_is_honoured_with_jitter_and_429s_spend_none_of_the_retries(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(rate_429=1.0, retry_after=0.2, seed=1))
    clock = RecordedWaits()
    hook = UpstageOCRHook(
        connect(server.url),
        max_retries=1,
        rate_limit_budget=2.0,
        backoff_base=30.0,
        backoff_max=60.0,
        clock=clock,
    )
    budget_spent = r"kept answering 429 for (1\.[89]|2\.0) s( and asked to wait 0\.2 s more)?, past"
    with pytest.raises(UpstageRateLimitError, match=budget_spent + r" rate_limit_budget=2 s; raise"):
        hook.list_requests()
    # Each wait is the Retry-After plus up to a quarter of it, never the 30 s backoff.
    assert all(0.2 <= wait <= 0.25 for wait in clock.waits), clock.waits
    assert len(set(clock.waits)) > 1
    # Far more attempts than max_retries=1 allows: 429s are bounded by the budget alone.
    assert len(clock.waits) >= 7
    assert sum(clock.waits) == pytest.approx(2.0, abs=0.25)
    assert calls(server, "list") == len(clock.waits) + 1


def test_backoff_grows_exponentially_with_jitter(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(rate_5xx=1.0, seed=1))
    clock = RecordedWaits()
    hook = UpstageOCRHook(connect(server.url), max_retries=4, backoff_base=1.0, backoff_max=5.0, clock=clock)
    with pytest.raises(UpstageServerError) as err:
        hook.list_requests()
    assert err.value.status_code is not None
    assert err.value.status_code >= 500
    assert calls(server, "list") == 5
    for wait, ceiling in zip(clock.waits, [1.0, 2.0, 4.0, 5.0], strict=True):
        assert ceiling / 2 <= wait <= ceiling


async def test_async_status_calls_back_off_through_the_same_policy_and_clock(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    # The event loop's retries wait what the sync ones do, and on the hook's clock: a loop that
    # slept on its own would take 6-12 s here and record nothing.
    server = make_emulator(faults=FaultConfig(rate_5xx=1.0, seed=1, endpoints=("status",)))
    clock = RecordedWaits()
    hook = UpstageOCRHook(connect(server.url), max_retries=4, backoff_base=1.0, backoff_max=5.0, clock=clock)
    with pytest.raises(UpstageServerError, match="gave up after 5 attempts"):
        await hook.aget_request("00000000-0000-4000-8000-000000000000")
    assert calls(server, "status") == 5
    for wait, ceiling in zip(clock.waits, [1.0, 2.0, 4.0, 5.0], strict=True):
        assert ceiling / 2 <= wait <= ceiling


@pytest.mark.parametrize("request_id", ["", "../requests", "a b", "x?y", "x#y", "x%2F"])
async def test_an_invalid_request_id_is_refused_before_any_call(
    emulator: EmulatorServer, connect: Callable[..., str], request_id: str
) -> None:
    hook = UpstageOCRHook(connect(emulator.url), **FAST)
    with pytest.raises(InvalidRequestIdError, match="not sent to the API") as sync_error:
        hook.get_request(request_id)
    with pytest.raises(InvalidRequestIdError):
        await hook.aget_request(request_id)
    assert isinstance(sync_error.value, ValueError)
    assert calls(emulator, "status") == 0


def test_failed_batch_names_the_pages(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(fail_batches=[1]))
    hook = UpstageOCRHook(connect(server.url), **FAST)
    request_id = hook.submit(load_document(make_pdf(25), name="x.pdf"))
    wait_done(hook, request_id)
    with pytest.raises(RequestFailedError) as err:
        list(hook.iter_results(request_id))
    assert err.value.pages == (11, 20)
    assert "pages 11-20" in str(err.value)


def test_failed_request_carries_the_api_reason(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(fail_request_message="document could not be processed"))
    hook = UpstageOCRHook(connect(server.url), **FAST)
    request_id = hook.submit(load_document(make_pdf(2), name="x.pdf"))
    info = wait_done(hook, request_id)
    assert info.status is RequestState.FAILED
    with pytest.raises(RequestFailedError, match="document could not be processed"):
        list(hook.iter_results(request_id))


def test_results_of_an_unfinished_request_are_refused(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    server = make_emulator(faults=FaultConfig(latency_per_page=0.2))
    hook = UpstageOCRHook(connect(server.url), **FAST)
    request_id = hook.submit(load_document(make_pdf(20), name="slow.pdf"))
    with pytest.raises(RequestNotCompletedError, match="not completed yet"):
        list(hook.iter_results(request_id))


def test_unreachable_api_retries_then_says_so(connect: Callable[..., str]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = UpstageOCRHook(connect(f"http://127.0.0.1:{port}"), max_retries=2, **FAST)
    with pytest.raises(UpstageConnectionError, match=r"could not connect to 127\.0\.0\.1") as err:
        hook.list_requests()
    assert "gave up after 3 attempts" in str(err.value)


# --- purpose-built servers: what the emulator does not do ---------------------------------------------


class _Script(BaseHTTPRequestHandler):
    """Answers each request with the next scripted step for its path."""

    steps: ClassVar[dict[str, list[Callable[[BaseHTTPRequestHandler], None]]]] = {}
    seen: ClassVar[list[tuple[str, str, str | None]]] = []

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._answer()

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        type(self).seen.append((self.command, path, self.headers.get("Authorization")))
        queue = type(self).steps.get(path) or []
        step = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else _reply(404, {"message": "no"}))
        step(self)

    def log_message(self, *args: Any) -> None:
        pass


def _reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Callable[[Any], None]:
    def send(handler: BaseHTTPRequestHandler) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(data)

    return send


def _cut_mid_body(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.write(b'{"pages": [')
    handler.wfile.flush()
    handler.connection.shutdown(socket.SHUT_RDWR)


def _stall(seconds: float) -> Callable[[BaseHTTPRequestHandler], None]:
    def step(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)

    return step


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Script]]]:
    handler = type("Handler", (_Script,), {"steps": {}, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _one_batch_status(base: str) -> dict[str, Any]:
    return {
        "id": "r1",
        "status": "completed",
        "model": "ocr",
        "failure_message": None,
        "total_pages": 1,
        "completed_pages": 1,
        "batches": [
            {
                "id": 0,
                "status": "completed",
                "start_page": 1,
                "end_page": 1,
                "download_url": f"{base}/files/r1/0?sig=abc",
                "failure_message": None,
            }
        ],
    }


def test_download_cut_mid_body_or_stalled_is_retried_without_the_key(
    scripted: tuple[str, type[_Script]], samples_dir: Any, connect: Callable[..., str]
) -> None:
    base, handler = scripted
    sample = json.loads((samples_dir / "water_mark.ocr.json").read_text())
    handler.steps["/v1/document-digitization/requests/r1"] = [_reply(200, _one_batch_status(base))]
    handler.steps["/files/r1/0"] = [_cut_mid_body, _stall(1.5), _reply(200, sample)]
    hook = UpstageOCRHook(connect(base), timeout=0.5, **FAST)
    pages = list(hook.iter_results("r1"))
    assert len(pages) == 1
    assert len(pages[0].words) == len(sample["pages"][0]["words"])
    downloads = [auth for method, path, auth in handler.seen if path == "/files/r1/0"]
    assert len(downloads) == 3
    assert downloads == [None, None, None]  # the key never goes to a pre-signed URL


def test_submit_is_not_repeated_when_it_may_have_reached_the_api(
    scripted: tuple[str, type[_Script]], connect: Callable[..., str]
) -> None:
    base, handler = scripted
    handler.steps["/v1/document-digitization/async"] = [_stall(1.5), _reply(200, {"request_id": "r2"})]
    hook = UpstageOCRHook(connect(base), timeout=0.5, **FAST)
    with pytest.raises(UpstageConnectionError, match="not repeated automatically"):
        hook.submit(load_document(make_pdf(1), name="x.pdf"))
    assert [p for _, p, _ in handler.seen].count("/v1/document-digitization/async") == 1


def test_submit_is_retried_on_5xx_and_429(
    scripted: tuple[str, type[_Script]], connect: Callable[..., str]
) -> None:
    base, handler = scripted
    handler.steps["/v1/document-digitization/async"] = [
        _reply(503, {"error": {"message": "overloaded", "type": "server_error"}}),
        _reply(429, {"code": 429, "message": "slow down"}, {"Retry-After": "0"}),
        _reply(200, {"request_id": "r3"}),
    ]
    hook = UpstageOCRHook(connect(base), **FAST)
    assert hook.submit(load_document(make_pdf(1), name="x.pdf")) == "r3"


def test_malformed_batch_is_a_clear_error(
    scripted: tuple[str, type[_Script]], connect: Callable[..., str]
) -> None:
    base, handler = scripted
    handler.steps["/v1/document-digitization/requests/r1"] = [_reply(200, _one_batch_status(base))]
    handler.steps["/files/r1/0"] = [_reply(200, {"pages": [{"id": 0, "words": [{"id": 0}]}]})]
    hook = UpstageOCRHook(connect(base), **FAST)
    with pytest.raises(MalformedResponseError, match=r"request r1 batch 0: pages\[0\]") as err:
        list(hook.iter_results("r1"))
    assert err.value.permanent  # a retry gets the same bytes: operators fail at once


# --- connection test, async, secrets ---------------------------------------------------------------


def test_test_connection(emulator: EmulatorServer, connect: Callable[..., str]) -> None:
    ok, message = UpstageOCRHook(connect(emulator.url)).test_connection()
    assert ok, message
    assert emulator.url in message
    ok, message = UpstageOCRHook(
        connect(emulator.url, password="up_wrong_key_123456", conn_id="bad")
    ).test_connection()
    assert not ok
    assert "401" in message
    assert "up_wrong_key_123456" not in message


async def test_aget_request_reads_status_without_blocking(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    # Half the status calls are answered 429 (retried), the others after 0.3 s: a client that
    # blocks holds the loop that long per answer, twice the most this test lets it stand still.
    server = make_emulator(
        faults=FaultConfig(
            rate_429=0.5, retry_after=0.0, seed=3, latency_per_request=0.3, endpoints=("status",)
        )
    )
    hook = UpstageOCRHook(connect(server.url), max_retries=10, **FAST)
    request_id = hook.submit(load_document(make_pdf(5), name="x.pdf"))
    async with loop_lag() as lag:
        for _ in range(200):
            info = await hook.aget_request(request_id)
            if info.is_terminal:
                break
        with pytest.raises(UpstageRequestError) as err:
            await hook.aget_request("00000000-0000-0000-0000-000000000000")
    assert info.status is RequestState.COMPLETED
    assert info.total_pages == 5
    assert err.value.status_code == 404
    answered = server.stats()["endpoints"]["status"]["by_status"]
    assert answered.get("429", 0) >= 1  # the retries ran through the loop too
    assert answered.get("200", 0) + answered.get("404", 0) >= 2
    assert lag.worst < MAX_LOOP_GAP, f"the loop stood still {lag.worst:.3f} s at once"


async def test_hooks_in_one_event_loop_share_one_http_client(
    emulator: EmulatorServer, connect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from upstage_provider.hooks import upstage

    built: list[httpx.AsyncClient] = []
    used: list[httpx.AsyncClient] = []

    class CountedClient(httpx.AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

        async def get(self, *args: Any, **kwargs: Any) -> httpx.Response:
            used.append(self)
            return await super().get(*args, **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", CountedClient)
    conn_id = connect(emulator.url)
    request_id = UpstageOCRHook(conn_id).submit(load_document(make_pdf(1), name="x.pdf"))
    hooks = [UpstageOCRHook(conn_id) for _ in range(5)]
    await asyncio.gather(*(h.aget_request(request_id) for h in hooks))
    await asyncio.gather(*(h.aget_request(request_id) for h in hooks))
    assert len(built) == 1, f"{len(built)} HTTP clients for 10 status calls in one loop"
    assert len(used) == 10
    assert all(client is built[0] for client in used)  # one client, its connection pool reused
    assert upstage._LOOP_CLIENTS[asyncio.get_running_loop()].client is built[0]


class _CountsInFlight(BaseHTTPRequestHandler):
    """Answers status calls slowly, remembering how many were in flight at once."""

    lock = threading.Lock()
    in_flight = 0
    most = 0
    served = 0

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.most = max(cls.most, cls.in_flight)
        time.sleep(0.05)
        with cls.lock:
            cls.in_flight -= 1
            cls.served += 1
        body = json.dumps(
            {"id": self.path.rsplit("/", 1)[-1], "status": "started", "total_pages": 1, "batches": []}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


async def test_status_calls_in_flight_per_event_loop_are_bounded(
    connect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thousand triggers resuming at once must not queue a thousand calls in the HTTP pool."""
    from upstage_provider.hooks import upstage

    monkeypatch.setattr(upstage, "MAX_STATUS_CALLS_PER_LOOP", 4)
    handler = type("Handler", (_CountsInFlight,), {"lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn_id = connect(f"http://127.0.0.1:{server.server_address[1]}")
        ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(24)]
        infos = await asyncio.gather(*(UpstageOCRHook(conn_id).aget_request(i) for i in ids))
    finally:
        server.shutdown()
        server.server_close()
    assert [info.id for info in infos] == ids
    assert handler.served == 24
    assert handler.most == 4  # the limit, reached and never passed


def test_the_key_never_appears_in_logs_or_errors(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3, the emulator: stdlib logging
    # Every call is first answered 503 (and some 429): each one logs a retry line.
    server = make_emulator(faults=FaultConfig(burst_5xx=1, rate_429=0.3, seed=5))
    hook = UpstageOCRHook(connect(server.url), max_retries=10, **FAST)
    with structlog.testing.capture_logs() as hook_lines:  # the hook: Airflow's structlog loggers
        request_id = hook.submit(load_document(make_pdf(12), name="x.pdf"))
        wait_done(hook, request_id)
        list(hook.iter_results(request_id))
        sync_lines = len(hook_lines)
        asyncio.run(hook.aget_request(request_id))  # the triggerer's path logs retries of its own
        async_retries = [e for e in hook_lines[sync_lines:] if "retry" in str(e["event"])]
        with pytest.raises(UpstageRequestError) as not_found:
            hook.get_request("00000000-0000-0000-0000-000000000000")
        with pytest.raises(UpstageRequestError) as bad_model:
            hook.ocr(load_document(make_pdf(1), name="one.pdf"), model="no-such-model")
    # What could carry the key was produced: retry lines (429 and 5xx) of the worker's and the
    # triggerer's paths, two API errors.
    retries = [e for e in hook_lines if "retry" in str(e["event"])]
    assert len(retries) >= 5, [e["event"] for e in hook_lines]
    assert async_retries, [e["event"] for e in hook_lines[sync_lines:]]
    assert not_found.value.status_code == 404
    assert bad_model.value.status_code == 400
    texts = [repr(entry) for entry in hook_lines]  # the message and every field logged with it
    texts += [r.getMessage() for r in caplog.records]
    texts += [text for err in (not_found, bad_model) for text in (str(err.value), repr(err.value))]
    texts.append(repr(hook))
    assert not [t for t in texts if API_KEY in t]
