"""The emulator's rate limits: the sliding windows on a fake clock, then 429s over HTTP per key."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from tests.emulator_fixtures import pdf_bytes
from upstage_provider.emulator.cli import build_parser, config_from_args
from upstage_provider.emulator.config import EmulatorConfig
from upstage_provider.emulator.ratelimit import RateLimiter
from upstage_provider.emulator.server import EmulatorServer

SYNC = "/v1/document-digitization"
ASYNC = "/v1/document-digitization/async"

Start = Callable[..., EmulatorServer]


class FakeTime:
    def __init__(self) -> None:
        self.at = 1000.0

    def __call__(self) -> float:
        return self.at


# --- the windows -------------------------------------------------------------------------------


def test_rps_lets_the_limit_through_each_second_and_says_when_a_slot_frees() -> None:
    clock = FakeTime()
    limiter = RateLimiter(rps=3, now=clock)
    for offset in (0.0, 0.2, 0.4):
        clock.at = 1000.0 + offset
        refusal, headers = limiter.admit("k")
        assert refusal is None
    assert headers["X-RateLimit-Limit-RPS"] == "3"
    assert headers["X-RateLimit-Remaining-RPS"] == "0"
    clock.at = 1000.7
    refusal, headers = limiter.admit("k")
    assert refusal is not None
    assert (refusal.scope, refusal.limit) == ("rps", 3)
    assert refusal.wait == pytest.approx(0.3)  # the call at 1000.0 leaves the window at 1001.0
    assert headers["Retry-After"] == "1"  # whole seconds, at least 1
    assert headers["X-RateLimit-Reset"] == "0.300"
    assert headers["X-RateLimit-Scope"] == "rps"
    # The refused call counted nothing: once the first call has left the window, one more passes.
    clock.at = 1001.0001
    assert limiter.admit("k")[0] is None
    assert limiter.admit("k")[0] is not None


def test_rpm_retry_after_counts_up_to_the_minute() -> None:
    clock = FakeTime()
    limiter = RateLimiter(rps=3, rpm=2, now=clock)
    assert limiter.admit("k")[0] is None
    clock.at += 5
    assert limiter.admit("k")[0] is None
    clock.at += 5
    refusal, headers = limiter.admit("k")
    assert refusal is not None
    assert refusal.scope == "rpm"
    assert headers["Retry-After"] == "50"
    assert headers["X-RateLimit-Remaining-RPM"] == "0"


def test_ppm_weighs_pages_and_lets_an_oversized_document_through_alone() -> None:
    clock = FakeTime()
    limiter = RateLimiter(ppm=100, now=clock)
    assert limiter.admit("k", pages=60)[0] is None
    clock.at += 10
    refusal, headers = limiter.admit("k", pages=50)
    assert refusal is not None
    assert refusal.scope == "ppm"
    assert refusal.wait == pytest.approx(50)
    assert headers["X-RateLimit-Remaining-PPM"] == "40"
    assert limiter.admit("k", pages=40)[0] is None  # fits beside the first
    clock.at += 61  # both have left the minute
    assert limiter.admit("k", pages=500)[0] is None  # more than a minute's pages: alone, in full
    clock.at += 30
    assert limiter.admit("k", pages=1)[0] is not None


def test_keys_have_their_own_windows_and_zero_means_no_limit() -> None:
    clock = FakeTime()
    limiter = RateLimiter(rps=1, now=clock)
    assert limiter.admit("a")[0] is None
    assert limiter.admit("a")[0] is not None
    assert limiter.admit("b")[0] is None
    off = RateLimiter(0, 0, 0, now=clock)
    assert not off.enabled
    assert all(off.admit("a") == (None, {}) for _ in range(100))


# --- the defaults and the flags ----------------------------------------------------------------


def test_the_defaults_are_the_ocr_models_documented_limit_and_the_flags_set_them() -> None:
    config = EmulatorConfig()
    assert (config.rate_limit_rps, config.rate_limit_rpm, config.rate_limit_ppm) == (3, 0, 0)
    from_cli = config_from_args(build_parser().parse_args([]), environ={})
    assert (from_cli.rate_limit_rps, from_cli.rate_limit_rpm, from_cli.rate_limit_ppm) == (3, 0, 0)
    args = build_parser().parse_args(
        ["--rate-limit-rps", "0", "--rate-limit-rpm", "100", "--rate-limit-ppm", "600"]
    )
    flagged = config_from_args(args, environ={})
    assert (flagged.rate_limit_rps, flagged.rate_limit_rpm, flagged.rate_limit_ppm) == (0, 100, 600)
    with pytest.raises(ValueError, match="rate_limit_rps must be a whole number"):
        EmulatorConfig(rate_limit_rps=-1)
    with pytest.raises(ValueError, match="rate_limit_ppm must be a whole number"):
        EmulatorConfig.from_mapping({"rate_limit_ppm": 2.5})


# --- over HTTP ---------------------------------------------------------------------------------


def ocr(server: EmulatorServer, key: str, path: str = SYNC, pages: int = 1) -> requests.Response:
    return requests.post(
        server.url + path,
        headers={"Authorization": f"Bearer {key}"},
        files={"document": ("a.pdf", pdf_bytes(pages), "application/pdf")},
        data={"model": "ocr"},
        timeout=30,
    )


def test_over_the_limit_answers_429_with_retry_after_per_key_and_counts_them(make_emulator: Start) -> None:
    # No configured key: any bearer token is accepted, so two keys can share one server.
    server = make_emulator(api_key=None, rate_limit_rps=2, rate_limit_rpm=3)
    first, second = ocr(server, "key-a"), ocr(server, "key-a", ASYNC)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["X-RateLimit-Limit-RPS"] == "2"
    assert first.headers["X-RateLimit-Remaining-RPS"] == "1"
    assert second.headers["X-RateLimit-Remaining-RPM"] == "1"

    refused = ocr(server, "key-a")  # the third model call within a second: sync and async count alike
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert (body["type"], body["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "2 requests per second" in body["message"]
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-RateLimit-Scope"] == "rps"
    assert 0 < float(refused.headers["X-RateLimit-Reset"]) <= 1

    assert ocr(server, "key-b").status_code == 200  # another key, its own window
    # Status calls, lists and downloads are not model calls: never limited, never counted.
    request_id = second.json()["request_id"]
    for _ in range(5):
        status = requests.get(
            f"{server.url}{SYNC}/requests/{request_id}", headers={"Authorization": "Bearer key-a"}, timeout=10
        )
        assert status.status_code == 200
        assert "X-RateLimit-Limit-RPS" not in status.headers

    stats = server.stats()
    assert stats["rate_limited"] == {"rps": 1}
    assert stats["injected"] == {}
    assert stats["endpoints"]["sync"]["by_status"] == {"200": 2, "429": 1}
    assert stats["submissions"] == 1
    assert stats["pages_processed"] >= 2  # the refused call was never OCR'd
    assert stats["rate_limits"] == {"rps": 2, "rpm": 3, "ppm": 0}


def test_ppm_counts_the_pages_of_sync_and_async_calls(make_emulator: Start) -> None:
    server = make_emulator(rate_limit_ppm=10)
    from tests.emulator_fixtures import API_KEY

    assert ocr(server, API_KEY, ASYNC, pages=8).status_code == 200
    refused = ocr(server, API_KEY, SYNC, pages=3)
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Scope"] == "ppm"
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    assert ocr(server, API_KEY, SYNC, pages=2).status_code == 200
    assert server.stats()["rate_limited"] == {"ppm": 1}


def test_a_bad_document_is_refused_for_what_it_is_before_the_limit_counts_it(make_emulator: Start) -> None:
    server = make_emulator(rate_limit_rps=1)
    from tests.emulator_fixtures import API_KEY

    bad = requests.post(
        server.url + SYNC,
        headers={"Authorization": f"Bearer {API_KEY}"},
        files={"document": ("a.txt", b"not a document")},
        data={"model": "ocr"},
        timeout=10,
    )
    assert bad.status_code == 415
    assert ocr(server, API_KEY).status_code == 200  # the refused upload took no slot
