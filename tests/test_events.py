"""What a stored trigger event means for the task: its plain-string form, as Airflow hands it back."""

from __future__ import annotations

from typing import Any

import pytest

from upstage_provider.compat import AirflowException, AirflowFailException, AirflowSensorTimeout
from upstage_provider.events import EventStatus, event_status, raise_for_event


def stored(status: Any, **extra: Any) -> dict[str, Any]:
    """An event as the worker gets it back: a plain dict, the status a plain str."""
    return {"status": status, "request_id": "req-1", "message": "why", "permanent": True, **extra}


def test_the_statuses_are_the_strings_airflow_stores() -> None:
    assert [s.value for s in EventStatus] == ["success", "failed", "timeout", "error"]
    assert event_status(stored("success")) is EventStatus.SUCCESS
    assert event_status(stored("done")) is None
    assert event_status({}) is None


def test_success_gives_the_request_id() -> None:
    assert raise_for_event(stored("success")) == "req-1"


def test_failed_fails_for_good_with_the_message() -> None:
    with pytest.raises(AirflowFailException, match=r"^why$"):
        raise_for_event(stored("failed"))


def test_timeout_raises_the_callers_error() -> None:
    with pytest.raises(AirflowSensorTimeout, match=r"^why$"):
        raise_for_event(stored("timeout"), timeout_error=AirflowSensorTimeout)
    with pytest.raises(AirflowException, match=r"^why$") as raised:
        raise_for_event(stored("timeout"))
    assert type(raised.value) is AirflowException


@pytest.mark.parametrize("status", ["error", "something new", None])
def test_errors_and_unknown_statuses_follow_permanent(status: Any) -> None:
    with pytest.raises(AirflowFailException, match="Upstage request req-1: why"):
        raise_for_event(stored(status))
    with pytest.raises(AirflowException, match="Upstage request req-1: why") as raised:
        raise_for_event(stored(status, permanent=False))
    assert type(raised.value) is AirflowException
