"""Child process for the killed-worker scenario: one ``dag.test()`` run of a reliability DAG.

``python -m tests.reliability.proc_dag_run DAG_ID LOGICAL_DATE [--rerun]`` parses
``tests/integration/dags/upstage_reliability_dags.py`` from ``[core] dags_folder`` (configured,
like the database, through the environment the parent passes on) and runs it for that logical
date (and run_after). With ``--rerun`` it runs the existing run of that date again, its task
instances cleared (``tests.airflow_runs.rerun``), the way Airflow retries a task whose worker was
lost: the submission ledger in the shared database is what connects the two. Prints
``STATE <dag run state>`` at the end.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pendulum


def main() -> None:
    from tests.airflow_runs import parse_dag

    dag_id, logical_date = sys.argv[1:3]
    again = "--rerun" in sys.argv[3:]
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = parse_dag(dags / "upstage_reliability_dags.py", dag_id)
    when = pendulum.parse(logical_date)
    # The run_id is made from run_after (now, by default): pin it so both runs share it.
    if again:
        from tests.airflow_runs import rerun

        run = rerun(dag, f"manual__{when.isoformat()}", when)
    else:
        run = dag.test(logical_date=when, run_after=when)
    print(f"RUN_ID {run.run_id}", flush=True)
    print(f"STATE {run.state}", flush=True)


if __name__ == "__main__":
    main()
