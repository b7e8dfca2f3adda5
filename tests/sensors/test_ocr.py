"""UpstageOCRSensor without a database: defer, resume, poke, land Parquet, fail fast."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.compat import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferred
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.sensors.ocr import UpstageOCRSensor
from upstage_provider.triggers.ocr import UpstageOCRTrigger


def submitted(conn_id: str, pages: int) -> tuple[str, Path]:
    hook = UpstageOCRHook(conn_id, backoff_base=0.01, backoff_max=0.05)
    return hook.submit(load_document(make_pdf(pages), name="doc.pdf")), Path("doc.pdf")


def wait(conn_id: str, request_id: str) -> None:
    hook = UpstageOCRHook(conn_id)
    while not hook.get_request(request_id).is_terminal:
        time.sleep(0.05)


def sensor(conn_id: str, request_id: str, out: Path, **kwargs: Any) -> UpstageOCRSensor:
    kwargs.setdefault("deferrable", True)
    return UpstageOCRSensor(
        task_id="wait",
        request_id=request_id,
        output_uri=str(out),
        conn_id=conn_id,
        poll_interval=0.05,
        **kwargs,
    )


def test_defers_with_the_right_trigger_then_lands_parquet(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], tmp_path: Path
) -> None:
    server = make_emulator(faults=FaultConfig(latency_per_page=0.05))
    conn_id = connect(server.url)
    request_id, _ = submitted(conn_id, 14)
    op = sensor(conn_id, request_id, tmp_path, timeout=600)
    started = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, UpstageOCRTrigger)
    assert (trigger.request_id, trigger.conn_id, trigger.poll_interval) == (request_id, conn_id, 0.05)
    assert trigger.deadline is not None
    assert started + 599 <= trigger.deadline <= time.time() + 600
    assert deferred.value.method_name == "execute_complete"
    wait(conn_id, request_id)
    result = op.execute_complete({}, {"status": "success", "request_id": request_id})
    assert result["request_id"] == request_id
    assert result["pages"] == 14
    assert result["words"] > 0
    words = pq.read_table(result["words_uri"])
    assert words.num_rows == result["words"]
    assert sorted(set(words["page"].to_pylist())) == list(range(1, 15))
    assert set(words["request_id"].to_pylist()) == {request_id}


def test_already_finished_request_lands_without_deferring(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path
) -> None:
    conn_id = connect(emulator.url)
    request_id, _ = submitted(conn_id, 3)
    wait(conn_id, request_id)
    result = sensor(conn_id, request_id, tmp_path).execute({})
    assert result["pages"] == 3


def test_poking_mode_lands_the_same_files(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path
) -> None:
    conn_id = connect(emulator.url)
    request_id, _ = submitted(conn_id, 11)
    result = sensor(conn_id, request_id, tmp_path, deferrable=False, timeout=60).execute({})
    assert result["pages"] == 11
    assert pq.read_table(result["pages_uri"]).num_rows == 11


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"status": "failed", "message": "request r failed: bad scan (pages 11-20)"}, AirflowFailException),
        ({"status": "timeout", "message": "did not finish"}, AirflowSensorTimeout),
        ({"status": "error", "message": "HTTP 401", "permanent": True}, AirflowFailException),
        ({"status": "error", "message": "ConnectError", "permanent": False}, AirflowException),
    ],
)
def test_non_success_events_raise(event: dict[str, Any], error: type[Exception], tmp_path: Path) -> None:
    op = sensor("unused", "r", tmp_path)
    with pytest.raises(error) as raised:
        op.execute_complete({}, {"request_id": "r", **event})
    assert event["message"] in str(raised.value)
    if error is AirflowException:
        assert not isinstance(raised.value, AirflowFailException)


def test_failed_batch_fails_the_task_once_with_pages(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], tmp_path: Path
) -> None:
    server = make_emulator(faults=FaultConfig(fail_batches=(0,)))
    conn_id = connect(server.url)
    request_id, _ = submitted(conn_id, 12)
    wait(conn_id, request_id)
    with pytest.raises(AirflowFailException, match="pages 1-10"):
        sensor(conn_id, request_id, tmp_path).execute({})
    assert not list(tmp_path.rglob("*.parquet"))


def test_unknown_request_is_permanent(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path
) -> None:
    with pytest.raises(AirflowFailException, match="404"):
        sensor(connect(emulator.url), "00000000-0000-0000-0000-000000000000", tmp_path).execute({})


def test_fsspec_uris_for_document_and_output(emulator: EmulatorServer, connect: Callable[..., str]) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/inbox/stored.pdf", make_pdf(4))
    conn_id = connect(emulator.url)
    request_id = UpstageOCRHook(conn_id).submit("memory:///inbox/stored.pdf")
    wait(conn_id, request_id)
    result = UpstageOCRSensor(
        task_id="wait",
        request_id=request_id,
        output_uri="memory:///lake/ds=2026-11-24",
        document="memory:///inbox/stored.pdf",
        conn_id=conn_id,
    ).execute({})
    assert result["words_uri"].startswith("memory://")
    assert fs.exists(result["words_uri"])
    assert fs.exists(result["pages_uri"])
    words = pq.read_table(result["words_uri"], filesystem=fs)
    assert set(words["document_uri"].to_pylist()) == {"memory:///inbox/stored.pdf"}
    assert words["document_sha256"][0].as_py() == hashlib.sha256(fs.cat("/inbox/stored.pdf")).hexdigest()


def test_object_storage_path_uris(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath

    (tmp_path / "scan.pdf").write_bytes(make_pdf(2))
    conn_id = connect(emulator.url)
    document = f"file://{tmp_path}/scan.pdf"
    request_id = UpstageOCRHook(conn_id).submit(ObjectStoragePath(document))
    wait(conn_id, request_id)
    result = UpstageOCRSensor(
        task_id="wait",
        request_id=request_id,
        output_uri=f"file://{tmp_path}/lake",
        document=document,
        conn_id=conn_id,
    ).execute({})
    assert Path(result["words_uri"].removeprefix("file://")).is_file()
    assert result["pages"] == 2
    assert pq.read_table(result["pages_uri"].removeprefix("file://"))["document_uri"][0].as_py() == document


def test_the_waiting_schedule_reaches_the_trigger(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], tmp_path: Path
) -> None:
    server = make_emulator(faults=FaultConfig(latency_per_page=0.5))
    conn_id = connect(server.url)
    request_id, _ = submitted(conn_id, 5)
    op = sensor(conn_id, request_id, tmp_path, max_poll_interval=45, adaptive_polling=False)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, UpstageOCRTrigger)
    kwargs = trigger.serialize()[1]
    assert (kwargs["max_poll_interval"], kwargs["adaptive_polling"]) == (45.0, False)
    assert before <= kwargs["started_at"] <= time.time()  # anchored at the deferral
    defaults = sensor(conn_id, request_id, tmp_path)
    assert (defaults.max_poll_interval, defaults.adaptive_polling) == (300.0, True)


def test_a_schedule_no_trigger_can_keep_fails_when_the_dag_is_parsed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_poll_interval"):
        sensor("upstage_test", "r-1", tmp_path, max_poll_interval=0)


# --- cost: billed pages and the estimate -------------------------------------------------------


def test_the_summary_the_asset_event_and_the_log_carry_billed_pages_and_the_cost(
    emulator: EmulatorServer,
    connect: Callable[..., str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import OutletEventAccessors

    conn_id = connect(emulator.url, price_per_page=0.0015)
    request_id, _ = submitted(conn_id, 14)  # two batches: 10 pages, 4 pages
    wait(conn_id, request_id)
    asset = Asset("file:///lake/ocr")
    events = OutletEventAccessors()
    with caplog.at_level(logging.INFO, logger="upstage_provider.landing"):
        result = sensor(conn_id, request_id, tmp_path, outlets=[asset]).execute({"outlet_events": events})
    assert result["billed_pages"] == 14
    assert result["estimated_cost"] == 0.021
    assert result["price_per_page"] == 0.0015
    assert pc.sum(pq.read_table(result["pages_uri"])["billed_pages"]).as_py() == 14
    assert events[asset].extra == {
        "request_id": request_id,
        "pages": 14,
        "words": result["words"],
        "billed_pages": 14,
        "estimated_cost": 0.021,
        "price_per_page": 0.0015,
    }
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Wrote ")]
    assert "billed 14 pages, about 0.021 at 0.0015/page" in line


def test_without_a_price_the_summary_has_billed_pages_and_no_cost(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn_id = connect(emulator.url)
    request_id, _ = submitted(conn_id, 3)
    wait(conn_id, request_id)
    with caplog.at_level(logging.INFO, logger="upstage_provider.landing"):
        result = sensor(conn_id, request_id, tmp_path, deferrable=False, timeout=60).execute({})
    assert result["billed_pages"] == 3
    assert "estimated_cost" not in result
    assert "price_per_page" not in result
    assert any("billed 3 pages:" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("price", ["abc", -0.0015, True])
def test_a_bad_price_fails_the_sensor_before_it_waits(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path, price: Any
) -> None:
    request_id, _ = submitted(connect(emulator.url), 3)
    bad = connect(emulator.url, conn_id="upstage_bad_price", price_per_page=price)
    before = emulator.stats()["endpoints"].get("status", {}).get("total", 0)
    with pytest.raises(AirflowFailException, match="connection 'upstage_bad_price': extra price_per_page is"):
        sensor(bad, request_id, tmp_path).execute({})
    assert emulator.stats()["endpoints"].get("status", {}).get("total", 0) == before
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_price_made_bad_while_waiting_lands_without_the_estimate(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Results already paid for are never thrown away for the sake of an estimate."""
    conn_id = connect(emulator.url, price_per_page=0.0015)
    request_id, _ = submitted(conn_id, 3)
    op = sensor(conn_id, request_id, tmp_path)
    wait(conn_id, request_id)
    connect(emulator.url, price_per_page="abc")  # the connection is edited during the wait
    with caplog.at_level(logging.WARNING, logger="upstage_provider.landing"):
        result = op.execute_complete({}, {"status": "success", "request_id": request_id})
    assert result["billed_pages"] == 3
    assert "estimated_cost" not in result
    assert any("landing without an estimated cost" in r.getMessage() for r in caplog.records)


