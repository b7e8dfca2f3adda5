"""Documents over the async limits through the operators, against the emulator, with dag.test().

A 2,500-page PDF, a 60 MB PDF and a 1,001-frame TIFF land whole through ``UpstageOCROperator``
(every page exactly once, read back by page number); a failed part names its page range; a retry
after a crash between part submissions pays once per part; ``UpstageOCRSubmitOperator`` refuses
such a document unless ``split_long_documents=True``, and then returns one request per part.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest
from PIL import Image

from tests.airflow_runs import parse_dag, variables
from tests.emulator_fixtures import image_pdf
from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.fault_proxy import FaultProxy, Rule
from upstage_provider.documents import MAX_ASYNC_PAGES, MAX_FILE_BYTES
from upstage_provider.emulator import limits as emulator_limits
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.emulator.synthetic import SyntheticEngine

DAGS = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
SUBMIT = "/v1/document-digitization/async"
#: Thousands of pages stay quick with few words a page and batches of 100 pages.
WORDS_PER_PAGE = 4
BATCH_SIZE = 100


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()


pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    return fast_emulator(make_emulator)


def fast_emulator(
    make_emulator: Callable[..., EmulatorServer], faults: FaultConfig | None = None
) -> EmulatorServer:
    return make_emulator(faults, batch_size=BATCH_SIZE, engine=SyntheticEngine(words_per_page=WORDS_PER_PAGE))


def load_dag(dag_id: str) -> Any:
    return parse_dag(DAGS / "upstage_split_dags.py", dag_id)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Any]:
    """``run(dag_id, document_bytes, name, **env)``: write the document, configure, ``dag.test()``."""

    def start(dag_id: str, data: bytes, name: str, **env: str) -> Any:
        doc = tmp_path / "inbox" / name
        doc.parent.mkdir(exist_ok=True)
        doc.write_bytes(data)
        monkeypatch.setenv("UPSTAGE_SPLIT_DOCUMENT", str(doc))
        monkeypatch.setenv("UPSTAGE_SPLIT_OUTPUT", str(tmp_path / "lake"))
        for key, value in env.items():
            monkeypatch.setenv(f"UPSTAGE_SPLIT_{key}", value)
        return load_dag(dag_id).test()

    return start


def lake_rows(tmp_path: Path, kind: str, columns: list[str]) -> list[dict[str, Any]]:
    return pads.dataset(tmp_path / "lake" / kind, format="parquet").to_table(columns=columns).to_pylist()


def assert_landed_once(tmp_path: Path, pages: int, parts: int) -> None:
    """Every document page exactly once, each part's pages from one request, words on every page."""
    rows = lake_rows(tmp_path, "pages", ["page", "request_id"])
    assert sorted(r["page"] for r in rows) == list(range(1, pages + 1))
    requests = [r["request_id"] for r in sorted(rows, key=lambda r: r["page"])]
    assert len(set(requests)) == parts
    assert requests == sorted(requests, key=requests.index), "a part's pages are consecutive"
    words = pads.dataset(tmp_path / "lake" / "words", format="parquet").to_table(columns=["page"])
    assert words.num_rows == pages * WORDS_PER_PAGE
    assert set(words["page"].to_pylist()) == set(range(1, pages + 1))


