"""The connection form and its Test button in Airflow's own UI, in a real headless Chromium.

A real ``airflow api-server`` on 127.0.0.1 (its own AIRFLOW_HOME and SQLite, everyone an admin,
connection tests enabled) serves the UI; Playwright drives Debian's Chromium (``/usr/bin/chromium``,
from ``make system-deps``; Playwright's own browser downloads are never used). Each test adds an
``upstage`` connection through the Add Connection form, as a person would, with the emulator as
its Base URL, then presses Test in the connection list and reads the toast.

Why the form asks for the Port: Airflow 3.3.2's list posts ``port: Number(port)``, 0 for an empty
port, and its API refuses that as "differs from the stored connection" (400, the toast says only
"Bad Request"). Leave the Port out in :func:`add_connection` and the first test fails that way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.airflow_runs import fresh_airflow_env
from tests.emulator_fixtures import API_KEY
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.get_provider_info import PORT_LABEL

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
#: Generous: the machine is shared, and a slow step should fail with the step's name, not hang.
STEP_TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated AIRFLOW_HOME and ``airflow api-server`` on a free loopback port; its base URL."""
    home = tmp_path_factory.mktemp("ui-airflow-home")
    env = fresh_airflow_env(
        home,
        AIRFLOW__CORE__AUTH_MANAGER=SIMPLE_AUTH_MANAGER,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
    )
    migrate = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    port = _free_port()
    log_path = home / "api-server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped whole below
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path)
        yield url
    finally:
        _stop(proc)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"api-server exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"api-server not healthy after 180 s:\n{log_path.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Debian's headless Chromium with a fresh profile, driven by Playwright."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    try:
        yield page
    finally:
        page.close()


def add_connection(page: Page, server: str, conn_id: str, *, host: str, port: int, key: str) -> None:
    """Fill the Add Connection form by the labels it shows, and save."""
    page.goto(f"{server}/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.get_by_label("Connection ID").fill(conn_id)
    page.get_by_role("combobox").fill("Upstage OCR")
    page.keyboard.press("Enter")
    page.get_by_label("Base URL").fill(host)
    page.get_by_label("API key").fill(key)
    page.get_by_label(PORT_LABEL).fill(str(port))
    page.get_by_role("button", name="Save").click()
    page.get_by_role("row").filter(has_text=conn_id).wait_for()


def press_test(page: Page, conn_id: str) -> str:
    """Press the list's Test button on the connection's row; the toast's text."""
    page.mouse.move(0, 0)  # no tooltip of another row's buttons over this one
    page.get_by_role("row").filter(has_text=conn_id).get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text="Test Connection")
    toast.wait_for()
    return toast.inner_text()


def list_calls(server: EmulatorServer) -> dict[str, int]:
    """The emulator's request-list calls (what test_connection makes), by HTTP status."""
    return dict(server.stats()["endpoints"].get("list", {}).get("by_status", {}))


def test_the_test_button_reaches_the_emulator(api_server: str, page: Page, emulator: EmulatorServer) -> None:
    port = int(emulator.url.rsplit(":", 1)[1])
    add_connection(page, api_server, "upstage_ui_ok", host=emulator.url, port=port, key=API_KEY)
    toast = press_test(page, "upstage_ui_ok")
    assert toast.splitlines() == [
        "Test Connection Successful",
        f"Connected to Upstage at {emulator.url} (0 recent requests)",
    ]
    assert list_calls(emulator) == {"200": 1}
    assert API_KEY not in page.content()


def test_a_wrong_key_shows_the_apis_answer(api_server: str, page: Page, emulator: EmulatorServer) -> None:
    port = int(emulator.url.rsplit(":", 1)[1])
    wrong = "up_wrong_key_123456"
    add_connection(page, api_server, "upstage_ui_bad_key", host=emulator.url, port=port, key=wrong)
    toast = press_test(page, "upstage_ui_bad_key")
    title, message = toast.splitlines()
    assert title == "Test Connection Failed"
    assert message.startswith("Upstage API HTTP 401 from request list: ")
    assert message.endswith("check the API key in the password of the upstage connection")
    assert list_calls(emulator) == {"401": 1}
    assert wrong not in page.content()


def test_an_unreachable_port_is_reported_without_retries(api_server: str, page: Page) -> None:
    """The Base URL without a port and the port in the Port field, as the form suggests."""
    port = _free_port()  # nobody listens on it
    add_connection(page, api_server, "upstage_ui_closed", host="http://127.0.0.1", port=port, key=API_KEY)
    title, message = press_test(page, "upstage_ui_closed").splitlines()
    assert title == "Test Connection Failed"
    assert f"could not connect to 127.0.0.1:{port}" in message
    assert "gave up after" not in message  # one attempt: the person who clicked is the retry
