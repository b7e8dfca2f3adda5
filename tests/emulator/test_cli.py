"""``upstage-emulator`` as a script would use it: a subprocess, one URL line, HTTP, a clean stop."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.emulator_fixtures import pdf_bytes
from upstage_provider.emulator.cli import build_parser, config_from_args, main

KEY = "cli-test-key-7d41a"
EXE = Path(sys.executable).with_name("upstage-emulator")


def read_url(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The URL from the one line the emulator prints once it accepts connections."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("Upstage emulator listening on "):
                return line.strip().rsplit(" ", 1)[-1]
        if proc.poll() is not None:
            break
    raise AssertionError(f"no URL line; exit code {proc.poll()}")


@pytest.fixture
def emulator_process() -> Iterator[subprocess.Popen[str]]:
    command = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "upstage_provider.emulator"]
    env = dict(os.environ, UPSTAGE_EMULATOR_API_KEY=KEY)
    proc = subprocess.Popen(
        [*command, "--port", "0", "--engine", "synthetic", "--url-ttl", "60", "--rate-429", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_cli_serves_on_a_free_port_and_stops_cleanly(emulator_process: subprocess.Popen[str]) -> None:
    url = read_url(emulator_process)
    assert url.startswith("http://127.0.0.1:")
    assert not url.endswith(":0")
    auth = {"Authorization": f"Bearer {KEY}"}  # the key came from UPSTAGE_EMULATOR_API_KEY
    assert (
        requests.get(f"{url}/v1/document-digitization/requests", headers=auth, timeout=10).status_code == 200
    )
    assert requests.get(f"{url}/v1/document-digitization/requests", timeout=10).status_code == 401
    submitted = requests.post(
        f"{url}/v1/document-digitization/async",
        headers=auth,
        files={"document": ("a.pdf", pdf_bytes(2), "application/pdf")},
        data={"model": "ocr"},
        timeout=10,
    ).json()
    deadline = time.monotonic() + 20
    while True:
        status = requests.get(
            f"{url}/v1/document-digitization/requests/{submitted['request_id']}", headers=auth, timeout=10
        ).json()
        if status["status"] == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    download_url = status["batches"][0]["download_url"]
    assert requests.get(download_url, timeout=10).status_code == 200

    emulator_process.send_signal(signal.SIGTERM)
    _, stderr = emulator_process.communicate(timeout=20)
    assert emulator_process.returncode == 0
    assert "GET /v1/document-digitization/requests 200" in stderr
    assert "GET /v1/document-digitization/requests 401" in stderr
    assert "POST /v1/document-digitization/async 200" in stderr
    assert KEY not in stderr  # never the key...
    signature = download_url.split("signature=")[1]
    assert signature not in stderr  # ...nor a download URL's signature


def test_cli_help_documents_the_json_keys() -> None:
    text = build_parser().format_help()
    for key in (
        "rate_429",
        "retry_after",
        "fail_batches",
        "fail_request_message",
        "endpoints",
        "seed",
        "url_ttl",
    ):
        assert key in text
    result = subprocess.run(
        [sys.executable, "-m", "upstage_provider.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--latency-per-page" in result.stdout


def test_config_file_environment_and_flags_merge(tmp_path: Path) -> None:
    config_file = tmp_path / "faults.json"
    config_file.write_text(
        json.dumps(
            {
                "url_ttl": 30,
                "error_style": "flat",
                "rate_429": 0.5,
                "retry_after": 2,
                "faults": {"fail_batches": [1, 3], "seed": 4},
            }
        )
    )
    parser = build_parser()
    args = parser.parse_args(
        ["--config", str(config_file), "--rate-429", "0.1", "--fail-batch", "2", "--workers", "3"]
    )
    config = config_from_args(args, environ={"UPSTAGE_EMULATOR_API_KEY": "from-env"})
    assert config.api_key == "from-env"
    assert (config.url_ttl, config.error_style, config.workers) == (30.0, "flat", 3)
    faults = config.faults
    assert (faults.rate_429, faults.retry_after, faults.seed) == (0.1, 2.0, 4)  # the flag wins over the file
    assert faults.fail_batches == (2,)
    args = parser.parse_args(["--api-key", "from-flag", "--snake-case", "--retry-after", "0.5"])
    config = config_from_args(args, environ={"UPSTAGE_EMULATOR_API_KEY": "from-env"})
    assert config.api_key == "from-flag"
    assert config.snake_case is True
    assert config.faults.retry_after == 0.5
    assert config.faults.rate_429 == 0.0
    assert config_from_args(parser.parse_args([]), environ={}).api_key is None


@pytest.mark.parametrize(
    "content",
    ['{"rate_429": 2}', '{"no_such_key": 1}', "not json", '["a list"]', '{"error_style": "xml"}'],
)
def test_bad_config_is_a_usage_error(
    tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "bad.json"
    config_file.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config_file), "--engine", "synthetic"])
    assert exit_info.value.code == 2
    assert "upstage-emulator: error:" in capsys.readouterr().err


def test_without_the_emulator_extra_the_cli_names_the_extra_instead_of_a_traceback() -> None:
    """What the ``upstage-emulator`` script runs (``upstage_provider.emulator_cli:main``)."""
    script = (
        "import sys; sys.modules['fastapi'] = None  # as if the [emulator] extra were not installed\n"
        "from upstage_provider.emulator_cli import main\n"
        "sys.exit(main())\n"
    )
    command = [sys.executable, "-c", script, "--port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'airflow-provider-upstage[emulator]'" in done.stderr
    assert "fastapi" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_script_entry_point_runs_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the extra installed, ``upstage_provider.emulator_cli:main`` is the emulator's CLI."""
    from upstage_provider.emulator_cli import main as script_main

    monkeypatch.setattr(sys, "argv", ["upstage-emulator", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        script_main()
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: upstage-emulator")
