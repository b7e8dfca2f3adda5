"""Whole DAGs through ``dag.test()``: a migrated SQLite database for the session."""

from __future__ import annotations

import contextlib

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def fresh_ingest_dag(airflow_db: None) -> None:
    """Forget earlier runs of the example ingest DAG, whose ``upstage_ocr_words`` asset names its output.

    A test that points the DAG at another output (``s3://lake``) declares the same asset name with
    another URI; in a database shared with earlier tests Airflow would resolve the task's outlets
    from the earlier DAG version, find that asset inactive and fail every task that has it.
    """
    from airflow.api.common.delete_dag import delete_dag
    from airflow.exceptions import DagNotFound
    from airflow.models.asset import AssetActive
    from airflow.utils.session import create_session

    with contextlib.suppress(DagNotFound):
        delete_dag("upstage_ocr_ingest")
    with create_session() as session:
        session.query(AssetActive).delete()
