"""The submission ledger under the faults that made it land wrong words or pay twice.

Each test runs the public operators in a real DAG (``dag.test()``, mapped task groups) against
the emulator, with ``tests/fault_proxy.py`` between them resetting uploads, resetting calls the
API had already answered, or answering 503/404 for the API. Reruns of the same run go through
``tests.airflow_runs.rerun``, as a user's Clear would. Documents of different paper sizes make
a document's rows tell whose pages they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest
from sqlalchemy import select

from tests.airflow_runs import HAS_TASK_STATE_STORE, rerun, variables
from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.fault_proxy import FaultProxy, Rule
from tests.reliability.conftest import load_dag
from upstage_provider.documents import load_document
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.hooks.upstage import UpstageOCRHook

pytestmark = pytest.mark.usefixtures("airflow_db")

A4 = (595, 842)
LETTER = (612, 792)
SUBMIT = "/v1/document-digitization/async"
STATUS = "/v1/document-digitization/requests/"
DAG_ID = "upstage_ledger_pipeline"


@pytest.fixture
def proxy(emulator: EmulatorServer) -> Iterator[FaultProxy]:
    with FaultProxy(emulator.port) as running:
        yield running


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def documents(tmp_path: Path) -> Callable[..., list[Path]]:
    def make(*specs: tuple[str, int, tuple[int, int]]) -> list[Path]:
        paths = []
        for name, pages, size in specs:
            path = tmp_path / "inbox" / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(make_pdf(pages, size=size))
            paths.append(path)
        return paths

    return make


def configure(monkeypatch: pytest.MonkeyPatch, docs: list[Path], lake: Path, **env: str) -> Any:
    monkeypatch.setenv("UPSTAGE_LEDGER_DOCUMENTS", json.dumps([str(d) for d in docs]))
    monkeypatch.setenv("UPSTAGE_LEDGER_OUTPUT", str(lake))
    for name, value in env.items():
        monkeypatch.setenv(f"UPSTAGE_LEDGER_{name}", value)
    return load_dag("upstage_ledger_dags.py", DAG_ID)


def uploading(name: str) -> Callable[[Any], bool]:
    return lambda call: f'filename="{name}"'.encode() in call.body


def ledger_entries(run_id: str) -> list[dict[str, Any]]:
    """The run's task state store entries (Airflow 3.1/3.2 have no store, so none)."""
    if not HAS_TASK_STATE_STORE:
        return []
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    with create_session() as session:
        values = session.scalars(
            select(TaskStateStoreModel.value).where(TaskStateStoreModel.run_id == run_id)
        ).all()
    return [json.loads(v) for v in values]


def document_handoffs(run_id: str) -> list[dict[str, Any]]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        values = session.scalars(
            select(XComModel.value).where(XComModel.run_id == run_id, XComModel.key == "upstage_document")
        ).all()
    return [v if isinstance(v, dict) else json.loads(v) for v in values]


def landed(lake: Path) -> dict[str, dict[str, Any]]:
    """Per document: its pages' sizes, request ids, hashes and model versions, as the lake has them."""
    pages = pads.dataset(lake / "pages", format="parquet").to_table().to_pylist()
    out: dict[str, dict[str, Any]] = {}
    for row in sorted(pages, key=lambda r: (r["document_uri"], r["page"])):
        doc = out.setdefault(
            row["document_uri"],
            {"pages": [], "sizes": set(), "requests": set(), "sha": set(), "models": set()},
        )
        doc["pages"].append(row["page"])
        doc["sizes"].add((row["width"], row["height"]))
        doc["requests"].add(row["request_id"])
        doc["sha"].add(row["document_sha256"])
        doc["models"].add(row["model_version"])
    return out


def expected_size(path: Path) -> set[tuple[int, int]]:
    return {(p.width, p.height) for p in load_document(path.read_bytes(), name=path.name).pages or ()}


def same_sizes(found: set[tuple[int, int]], expected: set[tuple[int, int]]) -> bool:
    """Equal up to a pixel of rounding (A4 and Letter differ by 35 px in width, 100 in height)."""
    return len(found) == len(expected) and all(
        any(abs(w - ew) <= 1 and abs(h - eh) <= 1 for ew, eh in expected) for w, h in found
    )


def assert_each_document_landed_as_itself(lake: Path, docs: list[Path]) -> dict[str, dict[str, Any]]:
    found = landed(lake)
    assert sorted(found) == sorted(str(d) for d in docs)
    for doc in docs:
        entry = found[str(doc)]
        pages = load_document(doc.read_bytes(), name=doc.name).page_count
        assert entry["pages"] == list(range(1, (pages or 0) + 1)), doc.name
        assert same_sizes(entry["sizes"], expected_size(doc)), f"{doc.name} carries another document's pages"
        assert entry["sha"] == {hashlib.sha256(doc.read_bytes()).hexdigest()}
        assert len(entry["requests"]) == 1
    requests = [r for e in found.values() for r in e["requests"]]
    assert len(set(requests)) == len(requests), "two documents landed from one request"
    return found


