"""The operators and cost: a bad price_per_page fails before any OCR call; the sync path's summary."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.compat import AirflowFailException
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.operators.ocr import UpstageOCROperator, UpstageOCRSubmitOperator


def paid_calls(server: EmulatorServer) -> int:
    endpoints = server.stats()["endpoints"]
    return sum(endpoints.get(name, {}).get("total", 0) for name in ("sync", "submit"))


@pytest.mark.parametrize("price", ["abc", -1, "-0.0015", False, "nan"])
@pytest.mark.parametrize("operator", ["submit", "one_task"])
def test_a_bad_price_fails_the_task_before_any_ocr_call(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path, price: Any, operator: str
) -> None:
    doc = tmp_path / "scan.pdf"
    doc.write_bytes(make_pdf(3))
    conn_id = connect(emulator.url, price_per_page=price)
    task: UpstageOCRSubmitOperator | UpstageOCROperator
    if operator == "submit":
        task = UpstageOCRSubmitOperator(task_id="submit", document=str(doc), conn_id=conn_id)
    else:
        task = UpstageOCROperator(
            task_id="ocr", document=str(doc), output_uri=str(tmp_path / "lake"), conn_id=conn_id
        )
    with pytest.raises(AirflowFailException) as raised:
        task.execute({})  # no ti in the context: the check comes before anything needs one
    assert (
        f"connection '{conn_id}': extra price_per_page is {price!r}, expected a non-negative number"
        in str(raised.value)
    )
    assert paid_calls(emulator) == 0
    assert emulator.stats()["submissions"] == 0
    assert not (tmp_path / "lake").exists()


def test_the_sync_path_bills_the_document_and_estimates_its_cost(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doc = tmp_path / "scan.pdf"
    doc.write_bytes(make_pdf(7))
    conn_id = connect(emulator.url, price_per_page="0.0015")  # a JSON string, as hand-written extras have it
    task = UpstageOCROperator(
        task_id="ocr", document=str(doc), output_uri=str(tmp_path / "lake"), conn_id=conn_id
    )
    with caplog.at_level(logging.INFO, logger="upstage_provider.landing"):
        result = task.execute({})
    assert paid_calls(emulator) == 1
    assert (result["pages"], result["billed_pages"]) == (7, 7)
    assert (result["estimated_cost"], result["price_per_page"]) == (0.0105, 0.0015)
    assert pc.sum(pq.read_table(result["pages_uri"])["billed_pages"]).as_py() == 7
    assert any("billed 7 pages, about 0.0105 at 0.0015/page" in r.getMessage() for r in caplog.records)
