"""Run a DAG again on the same run, as a user's "Clear" (or a scheduler retry) would.

``dag.test()`` deletes an existing run of the same logical date and makes a new one, and with it
the task state store's rows (they belong to the run). A retry or a cleared rerun in a real
deployment keeps the run. :func:`rerun` clears the run's task instances with Airflow's own
``clear_task_instances`` (try numbers go on, state store rows stay) and lets ``dag.test()``'s
loop run them on that run, instead of a fresh one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version


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


#: The installed Airflow's release, read from the distribution rather than from the provider's
#: compat module, so tests check the provider's choices instead of repeating them.
AIRFLOW_CORE = Version(Version(version("apache-airflow-core")).base_version)
#: Airflow 3.3 gave tasks the task state store; on 3.1 and 3.2 the ledger lives in Variables.
HAS_TASK_STATE_STORE = Version("3.3") <= AIRFLOW_CORE


@pytest.fixture(params=["task_state_store", "variables"] if HAS_TASK_STATE_STORE else ["variables"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the ledger lives: Airflow 3.3's task state store, or (3.1/3.2) Variables.

    On 3.3 ``variables`` takes the store out of every task context, as 3.1/3.2 have none; on
    3.1/3.2 it is the real thing, and the store's case does not exist.
    """
    if request.param == "variables" and HAS_TASK_STATE_STORE:
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


def parse_dag(path: str | Path, dag_id: str) -> Any:
    """Parse a DAG file as Airflow does (its DagBag), with the environment the test has set."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1 keeps it among the models
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    dag = DagBag(dag_folder=str(path)).get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {path}"
    return dag


def fresh_airflow_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment for Airflow processes of their own (the CLI, an api-server) on a new
    ``AIRFLOW_HOME`` with SQLite: none of the suite's ``AIRFLOW*``/``UPSTAGE*`` settings, no
    example DAGs, connection tests enabled; ``settings`` adds or overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "UPSTAGE"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
    )
    env.update(settings)
    return env
