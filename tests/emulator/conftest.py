"""Fixtures for the emulator's own tests; the suite-wide ones live in ``tests/emulator_fixtures.py``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests import emulator_fixtures
from upstage_provider.emulator.server import EmulatorServer

TERMINAL = ("completed", "failed")
AUTH = {"Authorization": f"Bearer {emulator_fixtures.API_KEY}"}


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def wait_done(http: requests.Session) -> Callable[..., dict[str, Any]]:
    """Poll a request's status until it is terminal; returns the last status document."""

    def wait(server: EmulatorServer, request_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = http.get(
                f"{server.url}/v1/document-digitization/requests/{request_id}", headers=AUTH, timeout=10
            ).json()
            if body["status"] in TERMINAL:
                return body
            assert time.monotonic() < deadline, f"request still {body['status']}"
            time.sleep(0.02)

    return wait
