"""Deferring to the trigger: the trigger with its absolute deadline, and the deferral's backstop.

This module once held every Airflow-side piece the operators and the sensor share; those now live
in modules of their own and are re-exported here, so ``upstage_provider.runtime`` imports keep
working:

- :mod:`upstage_provider.locations`: document and output locations, checked before any paid call;
- :mod:`upstage_provider.events`: the trigger event, and errors and events as Airflow exceptions;
- :mod:`upstage_provider.landing`: Parquet landing, the XCom summary and asset events;
- :mod:`upstage_provider.ledger`: the submission ledger.
"""

from __future__ import annotations

import time
from datetime import timedelta

from upstage_provider.events import airflow_error as airflow_error
from upstage_provider.events import failed_for_good as failed_for_good
from upstage_provider.events import raise_for_event as raise_for_event
from upstage_provider.landing import emit_asset_events as emit_asset_events
from upstage_provider.landing import land as land
from upstage_provider.landing import land_request as land_request
from upstage_provider.landing import summarize as summarize
from upstage_provider.locations import WRITE_CHECK_PREFIX as WRITE_CHECK_PREFIX
from upstage_provider.locations import check_output_writable as check_output_writable
from upstage_provider.locations import location as location
from upstage_provider.locations import read_document as read_document
from upstage_provider.polling import DEFAULT_MAX_POLL_INTERVAL
from upstage_provider.triggers.ocr import UpstageOCRTrigger

#: The deferral's own timeout is only a backstop behind the trigger's deadline event.
DEFER_TIMEOUT_MARGIN = 300.0


def waiting_trigger(
    request_id: str,
    conn_id: str,
    poll_interval: float,
    timeout: float,
    *,
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
    adaptive_polling: bool = True,
) -> tuple[UpstageOCRTrigger, timedelta]:
    """
    The trigger to defer to, with an absolute deadline and start (the polling schedule's anchor),
    and the deferral's backstop timeout.
    """
    now = time.time()
    trigger = UpstageOCRTrigger(
        request_id=request_id,
        conn_id=conn_id,
        poll_interval=poll_interval,
        deadline=now + timeout,
        max_poll_interval=max_poll_interval,
        adaptive_polling=adaptive_polling,
        started_at=now,
    )
    return trigger, timedelta(seconds=timeout + DEFER_TIMEOUT_MARGIN)
