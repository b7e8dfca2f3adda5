"""The emulator over real HTTP on 127.0.0.1: endpoints, limits, async batches, URLs, faults."""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.emulator_fixtures import API_KEY, pdf_bytes
from upstage_provider.emulator.config import EmulatorConfig, FaultConfig
from upstage_provider.emulator.engine import EngineLine, EnginePage, EngineWord
from upstage_provider.emulator.limits import MAX_BODY_BYTES
from upstage_provider.emulator.responses import build_ocr_response
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.emulator.synthetic import SyntheticEngine

SYNC = "/v1/document-digitization"
ASYNC = "/v1/document-digitization/async"
REQUESTS = "/v1/document-digitization/requests"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SAMPLES = ("check_box", "dpi_150", "multi_page", "water_mark")

Start = Callable[..., EmulatorServer]
Wait = Callable[..., dict[str, Any]]


def post(
    server: EmulatorServer,
    data: bytes,
    *,
    path: str = SYNC,
    name: str = "doc.pdf",
    model: str | None = "ocr",
    headers: dict[str, str] | None = None,
    **fields: str,
) -> requests.Response:
    form = dict(fields)
    if model is not None:
        form["model"] = model
    return requests.post(
        server.url + path,
        headers=AUTH if headers is None else headers,
        files={"document": (name, data, "application/octet-stream")},
        data=form,
        timeout=30,
    )


