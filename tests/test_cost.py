"""Cost: billed pages per page row, the price_per_page extra, the estimate and its log words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.emulator_fixtures import API_KEY, wait_done
from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.cost import billed_note, billed_pages_column, check_price, estimated_cost
from upstage_provider.documents import load_document
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.exceptions import InvalidConnectionExtraError, NotAskedError
from upstage_provider.hooks.upstage import UpstageOCRHook


@pytest.mark.parametrize(
    ("billed", "pages", "column"),
    [
        (10, 10, [1] * 10),  # what the API does: every page billed once
        (3, 3, [1, 1, 1]),
        (7, 10, [1] * 7 + [0] * 3),  # fewer billed than returned: the first ones carry them
        (12, 10, [1] * 9 + [3]),  # more billed than returned: the excess on the last page
        (0, 2, [0, 0]),
        (1, 1, [1]),
        (5, 1, [5]),
        (None, 3, [None, None, None]),  # no count: unknown, not zero
        (4, 0, []),  # no row to carry it (the summary still counts it)
    ],
)
def test_the_column_sums_to_the_responses_count(billed: int | None, pages: int, column: list[Any]) -> None:
    values = billed_pages_column(billed, pages)
    assert str(values.type) == "int32"
    assert values.to_pylist() == column
    if billed is not None and pages:
        assert sum(column) == billed


@pytest.mark.parametrize(
    ("value", "price"),
    [(None, None), ("", None), (0.0015, 0.0015), (2, 2.0), (0, 0.0), ("0.0015", 0.0015), (" 1.5 ", 1.5)],
)
def test_a_price_is_a_non_negative_number(value: Any, price: float | None) -> None:
    assert check_price(value, "upstage_default") == price


@pytest.mark.parametrize("value", ["abc", -0.0015, "-1", True, False, float("nan"), "inf", [0.1], {"usd": 1}])
def test_anything_else_is_refused_naming_the_connection_and_the_value(value: Any) -> None:
    with pytest.raises(InvalidConnectionExtraError) as raised:
        check_price(value, "upstage_prod")
    message = str(raised.value)
    assert "connection 'upstage_prod': extra price_per_page is" in message
    assert repr(value) in message
    assert "non-negative number" in message
    error = raised.value
    assert isinstance(error, NotAskedError)
    assert isinstance(error, ValueError)
    assert error.permanent


def test_the_estimate_is_rounded_past_float_noise() -> None:
    assert 3 * 0.0015 != 0.0045  # what the rounding is for
    assert estimated_cost(3, 0.0015) == 0.0045
    assert estimated_cost(1000, 0.0015) == 1.5
    assert estimated_cost(2500, 0.0015) == 3.75
    assert estimated_cost(None, 0.0015) is None
    assert estimated_cost(10, None) is None
    assert estimated_cost(0, 0.0015) == 0.0


@pytest.mark.parametrize(
    ("billed", "price", "note"),
    [
        (1000, None, "billed 1,000 pages"),
        (1000, 0.0015, "billed 1,000 pages, about 1.50 at 0.0015/page"),
        (1, 0.0015, "billed 1 page, about 0.0015 at 0.0015/page"),
        (3, 0.0015, "billed 3 pages, about 0.0045 at 0.0015/page"),
        (1_234_567, 0.0015, "billed 1,234,567 pages, about 1,851.85 at 0.0015/page"),
        (10, 0.0000015, "billed 10 pages, about 0.000015 at 0.0000015/page"),
        (10, 0, "billed 10 pages, about 0.00 at 0/page"),
        (None, 0.0015, "billed pages not reported by the API"),
    ],
)
def test_the_log_words(billed: int | None, price: float | None, note: str) -> None:
    assert billed_note(billed, price) == note


# --- through the hook and the emulator ---------------------------------------------------------


def test_the_hook_reads_the_price_from_the_connection(connect: Callable[..., str]) -> None:
    assert UpstageOCRHook(connect("http://127.0.0.1:9")).price_per_page is None
    assert UpstageOCRHook(connect("http://127.0.0.1:9", price_per_page=0.0015)).price_per_page == 0.0015
    assert UpstageOCRHook(connect("http://127.0.0.1:9", price_per_page="0.002")).price_per_page == 0.002
    hook = UpstageOCRHook(connect("http://127.0.0.1:9", price_per_page="1,5"))
    with pytest.raises(
        InvalidConnectionExtraError, match="'upstage_test': extra price_per_page is '1,5'"
    ) as e:
        hook.price_per_page  # noqa: B018
    assert API_KEY not in str(e.value)


def test_the_emulator_bills_every_page_it_returns(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    """Each response (a sync document, an async batch) reports its own pages as billed, as Upstage's do."""
    hook = UpstageOCRHook(connect(emulator.url))
    assert hook.ocr(load_document(make_pdf(3), name="three.pdf")).billed_pages == 3
    request_id = hook.submit(load_document(make_pdf(23), name="doc.pdf"))
    wait_done(hook, request_id)
    batches = list(hook.iter_arrow_batches(request_id))
    assert [(b.page_count, b.billed_pages) for b in batches] == [(10, 10), (10, 10), (3, 3)]
    assert emulator.stats()["pages_processed"] == 26