def returned(run_: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(
            XComModel.get_many(
                run_id=run_.run_id, dag_ids=run_.dag_id, task_ids=task_id, key="return_value"
            ).with_only_columns(XComModel.value)
        ).all()
    assert rows, f"{task_id} returned nothing"
    return XComModel.deserialize_value(rows[0])


def failures(out: str) -> list[str]:
    lines = out.splitlines()
    return [
        next(x for x in lines[i + 1 :] if "Exception: " in x or "Error: " in x)
        for i, line in enumerate(lines)
        if "Task failed with exception" in line
    ]


def test_the_emulator_takes_parts_at_the_limits_the_provider_splits_to() -> None:
    assert emulator_limits.MAX_ASYNC_PAGES == MAX_ASYNC_PAGES == 1000
    assert emulator_limits.MAX_FILE_BYTES == MAX_FILE_BYTES


def test_a_2500_page_pdf_lands_every_page_once_from_three_requests(
    emulator: EmulatorServer, connect: Callable[..., str], run: Callable[..., Any], tmp_path: Path
) -> None:
    connect(emulator.url, conn_id="upstage_split", price_per_page=0.0015)
    done = run("upstage_split_one_task", make_pdf(2500), "archive.pdf")
    assert done.state == "success"
    assert emulator.stats()["submissions"] == 3  # 1,000-page parts are accepted as they are
    assert_landed_once(tmp_path, 2500, parts=3)
    summary = returned(done, "ocr")
    assert summary["pages"] == 2500
    assert [(p["first_page"], p["page_count"], p["billed_pages"]) for p in summary["parts"]] == [
        (1, 1000, 1000),
        (1001, 1000, 1000),
        (2001, 500, 500),
    ]
    assert summary["request_id"] == ",".join(p["request_id"] for p in summary["parts"])
    # The parts' batches are billed one by one; the document's bill is their sum, in every place.
    assert summary["billed_pages"] == 2500
    assert (summary["estimated_cost"], summary["price_per_page"]) == (3.75, 0.0015)
    billed = lake_rows(tmp_path, "pages", ["billed_pages"])
    assert sum(r["billed_pages"] for r in billed) == 2500


def test_a_60_mb_pdf_is_split_into_parts_under_50_mb_and_lands_whole(
    emulator: EmulatorServer, connect: Callable[..., str], run: Callable[..., Any], tmp_path: Path
) -> None:
    connect(emulator.url, conn_id="upstage_split")
    data = image_pdf(130, side=707)  # about 500 KB of incompressible JPEG a page
    assert len(data) >= 60 * 2**20  # 60 MB in 130 pages, far under 1,000
    done = run("upstage_split_one_task", data, "heavy scan.pdf", DEFERRABLE="0")
    assert done.state == "success"
    summary = returned(done, "ocr")
    parts = summary["parts"]
    assert len(parts) >= 2
    assert emulator.stats()["submissions"] == len(parts)
    assert_landed_once(tmp_path, 130, parts=len(parts))
    assert sum(p["page_count"] for p in parts) == 130


def test_a_failed_part_fails_the_task_with_its_page_range_and_lands_nothing(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    run: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Batch 7 exists in part 1 (10 batches of 100 pages) but not in part 2 (5 batches).
    server = fast_emulator(make_emulator, FaultConfig(fail_batches=(7,)))
    connect(server.url, conn_id="upstage_split")
    done = run("upstage_split_one_task", make_pdf(1500), "scan.pdf")
    assert done.state == "failed"
    errors = failures(capsys.readouterr().out)
    assert len(errors) == 1, errors  # permanent: not retried
    assert "part 1/2 (pages 1-1000) of scan.pdf failed" in errors[0], errors
    assert not (tmp_path / "lake" / "pages").exists() or not list((tmp_path / "lake" / "pages").iterdir())


def test_a_retry_after_a_crash_between_part_submissions_pays_once_per_part(
    store: str, emulator: EmulatorServer, connect: Callable[..., str], run: Callable[..., Any], tmp_path: Path
) -> None:
    with FaultProxy(emulator.port) as proxy:
        connect(proxy.url, conn_id="upstage_split")
        # The first try dies uploading part 2: part 1 is submitted and recorded, part 2 never arrives.
        crash = proxy.add(
            Rule(
                "reset_upload",
                "POST",
                SUBMIT,
                when=lambda call: b'filename="scan.pages-1001-1200.pdf"' in call.body,
            )
        )
        done = run("upstage_split_one_task", make_pdf(1200), "scan.pdf")
    assert done.state == "success"
    assert crash.fired == 1
    (ti,) = [ti for ti in done.get_task_instances() if ti.task_id == "ocr"]
    assert ti.try_number == 2
    assert emulator.stats()["submissions"] == 2  # part 1 reattached, not paid for again
    uploads = [path for method, path, _ in proxy.log if method == "POST" and path == SUBMIT]
    assert len(uploads) == 3  # part 1 once, part 2 twice (the reset one never reached the API)
    assert_landed_once(tmp_path, 1200, parts=2)
    assert variables() == 0  # on the Variables fallback, every part's entry goes once landed


def test_the_submit_operator_refuses_a_long_document_naming_the_one_task_operator(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    run: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    connect(emulator.url, conn_id="upstage_split")
    done = run("upstage_split_submit", make_pdf(1001), "long.pdf")
    assert done.state == "failed"
    assert emulator.stats()["submissions"] == 0  # refused before any API call
    assert "submit" not in emulator.stats()["endpoints"]
    (error,) = failures(capsys.readouterr().out)
    assert "long.pdf: 1,001 pages is over the async limit" in error
    assert "use UpstageOCROperator" in error
    assert "split_long_documents=True" in error


def test_the_submit_operator_with_the_flag_returns_one_request_per_part_for_mapped_sensors(
    emulator: EmulatorServer, connect: Callable[..., str], run: Callable[..., Any], tmp_path: Path
) -> None:
    connect(emulator.url, conn_id="upstage_split")
    done = run("upstage_split_submit", make_pdf(1200), "long.pdf", FLAG="1")
    assert done.state == "success"
    parts = returned(done, "submit")
    assert [(p["part"], p["parts"], p["first_page"], p["page_count"]) for p in parts] == [
        (1, 2, 1, 1000),
        (2, 2, 1001, 200),
    ]
    assert emulator.stats()["submissions"] == 2
    rows = lake_rows(tmp_path, "pages", ["document_uri", "page", "request_id"])
    by_part: dict[str, list[int]] = {}
    for row in rows:
        by_part.setdefault(row["document_uri"], []).append(row["page"])
    doc = str(tmp_path / "inbox" / "long.pdf")
    assert {uri: sorted(pages) for uri, pages in by_part.items()} == {
        f"{doc}#pages=1-1000": list(range(1, 1001)),
        f"{doc}#pages=1001-1200": list(range(1, 201)),
    }
    assert {r["request_id"] for r in rows} == {p["request_id"] for p in parts}


def test_a_tiff_of_1001_frames_lands_every_frame_once(
    emulator: EmulatorServer, connect: Callable[..., str], run: Callable[..., Any], tmp_path: Path
) -> None:
    connect(emulator.url, conn_id="upstage_split")
    frames = [Image.new("1", (200 + i % 3, 300), 1) for i in range(1001)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:], compression="group4")
    done = run("upstage_split_one_task", buffer.getvalue(), "fax.tiff", DEFERRABLE="0")
    assert done.state == "success"
    assert emulator.stats()["submissions"] == 2
    assert_landed_once(tmp_path, 1001, parts=2)
    widths = {r["page"]: r["width"] for r in lake_rows(tmp_path, "pages", ["page", "width"])}
    assert [widths[n] for n in range(1, 1002)] == [200 + i % 3 for i in range(1001)]
