"""
The API's bad days, from the client's side: each fault (429s, 5xxs, resets, stalls, expired
URLs, malformed answers) is injected for real, over HTTP on 127.0.0.1, into the emulator (or a
purpose-built server), and each test counts what the emulator saw.

Retry waits are recorded and slept at 2% (``retry_waits``): the decisions are real, the clock
is fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.emulator_fixtures import API_KEY, WORDS_PER_PAGE
from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.fault_proxy import FaultProxy, Rule
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.retry import RETRY_AFTER_JITTER

pytestmark = pytest.mark.usefixtures("airflow_db")


def endpoint(server: EmulatorServer, name: str) -> dict[str, int]:
    """``{status: count}`` for one endpoint, plus ``total``."""
    entry = server.stats()["endpoints"].get(name, {"total": 0, "by_status": {}})
    return {"total": entry["total"], **entry["by_status"]}


def landed_pages(out: Path, partition: str = "") -> list[tuple[str, int]]:
    """(document_uri, page) of every page row written (under ``partition``), duplicates kept."""
    table = pads.dataset(out / "pages" / partition, format="parquet").to_table(
        columns=["document_uri", "page"]
    )
    return list(zip(table["document_uri"].to_pylist(), table["page"].to_pylist(), strict=False))


def landed_word_count(out: Path, partition: str = "") -> int:
    return pads.dataset(out / "words" / partition, format="parquet").count_rows()


def task_instance(run: Any, task_id: str) -> Any:
    return next(ti for ti in run.get_task_instances() if ti.task_id == task_id)


# --- 1. 429 on half of all calls -------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [None, 0.05], ids=["backoff", "retry-after"])
def test_half_of_all_calls_rate_limited_still_lands_every_page_once(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    run_dag: Callable[..., Any],
    retry_waits: list[float],
    tmp_path: Path,
    retry_after: float | None,
) -> None:
    # Injected: 429 on every endpoint with probability 0.5 (seeded), Retry-After 0.05 s or none.
    server = make_emulator(FaultConfig(rate_429=0.5, retry_after=retry_after, seed=4))
    connect(server.url, conn_id="upstage_default", max_retries=8)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a-3-pages.pdf").write_bytes(make_pdf(3))
    (inbox / "b-23-pages.pdf").write_bytes(make_pdf(23))
    lake = tmp_path / "lake"

    run = run_dag(
        "upstage_ocr_ingest",
        file="upstage_ocr_ingest.py",
        UPSTAGE_INGEST_INPUT=str(inbox),
        UPSTAGE_INGEST_OUTPUT=str(lake),
        UPSTAGE_POLL_INTERVAL="0.05",
    )

    assert run.state == "success"
    stats = server.stats()
    injected = stats["injected"].get("429", 0)
    answered_429 = sum(e["by_status"].get("429", 0) for e in stats["endpoints"].values())
    assert injected == answered_429 >= 10  # roughly half of ~25 calls
    assert stats["submissions"] == 2
    assert endpoint(server, "submit").get("200") == 2
    # Every 429 cost exactly one wait; none made a task retry (the hook absorbed them all).
    assert len(retry_waits) == injected
    assert all(ti.try_number == 1 for ti in run.get_task_instances())
    if retry_after is None:
        assert all(0.5 <= w <= 60.0 for w in retry_waits)  # equal jitter from a 1 s base
        assert max(retry_waits) > 1.0  # some call met two 429s in a row: the ceiling doubled
    else:  # as asked, plus up to a quarter of it so that callers turned away together spread out
        assert all(0.05 <= w <= 0.05 * (1 + RETRY_AFTER_JITTER) for w in retry_waits)
    assert sorted(p.name for p in lake.iterdir()) == ["pages", "words"]  # table first
    (day,) = (p.name for p in (lake / "pages").iterdir())  # ds=<the run's date>
    assert day.startswith("ds=")
    pages = landed_pages(lake, day)
    expected = [(str(inbox / "a-3-pages.pdf"), p) for p in range(1, 4)]
    expected += [(str(inbox / "b-23-pages.pdf"), p) for p in range(1, 24)]
    assert sorted(pages) == expected  # 26 rows: none lost, none twice
    assert landed_word_count(lake, day) == 26 * WORDS_PER_PAGE


# --- 2. 5xx bursts; resets and stalls in the middle of a download -----------------------------


def run_pipeline(
    run_dag: Callable[..., Any], tmp_path: Path, pages: int, name: str = "scan.pdf"
) -> tuple[Any, Path, Path]:
    doc = tmp_path / name
    doc.write_bytes(make_pdf(pages))
    out = tmp_path / "out"
    run = run_dag(
        "upstage_reliability_pipeline",
        UPSTAGE_RELIABILITY_DOCUMENT=str(doc),
        UPSTAGE_RELIABILITY_OUTPUT=str(out),
    )
    return run, doc, out


def test_5xx_bursts_on_submit_status_and_download_are_absorbed(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    run_dag: Callable[..., Any],
    retry_waits: list[float],
    tmp_path: Path,
) -> None:
    # Injected: 502 twice in a row before every call served on submit, status and download
    # (deterministic); downloads one at a time so each call meets its own burst.
    server = make_emulator(
        FaultConfig(burst_5xx=2, status_5xx=502, endpoints=("submit", "status", "download"))
    )
    connect(server.url, conn_id="upstage_default", download_concurrency=1)

    run, doc, out = run_pipeline(run_dag, tmp_path, pages=23)

    assert run.state == "success"
    assert all(ti.try_number == 1 for ti in run.get_task_instances())
    for name in ("submit", "status", "download"):
        counts = endpoint(server, name)
        assert counts["502"] == 2 * counts["200"], (name, counts)
    assert endpoint(server, "submit")["200"] == 1
    assert server.stats()["submissions"] == 1
    assert endpoint(server, "download")["200"] == 3  # 23 pages = 3 batches, each fetched once
    assert len(retry_waits) == server.stats()["injected"]["5xx"]
    assert sorted(landed_pages(out)) == [(str(doc), p) for p in range(1, 24)]
    assert landed_word_count(out) == 23 * WORDS_PER_PAGE


def test_downloads_cut_or_stalled_mid_body_are_fetched_again(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    run_dag: Callable[..., Any],
    retry_waits: list[float],
    tmp_path: Path,
) -> None:
    # Injected on downloads only: 30% have the connection closed after half the body, 30%
    # stall after half the body for 1.5 s, three times the client's 0.5 s read timeout.
    server = make_emulator(
        FaultConfig(rate_reset=0.3, rate_stall=0.3, stall_seconds=1.5, seed=3, endpoints=("download",)),
        batch_size=5,
    )
    connect(server.url, conn_id="upstage_default", timeout=0.5, max_retries=8)

    run, doc, out = run_pipeline(run_dag, tmp_path, pages=32)

    assert run.state == "success"
    injected = server.stats()["injected"]
    assert injected.get("reset", 0) >= 1, injected
    assert injected.get("stall", 0) >= 1, injected
    downloads = endpoint(server, "download")
    # 7 batches; each spoiled answer (sent as a 200, then broken) cost one more download.
    assert downloads["total"] == downloads["200"] == 7 + injected["reset"] + injected["stall"]
    assert len(retry_waits) == injected["reset"] + injected["stall"]
    assert server.stats()["submissions"] == 1
    assert sorted(landed_pages(out)) == [(str(doc), p) for p in range(1, 33)]
    assert landed_word_count(out) == 32 * WORDS_PER_PAGE


# --- 3. Download URLs expiring between the status call and the download --------------------


def test_expired_download_urls_are_refreshed_without_losing_a_page(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], retry_waits: list[float]
) -> None:
    from upstage_provider.hooks.upstage import UpstageOCRHook

    # Injected: URLs live 0.6 s; every download waits 0.25 s before its URL is checked, and
    # downloads go one at a time, so by the third batch the URLs of a status call are stale.
    server = make_emulator(
        FaultConfig(latency_per_request=0.25, endpoints=("download",)), url_ttl=0.6, batch_size=5
    )
    connect(server.url, download_concurrency=1)
    hook = UpstageOCRHook("upstage_test")
    request_id = hook.submit(load_document(make_pdf(30), name="scan.pdf"))
    wait_until_completed(hook, request_id)
    status_before = endpoint(server, "status")["total"]

    pages = [page.page for page in hook.iter_results(request_id)]

    assert pages == list(range(1, 31))  # 6 batches, every page once, in order
    downloads = endpoint(server, "download")
    expired = downloads.get("403", 0)
    assert expired >= 2
    assert downloads["200"] == 6
    assert downloads["total"] == 6 + expired
    # One status call to start, then exactly one per expired URL (one download in flight).
    assert endpoint(server, "status")["total"] - status_before == 1 + expired
    assert retry_waits == []  # a 403 refresh is not a retry


def wait_until_completed(hook: Any, request_id: str) -> None:
    import time

    for _ in range(400):
        if hook.get_request(request_id).is_terminal:
            return
        time.sleep(0.025)
    raise AssertionError(f"request {request_id} did not finish")


# --- 3b. A status answer that hands out another batch's download URL ---------------------------

STATUS_PREFIX = "/v1/document-digitization/requests/"
RESULTS_PREFIX = "/v1/document-digitization/results/"


def swap_first_two_urls(body: bytes) -> bytes:
    """The status answer with batches 0 and 1 trading download URLs, as a broken cache might."""
    status = json.loads(body)
    first, second = status["batches"][0], status["batches"][1]
    first["download_url"], second["download_url"] = second["download_url"], first["download_url"]
    return json.dumps(status).encode()


def expected_words(pdf: bytes, pages: int) -> list[list[str]]:
    """What the emulator's synthetic engine reads on each page: every page's words differ."""
    from upstage_provider.emulator.synthetic import SyntheticEngine

    document = SyntheticEngine(words_per_page=WORDS_PER_PAGE).open(pdf, "scan.pdf")
    return [[w.text for line in document.page(i).lines for w in line.words] for i in range(pages)]


def through_proxy(
    server: EmulatorServer, connect: Callable[..., str], pdf: bytes
) -> tuple[FaultProxy, Any, str]:
    """A completed request on ``server`` (submitted directly), and a hook that reaches it via a proxy."""
    from upstage_provider.hooks.upstage import UpstageOCRHook

    direct = UpstageOCRHook(connect(server.url, conn_id="upstage_direct"))
    request_id = direct.submit(load_document(pdf, name="scan.pdf"))
    wait_until_completed(direct, request_id)
    direct.close()
    proxy = FaultProxy(server.port)
    return proxy, UpstageOCRHook(connect(proxy.url, conn_id="upstage_proxied", max_retries=0)), request_id


def proxy_calls(proxy: FaultProxy, prefix: str) -> list[str]:
    return [
        path.split("?")[0] for method, path, _ in proxy.log if method == "GET" and path.startswith(prefix)
    ]


def test_swapped_download_urls_on_every_status_answer_fail_after_one_fresh_status_call(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    from upstage_provider.exceptions import MalformedResponseError

    # Injected: every status answer gives batch 0 (pages 1-10) batch 1's URL and vice versa; the
    # emulator numbers batch pages absolutely, so batch 0's download carries page ids 10-19.
    server = make_emulator(batch_page_ids="absolute")
    pdf = make_pdf(20)
    proxy, hook, request_id = through_proxy(server, connect, pdf)
    rule = proxy.add(
        Rule(
            action="rewrite",
            method="GET",
            path_prefix=STATUS_PREFIX,
            rewrite=swap_first_two_urls,
            times=10**6,
        )
    )
    with proxy, pytest.raises(MalformedResponseError) as err:
        list(hook.iter_arrow_batches(request_id))
    hook.close()

    message = str(err.value)
    assert f"request {request_id} batch 0 (pages 1-10): page ids 10-19" in message
    assert "0-9" in message
    # The first status answer, then exactly one fresh one for the retry; both were swapped.
    assert len(proxy_calls(proxy, STATUS_PREFIX)) == rule.fired == 2
    # Batch 0 was fetched twice, both times from batch 1's URL, never more; batch 1 (from batch 0's
    # URL, batch-relative-looking ids 0-9) once, and never passed on: batch 0 failed first.
    downloads = proxy_calls(proxy, RESULTS_PREFIX)
    assert downloads.count(f"{RESULTS_PREFIX}{request_id}/1") == 2
    assert len(downloads) == 3


def test_swapped_download_urls_in_one_status_answer_are_healed_by_a_fresh_one(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], tmp_path: Path
) -> None:
    from upstage_provider.parquet import DocumentMeta, write_ocr_parquet

    # Injected: only the first status answer the hook gets swaps batch 0's and batch 1's URLs.
    server = make_emulator(batch_page_ids="absolute")
    pdf = make_pdf(20)
    proxy, hook, request_id = through_proxy(server, connect, pdf)
    rule = proxy.add(
        Rule(action="rewrite", method="GET", path_prefix=STATUS_PREFIX, rewrite=swap_first_two_urls, times=1)
    )
    meta = DocumentMeta(document_uri="file:///scan.pdf", document_sha256="0" * 64, request_id=request_id)
    with proxy:
        summary = write_ocr_parquet(hook.iter_arrow_batches(request_id), output_uri=tmp_path, meta=meta)
    hook.close()

    assert (summary.pages, summary.words) == (20, 20 * WORDS_PER_PAGE)
    words = pads.dataset(tmp_path / "words", format="parquet").to_table(columns=["page", "word_id", "text"])
    landed: dict[int, list[str]] = {}
    for page, text in zip(words["page"].to_pylist(), words["text"].to_pylist(), strict=True):
        landed.setdefault(page, []).append(text)
    expected = expected_words(pdf, 20)
    assert len({tuple(page) for page in expected}) == 20  # the pages can be told apart
    assert sorted(landed) == list(range(1, 21))
    mismatched = [page for page in landed if landed[page] != expected[page - 1]]
    assert mismatched == []  # page N's rows are page N's words
    assert rule.fired == 1
    assert len(proxy_calls(proxy, STATUS_PREFIX)) == 2  # the swapped answer and one fresh answer
    # Each batch twice: batch 0 because its ids were batch 1's, batch 1 because its URL came from
    # the same status answer and its ids (0-9, batch 0's) could not vouch for it.
    assert sorted(proxy_calls(proxy, RESULTS_PREFIX)) == [
        f"{RESULTS_PREFIX}{request_id}/{i}" for i in (0, 0, 1, 1)
    ]


def url_of(batch: int, other: int) -> Callable[[bytes], bytes]:
    """A status rewrite giving ``batch`` the download URL of ``other`` (which keeps its own)."""

    def rewrite(body: bytes) -> bytes:
        status = json.loads(body)
        status["batches"][batch]["download_url"] = status["batches"][other]["download_url"]
        return json.dumps(status).encode()

    return rewrite


def landed_words(hook: Any, request_id: str, tmp_path: Path) -> dict[int, list[str]]:
    from upstage_provider.parquet import DocumentMeta, write_ocr_parquet

    meta = DocumentMeta(document_uri="file:///scan.pdf", document_sha256="0" * 64, request_id=request_id)
    write_ocr_parquet(hook.iter_arrow_batches(request_id), output_uri=tmp_path, meta=meta)
    words = pads.dataset(tmp_path / "words", format="parquet").to_table(columns=["page", "text"])
    landed: dict[int, list[str]] = {}
    for page, text in zip(words["page"].to_pylist(), words["text"].to_pylist(), strict=True):
        landed.setdefault(page, []).append(text)
    return landed


@pytest.mark.parametrize("times", [10**6, 1], ids=["every-answer", "first-answer"])
def test_a_batch_numbered_unlike_the_others_is_fetched_again_before_it_is_refused(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], tmp_path: Path, times: int
) -> None:
    from upstage_provider.exceptions import MalformedResponseError

    # Injected: batch 2 (pages 21-30) gets batch 0's URL. Its download carries ids 0-9, which fit
    # pages 21-30 counted from the batch; only batch 1's absolute ids (10-19) show they are wrong.
    server = make_emulator(batch_page_ids="absolute")
    pdf = make_pdf(30)
    proxy, hook, request_id = through_proxy(server, connect, pdf)
    proxy.add(
        Rule(action="rewrite", method="GET", path_prefix=STATUS_PREFIX, rewrite=url_of(2, 0), times=times)
    )
    with proxy:
        if times == 1:
            landed = landed_words(hook, request_id, tmp_path)
        else:
            with pytest.raises(MalformedResponseError) as err:
                landed_words(hook, request_id, tmp_path)
    hook.close()

    assert len(proxy_calls(proxy, STATUS_PREFIX)) == 2  # the first answer and one fresh one
    if times == 1:
        expected = expected_words(pdf, 30)
        assert sorted(landed) == list(range(1, 31))
        assert [page for page in landed if landed[page] != expected[page - 1]] == []
    else:
        assert str(err.value) == (
            f"request {request_id} batch 2 (pages 21-30): its page ids are batch-relative, but those of "
            "batch 1 (pages 11-20) were absolute: one of the two holds other pages than announced, "
            "again through fresh download URLs"
        )
        assert not (tmp_path / "words").exists() or not any((tmp_path / "words").iterdir())


def test_a_batch_passed_on_from_a_status_answer_later_found_wrong_fails_the_download(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], tmp_path: Path
) -> None:
    from upstage_provider.exceptions import MalformedResponseError

    # Injected, in the first status answer only: batch 2 (pages 21-30) gets batch 1's URL. With one
    # download at a time, batch 0 (ids 0-9, which would be the same in any batch of ten pages) is
    # passed on before batch 2's ids (10-19) show that answer to be wrong.
    server = make_emulator(batch_page_ids="absolute")
    proxy, _, request_id = through_proxy(server, connect, make_pdf(30))
    from upstage_provider.hooks.upstage import UpstageOCRHook

    hook = UpstageOCRHook(connect(proxy.url, conn_id="upstage_one_at_a_time", download_concurrency=1))
    proxy.add(Rule(action="rewrite", method="GET", path_prefix=STATUS_PREFIX, rewrite=url_of(2, 1)))
    with proxy, pytest.raises(MalformedResponseError) as err:
        landed_words(hook, request_id, tmp_path)
    hook.close()

    assert f"request {request_id} batch 0 (pages 1-10) was already passed on" in str(err.value)
    assert "turned out to give batch 2 (pages 21-30) another batch's pages" in str(err.value)
    assert len(proxy_calls(proxy, STATUS_PREFIX)) == 2
    assert not (tmp_path / "words").exists() or not any((tmp_path / "words").iterdir())


# --- 4. A failed batch, a failed request: the task fails once, for good -------------------------


def test_a_failed_batch_fails_the_sensor_once_with_the_api_message_and_pages(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    run_dag: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Injected: batch index 1 (pages 11-20) of every request ends `failed`.
    server = make_emulator(FaultConfig(fail_batches=(1,)))
    connect(server.url, conn_id="upstage_default")

    run, _, out = run_pipeline(run_dag, tmp_path, pages=23)

    assert run.state == "failed"
    sensor = task_instance(run, "wait_and_land")
    assert sensor.state == "failed"
    assert sensor.try_number == 1
    assert task_instance(run, "submit").state == "success"
    assert server.stats()["submissions"] == 1
    assert endpoint(server, "download")["total"] == 0
    assert not out.exists() or list(out.rglob("*")) == []  # the write check may leave the folder
    (error,) = task_failures(capsys)
    assert error.startswith("airflow.sdk.exceptions.AirflowFailException: ")
    assert "pages 11-20" in error
    assert "could not be processed (injected fault)" in error


def task_failures(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """
    The exception line of every task failure the task runner logged (dag.test() logs to
    stdout): one entry per failed try.
    """
    lines = capsys.readouterr().out.splitlines()
    found = []
    for i, line in enumerate(lines):
        if "Task failed with exception" in line:
            found.append(next(x for x in lines[i + 1 :] if "Exception: " in x or "Error: " in x))
    return found


def test_a_request_over_the_page_limit_fails_the_sensor_once_with_the_api_message(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    run_dag: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Injected: a 1,001-page PDF posted straight to the async endpoint (the client would refuse
    # it before upload); the API accepts it and fails the request as a whole.
    answer = requests.post(
        emulator.url + "/v1/document-digitization/async",
        headers={"Authorization": f"Bearer {API_KEY}"},
        files={"document": ("huge.pdf", make_pdf(1001), "application/pdf")},
        data={"model": "ocr"},
        timeout=60,
    )
    assert answer.status_code == 200
    request_id = answer.json()["request_id"]
    connect(emulator.url, conn_id="upstage_default")
    out = tmp_path / "out"

    run = run_dag(
        "upstage_reliability_sensor",
        UPSTAGE_RELIABILITY_REQUEST_ID=request_id,
        UPSTAGE_RELIABILITY_OUTPUT=str(out),
    )

    assert run.state == "failed"
    sensor = task_instance(run, "wait_and_land")
    assert sensor.state == "failed"
    assert sensor.try_number == 1
    (error,) = task_failures(capsys)
    assert error.startswith("airflow.sdk.exceptions.AirflowFailException: ")
    assert request_id in error
    assert "1001 pages is over the limit of 1,000 pages" in error
    assert emulator.stats()["submissions"] == 1
    assert endpoint(emulator, "download")["total"] == 0
    assert not out.exists() or list(out.rglob("*")) == []  # the write check may leave the folder


# --- 9. A wrong API key; the API unreachable -----------------------------------------------------


def test_a_wrong_api_key_fails_once_and_names_the_connection(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    run_dag: Callable[..., Any],
    retry_waits: list[float],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Injected: the connection's password is not the emulator's key.
    connect(emulator.url, password="up_wrong_key_0000", conn_id="upstage_default")

    run, _, _out = run_pipeline(run_dag, tmp_path, pages=2)

    assert run.state == "failed"
    submit = task_instance(run, "submit")
    assert submit.state == "failed"
    assert submit.try_number == 1
    assert endpoint(emulator, "submit") == {"total": 1, "401": 1}  # one request, no retry
    assert emulator.stats()["submissions"] == 0
    assert retry_waits == []
    (error,) = task_failures(capsys)
    assert error.startswith("airflow.sdk.exceptions.AirflowFailException: ")
    assert "Invalid API key" in error
    assert "check the API key in the password of the upstage connection" in error
    assert "up_wrong_key_0000" not in error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("call", ["submit", "status"])
def test_an_unreachable_api_is_retried_with_backoff_then_named(
    connect: Callable[..., str], retry_waits: list[float], call: str
) -> None:
    from upstage_provider.exceptions import UpstageConnectionError
    from upstage_provider.hooks.upstage import UpstageOCRHook

    # Injected: nothing listens on the connection's port (connection refused, every attempt).
    port = free_port()
    connect(f"http://127.0.0.1:{port}", max_retries=4)
    hook = UpstageOCRHook("upstage_test")

    attempt: Callable[[], object] = (
        (lambda: hook.submit(load_document(make_pdf(1), name="one.pdf")))
        if call == "submit"
        else (lambda: hook.get_request("0b6f3c1e-1111-4222-8333-944455556666"))
    )
    with pytest.raises(UpstageConnectionError) as caught:
        attempt()

    message = str(caught.value)
    assert f"could not connect to 127.0.0.1:{port}" in message
    assert "gave up after 5 attempts" in message
    assert not caught.value.permanent  # Airflow's own retries still apply
    # 4 waits, each from the upper half of a ceiling doubling from 1 s: 0.5-1, 1-2, 2-4, 4-8.
    assert len(retry_waits) == 4
    for attempt, wait in enumerate(retry_waits, start=1):
        assert 2 ** (attempt - 2) <= wait <= 2 ** (attempt - 1), retry_waits


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every line logged through Airflow's (structlog) loggers during the test."""
    import structlog

    with structlog.testing.capture_logs() as entries:
        yield entries