def test_a_partition_lands_under_each_table_and_is_in_the_summary(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path
) -> None:
    conn_id = connect(emulator.url)
    request_id, _ = submitted(conn_id, 2)
    wait(conn_id, request_id)
    op = sensor(conn_id, request_id, tmp_path, partition="ds=2026-11-24")
    assert {"partition", "storage_conn_id"} <= set(op.template_fields)
    result = op.execute({})
    assert result["partition"] == "ds=2026-11-24"
    assert Path(result["words_uri"]).parent == tmp_path / "words" / "ds=2026-11-24"
    assert Path(result["pages_uri"]).parent == tmp_path / "pages" / "ds=2026-11-24"
    assert set(result) == {
        "request_id",
        "words_uri",
        "pages_uri",
        "pages",
        "words",
        "partition",
        "billed_pages",
        "model_version",
    }


def test_a_bad_partition_fails_for_good_before_any_status_call(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path
) -> None:
    conn_id = connect(emulator.url)
    before = emulator.stats()["endpoints"].get("status", {}).get("total", 0)
    op = sensor(conn_id, "req-unknown", tmp_path, partition="ds=../../etc")
    with pytest.raises(AirflowFailException, match="not a Hive-style partition"):
        op.execute({})
    assert emulator.stats()["endpoints"].get("status", {}).get("total", 0) == before
    assert not (tmp_path / "words").exists()
