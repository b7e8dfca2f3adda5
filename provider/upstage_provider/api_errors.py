"""How an HTTP answer of the API, or the lack of one, becomes an ``UpstageAPIError``; no Airflow.

One wording for both HTTP clients (``requests`` on workers, ``httpx`` in the triggerer), built
from the API's own message, the client exception's class and the host only: an exception's
text or a download URL's query can carry a pre-signed signature, and the key never appears.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import requests

from upstage_provider.exceptions import (
    DownloadURLExpiredError,
    MalformedResponseError,
    UpstageAPIError,
    UpstageAuthError,
    UpstageConnectionError,
    UpstageRateLimitError,
    UpstageRequestError,
    UpstageServerError,
    UpstageTLSError,
)

if TYPE_CHECKING:
    import httpx


def api_error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """The message, type and code, whichever of the API's error shapes the body has."""
    if not isinstance(body, Mapping):
        return None, None, None
    error = body.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        return _str(error.get("message")), _str(error.get("type")), None if code is None else str(code)
    if isinstance(error, str):
        return error, None, None
    for key in ("message", "detail", "failure_message"):
        if isinstance(body.get(key), str):
            code = body.get("code")
            return body[key], None, None if code is None else str(code)
    return None, None, None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def error_from(status: int, body: Any, text: str, what: str, authenticated: bool) -> UpstageAPIError:
    """The error an HTTP status of 400 or more stands for; ``authenticated=False``: a download."""
    message, error_type, code = api_error_fields(body)
    if message is None:
        snippet = " ".join(text.split())[:300] if text else ""
        message = snippet or f"HTTP {status} with no message"
    kwargs: dict[str, Any] = {"status_code": status, "error_type": error_type, "code": code, "endpoint": what}
    if status == 429:
        return UpstageRateLimitError(message, **kwargs)
    if status >= 500:
        return UpstageServerError(message, **kwargs)
    if status == 403 and not authenticated:
        return DownloadURLExpiredError(message, **kwargs)
    if status in (401, 403):
        return UpstageAuthError(
            f"{message}; check the API key in the password of the upstage connection", **kwargs
        )
    return UpstageRequestError(message, **kwargs)


ConnectionFailure = Literal["connect", "timeout", "lost"]


def status_error(
    response: requests.Response | httpx.Response, what: str, *, authenticated: bool
) -> UpstageAPIError:
    """The error an HTTP error status stands for, with the API's own message (sync or async client)."""
    return error_from(response.status_code, json_or_none(response), response.text, what, authenticated)


def connection_failure(exc: Exception) -> ConnectionFailure:
    """
    What became of a call that got no HTTP answer, for ``requests`` and ``httpx`` alike.

    ``connect``: no connection was made, so the request was never sent (safe to repeat);
    ``timeout``: sent, or being sent, and no answer in time; ``lost``: the connection broke
    after the request was sent, or while it was. Only ``connect`` proves the API never saw it.
    """
    import httpx
    import urllib3.exceptions

    if isinstance(exc, (requests.exceptions.ConnectTimeout, httpx.ConnectError, httpx.ConnectTimeout)):
        return "connect"
    if isinstance(exc, httpx.PoolTimeout):  # no connection to send it on came free
        return "connect"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, urllib3.exceptions.NewConnectionError):  # refused, DNS, unreachable
            return "connect"
    if isinstance(exc, (requests.exceptions.Timeout, httpx.TimeoutException)):
        return "timeout"
    return "lost"


def tls_failure(exc: BaseException) -> bool:
    """Whether a call failed in the TLS handshake, for ``requests`` and ``httpx`` alike (httpx
    wraps the ``ssl.SSLError`` in a ``ConnectError``; the chain still holds it)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (ssl.SSLError, requests.exceptions.SSLError)):
            return True
        todo.extend([item.__cause__, item.__context__, *item.args, getattr(item, "reason", None)])
    return False


def connection_error(exc: Exception, what: str, url: str) -> UpstageConnectionError:
    """One wording for a call without an answer, whichever HTTP client made it."""
    kind = type(exc).__name__
    host = urlsplit(url).netloc
    if tls_failure(exc):
        return UpstageTLSError(
            f"{kind}: the TLS handshake with {host} failed, so nothing was sent. If the server "
            f"speaks plain HTTP (a local emulator, a proxy), set the connection's host to "
            f"http://{host}; otherwise check its certificate (REQUESTS_CA_BUNDLE / SSL_CERT_FILE)",
            endpoint=what,
            never_sent=True,
        )
    failure = connection_failure(exc)
    if failure == "connect":
        text = f"{UpstageConnectionError.NEVER_SENT} {host}"
    elif failure == "timeout":
        text = f"{host} did not answer in time"
    else:
        text = f"the connection to {host} was lost after the request was sent"
    return UpstageConnectionError(f"{kind}: {text}", endpoint=what, never_sent=failure == "connect")


def gave_up(error: UpstageAPIError, attempts: int) -> UpstageAPIError:
    """The last transient error, saying how hard we tried."""
    if attempts <= 1:
        return error
    message = f"{error.message} (gave up after {attempts} attempts)"
    fields: dict[str, Any] = {
        "status_code": error.status_code,
        "error_type": error.error_type,
        "code": error.code,
        "endpoint": error.endpoint,
    }
    if isinstance(error, UpstageConnectionError):
        return type(error)(message, never_sent=error.never_sent, **fields)
    return type(error)(message, **fields)


def rate_limit_outlasted(
    error: UpstageAPIError, waited: float, budget: float, asked: float | None = None
) -> UpstageRateLimitError:
    """The last 429, saying how long the API kept answering it and which budget ran out."""
    more = f" and asked to wait {_seconds(asked)} s more" if asked is not None and waited < budget else ""
    message = (
        f"{error.message} (the API kept answering 429 for {_seconds(waited)} s{more}, past "
        f"rate_limit_budget={budget:g} s; raise rate_limit_budget, in the hook's arguments or the "
        "connection's extra, to wait longer, or run fewer calls at once, e.g. through an Airflow pool)"
    )
    return UpstageRateLimitError(
        message,
        status_code=error.status_code,
        error_type=error.error_type,
        code=error.code,
        endpoint=error.endpoint,
    )


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def json_or_none(response: requests.Response | httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def json_object(response: requests.Response, what: str) -> dict[str, Any]:
    body = json_or_none(response)
    if not isinstance(body, dict):
        raise MalformedResponseError(f"{what}: the response is not a JSON object")
    return body