def test_a_sync_call_reset_after_the_api_answered_is_retried_and_says_it_may_bill_again(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    retry_waits: list[float],
    logged: list[dict[str, Any]],
) -> None:
    from upstage_provider.hooks.upstage import SYNC_PATH, UpstageOCRHook

    # Injected: the first sync OCR call goes through to the API, which answers (and bills);
    # then the client's connection is reset before it hears the answer.
    with FaultProxy(emulator.port) as proxy:
        reset = proxy.add(
            Rule("reset_after_answer", "POST", SYNC_PATH, when=lambda call: call.path == SYNC_PATH)
        )
        connect(proxy.url, max_retries=2)
        hook = UpstageOCRHook("upstage_test")
        result = hook.ocr(load_document(make_pdf(2), name="two.pdf"))
        hook.close()

    assert [p.page for p in result.pages] == [1, 2]
    assert reset.fired == 1
    assert [what for _, _, what in proxy.log] == ["reset_after_answer", "forwarded"]
    # Sync OCR has no request id to reattach to: it is sent again, and billed again.
    assert endpoint(emulator, "sync") == {"total": 2, "200": 2}
    assert emulator.stats()["pages_processed"] == 4  # 2 pages, billed twice
    assert len(retry_waits) == 1
    retries = [str(e["event"]) for e in logged if "retry 1/2" in str(e["event"])]
    assert len(retries) == 1, logged
    (line,) = retries
    assert line.startswith("Upstage sync OCR: ")
    assert f"the connection to 127.0.0.1:{proxy.port} was lost after the request was sent" in line
    assert "the API may already have done and billed this call" in line
    assert "this retry may bill the document again" in line
    assert 'mode="async"' in line
    assert "could not reach" not in line


