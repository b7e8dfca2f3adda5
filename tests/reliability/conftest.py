"""Shared by the fault-matrix tests: a migrated Airflow DB, quick retry waits, DAG runs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_runs import parse_dag

#: Waits the hook asks for are recorded, then slept at this fraction (the retry logic is under
#: test, not the wall clock: a 1 s backoff costs 20 ms).
SLEEP_SCALE = 0.02
DAGS = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def retry_waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Every retry wait the hook chose (sync and async), slept at ``SLEEP_SCALE``.

    Injected as the default clock of every hook (``UpstageOCRHook.clock``), so it reaches the
    hooks that DAG tasks, sensors and triggers build for themselves.
    """
    from upstage_provider.hooks.upstage import UpstageOCRHook
    from upstage_provider.retry import Clock

    waits: list[float] = []

    class RecordingClock(Clock):
        def sleep(self, seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds * SLEEP_SCALE)

        async def asleep(self, seconds: float) -> None:
            waits.append(seconds)
            await asyncio.sleep(seconds * SLEEP_SCALE)

    monkeypatch.setattr(UpstageOCRHook, "clock", RecordingClock())
    return waits


def load_dag(file: str, dag_id: str) -> Any:
    """Parse the DAG file as Airflow does, with the environment the test has set."""
    return parse_dag(DAGS / file, dag_id)


@pytest.fixture
def run_dag(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``run_dag(dag_id, file=..., **env)``: set the environment, parse, ``dag.test()``."""

    def run(dag_id: str, file: str = "upstage_reliability_dags.py", **env: str) -> Any:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return load_dag(file, dag_id).test()

    return run