# --- where the ledger lives, and that it cleans up -------------------------------------------------


def test_a_successful_run_leaves_no_variables_and_lands_each_document_as_itself(
    store: str,
    emulator: EmulatorServer,
    connect: Callable[..., str],
    documents: Callable[..., list[Path]],
    lake: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connect(emulator.url, conn_id="upstage_ledger")
    docs = documents(("a4 scan.pdf", 2, A4), ("스캔 letter.pdf", 3, LETTER))
    dag = configure(monkeypatch, docs, lake)
    run = dag.test()
    assert run.state == "success"
    assert emulator.stats()["submissions"] == 2
    assert_each_document_landed_as_itself(lake, docs)
    assert variables() == 0
    entries = ledger_entries(run.run_id)
    handoffs = document_handoffs(run.run_id)
    assert sorted(h["document_uri"] for h in handoffs) == sorted(str(d) for d in docs)
    if store == "task_state_store":
        assert sorted(e["document_uri"] for e in entries) == sorted(str(d) for d in docs)
        assert all(e["request_id"] and e["model"] == "ocr" for e in entries)
        assert all(h["ledger_variable"] is None for h in handoffs)
    else:  # the ledger was in Variables, and the sensors deleted them once landed
        assert entries == []
        assert all(h["ledger_variable"] for h in handoffs)


def test_the_ledger_lives_where_this_airflow_version_keeps_task_state(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    documents: Callable[..., list[Path]],
    lake: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing simulated: the real task context decides. Airflow 3.3 gives the ledger the task
    state store; 3.1/3.2 have none, and the ledger takes the Variables fallback: the handoff names
    the Variable the submit wrote, and the sensor deletes it once the document has landed."""
    connect(emulator.url, conn_id="upstage_ledger")
    written: list[str] = []
    from airflow.sdk import Variable

    real_set = Variable.set

    def spy(key: str, *args: Any, **kwargs: Any) -> Any:
        written.append(key)
        return real_set(key, *args, **kwargs)

    monkeypatch.setattr(Variable, "set", staticmethod(spy))
    run = configure(monkeypatch, documents(("scan.pdf", 2, A4)), lake).test()
    assert run.state == "success"
    (handoff,) = document_handoffs(run.run_id)
    if HAS_TASK_STATE_STORE:
        assert handoff["ledger_variable"] is None
        assert written == []
        (entry,) = ledger_entries(run.run_id)
        assert entry["request_id"] == handoff["request_id"]
    else:
        assert handoff["ledger_variable"].startswith("upstage_submission__")
        assert set(written) == {handoff["ledger_variable"]}  # the pending mark, then the request id
        assert len(written) == 2
    assert variables() == 0


def test_a_submit_refused_before_it_reached_the_api_leaves_no_pending_mark(
    store: str,
    emulator: EmulatorServer,
    connect: Callable[..., str],
    documents: Callable[..., list[Path]],
    lake: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connect(emulator.url, password="up_wrong_key", conn_id="upstage_ledger")
    dag = configure(monkeypatch, documents(("scan.pdf", 1, A4)), lake)
    run = dag.test()
    assert run.state == "failed"
    assert emulator.stats()["submissions"] == 0
    assert variables() == 0
    assert ledger_entries(run.run_id) == []


# --- 1: a retry never reattaches to someone else's request -----------------------------------------


def test_a_retry_in_the_same_run_never_takes_the_other_documents_request(
    emulator: EmulatorServer,
    proxy: FaultProxy,
    connect: Callable[..., str],
    documents: Callable[..., list[Path]],
    lake: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """b-doc's upload never reaches the API; a-doc's is accepted but its answer is lost."""
    connect(proxy.url, conn_id="upstage_ledger")
    docs = documents(("a-doc.pdf", 2, A4), ("b-doc.pdf", 2, LETTER))
    proxy.add(Rule("reset_upload", "POST", SUBMIT, when=uploading("b-doc.pdf")))
    proxy.add(Rule("reset_after_answer", "POST", SUBMIT, when=uploading("a-doc.pdf")))
    caplog.set_level(logging.WARNING, logger="upstage_provider.ledger")
    run = configure(monkeypatch, docs, lake).test()
    assert run.state == "success"
    # a-doc was accepted twice (its first answer was lost): the price of never guessing.
    assert emulator.stats()["submissions"] == 3
    assert_each_document_landed_as_itself(lake, docs)
    warnings = [r.getMessage() for r in caplog.records if "Possible duplicate charge" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert any("a-doc.pdf" in w for w in warnings)


@pytest.mark.parametrize("opt_in", ["0", "1"], ids=["default", "reattach_unrecorded"])
def test_a_retry_never_takes_another_clients_request_with_the_same_page_count(
    opt_in: str,
    emulator: EmulatorServer,
    proxy: FaultProxy,
    connect: Callable[..., str],
    documents: Callable[..., list[Path]],
    lake: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connect(proxy.url, conn_id="upstage_ledger")
    contract = documents(("contract.pdf", 3, LETTER))
    # Another client on the same key submits a 3-page invoice just before.
    foreign = UpstageOCRHook(connect(emulator.url, conn_id="upstage_other")).submit(
        load_document(make_pdf(3, size=A4), name="invoice.pdf")
    )
    proxy.add(Rule("reset_upload", "POST", SUBMIT, when=uploading("contract.pdf")))
    run = configure(monkeypatch, contract, lake, REATTACH_UNRECORDED=opt_in).test()
    assert run.state == "success"
    assert emulator.stats()["submissions"] == 2
    found = assert_each_document_landed_as_itself(lake, contract)
    assert foreign not in found[str(contract[0])]["requests"]


# --- 3: a busy API is not a gone request ----------------------------------------------------------


def test_a_rerun_while_the_api_is_busy_submits_nothing_and_one_after_a_404_submits_again(
    emulator: EmulatorServer,
    proxy: FaultProxy,
    connect: Callable[..., str],
    documents: Callable[..., list[Path]],
    lake: Path,
    monkeypatch: pytest.MonkeyPatch,
    retry_waits: list[float],
) -> None:
    connect(proxy.url, conn_id="upstage_ledger", max_retries=1)
    docs = documents(("one.pdf", 2, A4), ("two.pdf", 3, LETTER))
    dag = configure(monkeypatch, docs, lake)
    first = dag.test()
    assert first.state == "success"
    assert emulator.stats()["submissions"] == 2
    before = assert_each_document_landed_as_itself(lake, docs)
    if not HAS_TASK_STATE_STORE:
        # Airflow 3.1/3.2: the ledger's Variables went when the documents landed, so a cleared
        # rerun of a landed run submits (and pays) again: the documented fallback
        # (docs/compatibility.md). The cases below need the 3.3 store's retention.
        again = rerun(dag, first.run_id, first.logical_date)
        assert again.state == "success"
        assert emulator.stats()["submissions"] == 4
        assert variables() == 0
        return

    busy = proxy.add(Rule("answer", "GET", STATUS, times=1_000, status=503))
    again = rerun(dag, first.run_id, first.logical_date)
    assert again.state == "failed"
    assert busy.fired > 0
    assert emulator.stats()["submissions"] == 2, "a 503 is no reason to pay for a document again"
    assert landed(lake) == before

    busy.times = 0
    # The API has forgotten the recorded requests (expired); the new ones it knows.
    old = {r for entry in before.values() for r in entry["requests"]}
    proxy.add(
        Rule(
            "answer",
            "GET",
            STATUS,
            times=1_000,
            when=lambda call: call.path.rsplit("/", 1)[-1] in old,
            status=404,
            body=b'{"error": {"message": "Request not found", "code": "request_not_found"}}',
        )
    )
    again = rerun(dag, first.run_id, first.logical_date)
    assert again.state == "success"
    assert emulator.stats()["submissions"] == 4
    after = assert_each_document_landed_as_itself(lake, docs)
    assert all(after[d]["requests"].isdisjoint(before[d]["requests"]) for d in after)

    again = rerun(dag, first.run_id, first.logical_date)
    assert again.state == "success"
    assert emulator.stats()["submissions"] == 4, "a known, completed request is reattached"
    assert landed(lake) == after


# --- 4: the ledger knows what was asked -----------------------------------------------------------


def test_a_rerun_with_another_model_is_a_new_submission(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    documents: Callable[..., list[Path]],
    lake: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connect(emulator.url, conn_id="upstage_ledger")
    docs = documents(("scan.pdf", 2, A4))
    first = configure(monkeypatch, docs, lake).test()
    assert first.state == "success"
    (alias_version,) = landed(lake)[str(docs[0])]["models"]
    assert alias_version != "ocr-250904"

    pinned = configure(monkeypatch, docs, lake, MODEL="ocr-250904")
    again = rerun(pinned, first.run_id, first.logical_date)
    assert again.state == "success"
    assert emulator.stats()["submissions"] == 2
    assert landed(lake)[str(docs[0])]["models"] == {"ocr-250904"}
    again = rerun(pinned, first.run_id, first.logical_date)
    # Reattached to the pinned model's request on 3.3; on 3.1/3.2 its Variable went when the
    # document landed, so the rerun submits again (docs/compatibility.md).
    assert emulator.stats()["submissions"] == (2 if HAS_TASK_STATE_STORE else 3)