def listening_but_silent() -> socket.socket:
    """A socket the kernel accepts connections on (its backlog) and nobody ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


@pytest.mark.parametrize("failure", ["refused", "timeout", "reset"])
async def test_the_sync_and_async_paths_word_a_connection_failure_alike(
    emulator: EmulatorServer, connect: Callable[..., str], retry_waits: list[float], failure: str
) -> None:
    from upstage_provider.exceptions import UpstageConnectionError
    from upstage_provider.hooks.upstage import REQUESTS_PATH, UpstageOCRHook

    request_id = "0b6f3c1e-1111-4222-8333-944455556666"
    with contextlib.ExitStack() as stack:
        if failure == "refused":  # nothing listens: the call is never sent
            host = f"127.0.0.1:{free_port()}"
            expected = f"could not connect to {host}"
        elif failure == "timeout":  # connected, sent, no answer within the read timeout
            silent = stack.enter_context(listening_but_silent())
            host = f"127.0.0.1:{silent.getsockname()[1]}"
            expected = f"{host} did not answer in time"
        else:  # the API answers, the connection is reset before the client hears it
            proxy = stack.enter_context(FaultProxy(emulator.port))
            proxy.add(Rule("reset_after_answer", "GET", REQUESTS_PATH, times=100))
            host = f"127.0.0.1:{proxy.port}"
            expected = f"the connection to {host} was lost after the request was sent"
        connect(f"http://{host}", max_retries=1, timeout=0.3)
        hook = UpstageOCRHook("upstage_test")
        with pytest.raises(UpstageConnectionError) as sync_error:
            hook.get_request(request_id)
        with pytest.raises(UpstageConnectionError) as async_error:
            await hook.aget_request(request_id)
        hook.close()

    def phrase(error: UpstageConnectionError) -> str:
        return error.message.split(": ", 1)[1]  # after the client library's exception class

    assert phrase(sync_error.value) == phrase(async_error.value) == f"{expected} (gave up after 2 attempts)"
    assert "could not reach" not in str(sync_error.value) + str(async_error.value)


# --- 10. Bad documents: a specific DocumentError before any upload ---------------------------

BASE_PDF = make_pdf(3)
#: pdfium rebuilds a PDF that lost only its ``startxref``/``%%EOF`` tail (every object intact),
#: and so does the API: a cut is "truncated" when it falls before the trailer.
LAST_CUT = BASE_PDF.rfind(b"startxref") - 3


def encrypted_pdf(password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(BASE_PDF)))
    writer.encrypt(user_password=password, owner_password=password + "-owner")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def bad_documents() -> st.SearchStrategy[tuple[str, bytes, str, str]]:
    """(case, content, extension, name of the DocumentError expected)."""
    return st.one_of(
        st.tuples(
            st.just("empty"),
            st.just(b""),
            st.sampled_from([".pdf", ".png", ""]),
            st.just("EmptyDocumentError"),
        ),
        # Random bytes behind a prefix no format starts with.
        st.tuples(
            st.just("random"),
            st.binary(min_size=0, max_size=4096).map(lambda b: b"\xfe\xedRND" + b),
            st.sampled_from([".pdf", ".jpg", ".tiff", ".docx"]),
            st.just("UnsupportedDocumentError"),
        ),
        st.tuples(
            st.just("truncated"),
            st.integers(8, LAST_CUT).map(lambda cut: BASE_PDF[:cut]),
            st.just(".pdf"),
            st.just("CorruptDocumentError"),
        ),
        st.tuples(
            st.just("encrypted"),
            st.text(min_size=1, max_size=12).map(encrypted_pdf),
            st.just(".pdf"),
            st.just("EncryptedDocumentError"),
        ),
        st.tuples(st.just("0 pages"), st.just(make_pdf(0)), st.just(".pdf"), st.just("CorruptDocumentError")),
        # Content of a kind the API does not read, named as one it does.
        st.tuples(
            st.just("wrong extension"),
            st.sampled_from(
                [b"GIF89a" + bytes(32), b"RIFF\x10\x00\x00\x00WEBPVP8 ", b"plain text, not a scan\n"]
            ),
            st.sampled_from([".pdf", ".png", ".jpg"]),
            st.just("UnsupportedDocumentError"),
        ),
        st.tuples(
            st.just("huge page"),
            st.tuples(st.integers(7000, 14400), st.integers(7000, 14400)).map(lambda wh: make_pdf(1, wh)),
            st.just(".pdf"),
            st.just("PageTooLargeError"),
        ),
    )


#: File names a user may have: unicode, spaces, quotes, leading dashes and dots, control-free.
odd_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\x00"),
    min_size=1,
    max_size=40,
).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=bad_documents(), stem=odd_names)
def test_a_bad_document_gets_its_own_error_before_any_upload(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    tmp_path: Path,
    case: tuple[str, bytes, str, str],
    stem: str,
) -> None:
    from upstage_provider.exceptions import DocumentError
    from upstage_provider.hooks.upstage import UpstageOCRHook

    kind, content, extension, expected = case
    folder = tmp_path / f"bad-{abs(hash((kind, content, stem)))}"
    folder.mkdir(exist_ok=True)
    path = folder / (stem + extension)
    path.write_bytes(content)
    connect(emulator.url)
    hook = UpstageOCRHook("upstage_test")

    for call in (hook.submit, hook.ocr):
        with pytest.raises(DocumentError) as caught:  # anything else fails the test
            call(str(path))
        assert type(caught.value).__name__ == expected, (kind, caught.value)
        assert path.name in str(caught.value)
    # Nothing reached the emulator, not even a status or list call.
    assert emulator.stats()["endpoints"] == {}
    shutil.rmtree(folder)


# --- 11. Malformed responses from a purpose-built server ---------------------------------------

PAGE_W, PAGE_H = 1275, 1650


def ocr_body(pages: int = 2, words: int = 3) -> dict[str, Any]:
    """A well-formed response in the recorded shape (pixel vertices, camelCase)."""
    out_pages = []
    word_id = 0
    for index in range(pages):
        page_words = []
        for w in range(words):
            x0, y0 = 100 + 300 * w, 100 + 50 * index
            box = [
                {"x": x0, "y": y0},
                {"x": x0 + 200, "y": y0},
                {"x": x0 + 200, "y": y0 + 40},
                {"x": x0, "y": y0 + 40},
            ]
            page_words.append(
                {"boundingBox": {"vertices": box}, "confidence": 0.9, "id": word_id, "text": f"w{word_id}"}
            )
            word_id += 1
        out_pages.append(
            {
                "confidence": 0.9,
                "height": PAGE_H,
                "id": index,
                "text": "",
                "width": PAGE_W,
                "words": page_words,
            }
        )
    return {
        "apiVersion": "1.1",
        "confidence": 0.9,
        "metadata": {"pages": [{"height": PAGE_H, "page": i + 1, "width": PAGE_W} for i in range(pages)]},
        "mimeType": "multipart/form-data",
        "modelVersion": "ocr-2.2.1",
        "numBilledPages": pages,
        "pages": out_pages,
        "text": "",
    }


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (keys and indexes) into a JSON value, the root excluded."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def at(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        node = node[key]
    return node


WRONG_VALUES = [None, "12", [], {}, True, -1, 10**30, 1.5, "NaN"]


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(what was done, a response) with one malformed-response fault of the kinds sampled below."""
    body = ocr_body()
    kind = draw(
        st.sampled_from(
            ["missing key", "wrong type", "nan", "vertex count", "off page", "near edge", "empty pages"]
        )
    )
    all_paths = list(paths(body))
    words = [(p, w) for p in range(2) for w in range(3)]
    if kind == "missing key":
        path = draw(st.sampled_from([p for p in all_paths if isinstance(p[-1], str)]))
        del at(body, path[:-1])[path[-1]]
    elif kind == "wrong type":
        path = draw(st.sampled_from(all_paths))
        at(body, path[:-1])[path[-1]] = draw(st.sampled_from(WRONG_VALUES))
    elif kind == "nan":
        numeric = [p for p in all_paths if type(at(body, p)) in (int, float)]
        path = draw(st.sampled_from(numeric))
        at(body, path[:-1])[path[-1]] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        if path[0] == "metadata":
            kind = "nan in unused metadata"  # page sizes there are a fallback these pages never need
    elif kind == "vertex count":
        page, word = draw(st.sampled_from(words))
        vertices = body["pages"][page]["words"][word]["boundingBox"]["vertices"]
        count = draw(st.sampled_from([0, 1, 2, 3, 5, 8]))
        vertices[:] = (vertices * 2)[:count]
    elif kind in ("off page", "near edge"):
        page, word = draw(st.sampled_from(words))
        vertex = draw(st.integers(0, 3))
        axis, size = draw(st.sampled_from([("x", PAGE_W), ("y", PAGE_H)]))
        # Off page: 3% to 300% of the page past an edge; near edge: within the 2% tolerance.
        share = draw(st.floats(0.03, 3.0) if kind == "off page" else st.floats(0.0, 0.0195))
        beyond = draw(st.booleans())
        value = size * (1 + share) if beyond else -size * share
        vertices = body["pages"][page]["words"][word]["boundingBox"]["vertices"]
        vertices[vertex][axis] = int(value) if draw(st.booleans()) else value
    else:
        body["pages"] = []
    return kind, body


