"""Whole DAGs through ``dag.test()``: a migrated SQLite database for the session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()