def get(server: EmulatorServer, path: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.get(server.url + path, headers=AUTH if headers is None else headers, timeout=30)


def error_message(response: requests.Response) -> str:
    body = response.json()
    return str(body["error"]["message"] if "error" in body else body["message"])


def statuses_of(server: EmulatorServer, endpoint: str) -> dict[str, int]:
    return dict(server.stats()["endpoints"].get(endpoint, {}).get("by_status", {}))


# --- the response shape, against Upstage's own recordings ----------------------------------------


def pages_from_recording(recorded: dict[str, Any]) -> list[EnginePage]:
    """EnginePages rebuilt from a real response: lines from the page text, words in order."""
    pages = []
    for page in recorded["pages"]:
        words = iter(page["words"])
        lines = []
        for line_text in page["text"].split(" \n"):
            taken: list[dict[str, Any]] = []
            while " ".join(w["text"] for w in taken) != line_text:
                taken.append(next(words))
                assert line_text.startswith(" ".join(w["text"] for w in taken))
            lines.append(
                EngineLine(
                    tuple(
                        EngineWord(
                            w["text"],
                            w["confidence"],
                            tuple((v["x"], v["y"]) for v in w["boundingBox"]["vertices"]),  # type: ignore[arg-type]
                        )
                        for w in taken
                    )
                )
            )
        assert next(words, None) is None
        pages.append(EnginePage(page["width"], page["height"], tuple(lines)))
    return pages


@pytest.mark.parametrize("sample", SAMPLES)
def test_response_reproduces_a_recorded_response(samples_dir: Path, sample: str) -> None:
    recorded = json.loads((samples_dir / f"{sample}.ocr.json").read_text(encoding="utf-8"))
    built = build_ocr_response(pages_from_recording(recorded), model_version=recorded["modelVersion"])
    # Same keys in the same order, same ids, texts, joins and confidences: byte for byte.
    assert json.dumps(built, ensure_ascii=False) == json.dumps(recorded, ensure_ascii=False)


def test_empty_pages_and_confidence_rules() -> None:
    word = EngineWord("a", 0.91234, ((1, 1), (5, 1), (5, 4), (1, 4)))
    other = EngineWord("b", 0.5, ((6, 1), (9, 1), (9, 4), (6, 4)))
    pages = [
        EnginePage(10, 10, (EngineLine((word, other)), EngineLine((word,)))),
        EnginePage(10, 10, ()),
    ]
    body = build_ocr_response(pages, model_version="ocr-2.2.1")
    assert body["pages"][0]["text"] == "a b \na"
    assert body["pages"][0]["confidence"] == round((0.9123 + 0.5 + 0.9123) / 3, 4)
    assert body["pages"][1] == {
        "confidence": 0.0,
        "height": 10,
        "id": 1,
        "text": "",
        "width": 10,
        "words": [],
    }
    assert body["confidence"] == body["pages"][0]["confidence"]  # the empty page does not count
    assert body["text"] == "a b \na"
    assert [w["id"] for p in body["pages"] for w in p["words"]] == [0, 1, 2]
    assert build_ocr_response([pages[1]], model_version="x")["confidence"] == 0.0


# --- sync --------------------------------------------------------------------------------------


def test_sync_ocr_of_a_pdf(emulator: EmulatorServer) -> None:
    response = post(emulator, pdf_bytes(3))
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == [
        "apiVersion", "confidence", "metadata", "mimeType", "modelVersion",
        "numBilledPages", "pages", "stored", "text",
    ]  # fmt: skip
    assert body["apiVersion"] == "1.1"
    assert body["modelVersion"] == "ocr-2.2.1"
    assert body["stored"] is False
    assert body["numBilledPages"] == 3
    assert [p["id"] for p in body["pages"]] == [0, 1, 2]
    assert body["metadata"]["pages"] == [{"height": 1650, "page": n, "width": 1275} for n in (1, 2, 3)]
    ids = [w["id"] for p in body["pages"] for w in p["words"]]
    assert ids == list(range(len(ids)))
    assert len(ids) == 3 * 40
    assert body["text"] == "".join(p["text"] for p in body["pages"])
    assert body["confidence"] == min(p["confidence"] for p in body["pages"])
    for page in body["pages"]:
        assert list(page) == ["confidence", "height", "id", "text", "width", "words"]
        for word in page["words"]:
            assert list(word) == ["boundingBox", "confidence", "id", "text"]
            vertices = word["boundingBox"]["vertices"]
            assert len(vertices) == 4
            assert all(isinstance(v["x"], int) and 0 <= v["x"] <= page["width"] for v in vertices)
            assert all(isinstance(v["y"], int) and 0 <= v["y"] <= page["height"] for v in vertices)
            (x0, y0), (x1, y1), (x2, y2), (x3, y3) = ((v["x"], v["y"]) for v in vertices)
            assert x0 == x3 < x1 == x2
            assert y0 == y1 < y2 == y3


def test_sync_ocr_of_an_image_uses_its_pixel_size(emulator: EmulatorServer, samples_dir: Path) -> None:
    body = post(emulator, (samples_dir / "dpi_150.jpg").read_bytes(), name="scan.jpg").json()
    assert (body["pages"][0]["width"], body["pages"][0]["height"]) == (1242, 1755)


def test_same_document_same_answer(emulator: EmulatorServer) -> None:
    pdf = pdf_bytes(2)
    assert post(emulator, pdf).json() == post(emulator, pdf).json()


@pytest.mark.parametrize(
    ("model", "version"), [("ocr", "ocr-2.2.1"), ("ocr-250904", "ocr-250904"), ("ocr-2.2.1", "ocr-2.2.1")]
)
def test_models(emulator: EmulatorServer, model: str, version: str) -> None:
    response = post(emulator, pdf_bytes(1), model=model)
    assert response.status_code == 200
    assert response.json()["modelVersion"] == version


@pytest.mark.parametrize(
    ("kwargs", "status", "param"),
    [
        ({"model": "no-such-model"}, 400, "model"),
        ({"model": None}, 400, "model"),
        ({"schema": "azure"}, 400, "schema"),
    ],
)
def test_bad_form_fields(emulator: EmulatorServer, kwargs: dict[str, Any], status: int, param: str) -> None:
    response = post(emulator, pdf_bytes(1), **kwargs)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def test_missing_document_and_wrong_content_type(emulator: EmulatorServer) -> None:
    response = requests.post(emulator.url + SYNC, headers=AUTH, data={"model": "ocr"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_content_type"  # urlencoded, not multipart
    response = requests.post(
        emulator.url + SYNC, headers=AUTH, files={"model": (None, "ocr")}, timeout=10
    )  # multipart, but no document part
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "document"
    response = requests.post(emulator.url + SYNC, headers=AUTH, json={"model": "ocr"}, timeout=10)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("data", "name", "status"),
    [
        (b"GIF89a" + b"\x00" * 64, "anim.gif", 415),  # a real format, not one the API reads
        (b"just some text, not a document\n" * 10, "notes.txt", 415),
        (b"", "empty.pdf", 400),  # nothing to read: a bad request, not a bad media type
        (b"%PDF-1.4\n" + b"\x00garbage" * 100, "broken.pdf", 400),  # a PDF, but damaged: 400
    ],
)
def test_unreadable_documents(emulator: EmulatorServer, data: bytes, name: str, status: int) -> None:
    response = post(emulator, data, name=name)
    assert response.status_code == status, response.text
    assert name in error_message(response)


def test_sync_page_limit_points_to_async(emulator: EmulatorServer) -> None:
    response = post(emulator, pdf_bytes(101), name="long.pdf")
    assert response.status_code == 413
    assert "async" in error_message(response)
    assert post(emulator, pdf_bytes(100)).status_code == 200


def test_page_pixel_limit(emulator: EmulatorServer) -> None:
    response = post(
        emulator, pdf_bytes(1, size=(10000, 10000)), name="poster.pdf"
    )  # 20833 px square at 150 DPI
    assert response.status_code == 413
    assert "pixels" in error_message(response)


def test_file_size_limit(emulator: EmulatorServer) -> None:
    data = pdf_bytes(1)
    big = data + b"\n%" + b"x" * (50 * 1024 * 1024 + 1 - len(data) - 2)  # 50 MiB + 1 byte, under the body cap
    response = post(emulator, big, name="big.pdf")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"


def test_client_file_names_never_become_paths(emulator: EmulatorServer, tmp_path: Path) -> None:
    target = tmp_path / "written-by-the-emulator.pdf"
    for name in (str(target), f"../../../../..{target}"):
        assert post(emulator, pdf_bytes(1), name=name).status_code == 200
        assert post(emulator, pdf_bytes(1), path=ASYNC, name=name).status_code == 200
    assert not target.exists()


@pytest.mark.parametrize("schema", ["google", "clova"])
def test_schema_variants(emulator: EmulatorServer, schema: str) -> None:
    body = post(emulator, pdf_bytes(2), schema=schema).json()
    if schema == "google":
        assert len(body["responses"]) == 2
        assert (
            body["responses"][0]["textAnnotations"][0]["description"]
            == body["responses"][0]["fullTextAnnotation"]["text"]
        )
    else:
        assert len(body["images"]) == 2
        assert body["images"][0]["fields"][0]["inferText"]


# --- auth ----------------------------------------------------------------------------------------


API_ROUTES = (
    ("POST", SYNC),
    ("POST", ASYNC),
    ("GET", REQUESTS),
    ("GET", REQUESTS + "/abc"),
    ("GET", "/_emulator/stats"),
    ("PUT", "/_emulator/faults"),
    ("POST", "/_emulator/reset"),
    ("GET", "/no/such/route"),
)


def test_every_api_route_needs_the_key(emulator: EmulatorServer) -> None:
    for method, path in API_ROUTES:
        for header in (None, "Bearer wrong-key", "Basic dXNlcjpwYXNz", "Bearer ", f"Bearer {API_KEY}x"):
            headers = {"Authorization": header} if header is not None else {}
            response = requests.request(method, emulator.url + path, headers=headers, timeout=10)
            assert response.status_code == 401, (method, path, header)
            assert response.json()["error"]["type"] == "authentication_error"
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert emulator.stats()["endpoints"]["sync"]["by_status"] == {"401": 5}
    assert get(emulator, "/no/such/route").status_code == 404  # with the key: the route is unknown


def test_without_a_configured_key_any_bearer_passes(make_emulator: Start) -> None:
    server = make_emulator(api_key=None)
    assert get(server, REQUESTS, {"Authorization": "Bearer anything"}).status_code == 200
    assert get(server, REQUESTS, {"Authorization": "Bearer "}).status_code == 401
    assert get(server, REQUESTS, {}).status_code == 401


# --- async ------------------------------------------------------------------------------------------


def test_async_flow_in_batches(emulator: EmulatorServer, wait_done: Wait) -> None:
    pdf = pdf_bytes(23)
    response = post(emulator, pdf, path=ASYNC, name="long.pdf")
    assert response.status_code == 200
    request_id = response.json()["request_id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", request_id)
    status = wait_done(emulator, request_id)
    assert status["status"] == "completed"
    assert status["failure_message"] is None
    assert (status["total_pages"], status["completed_pages"]) == (23, 23)
    assert status["model"] == "ocr-2.2.1"
    for stamp in ("requested_at", "completed_at"):
        assert RFC3339_Z.match(status[stamp])
    batches = status["batches"]
    assert [(b["id"], b["start_page"], b["end_page"]) for b in batches] == [
        (0, 1, 10),
        (1, 11, 20),
        (2, 21, 23),
    ]
    sync = post(emulator, pdf).json()
    for batch in batches:
        assert batch["status"] == "completed"
        assert RFC3339_Z.match(batch["updated_at"])
        assert urlsplit(batch["download_url"]).netloc == urlsplit(emulator.url).netloc
        result = requests.get(batch["download_url"], timeout=10)  # no Authorization header
        assert result.status_code == 200
        body = result.json()
        count = batch["end_page"] - batch["start_page"] + 1
        assert body["numBilledPages"] == count
        assert [p["id"] for p in body["pages"]] == list(range(count))  # relative to the batch
        ids = [w["id"] for p in body["pages"] for w in p["words"]]
        assert ids == list(range(len(ids)))
        # Placed by start_page, each page is the page the sync call read.
        expected = sync["pages"][batch["start_page"] - 1 : batch["end_page"]]
        assert [p["text"] for p in body["pages"]] == [p["text"] for p in expected]
    listed = get(emulator, REQUESTS).json()["requests"]
    assert listed[0]["id"] == request_id
    assert list(listed[0]) == ["id", "status", "model", "requested_at", "completed_at"]


def test_absolute_batch_page_ids(make_emulator: Start, wait_done: Wait) -> None:
    server = make_emulator(batch_page_ids="absolute", batch_size=5, workers=3)
    request_id = post(server, pdf_bytes(12), path=ASYNC).json()["request_id"]
    status = wait_done(server, request_id)
    assert [(b["start_page"], b["end_page"]) for b in status["batches"]] == [(1, 5), (6, 10), (11, 12)]
    second = requests.get(status["batches"][1]["download_url"], timeout=10).json()
    assert [p["id"] for p in second["pages"]] == [5, 6, 7, 8, 9]
    assert [p["page"] for p in second["metadata"]["pages"]] == [6, 7, 8, 9, 10]
    assert second["pages"][0]["words"][0]["id"] == 0


def test_async_status_moves_through_its_states(make_emulator: Start, wait_done: Wait) -> None:
    server = make_emulator(faults=FaultConfig(latency_per_page=0.02), workers=1)
    request_id = post(server, pdf_bytes(30), path=ASYNC).json()["request_id"]
    seen: set[tuple[str, ...]] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = get(server, f"{REQUESTS}/{request_id}").json()
        seen.add((status["status"], *(b["status"] for b in status["batches"])))
        if status["status"] == "completed":
            break
        assert status["completed_at"] is None
        done = [b for b in status["batches"] if b["status"] == "completed"]
        assert status["completed_pages"] == sum(b["end_page"] - b["start_page"] + 1 for b in done)
        assert all(b["download_url"] is None for b in status["batches"] if b["status"] != "completed")
        time.sleep(0.01)
    assert ("started", "started", "scheduled", "scheduled") in seen  # one worker: one batch at a time
    assert ("started", "completed", "started", "scheduled") in seen
    assert ("completed", "completed", "completed", "completed") in seen


def test_async_page_limit_fails_the_request(emulator: EmulatorServer, wait_done: Wait) -> None:
    response = post(emulator, pdf_bytes(1001), path=ASYNC, name="huge.pdf")
    assert response.status_code == 200  # accepted first, refused while processing
    status = wait_done(emulator, response.json()["request_id"])
    assert status["status"] == "failed"
    assert status["batches"] == []
    assert "1,000 pages" in status["failure_message"]
    assert "huge.pdf" in status["failure_message"]


def test_async_accepts_up_to_1000_pages(make_emulator: Start, wait_done: Wait) -> None:
    server = make_emulator(engine=SyntheticEngine(words_per_page=1))
    status = wait_done(server, post(server, pdf_bytes(1000), path=ASYNC).json()["request_id"])
    assert status["status"] == "completed"
    assert len(status["batches"]) == 100
    assert status["batches"][-1]["end_page"] == 1000


def test_async_refuses_bad_uploads_at_once(emulator: EmulatorServer) -> None:
    assert post(emulator, b"GIF89a" + b"\x00" * 32, path=ASYNC, name="a.gif").status_code == 415
    assert post(emulator, b"", path=ASYNC).status_code == 400
    assert post(emulator, pdf_bytes(1), path=ASYNC, model="bogus").status_code == 400


def test_async_damaged_document_fails_the_request(emulator: EmulatorServer, wait_done: Wait) -> None:
    # It looks like a PDF, so it is accepted; opening it fails, and so does the request.
    response = post(emulator, b"%PDF-1.4\n" + b"\x00garbage" * 100, path=ASYNC, name="broken.pdf")
    assert response.status_code == 200
    status = wait_done(emulator, response.json()["request_id"])
    assert status["status"] == "failed"
    assert "broken.pdf" in status["failure_message"]


def test_concurrent_calls(make_emulator: Start, wait_done: Wait) -> None:
    server = make_emulator(workers=3, batch_size=2)
    pdf = pdf_bytes(5)
    with ThreadPoolExecutor(max_workers=8) as pool:
        syncs = [pool.submit(post, server, pdf) for _ in range(8)]
        submits = [pool.submit(post, server, pdf, path=ASYNC) for _ in range(4)]
        bodies = [f.result().json() for f in syncs]
        ids = [f.result().json()["request_id"] for f in submits]
    assert all(body == bodies[0] for body in bodies)
    for request_id in ids:
        status = wait_done(server, request_id)
        assert status["status"] == "completed"
        assert len(status["batches"]) == 3
    assert server.stats()["pages_processed"] == 12 * 5


def test_unknown_request_is_404(emulator: EmulatorServer) -> None:
    response = get(emulator, f"{REQUESTS}/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "request_not_found"


# --- signed download URLs -----------------------------------------------------------------------


def completed_request(server: EmulatorServer, wait_done: Wait, pages: int = 12) -> dict[str, Any]:
    status = wait_done(server, post(server, pdf_bytes(pages), path=ASYNC).json()["request_id"])
    assert status["status"] == "completed"
    return status


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


def test_download_urls_expire_and_status_issues_fresh_ones(make_emulator: Start, wait_done: Wait) -> None:
    server = make_emulator(url_ttl=1.0)
    status = completed_request(server, wait_done, pages=3)
    url = status["batches"][0]["download_url"]
    assert requests.get(url, timeout=10).status_code == 200
    time.sleep(1.5)
    expired = requests.get(url, timeout=10)
    assert expired.status_code == 403
    assert expired.json()["error"]["code"] == "expired_url"
    fresh = get(server, f"{REQUESTS}/{status['id']}").json()["batches"][0]["download_url"]
    assert fresh != url
    assert requests.get(fresh, timeout=10).status_code == 200


def test_forged_and_borrowed_signatures_are_refused(emulator: EmulatorServer, wait_done: Wait) -> None:
    first = completed_request(emulator, wait_done)
    second = completed_request(emulator, wait_done)
    url = first["batches"][0]["download_url"]
    later = str(float(parse_qs(urlsplit(url).query)["expires"][0]) + 3600)
    other_url = second["batches"][0]["download_url"]
    refused = [
        with_query(url, signature="0" * 64),  # forged
        with_query(url, expires=later),  # expiry pushed out by hand
        url.replace(first["id"], second["id"]),  # this request's signature on another request
        url.replace("/0?", "/1?"),  # on another batch of the same request
        other_url.replace(second["id"], first["id"]),
        url.split("?")[0],  # no signature at all
    ]
    for bad in refused:
        response = requests.get(bad, timeout=10)
        assert response.status_code == 403, bad
        assert response.json()["error"]["type"] == "access_denied"
    assert requests.get(url, timeout=10).status_code == 200
    assert statuses_of(emulator, "download") == {"403": len(refused), "200": 1}


# --- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [None, 2.0, 0.25])
def test_rate_limit_with_and_without_retry_after(make_emulator: Start, retry_after: float | None) -> None:
    server = make_emulator(faults=FaultConfig(rate_429=1.0, retry_after=retry_after))
    response = get(server, REQUESTS)
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    expected = {None: None, 2.0: "2", 0.25: "0.25"}[retry_after]
    assert response.headers.get("Retry-After") == expected


def test_server_errors_and_fault_endpoints(make_emulator: Start) -> None:
    server = make_emulator(faults=FaultConfig(rate_5xx=1.0, status_5xx=502, endpoints=("sync",)))
    assert post(server, pdf_bytes(1)).status_code == 502
    assert get(server, REQUESTS).status_code == 200  # not a faulted endpoint
    assert get(server, "/_emulator/stats").status_code == 200  # admin routes never are
    assert statuses_of(server, "sync") == {"502": 1}


def test_fault_decisions_repeat_for_a_seed(make_emulator: Start) -> None:
    def pattern(server: EmulatorServer) -> list[int]:
        return [get(server, REQUESTS).status_code for _ in range(30)]

    faults = FaultConfig(rate_429=0.3, rate_5xx=0.2, seed=11)
    first = make_emulator(faults=faults)
    run = pattern(first)
    assert {200, 429, 503} == set(run)
    assert pattern(make_emulator(faults=faults)) == run  # another server, same seed
    first.reset()
    assert pattern(first) == run  # a reset restarts the stream
    assert pattern(make_emulator(faults=FaultConfig(rate_429=0.3, rate_5xx=0.2, seed=12))) != run


def test_failed_batch(make_emulator: Start, wait_done: Wait) -> None:
    server = make_emulator(faults=FaultConfig(fail_batches=(1,)))
    status = wait_done(server, post(server, pdf_bytes(25), path=ASYNC).json()["request_id"])
    assert status["status"] == "failed"
    assert [b["status"] for b in status["batches"]] == ["completed", "failed", "completed"]
    failed = status["batches"][1]
    assert failed["download_url"] is None
    assert "11-20" in failed["failure_message"]
    assert "batch 1 (pages 11-20)" in status["failure_message"]
    assert status["completed_pages"] == 15
    assert requests.get(status["batches"][2]["download_url"], timeout=10).status_code == 200


def test_failed_request(make_emulator: Start, wait_done: Wait) -> None:
    server = make_emulator(faults=FaultConfig(fail_request_message="document could not be processed"))
    status = wait_done(server, post(server, pdf_bytes(3), path=ASYNC).json()["request_id"])
    assert status["status"] == "failed"
    assert status["failure_message"] == "document could not be processed"
    assert status["total_pages"] == 3
    assert status["completed_at"]


def test_latency_per_request_and_per_page(make_emulator: Start) -> None:
    server = make_emulator(
        faults=FaultConfig(latency_per_request=0.2, latency_per_page=0.1, endpoints=("list",))
    )
    started = time.monotonic()
    assert get(server, REQUESTS).status_code == 200
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    assert post(server, pdf_bytes(3)).status_code == 200  # per-request latency not on sync here
    assert 0.3 <= time.monotonic() - started < 2.0


def test_faults_replaced_at_run_time(emulator: EmulatorServer) -> None:
    response = requests.put(
        emulator.url + "/_emulator/faults", headers=AUTH, json={"rate_429": 1.0, "retry_after": 1}, timeout=10
    )
    assert response.status_code == 200
    assert response.json()["faults"]["rate_429"] == 1.0
    assert get(emulator, REQUESTS).status_code == 429
    bad = requests.put(emulator.url + "/_emulator/faults", headers=AUTH, json={"rate_429": 3}, timeout=10)
    assert bad.status_code == 400
    assert "rate_429" in error_message(bad)
    bad = requests.put(emulator.url + "/_emulator/faults", headers=AUTH, json={"nonsense": 1}, timeout=10)
    assert bad.status_code == 400
    emulator.set_faults(FaultConfig())
    assert get(emulator, REQUESTS).status_code == 200


# --- variants --------------------------------------------------------------------------------------


def test_flat_error_style(make_emulator: Start) -> None:
    server = make_emulator(error_style="flat")
    response = get(server, f"{REQUESTS}/nope")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Request nope not found"}
    response = get(server, REQUESTS, {"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert set(response.json()) == {"code", "message"}
    server.set_faults(FaultConfig(rate_429=1.0))
    assert get(server, REQUESTS).json()["code"] == 429


def test_openai_error_style(emulator: EmulatorServer) -> None:
    body = get(emulator, f"{REQUESTS}/nope").json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "code", "param"}


def test_snake_case_variant(make_emulator: Start, wait_done: Wait) -> None:
    server = make_emulator(snake_case=True)
    body = post(server, pdf_bytes(2)).json()
    assert body["api"] == "2.0"
    assert body["model"] == "ocr-2.2.1"
    assert body["usage"] == {"pages": 2}
    assert "apiVersion" not in body
    assert "numBilledPages" not in body
    word = body["pages"][0]["words"][0]
    vertices = word["bounding_box"]["vertices"]
    assert all(isinstance(v["x"], float) and 0.0 <= v["x"] <= 1.0 for v in vertices)
    assert all(isinstance(v["y"], float) and 0.0 <= v["y"] <= 1.0 for v in vertices)
    status = completed_request(server, wait_done, pages=3)
    batch = requests.get(status["batches"][0]["download_url"], timeout=10).json()
    assert "bounding_box" in batch["pages"][0]["words"][0]


# --- admin ---------------------------------------------------------------------------------------------


def test_stats_count_calls_submissions_and_pages(emulator: EmulatorServer, wait_done: Wait) -> None:
    post(emulator, pdf_bytes(2))
    post(emulator, pdf_bytes(1), model="bogus")
    completed_request(emulator, wait_done, pages=12)
    get(emulator, REQUESTS, {})
    stats = get(emulator, "/_emulator/stats").json()
    assert stats["endpoints"]["sync"] == {"total": 2, "by_status": {"200": 1, "400": 1}}
    assert stats["endpoints"]["submit"] == {"total": 1, "by_status": {"200": 1}}
    assert stats["endpoints"]["list"] == {"total": 1, "by_status": {"401": 1}}
    assert stats["endpoints"]["status"]["total"] >= 1
    assert stats["submissions"] == 1
    assert stats["pages_processed"] == 14
    assert stats["requests"] == {"completed": 1}
    assert stats["engine"] == "synthetic"
    in_process = emulator.stats()
    assert in_process["pages_processed"] == 14
    assert in_process["endpoints"]["admin"]["total"] == 1

    assert requests.post(emulator.url + "/_emulator/reset", headers=AUTH, timeout=10).json()["reset"] is True
    stats = emulator.stats()
    assert stats["pages_processed"] == 0
    assert stats["submissions"] == 0
    assert set(stats["endpoints"]) == {"admin"}  # the reset call itself, counted as it ended
    assert len(get(emulator, REQUESTS).json()["requests"]) == 1  # requests survive a plain reset
    requests.post(emulator.url + "/_emulator/reset?requests=true", headers=AUTH, timeout=10)
    assert get(emulator, REQUESTS).json() == {"requests": []}


def test_request_list_newest_first(emulator: EmulatorServer, wait_done: Wait) -> None:
    ids = [post(emulator, pdf_bytes(1), path=ASYNC).json()["request_id"] for _ in range(3)]
    for request_id in ids:
        wait_done(emulator, request_id)
    listed = get(emulator, REQUESTS).json()["requests"]
    assert [r["id"] for r in listed] == ids[::-1]
    assert all(r["status"] == "completed" and RFC3339_Z.match(r["completed_at"]) for r in listed)


# --- the request body cap ------------------------------------------------------------------------------


def _read_status_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def _address(server: EmulatorServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname
    assert parts.port
    return parts.hostname, parts.port


def test_oversized_body_is_refused_before_it_is_sent(emulator: EmulatorServer) -> None:
    head = (
        f"POST {SYNC} HTTP/1.1\r\nHost: emulator\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        f"Content-Length: {51 * 1024 * 1024}\r\n\r\n"
    ).encode()
    with socket.create_connection(_address(emulator), timeout=10) as sock:
        sock.sendall(head + b"--XyZ\r\n" + b"x" * 65536)  # 64 KiB of a declared 51 MiB
        assert _read_status_line(sock) == b"HTTP/1.1 413 Request Entity Too Large"
    assert statuses_of(emulator, "sync") == {"413": 1}


def test_streamed_body_is_cut_off_at_the_cap(emulator: EmulatorServer) -> None:
    """Without a Content-Length the cap is enforced on the stream: the server stops reading early."""
    head = (
        f"POST {SYNC} HTTP/1.1\r\nHost: emulator\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = b'--XyZ\r\nContent-Disposition: form-data; name="document"; filename="a.pdf"\r\n\r\n'
    block = b"x" * (1024 * 1024)
    chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    sent = 0
    with socket.create_connection(_address(emulator), timeout=10) as sock:
        sock.sendall(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        answered = False
        while sent < 3 * MAX_BODY_BYTES:
            if select.select([sock], [], [], 0)[0]:
                answered = True
                break
            try:
                sock.sendall(chunk)
            except OSError:  # the server closed the connection after answering
                answered = True
                break
            sent += len(block)
        assert answered, "the server read far past the cap"
        assert _read_status_line(sock) == b"HTTP/1.1 413 Request Entity Too Large"
    assert MAX_BODY_BYTES - len(block) <= sent < MAX_BODY_BYTES + 16 * len(block)
    assert statuses_of(emulator, "sync") == {"413": 1}


# --- server life cycle and the real engine -----------------------------------------------------------


def test_server_stops_with_work_under_way(make_pdf: Callable[..., bytes]) -> None:
    config = EmulatorConfig(api_key=API_KEY, faults=FaultConfig(latency_per_page=5.0))
    before = {t.name for t in threading.enumerate()}
    with EmulatorServer(config, engine=SyntheticEngine(words_per_page=5)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.api_key == API_KEY
        post(server, make_pdf(30), path=ASYNC)
        time.sleep(0.1)
        started = time.monotonic()
    assert time.monotonic() - started < 5.0
    leftovers = {t.name for t in threading.enumerate()} - before
    assert not [name for name in leftovers if name.startswith("upstage-emulator")]
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + REQUESTS, headers=AUTH, timeout=2)


def test_real_engine_reads_a_sample(make_emulator: Start, samples_dir: Path) -> None:
    from upstage_provider.emulator.engine import TesseractEngine

    engine = TesseractEngine(languages="eng")
    server = make_emulator(engine=engine)
    response = post(server, (samples_dir / "check_box.png").read_bytes(), name="check_box.png")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["pages"][0]["width"], body["pages"][0]["height"]) == (1460, 608)
    texts = {w["text"].lower().strip(".,:") for w in body["pages"][0]["words"]}
    assert {"pizza", "toppings"} <= texts
