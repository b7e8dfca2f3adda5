"""The trigger's event, and what an event or an Upstage error means for the task: fail, retry, go on.

The trigger yields one :class:`OCREvent`; Airflow stores it between the triggerer and the worker,
so its wire form is a plain ``dict`` of primitives whose ``status`` is an :class:`EventStatus`
value as a plain ``str``. Events written by an older provider read the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypedDict

from upstage_provider.compat import AirflowException, AirflowFailException
from upstage_provider.exceptions import UpstageError


class EventStatus(str, Enum):
    """How the wait ended; each trigger run yields exactly one event with one of these."""

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"


class _EventCore(TypedDict):
    status: str  # an EventStatus value, stored as a plain str
    request_id: str
    message: str
    permanent: bool


class OCREvent(_EventCore, total=False):
    """The payload of the trigger's ``TriggerEvent``."""

    #: With a known request state (success, failed, timeout after a status call).
    total_pages: int | None
    batches: int
    #: With ``failed``: the API's own message, and the first and last page of the failed batches.
    failure_message: str
    pages: list[int] | None


def event_status(event: Mapping[str, Any]) -> EventStatus | None:
    """The event's status; None for one this provider does not know."""
    try:
        return EventStatus(event.get("status"))
    except ValueError:
        return None


def raise_for_event(
    event: Mapping[str, Any], *, timeout_error: type[AirflowException] = AirflowException
) -> str:
    """Raise what a trigger event calls for; returns the request id of a successful one."""
    request_id = str(event.get("request_id") or "")
    status = event_status(event)
    message = event.get("message") or "no message"
    if status is EventStatus.SUCCESS:
        return request_id
    if status is EventStatus.FAILED:
        raise AirflowFailException(message)
    if status is EventStatus.TIMEOUT:
        raise timeout_error(message)
    error = AirflowFailException if event.get("permanent") else AirflowException
    raise error(f"Upstage request {request_id}: {message}")


def airflow_error(exc: UpstageError) -> AirflowException:
    """Airflow must not retry what cannot succeed: bad input, a bad key, a failed request."""
    return AirflowFailException(str(exc)) if exc.permanent else AirflowException(str(exc))


def failed_for_good(context: Mapping[str, Any], exc: UpstageError) -> bool:
    """A permanent error, or a transient one on the task's last try: no try will follow."""
    if exc.permanent:
        return True
    ti = context.get("ti")
    try:
        return int(ti.try_number) > int(ti.max_tries)  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return False
