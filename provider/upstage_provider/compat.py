"""What differs between the Airflow versions the provider supports (3.1, 3.2, 3.3), in one place.

Names that moved: Airflow 3.2 added the task SDK's exceptions and ``conf``; on 3.1 they live in
``airflow.exceptions`` and ``airflow.configuration``. Importing from here keeps 3.3 free of
deprecation warnings and 3.1 working. Features that arrived later are flags here; what the
provider does without them is docs/compatibility.md.
"""

from __future__ import annotations

from airflow import __version__ as _airflow_version
from packaging.version import Version

#: The running Airflow's release (pre-release and local parts dropped: 3.2.0rc1 counts as 3.2.0).
AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)
#: Airflow 3.2+ builds the connection form from the provider info's ``ui-field-behaviour`` and
#: ``conn-fields`` and warns about a hook that still defines ``get_ui_field_behaviour()``;
#: Airflow 3.1 asks only the hook's methods.
DECLARATIVE_CONNECTION_FORM = AIRFLOW_VERSION.release >= (3, 2)
#: Airflow 3.3 tells a trigger that a user ended its wait (``BaseTrigger.on_kill``); before, a
#: trigger sees only ``cleanup()``, the same for a user's action and a triggerer restart.
HAS_TRIGGER_ON_KILL = AIRFLOW_VERSION.release >= (3, 3)

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
    "AIRFLOW_VERSION",
    "DECLARATIVE_CONNECTION_FORM",
    "HAS_TRIGGER_ON_KILL",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "TaskDeferred",
    "conf",
]
