"""What OCR costs: billed pages per page row, the connection's price, the estimate. No Airflow.

Upstage bills per page and says how many in every response (``numBilledPages``, one sync
document or one async batch). The rules for carrying that count into the pages table, checking
a ``price_per_page`` connection extra and estimating a cost live here, and only here, so the
Parquet writer, the hook and the task log all say the same thing (``docs/parquet.md``, "Cost").
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pyarrow as pa

from upstage_provider.exceptions import InvalidConnectionExtraError

__all__ = ["PRICE_EXTRA", "billed_note", "billed_pages_column", "check_price", "estimated_cost"]

#: The connection extra holding the price of one billed page.
PRICE_EXTRA = "price_per_page"
#: An estimate is rounded to a millionth of the currency unit: below any real invoice's precision,
#: far above float noise (3 x 0.0015 is 0.0045000000000000005 in floating point).
COST_DECIMALS = 6


def billed_pages_column(billed: int | None, pages: int) -> pa.Array:
    """One response's ``billed_pages`` values for its ``pages`` page rows, in page order.

    1 on each page while the response's count lasts, 0 after it; a count above the page count
    puts the excess on the last page, so the column sums to the response's count whenever it has
    a row to carry it. Null on every page when the response gave no count.
    """
    if billed is None:
        return pa.nulls(pages, pa.int32())
    covered = min(billed, pages)
    values = [1] * covered + [0] * (pages - covered)
    if values:
        values[-1] += billed - covered
    return pa.array(values, type=pa.int32())


def check_price(value: Any, conn_id: str) -> float | None:
    """The ``price_per_page`` extra as a float; None when unset. Anything else is refused.

    A number or a numeric string (an extra written as JSON by hand) that is finite and not
    negative; a boolean is not a price. Raises :class:`InvalidConnectionExtraError`.
    """
    if value is None or value == "":
        return None
    price: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        price = float(value)
    elif isinstance(value, str):
        try:
            price = float(value.strip())
        except ValueError:
            price = None
    if price is None or not math.isfinite(price) or price < 0:
        raise InvalidConnectionExtraError(
            f"connection '{conn_id}': extra {PRICE_EXTRA} is {value!r}, expected a non-negative number: "
            "the price of one billed page in your Upstage contract's currency (e.g. 0.0015), or leave it "
            "out; checked before any OCR call"
        )
    return price


def estimated_cost(billed_pages: int | None, price_per_page: float | None) -> float | None:
    """Billed pages times the price, rounded to ``COST_DECIMALS``; None when either is unknown."""
    if billed_pages is None or price_per_page is None:
        return None
    return round(billed_pages * price_per_page, COST_DECIMALS)


def billed_note(billed_pages: int | None, price_per_page: float | None) -> str:
    """The task log's words: ``billed 1,000 pages, about 1.50 at 0.0015/page``.

    No currency symbol: the price is in whatever currency the user's contract is in.
    """
    if billed_pages is None:
        return "billed pages not reported by the API"
    note = f"billed {billed_pages:,} page{'' if billed_pages == 1 else 's'}"
    cost = estimated_cost(billed_pages, price_per_page)
    if cost is not None and price_per_page is not None:
        note += f", about {_amount(cost)} at {_plain(price_per_page)}/page"
    return note


def _amount(value: float) -> str:
    """Two decimals from 1 up; below that the estimate as it is, so 3 pages do not read 0.00."""
    if value >= 1 or value == 0:
        return f"{value:,.2f}"
    return _plain(value)


def _plain(value: float) -> str:
    """A float without an exponent: 1.5e-05 reads 0.000015."""
    return format(Decimal(repr(value)), "f")
