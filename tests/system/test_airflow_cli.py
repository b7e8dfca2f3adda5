"""The provider as the real ``airflow`` CLI sees it: registration, the connection type, a connection test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.airflow_runs import fresh_airflow_env
from tests.emulator_fixtures import API_KEY
from upstage_provider.emulator.server import EmulatorServer

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = fresh_airflow_env(home)
    run(["db", "migrate"], env)
    return env


def run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=240)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"airflow {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def test_providers_list_shows_the_provider(airflow_env: dict[str, str]) -> None:
    out = run(["providers", "list", "--output", "json"], airflow_env).stdout
    packages = {p["package_name"]: p for p in json.loads(out)}
    assert "airflow-provider-upstage" in packages


def test_providers_hooks_shows_connection_type_upstage(airflow_env: dict[str, str]) -> None:
    out = run(["providers", "hooks", "--output", "json"], airflow_env).stdout
    hooks = {h["connection_type"]: h for h in json.loads(out)}
    assert hooks["upstage"]["class"] == "upstage_provider.hooks.upstage.UpstageOCRHook"


def test_connection_test_from_the_cli_reaches_the_emulator(airflow_env: dict[str, str]) -> None:
    with _emulator() as server:
        for conn_id, key in (("upstage_cli", API_KEY), ("upstage_cli_bad", "up_wrong_key_123456")):
            conn = {"conn_type": "upstage", "host": server.url, "password": key}
            run(["connections", "add", conn_id, "--conn-json", json.dumps(conn)], airflow_env)
        good = run(["connections", "test", "upstage_cli"], airflow_env, check=False)
        assert good.returncode == 0, good.stdout + good.stderr
        assert "Connection success!" in good.stdout
        bad = run(["connections", "test", "upstage_cli_bad"], airflow_env, check=False)
        assert bad.returncode == 1
        assert "401" in bad.stdout
        assert "check the API key" in bad.stdout
        assert server.stats()["endpoints"]["list"]["by_status"] == {"200": 1, "401": 1}
        for output in (good.stdout + good.stderr, bad.stdout + bad.stderr):
            assert API_KEY not in output
            assert "up_wrong_key_123456" not in output


def _emulator() -> EmulatorServer:
    from upstage_provider.emulator.config import EmulatorConfig
    from upstage_provider.emulator.synthetic import SyntheticEngine

    # Rate limits off, as in every emulator of the suite (tests.emulator_fixtures.NO_RATE_LIMITS).
    config = EmulatorConfig(api_key=API_KEY, rate_limit_rps=0, rate_limit_rpm=0, rate_limit_ppm=0)
    return EmulatorServer(config, engine=SyntheticEngine())


def test_airflow_dags_test_of_the_example_dag_lands_everything_and_leaves_no_variables(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """The submission ledger lives in the task state store: a successful run leaves no Variables."""
    from tests.emulator_fixtures import pdf_bytes

    inbox, lake = tmp_path / "inbox", tmp_path / "lake"
    inbox.mkdir()
    for name, pages in (("one.pdf", 2), ("스캔 two.pdf", 3)):
        (inbox / name).write_bytes(pdf_bytes(pages))
    with _emulator() as server:
        env = {
            **airflow_env,
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[2] / "dags"),
            "AIRFLOW_CONN_UPSTAGE_DEFAULT": json.dumps(
                {"conn_type": "upstage", "host": server.url, "password": API_KEY}
            ),
            "UPSTAGE_INGEST_INPUT": str(inbox),
            "UPSTAGE_INGEST_OUTPUT": str(lake),
            "UPSTAGE_POLL_INTERVAL": "0.2",
        }
        done = run(["dags", "test", "upstage_ocr_ingest", "2026-11-24"], env, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert server.stats()["submissions"] == 2
    assert len(list((lake / "pages" / "ds=2026-11-24").glob("*.parquet"))) == 2
    listed = run(["variables", "list", "--output", "json"], env).stdout
    assert json.loads(listed or "[]") == []
