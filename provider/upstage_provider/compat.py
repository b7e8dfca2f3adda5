"""Names that moved between Airflow 3.1 and 3.3, imported from where each version keeps them.

Airflow 3.2 added the task SDK's exceptions and ``conf``; on 3.1 they live in ``airflow.exceptions``
and ``airflow.configuration``. Importing from here keeps 3.3 free of deprecation warnings and 3.1
working.
"""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        TaskDeferred,
    )
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        TaskDeferred,
    )

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[assignment]

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "TaskDeferred",
    "conf",
]
