"""Suite-wide set-up: a throwaway AIRFLOW_HOME before Airflow is imported, and the shared samples."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="upstage-test-airflow-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# Nothing in the suite may reach the real API: a key in the environment would only mask bugs.
os.environ.pop("UPSTAGE_API_KEY", None)

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT.parent / "shared" / "upstage-samples"
SAMPLE_NAMES = ("check_box.png", "dpi_150.jpg", "multi_page.pdf", "water_mark.jpg")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES_DIR.is_dir():
        raise RuntimeError(f"{SAMPLES_DIR} is missing: the suite needs ../shared/upstage-samples beside the repo")
    return SAMPLES_DIR
