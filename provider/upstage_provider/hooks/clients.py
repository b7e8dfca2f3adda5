"""The hook's HTTP clients in the triggerer: one ``httpx.AsyncClient`` per event loop, shared.

A triggerer with hundreds of waiting triggers reuses the connections of one client, and its TLS
context (slow to build, blocking) is built once per loop. Also the User-Agent every client sends.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import httpx


class LoopHTTP(NamedTuple):
    client: httpx.AsyncClient
    slots: asyncio.Semaphore  # HTTP calls in flight at once in the loop


LOOP_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopHTTP] = weakref.WeakKeyDictionary()


def loop_http(calls_in_flight: int) -> LoopHTTP:
    """The running loop's client, built on first use with ``calls_in_flight`` slots and keep-alives."""
    import httpx

    loop = asyncio.get_running_loop()
    http = LOOP_CLIENTS.get(loop)
    if http is None or http.client.is_closed:
        client = httpx.AsyncClient(
            headers={"User-Agent": user_agent()},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=calls_in_flight),
        )
        http = LOOP_CLIENTS[loop] = LoopHTTP(client, asyncio.Semaphore(calls_in_flight))
    return http


def user_agent() -> str:
    from upstage_provider import __version__

    return f"airflow-provider-upstage/{__version__}"
