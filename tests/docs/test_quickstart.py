"""docs/quickstart.md as a newcomer runs it: its commands and files, in a fresh Airflow home.

Nothing of the suite's Airflow set-up leaks in: the subprocesses get an environment without any
``AIRFLOW*`` or ``UPSTAGE*`` variable but those the page exports, so a step the page forgets
(``airflow db migrate``, the DAG in the dags folder) fails here as it would for a reader. The
emulator is the suite's, with the CLI's defaults: real OCR (Tesseract) and any key accepted.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.docs.markdown import DOCS, code_blocks, named_block
from upstage_provider.emulator.engine import TesseractEngine
from upstage_provider.emulator.server import EmulatorServer

PAGE = DOCS / "quickstart.md"
BIN = Path(sys.executable).parent


def commands(page: Path = PAGE) -> list[str]:
    """Every command line of the page's bash blocks, comments dropped."""
    lines = []
    for block in code_blocks(page, "bash"):
        for line in block.text.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def exports() -> dict[str, str]:
    found = {}
    for line in commands():
        if line.startswith("export "):
            name, value = line.removeprefix("export ").split("=", 1)
            found[name] = shlex.split(value)[0]
    return found


def command(prefix: str, page: Path = PAGE) -> list[str]:
    """The page's one command starting with ``prefix``, as argv (``$AIRFLOW_HOME`` left to expand)."""
    (line,) = [c for c in commands(page) if c.startswith(prefix)]
    return shlex.split(line)


@pytest.fixture(scope="module")
def migrated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Step 2 of the page, once for the module: a fresh ``AIRFLOW_HOME`` after its ``airflow db migrate``."""
    home = tmp_path_factory.mktemp("quickstart") / "upstage-quickstart"
    migrate = run(command("airflow db migrate"), page_environment(home), home.parent)
    assert migrate.returncode == 0, migrate.stderr
    return home


def page_environment(home: Path, emulator_url: str | None = None) -> dict[str, str]:
    """The environment after the page's exports (the home and the emulator's address swapped in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "UPSTAGE"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the venv's airflow and python
    page = exports()
    assert page["AIRFLOW_HOME"] == "~/upstage-quickstart"
    env.update(page, AIRFLOW_HOME=str(home))
    connection = json.loads(page["AIRFLOW_CONN_UPSTAGE_DEFAULT"])
    assert connection["host"] == "http://127.0.0.1:8765"  # the emulator's default address
    if emulator_url is not None:
        env["AIRFLOW_CONN_UPSTAGE_DEFAULT"] = json.dumps({**connection, "host": emulator_url})
    return env


@pytest.fixture
def emulator_url(make_emulator: Callable[..., EmulatorServer]) -> str:
    """Step 3: the emulator as ``upstage-emulator`` starts it (real OCR, any key accepted)."""
    return make_emulator(api_key=None, engine=TesseractEngine(languages="eng")).url


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = [os.path.expandvars(a.replace("$AIRFLOW_HOME", env["AIRFLOW_HOME"])) for a in argv]
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)


def test_the_quickstart_runs_as_written(migrated_home: Path, emulator_url: str, tmp_path: Path) -> None:
    env, work = page_environment(migrated_home, emulator_url), tmp_path
    (work / "make_document.py").write_text(named_block(PAGE, "make_document.py").text)
    made = run(command("python make_document.py"), env, work)
    assert made.returncode == 0, made.stderr
    assert (work / "hello.png").is_file()

    dags = migrated_home / "dags"
    dags.mkdir()
    (dags / "first_dag.py").write_text(named_block(PAGE, "first_dag.py").text)
    dag_run = run(command("python $AIRFLOW_HOME/dags/first_dag.py"), env, work)
    output = dag_run.stdout + dag_run.stderr
    assert dag_run.returncode == 0, output[-3000:]
    (finished,) = [line for line in output.splitlines() if "DagRun Finished: dag_id=first_ocr" in line]
    assert "state=success" in finished  # dag.test() exits 0 whatever the state: the page says so
    assert "Could not load provider module" not in output  # the page's LOAD_EXAMPLES=False

    words = pq.read_table(work / "ocr-output" / "words")
    assert words["text"].to_pylist() == ["Hello", "from", "Upstage", "OCR"]  # the document's text
    shown = run(command("python -c"), env, work)
    assert shown.returncode == 0, shown.stderr
    assert "Upstage" in shown.stdout


def test_without_airflow_db_migrate_the_run_fails_as_the_page_says(emulator_url: str, tmp_path: Path) -> None:
    """The page names the error of the step it says not to skip; keep that message true."""
    home = tmp_path / "upstage-quickstart"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "first_dag.py").write_text(named_block(PAGE, "first_dag.py").text)
    skipped = run(
        command("python $AIRFLOW_HOME/dags/first_dag.py"), page_environment(home, emulator_url), tmp_path
    )
    assert skipped.returncode != 0
    assert "no such table: task_instance" in skipped.stderr
    assert "no such table: task_instance" in PAGE.read_text(encoding="utf-8")


def test_the_connection_pages_cli_test_says_what_the_page_quotes(
    migrated_home: Path, emulator_url: str, tmp_path: Path
) -> None:
    """docs/connection.md's ``airflow connections test``, as written there, with the page's exports."""
    env = page_environment(migrated_home, emulator_url)
    page = DOCS / "connection.md"
    text = " ".join(page.read_text(encoding="utf-8").split())  # the page wraps its quotes
    disabled = run(["airflow", "connections", "test", "upstage_default"], env, tmp_path)
    message = disabled.stdout.strip()
    assert message.startswith("Testing connections is disabled"), disabled.stdout + disabled.stderr
    assert f"`{message}`" in text

    setting, *argv = command("AIRFLOW__CORE__TEST_CONNECTION=Enabled airflow connections test", page)
    name, value = setting.split("=", 1)
    enabled = run(argv, {**env, name: value}, tmp_path)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    assert "Connection success!" in enabled.stdout
    assert "`Connection success!`" in text
