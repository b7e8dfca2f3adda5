"""Trigger that waits in the triggerer for an async Upstage request to finish.

It holds no worker slot, serializes only primitives (never the key), and survives a triggerer
restart: the deadline is an absolute epoch time, so a resumed trigger keeps the original one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from upstage_provider.exceptions import UpstageError
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.status import RequestInfo, RequestState

# Event statuses the operators understand; each trigger yields exactly one of them.
SUCCESS = "success"
FAILED = "failed"
TIMEOUT = "timeout"
ERROR = "error"


class UpstageOCRTrigger(BaseTrigger):
    """
    Poll ``GET /requests/{id}`` until the request completes, fails, or the deadline passes.

    :param request_id: the async request to wait for.
    :param conn_id: the ``upstage`` connection.
    :param poll_interval: seconds between status calls.
    :param deadline: absolute UNIX time after which the wait ends with a ``timeout`` event.
    """

    def __init__(
        self,
        request_id: str,
        conn_id: str = UpstageOCRHook.default_conn_name,
        poll_interval: float = 10.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.request_id = request_id
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._wait(UpstageOCRHook(self.conn_id)))

    async def _wait(self, hook: UpstageOCRHook) -> dict[str, Any]:
        last_progress = ""
        while True:
            try:
                info = await hook.aget_request(self.request_id)
            except UpstageError as exc:
                return self._event(ERROR, str(exc), permanent=exc.permanent)
            except Exception as exc:  # one terminal event, whatever went wrong
                return self._event(ERROR, f"{type(exc).__name__}: {exc}", permanent=False)
            progress = info.progress()
            if progress != last_progress:
                self.log.info("Upstage request %s: %s", self.request_id, progress)
                last_progress = progress
            failure = info.failure()
            if failure is not None:
                event = self._event(FAILED, str(failure), info=info)
                event["failure_message"] = failure.message
                event["pages"] = list(failure.pages) if failure.pages else None
                return event
            if info.status is RequestState.COMPLETED:
                return self._event(SUCCESS, progress, info=info)
            remaining = None if self.deadline is None else self.deadline - time.time()
            if remaining is not None and remaining <= 0:
                return self._event(
                    TIMEOUT,
                    f"request {self.request_id} did not finish before the sensor's timeout ({progress})",
                    info=info,
                )
            await asyncio.sleep(
                self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            )

    def _event(
        self, status: str, message: str, *, info: RequestInfo | None = None, permanent: bool = True
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "status": status,
            "request_id": self.request_id,
            "message": message,
            "permanent": permanent,
        }
        if info is not None:
            event["total_pages"] = info.total_pages
            event["batches"] = len(info.batches)
        return event