class ScriptedAPI(ThreadingHTTPServer):
    """Answers the sync endpoint, one request's status and its one batch with set bodies."""

    daemon_threads = True
    request_id = "11111111-2222-4333-8444-555555555555"

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.sync_body = b"{}"
        self.batch_body = b"{}"
        self.hits: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def status_body(self) -> bytes:
        return json.dumps(
            {
                "id": self.request_id,
                "status": "completed",
                "total_pages": 2,
                "completed_pages": 2,
                "batches": [
                    {
                        "id": 0,
                        "status": "completed",
                        "start_page": 1,
                        "end_page": 2,
                        "download_url": f"{self.url}/results/{self.request_id}/0?signature=x",
                    }
                ],
            }
        ).encode()


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedAPI

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, name: str, body: bytes) -> None:
        self.server.hits[name] = self.server.hits.get(name, 0) + 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send("sync", self.server.sync_body)

    def do_GET(self) -> None:
        if self.path.startswith("/results/"):
            self._send("download", self.server.batch_body)
        else:
            self._send("status", self.server.status_body())


@pytest.fixture(scope="module")
def scripted_api() -> Iterator[ScriptedAPI]:
    server = ScriptedAPI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def check_result_or_malformed(get: Callable[[], list[Any]]) -> str:
    """Either a MalformedResponseError or pages 1-2, every vertex finite and in [0, 1]."""
    from upstage_provider.exceptions import BatchPagesMismatchError, MalformedResponseError

    try:
        pages = get()
    except BatchPagesMismatchError:
        return "wrong pages"
    except MalformedResponseError:
        return "malformed"
    assert [p.page for p in pages] == [1, 2]
    for page in pages:
        for word in page.words:
            assert len(word.polygon) == 4
            for x, y in word.polygon:
                assert 0.0 <= x <= 1.0, (page.page, word)
                assert 0.0 <= y <= 1.0, (page.page, word)
    return "ok"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=malformed(), route=st.sampled_from(["sync", "batch"]))
