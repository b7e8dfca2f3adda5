"""Suite-wide set-up: a throwaway AIRFLOW_HOME before Airflow is imported, and the shared samples."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="upstage-test-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
# dag.test() wants DAG files inside [core] dags_folder and parses all of it on every run: give it
# a folder of its own holding the example DAGs and the test DAGs (tests/integration/dags/).
_DAGS = Path(_AIRFLOW_HOME) / "dags"
_DAGS.mkdir()
for _src in [*(_REPO / "dags").glob("*.py"), *(_REPO / "tests" / "integration" / "dags").glob("*.py")]:
    shutil.copy(_src, _DAGS / _src.name)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# OpenLineage off for the whole suite, whatever the machine's environment says (an OPENLINEAGE_URL
# would make every dag.test() try HTTP): the provider's plugin then registers no listener. The
# lineage tests (tests/integration/test_lineage.py) register one themselves.
os.environ["AIRFLOW__OPENLINEAGE__DISABLED"] = "True"
# Nothing in the suite may reach the real API: a key in the environment would only mask bugs.
os.environ.pop("UPSTAGE_API_KEY", None)

import pytest  # noqa: E402

pytest_plugins = ["tests.emulator_fixtures", "tests.airflow_runs", "tests.s3_fixtures"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT.parent / "shared" / "upstage-samples"
SAMPLE_NAMES = ("check_box.png", "dpi_150.jpg", "multi_page.pdf", "water_mark.jpg")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES_DIR.is_dir():
        raise RuntimeError(
            f"{SAMPLES_DIR} is missing: the suite needs ../shared/upstage-samples beside the repo"
        )
    return SAMPLES_DIR
