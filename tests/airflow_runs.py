"""Run a DAG again on the same run, as a user's "Clear" (or a scheduler retry) would.

``dag.test()`` deletes an existing run of the same logical date and makes a new one, and with it
the task state store's rows (they belong to the run). A retry or a cleared rerun in a real
deployment keeps the run. :func:`rerun` clears the run's task instances with Airflow's own
``clear_task_instances`` (try numbers go on, state store rows stay) and lets ``dag.test()``'s
loop run them on that run, instead of a fresh one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def _keep_run(run_id: str) -> Iterator[None]:
    import airflow.models.dagrun as dagrun_module
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.state import DagRunState, State, TaskInstanceState
    from sqlalchemy import select

    original = dagrun_module.get_or_create_dagrun

    def existing(*, dag: Any, session: Any, **_: Any) -> Any:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id))
        assert run is not None, f"no run {run_id} of {dag.dag_id} to rerun"
        tis = list(run.get_task_instances(session=session))
        for ti in tis:  # a worker that was killed left its task "running": the scheduler fails it
            if ti.state not in State.finished:
                ti.state = TaskInstanceState.FAILED
        session.flush()
        clear_task_instances(tis, session)
        run.state = DagRunState.RUNNING
        run.dag = dag
        session.commit()
        return run

    dagrun_module.get_or_create_dagrun = existing
    try:
        yield
    finally:
        dagrun_module.get_or_create_dagrun = original


def rerun(dag: Any, run_id: str, logical_date: Any, run_after: Any = None) -> Any:
    """Clear every task instance of the run and run them again on it; returns the run."""
    with _keep_run(run_id):
        return dag.test(logical_date=logical_date, run_after=run_after or logical_date)


@pytest.fixture(params=["task_state_store", "variables"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the ledger lives: Airflow 3.3's task state store, or (3.1/3.2) Variables.

    Airflow 3.1/3.2 have no task state store; ``variables`` takes it out of every task context.
    """
    if request.param == "variables":
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        original = RuntimeTaskInstance.get_template_context

        def without_store(self: Any) -> Any:
            context = original(self)
            context.pop("task_state_store", None)
            return context

        monkeypatch.setattr(RuntimeTaskInstance, "get_template_context", without_store)
    return str(request.param)


def variables() -> int:
    """How many Airflow Variables exist (the ledger's fallback store leaves none behind)."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(session.scalar(select(func.count()).select_from(Variable)) or 0)
