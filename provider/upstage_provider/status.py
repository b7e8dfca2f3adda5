"""Typed view of an async request's status, as ``GET /requests/{id}`` returns it.

No Airflow import: triggers, sensors and the hook share it, and it is cheap to test.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upstage_provider.exceptions import MalformedResponseError, RequestFailedError


class RequestState(str, enum.Enum):
    SUBMITTED = "submitted"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (RequestState.COMPLETED, RequestState.FAILED)


class BatchState(str, enum.Enum):
    SCHEDULED = "scheduled"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"


@dataclass(frozen=True, slots=True)
class BatchInfo:
    id: int | str
    status: BatchState
    start_page: int
    end_page: int
    download_url: str | None
    failure_message: str | None

    @property
    def page_count(self) -> int:
        return self.end_page - self.start_page + 1


@dataclass(frozen=True, slots=True)
class RequestInfo:
    id: str
    status: RequestState
    model: str | None
    failure_message: str | None
    total_pages: int | None
    completed_pages: int | None
    requested_at: str | None
    completed_at: str | None
    batches: tuple[BatchInfo, ...]

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def failed_batches(self) -> tuple[BatchInfo, ...]:
        return tuple(b for b in self.batches if b.status is BatchState.FAILED)

    @property
    def completed_batches(self) -> int:
        return sum(1 for b in self.batches if b.status is BatchState.COMPLETED)

    def failure(self) -> RequestFailedError | None:
        """The error for a failed request or a failed batch, naming the API's reason and the pages."""
        failed = self.failed_batches
        if self.status is not RequestState.FAILED and not failed:
            return None
        pages = (failed[0].start_page, failed[-1].end_page) if failed else None
        reason = self.failure_message or (failed[0].failure_message if failed else None) or "no reason given"
        return RequestFailedError(reason, request_id=self.id, pages=pages)

    def progress(self) -> str:
        """One log-friendly line: ``started: 3/10 batches, 30/100 pages``."""
        total = self.total_pages if self.total_pages is not None else "?"
        done = self.completed_pages if self.completed_pages is not None else "?"
        return (
            f"{self.status.value}: {self.completed_batches}/{len(self.batches)} batches, {done}/{total} pages"
        )

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> RequestInfo:
        if not isinstance(payload, Mapping):
            raise MalformedResponseError(
                f"request status: expected a JSON object, got {type(payload).__name__}"
            )
        request_id = _required(payload, "id", str, "request status")
        return cls(
            id=request_id,
            status=_state(RequestState, payload.get("status"), f"request {request_id}.status"),
            model=_optional(payload, "model", str),
            failure_message=_optional(payload, "failure_message", str),
            total_pages=_optional(payload, "total_pages", int),
            completed_pages=_optional(payload, "completed_pages", int),
            requested_at=_optional(payload, "requested_at", str),
            completed_at=_optional(payload, "completed_at", str),
            batches=tuple(
                _batch(b, f"request {request_id}.batches[{i}]")
                for i, b in enumerate(_optional(payload, "batches", list) or [])
            ),
        )


def _batch(raw: Any, where: str) -> BatchInfo:
    if not isinstance(raw, Mapping):
        raise MalformedResponseError(f"{where}: expected an object, got {type(raw).__name__}")
    batch_id = raw.get("id")
    if not isinstance(batch_id, (int, str)) or isinstance(batch_id, bool):
        raise MalformedResponseError(f"{where}.id: missing or not an int/string")
    start = _required(raw, "start_page", int, where)
    end = _required(raw, "end_page", int, where)
    if start < 1 or end < start:
        raise MalformedResponseError(f"{where}: page range {start}-{end} is not a 1-based inclusive range")
    return BatchInfo(
        id=batch_id,
        status=_state(BatchState, raw.get("status"), f"{where}.status"),
        start_page=start,
        end_page=end,
        download_url=_optional(raw, "download_url", str) or None,
        failure_message=_optional(raw, "failure_message", str),
    )


def _required(raw: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = raw.get(key)
    if value is None:
        raise MalformedResponseError(f"{where}: '{key}' is missing")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedResponseError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(raw: Mapping[str, Any], key: str, kind: type) -> Any:
    value = raw.get(key)
    if value is None or not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return None
    return value


def _state(enum_type: type[enum.Enum], value: Any, where: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise MalformedResponseError(
            f"{where}: unknown status {value!r} (expected one of {allowed})"
        ) from None
