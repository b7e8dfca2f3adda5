"""One HTTP call of the sync hook under the retry policy: send it, read its body, judge its answer."""

from __future__ import annotations

from typing import Any

import requests

from upstage_provider.api_errors import connection_error, status_error
from upstage_provider.retry import Log, RetryPolicy

#: Batch downloads read their body this much at a time. requests' own 10 KB reads, with 16
#: downloads in flight, cost a third of a fetch's CPU in handing the GIL between threads.
BODY_CHUNK_BYTES = 1 << 20


def send(
    session: requests.Session,
    policy: RetryPolicy,
    log: Log,
    method: str,
    url: str,
    *,
    what: str,
    headers: dict[str, str],
    timeout: tuple[float, float],
    authenticated: bool,
    idempotent: bool,
    billed: bool,
    read_body: bool,
    **kwargs: Any,
) -> tuple[requests.Response, bytes | None]:
    """
    A 2xx response (with its whole body when ``read_body``), or the policy's final error.

    With ``read_body`` the body is read inside the attempt, so one cut short is retried like a
    call that got no answer.
    """

    def attempt() -> tuple[requests.Response, bytes | None]:
        body = None
        try:
            response = session.request(
                method, url, headers=headers, timeout=timeout, stream=read_body, **kwargs
            )
            if read_body and response.status_code < 400:
                with response:
                    body = b"".join(response.iter_content(BODY_CHUNK_BYTES))
        except requests.exceptions.RequestException as exc:
            no_answer = connection_error(exc, what, url)
            raise policy.after_no_answer(no_answer, idempotent=idempotent, billed=billed) from None
        if response.status_code < 400:
            return response, body
        error = status_error(response, what, authenticated=authenticated)
        response.close()
        raise policy.after_answer(error, response.headers.get("Retry-After"))

    return policy.call(attempt, what=what, log=log)
