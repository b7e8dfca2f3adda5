"""
The API key never leaks: run the pipeline through dag.test() in the ways it can go (success
through 429s and 5xxs, a refused key, a failed batch, a bad document) with a recognisable API
key, then count that key in everything the runs left behind. Every count must be 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer

CANARY = "up_SECRET_canary_7f3a9c2e"
AIRFLOW_HOME = Path(os.environ["AIRFLOW_HOME"])


def count(text: str | bytes) -> int:
    if isinstance(text, bytes):
        return text.count(CANARY.encode())
    return text.count(CANARY)


@pytest.mark.usefixtures("airflow_db")
def test_the_api_key_is_found_nowhere_after_runs_that_succeed_retry_and_fail(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    run_dag: Callable[..., Any],
    retry_waits: list[float],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from upstage_provider.exceptions import UpstageError
    from upstage_provider.hooks.upstage import UpstageOCRHook
    from upstage_provider.triggers.ocr import UpstageOCRTrigger

    caplog.set_level("DEBUG")
    runs: dict[str, Any] = {}
    outputs: list[Path] = []

    def pipeline(name: str, server: EmulatorServer, document: bytes) -> Any:
        connect(server.url, password=CANARY, conn_id="upstage_default", max_retries=8)
        doc = tmp_path / f"{name}.pdf"
        doc.write_bytes(document)
        out = tmp_path / f"out-{name}"
        outputs.append(out)
        runs[name] = run_dag(
            "upstage_reliability_pipeline",
            UPSTAGE_RELIABILITY_DOCUMENT=str(doc),
            UPSTAGE_RELIABILITY_OUTPUT=str(out),
        )
        return runs[name]

    # 1. Success through retries: 429 (with Retry-After) and 503 on a third of the calls each.
    flaky = make_emulator(
        FaultConfig(rate_429=0.3, retry_after=0.01, rate_5xx=0.3, seed=3), api_key=CANARY, batch_size=5
    )
    assert pipeline("success", flaky, make_pdf(12)).state == "success"
    injected = flaky.stats()["injected"]
    assert injected.get("429", 0) >= 1
    assert injected.get("5xx", 0) >= 1
    # 2. The key refused (401): the emulator expects another one.
    strict = make_emulator(api_key="up_other_key_123")
    assert pipeline("refused", strict, make_pdf(2)).state == "failed"
    assert strict.stats()["endpoints"]["submit"]["by_status"] == {"401": 1}
    # 3. A failed batch.
    failing = make_emulator(FaultConfig(fail_batches=(0,)), api_key=CANARY)
    assert pipeline("failed-batch", failing, make_pdf(3)).state == "failed"
    # 4. A bad document (0 pages): refused before any upload.
    assert pipeline("bad-document", failing, make_pdf(0)).state == "failed"

    found: dict[str, int] = {}

    # Task logs: every file dag.test() wrote under AIRFLOW_HOME/logs, and what it logged to
    # stdout/stderr and through logging (it writes the task logs there, in-process).
    log_files = (
        [p for p in (AIRFLOW_HOME / "logs").rglob("*") if p.is_file()]
        if (AIRFLOW_HOME / "logs").exists()
        else []
    )
    found["log files"] = sum(count(p.read_bytes()) for p in log_files)
    captured = capsys.readouterr()
    found["stdout/stderr"] = count(captured.out) + count(captured.err)
    found["log records"] = sum(count(r.getMessage()) + count(str(r.args)) for r in caplog.records)
    assert "Task failed with exception" in captured.out  # the runs did log here
    assert captured.out.count("check the API key in the password of the upstage connection") >= 1

    # The trigger as the sensor builds it, serialized as the triggerer stores it.
    from airflow.models import TaskInstance
    from airflow.models import Variable as VariableModel
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    trigger = UpstageOCRTrigger(request_id="r-1", conn_id="upstage_default", poll_interval=1, deadline=1e10)
    classpath, kwargs = trigger.serialize()
    found["trigger serialize()"] = count(repr(kwargs)) + count(classpath)
    found["trigger repr"] = count(repr(trigger))
    run_ids = [run.run_id for run in runs.values()]
    with create_session() as session:
        stored_triggers = session.scalars(select(Trigger)).all()
        found["stored triggers"] = sum(count(repr(t.kwargs)) for t in stored_triggers)
        xcoms = session.scalars(select(XComModel).where(XComModel.run_id.in_(run_ids))).all()
        found["xcom values"] = sum(count(repr(x.value)) for x in xcoms)
        variables = session.scalars(select(VariableModel)).all()
        found["variables"] = sum(count(f"{v.key}={v.val}") for v in variables)
        ledger = session.scalars(
            select(TaskStateStoreModel).where(TaskStateStoreModel.run_id.in_(run_ids))
        ).all()
        found["task state store"] = sum(count(f"{e.key}={e.value}") for e in ledger)
        tis = session.scalars(select(TaskInstance).where(TaskInstance.run_id.in_(run_ids))).all()
        found["task instances"] = sum(
            count(repr(ti.next_kwargs)) + count(repr(ti.rendered_map_index)) for ti in tis
        )
    assert len(xcoms) >= 2  # the request id and the sensor's summary of the successful run
    assert any(e.key.startswith("upstage_submission.") for e in ledger)  # the ledger is there

    # Exception texts straight from the hook, for the refused key and a status call.
    hook = UpstageOCRHook("upstage_default")
    connect(strict.url, password=CANARY, conn_id="upstage_default", max_retries=0)
    errors: list[BaseException] = []
    for call in (lambda: hook.list_requests(), lambda: hook.get_request("no-such-request")):
        try:
            call()
        except UpstageError as exc:
            errors.append(exc)
    assert len(errors) == 2
    found["exceptions"] = sum(count(str(e)) + count(repr(e)) + count(repr(vars(e))) for e in errors)

    parquet = [p for out in outputs if out.exists() for p in out.rglob("*.parquet")]
    assert len(parquet) == 2  # words and pages of the successful run
    found["parquet bytes"] = sum(count(p.read_bytes()) for p in parquet)

    assert found == dict.fromkeys(found, 0), found
    # The search itself works: the connection the runs used does hold the key.
    assert count(os.environ["AIRFLOW_CONN_UPSTAGE_DEFAULT"]) == 1
    print(f"searched {len(log_files)} log files, {len(caplog.records)} log records, {len(xcoms)} xcoms")