def test_a_malformed_response_is_refused_or_clamped_never_silently_wrong(
    scripted_api: ScriptedAPI, connect: Callable[..., str], case: tuple[str, dict[str, Any]], route: str
) -> None:
    from upstage_provider.hooks.upstage import UpstageOCRHook

    kind, body = case
    raw = json.dumps(body).encode()  # NaN and Infinity as Python writes them
    connect(scripted_api.url, max_retries=0)
    hook = UpstageOCRHook("upstage_test")
    before = dict(scripted_api.hits)
    if route == "sync":
        scripted_api.sync_body = raw
        outcome = check_result_or_malformed(
            lambda: list(hook.ocr(load_document(TWO_PAGES, name="two.pdf")).pages)
        )
    else:
        scripted_api.batch_body = raw
        outcome = check_result_or_malformed(lambda: list(hook.iter_results(scripted_api.request_id)))
    hook.close()
    calls = {k: v - before.get(k, 0) for k, v in scripted_api.hits.items() if v - before.get(k, 0)}
    # One call per step: a malformed answer is not retried (it would come back the same). A batch
    # holding other pages than announced (a page id -1, no pages) may have come from a wrong URL:
    # it is fetched once more through a fresh status answer. A sync call is never repeated.
    if route == "sync":
        assert calls == {"sync": 1}
    elif outcome == "wrong pages":
        assert calls == {"status": 2, "download": 2}
    else:
        assert calls == {"status": 1, "download": 1}
    if kind in ("off page", "vertex count", "nan"):
        assert outcome == "malformed", (kind, route)
    if kind == "empty pages":
        assert outcome == "wrong pages", (kind, route)
    if kind == "near edge":
        assert outcome == "ok", (kind, route)


TWO_PAGES = make_pdf(2)


def test_the_scripted_api_serves_a_well_formed_response_as_the_hook_expects(
    scripted_api: ScriptedAPI, connect: Callable[..., str]
) -> None:
    from upstage_provider.hooks.upstage import UpstageOCRHook

    scripted_api.sync_body = scripted_api.batch_body = json.dumps(ocr_body()).encode()
    connect(scripted_api.url, max_retries=0)
    hook = UpstageOCRHook("upstage_test")
    sync = hook.ocr(load_document(TWO_PAGES, name="two.pdf"))
    batch = list(hook.iter_results(scripted_api.request_id))
    assert [p.page for p in sync.pages] == [p.page for p in batch] == [1, 2]
    assert sync.pages[0].words[0].polygon[0] == pytest.approx((100 / PAGE_W, 100 / PAGE_H))
