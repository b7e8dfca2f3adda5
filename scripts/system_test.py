"""``make system-test``: the provider under real Airflow services, PostgreSQL and the emulator.

1. starts a throwaway PostgreSQL cluster on a free loopback port (as the ``postgres`` user when
   run as root), the emulator (synthetic engine, with per-page latency so the sensor really
   defers), then ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` with
   LocalExecutor, all on 127.0.0.1, with the settings of ``docker/airflow.env`` (the file
   ``docker/compose.yaml`` uses too);
2. run 1: triggers ``upstage_ocr_ingest`` over the REST API on generated PDFs plus two samples,
   waits for success, checks the triggerer's log (the sensors deferred and their triggers ran
   there) and the Parquet (rows per document, pages 1..N, no duplicates);
3. run 2: the same, but SIGKILLs the triggerer's process group while triggers are waiting and
   starts a new one; the run must still succeed with no duplicate rows and exactly one submission
   per document (emulator stats);
4. with ``--executor celery`` or ``both`` (the default), stops those services and runs the
   CeleryExecutor run of ``system_test_celery`` (Redis, two Celery workers, one SIGKILLed and
   replaced, documents and Parquet on S3 through moto);
5. stops everything by process group (SIGTERM, wait, SIGKILL) and PostgreSQL, also on failure,
   and prints a summary with timings. Exit code 0 means PASS.

See docs/system-test.md.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED_ENV_FILE = ROOT / "docker" / "airflow.env"
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
SAMPLES = ROOT.parent / "shared" / "upstage-samples"
BIN = Path(sys.executable).parent
DAG_ID = "upstage_ocr_ingest"
# The sensor of each document's chain (the mapped task group ocr_document); map index i is the
# i-th document the DAG found.
SENSOR_TASK_ID = "ocr_document.wait_and_land"
SUBMIT_TASK_ID = "ocr_document.submit"
EMULATOR_KEY = "system-test-key-not-a-secret"
LATENCY_PER_PAGE = 0.3
GENERATED_PAGES = (12, 18, 24, 30)  # distinct counts: distinct documents
SAMPLE_NAMES = ("multi_page.pdf", "dpi_150.jpg")
RUN_TIMEOUT = 300.0
# The emulator's flags, here and in compose.yaml.
EMULATOR_FLAGS = {
    "--api-key": EMULATOR_KEY,
    "--engine": "synthetic",
    "--latency-per-page": str(LATENCY_PER_PAGE),
    "--words-per-page": "50",
}
# Settings every setup sets for itself because they depend on addresses and paths; the shared
# ones live in docker/airflow.env. compose.yaml must set exactly these keys (checked below).
PER_SETUP_KEYS = frozenset(
    {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "AIRFLOW_CONN_UPSTAGE_DEFAULT",
        "UPSTAGE_INGEST_INPUT",
        "UPSTAGE_INGEST_OUTPUT",
    }
)
# The `airflow` sub-commands, as compose.yaml runs them (api-server's --host/--port aside).
SERVICES: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


class SystemTestFailure(Exception):
    """A check failed; the message says which and where to look."""


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Context:
    work: Path
    logs: Path
    marker: str
    env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    emulator: subprocess.Popen[str] | None = None
    emulator_url: str = ""
    pg_bin: Path | None = None
    pg_data: Path | None = None
    pg_port: int = 0
    api: str = ""
    token: str = ""
    timings: list[tuple[str, float]] = field(default_factory=list)
    triggerer_jobs_seen: set[str] = field(default_factory=set)
    triggerer_jobs_before: set[str] = field(default_factory=set)
    checks: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # the Celery run's addresses and directories


# ---------------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    import argparse

    import system_test_celery

    parser = argparse.ArgumentParser(description="The provider under real Airflow services.")
    parser.add_argument(
        "--executor",
        choices=("local", "celery", "both"),
        default="both",
        help="LocalExecutor runs, the CeleryExecutor run, or both in turn (default both)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="upstage-system-test-"))
    os.chmod(work, 0o755)  # noqa: S103 - the postgres user must reach its data dir inside
    ctx = Context(work=work, logs=work / "logs", marker=secrets.token_hex(8))
    ctx.logs.mkdir()
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    ok = False
    celery = system_test_celery.CeleryRun()
    try:
        check_compose_matches()
        timed(ctx, "postgres started", lambda: start_postgres(ctx))
        if args.executor in ("local", "both"):
            local_runs(ctx)
        if args.executor == "both":
            timed(ctx, "LocalExecutor services stopped", lambda: stop_services(ctx))
        if args.executor in ("celery", "both"):
            celery = system_test_celery.run(ctx)
        ok = True
    except SystemTestFailure as exc:
        print(f"\nFAIL: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nFAIL: interrupted (Ctrl-C)", file=sys.stderr)
    except BaseException as exc:
        print(f"\nFAIL: {type(exc).__name__}: {exc}", file=sys.stderr)
        if not isinstance(exc, SystemExit):
            import traceback

            traceback.print_exc()
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        timed(ctx, "services stopped", lambda: stop_everything(ctx))
    summary(ctx, ok, time.monotonic() - started, system_test_celery.describe(celery))
    if ok and not os.environ.get("UPSTAGE_SYSTEM_TEST_KEEP"):
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def local_runs(ctx: Context) -> None:
    """LocalExecutor: runs 0, 1 and 2 (the triggerer SIGKILLed in run 2) on a local inbox and lake."""
    documents = prepare_inbox(ctx.work / "inbox")
    timed(ctx, "emulator started", lambda: start_emulator(ctx))
    ctx.env = airflow_env(ctx)
    timed(ctx, "airflow db migrate", lambda: run_airflow(ctx, ["db", "migrate"], "db-migrate.log"))
    timed(ctx, "services healthy", lambda: start_services(ctx))
    baseline = timed(ctx, "DAG parsed and unpaused", lambda: unpause_dag(ctx))
    timed(ctx, "run 0 (scheduled, created by unpausing)", lambda: run_0(ctx, documents, baseline))
    timed(ctx, "run 1 (plain)", lambda: run_1(ctx, documents))
    timed(ctx, "run 2 (triggerer SIGKILLed and restarted)", lambda: run_2(ctx, documents))


def _raise_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(f"interrupted by signal {signal.Signals(signum).name}")


def timed(ctx: Context, what: str, step: Callable[[], Any]) -> Any:
    t0 = time.monotonic()
    try:
        return step()
    finally:
        ctx.timings.append((what, time.monotonic() - t0))
        print(f"[{time.monotonic() - t0:6.1f} s] {what}", flush=True)


def summary(ctx: Context, ok: bool, total: float, notes: list[str]) -> None:
    print("\n== system test summary ==")
    for what, seconds in ctx.timings:
        print(f"  {what:48} {seconds:7.1f} s")
    print(f"  {'total':48} {total:7.1f} s")
    for check in ctx.checks:
        print(f"  ok: {check}")
    for note in notes:
        print(f"  {note}")
    if ok:
        kept = f" (kept: {ctx.work})" if os.environ.get("UPSTAGE_SYSTEM_TEST_KEEP") else ""
        print(f"PASS{kept}")
    else:
        print(f"FAIL (logs kept in {ctx.logs})")


# ---------------------------------------------------------------------------------------------
# configuration shared with docker/compose.yaml


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments and blank lines skipped (the subset Compose and we agree on)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SystemTestFailure(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        values[key.strip()] = value.strip()
    return values


def check_compose_matches() -> None:
    """compose.yaml and compose.celery.yaml must say what the test does (same keys, commands, flags)."""
    import system_test_celery

    check_compose_file(COMPOSE_FILE, SERVICES, PER_SETUP_KEYS, ("airflow.env",), EMULATOR_FLAGS)
    system_test_celery.check_compose_matches()
    shared = read_env_file(SHARED_ENV_FILE)
    overlap = set(shared) & system_test_celery.PER_SETUP_KEYS
    if overlap:
        raise SystemTestFailure(f"{SHARED_ENV_FILE} sets per-setup keys {sorted(overlap)}")


def check_compose_file(
    compose_file: Path,
    commands: dict[str, list[str]],
    per_setup_keys: frozenset[str] | set[str],
    env_file_names: tuple[str, ...],
    emulator_flags: dict[str, str],
) -> None:
    """One compose file: each Airflow service reads ``env_file_names`` in that order, sets exactly
    ``per_setup_keys`` and runs ``commands``; upstage_default and the emulator's flags as the test's."""
    import yaml

    compose = yaml.safe_load(compose_file.read_text())
    services = compose["services"]
    for name, command in commands.items():
        spec = services.get(name)
        if spec is None:
            raise SystemTestFailure(f"{compose_file}: no service {name!r}")
        env_files = spec.get("env_file") or []
        env_files = [env_files] if isinstance(env_files, str) else env_files
        names = tuple(Path(str(f.get("path", "")) if isinstance(f, dict) else f).name for f in env_files)
        if names != env_file_names:
            raise SystemTestFailure(
                f"{compose_file}: service {name!r} reads env files {list(names)}, "
                f"expected {list(env_file_names)}"
            )
        keys = set(spec.get("environment") or {})
        if keys != per_setup_keys:
            raise SystemTestFailure(
                f"{compose_file}: service {name!r} sets {sorted(keys ^ per_setup_keys)} differently "
                f"from scripts/system_test*.py; shared settings belong in docker/*.env"
            )
        actual = _strip_host_port([str(part) for part in spec.get("command") or []])
        if actual != command:
            raise SystemTestFailure(
                f"{compose_file}: service {name!r} runs {actual}, the test runs {command}"
            )
        conn = json.loads(spec["environment"]["AIRFLOW_CONN_UPSTAGE_DEFAULT"])
        if (conn.get("conn_type"), conn.get("password")) != ("upstage", EMULATOR_KEY):
            raise SystemTestFailure(
                f"{compose_file}: service {name!r}: upstage_default differs from the test's"
            )
    emulator = [str(part) for part in services["emulator"]["command"]]
    for flag, value in emulator_flags.items():
        if flag not in emulator or emulator[emulator.index(flag) + 1] != value:
            raise SystemTestFailure(
                f"{compose_file}: the emulator must run with {flag} {value}, like the test"
            )


def _strip_host_port(command: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for part in command:
        if skip:
            skip = False
            continue
        if part in ("--host", "--port", "-H", "-p"):
            skip = True
            continue
        out.append(part)
    return out


def airflow_env(ctx: Context, home: Path | None = None, database: str = "airflow") -> dict[str, str]:
    """The services' environment; a new api-server port, ``home`` (default airflow-home) and database."""
    assert ctx.pg_data is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "UPSTAGE"))}
    env.update(read_env_file(SHARED_ENV_FILE))
    api_port = free_port()
    ctx.api = f"http://127.0.0.1:{api_port}"
    home = home or ctx.work / "airflow-home"
    home.mkdir()
    per_setup = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            f"postgresql+psycopg2://postgres@127.0.0.1:{ctx.pg_port}/{database}"
        ),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{ctx.api}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW_CONN_UPSTAGE_DEFAULT": json.dumps(
            {"conn_type": "upstage", "host": ctx.emulator_url, "password": EMULATOR_KEY}
        ),
        "UPSTAGE_INGEST_INPUT": str(ctx.work / "inbox"),
        "UPSTAGE_INGEST_OUTPUT": str(ctx.work / "lake"),
    }
    assert set(per_setup) == PER_SETUP_KEYS
    env.update(per_setup)
    env["AIRFLOW_HOME"] = str(home)
    env["UPSTAGE_SYSTEM_TEST_MARKER"] = ctx.marker  # finds strays at the end
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---------------------------------------------------------------------------------------------
# documents


def prepare_inbox(inbox: Path) -> dict[str, int]:
    """Generated PDFs of 10-30 pages plus two samples; returns name -> expected page count."""
    from upstage_provider.documents import load_document
    from upstage_provider.emulator.synthetic import blank_pdf

    inbox.mkdir(parents=True)
    expected: dict[str, int] = {}
    for pages in GENERATED_PAGES:
        name = f"generated-{pages}-pages.pdf"
        (inbox / name).write_bytes(blank_pdf(pages))
        expected[name] = pages
    for name in SAMPLE_NAMES:
        source = SAMPLES / name
        if not source.exists():
            print(f"note: sample {source} not found; skipped")
            continue
        shutil.copy(source, inbox / name)
        expected[name] = load_document(source).page_count or 1
    print(f"inbox: {len(expected)} documents, {sum(expected.values())} pages in {inbox}")
    return expected


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_bin() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if versions:
        return versions[-1].parent
    raise SystemTestFailure(
        "PostgreSQL not found; scripts/system-test.sh installs it (apt-get install postgresql)"
    )


def as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def start_postgres(ctx: Context) -> None:
    ctx.pg_bin = postgres_bin()
    data = ctx.work / "pgdata"
    sockets = ctx.work / "pgsock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(sockets, "postgres", "postgres")
        shutil.chown(ctx.work, "postgres", None)  # initdb creates pgdata inside
    port = free_port()
    log = ctx.logs / "postgres.log"
    _run(
        as_postgres(
            [
                str(ctx.pg_bin / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        ctx.logs / "initdb.log",
    )
    ctx.pg_data = data
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "postgres", None)
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    _run(
        as_postgres(
            [
                str(ctx.pg_bin / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        ctx.logs / "pg_ctl.log",
    )
    _run(
        [str(ctx.pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "airflow"],
        ctx.logs / "createdb.log",
    )
    ctx.pg_port = port
    print(f"postgres: 127.0.0.1:{port}, data in {data}")


def stop_postgres(ctx: Context) -> None:
    if ctx.pg_data is None or ctx.pg_bin is None:
        return
    result = subprocess.run(
        as_postgres(
            [str(ctx.pg_bin / "pg_ctl"), "-D", str(ctx.pg_data), "-m", "fast", "-w", "-t", "30", "stop"]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pid_file = ctx.pg_data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            _kill_pid(pid, signal.SIGKILL)
    shutil.rmtree(ctx.pg_data, ignore_errors=True)
    ctx.pg_data = None


# ---------------------------------------------------------------------------------------------
# the emulator and the Airflow services


def start_emulator(
    ctx: Context, flags: dict[str, str] = EMULATOR_FLAGS, log_name: str = "emulator.log"
) -> None:
    """The emulator with ``flags`` on a free port; ``ctx.emulator_url`` is where it listens."""
    if ctx.emulator is not None:
        stop_group(ctx.emulator, grace=10)
    log = (ctx.logs / log_name).open("w")
    proc = subprocess.Popen(
        [str(BIN / "upstage-emulator"), "--host", "127.0.0.1", "--port", "0", *_flat(flags)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
        env={**os.environ, "UPSTAGE_SYSTEM_TEST_MARKER": ctx.marker},
    )
    ctx.emulator = proc
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "listening on" in line:
            ctx.emulator_url = line.strip().rsplit(" ", 1)[-1]
            print(f"emulator: {ctx.emulator_url} ({' '.join(_flat(flags))})")
            return
        if not line and proc.poll() is not None:
            break
    raise SystemTestFailure(f"the emulator did not start; see {ctx.logs / 'emulator.log'}")


def http_json(
    url: str, method: str = "GET", body: dict[str, Any] | None = None, token: str = "", timeout: float = 30
) -> Any:
    """One JSON call to a loopback service (the api-server or the emulator)."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"refusing a non-loopback URL: {url}")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.load(response)


def emulator_stats(ctx: Context) -> dict[str, Any]:
    return dict(http_json(f"{ctx.emulator_url}/_emulator/stats", token=EMULATOR_KEY))


def run_airflow(ctx: Context, args: list[str], log_name: str) -> None:
    _run([str(BIN / "airflow"), *args], ctx.logs / log_name, env=ctx.env)


def start_service(ctx: Context, name: str, log_name: str | None = None) -> Service:
    command = [str(BIN / "airflow"), *SERVICES[name]]
    if name == "api-server":
        command += ["--host", "127.0.0.1", "--port", ctx.api.rsplit(":", 1)[-1]]
    log = ctx.logs / (log_name or f"{name}.log")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            env=ctx.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    service = Service(name, proc, log)
    ctx.services[log_name or name] = service
    return service


def start_services(ctx: Context) -> None:
    for name in SERVICES:
        start_service(ctx, name)
    wait_for(
        lambda: health(ctx, require=("metadatabase", "scheduler", "triggerer", "dag_processor")),
        120,
        "all services healthy",
        ctx,
    )
    ctx.token = api_token(ctx)
    print(f"airflow: api-server {ctx.api}, scheduler, dag-processor, triggerer healthy")


def health(ctx: Context, require: tuple[str, ...]) -> bool:
    for service in ctx.services.values():
        if service.proc.poll() is not None and not service.name.endswith("-killed"):
            raise SystemTestFailure(
                f"{service.name} exited with {service.proc.returncode}; see {service.log}"
            )
    try:
        body = http_json(f"{ctx.api}/api/v2/monitor/health", timeout=5)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return all((body.get(part) or {}).get("status") == "healthy" for part in require)


def api_token(ctx: Context) -> str:
    """A JWT from SimpleAuthManager's /auth/token with the password the api-server generated."""
    passwords_file = Path(ctx.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    wait_for(passwords_file.exists, 30, f"{passwords_file} written by the api-server", ctx)
    password = json.loads(passwords_file.read_text())["admin"]
    answer = http_json(f"{ctx.api}/auth/token", "POST", {"username": "admin", "password": password})
    return str(answer["access_token"])


def api(ctx: Context, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        return http_json(f"{ctx.api}/api/v2{path}", method, body, token=ctx.token)
    except urllib.error.HTTPError as exc:
        raise SystemTestFailure(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc


def unpause_dag(ctx: Context) -> int:
    """Unpause once parsed; returns the emulator's submission count from just before."""

    def parsed() -> bool:
        try:
            api(ctx, "GET", f"/dags/{DAG_ID}")
            return True
        except SystemTestFailure:
            errors = api(ctx, "GET", "/importErrors")
            if errors.get("total_entries"):
                raise SystemTestFailure(f"DAG import errors: {json.dumps(errors)[:2000]}") from None
            return False

    wait_for(parsed, 120, f"the dag-processor to parse {DAG_ID}", ctx)
    before = int(emulator_stats(ctx)["submissions"])
    api(ctx, "PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    return before


# ---------------------------------------------------------------------------------------------
# the two runs


def trigger_run(ctx: Context, run_id: str, logical_date: str) -> None:
    api(ctx, "POST", f"/dags/{DAG_ID}/dagRuns", {"dag_run_id": run_id, "logical_date": logical_date})


def run_state(ctx: Context, run_id: str) -> str:
    return str(api(ctx, "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"])


def sensor_states(ctx: Context, run_id: str) -> list[str]:
    tis = api(ctx, "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100&task_id={SENSOR_TASK_ID}")
    return [str(ti["state"]) for ti in tis["task_instances"] if ti["task_id"] == SENSOR_TASK_ID]


def wait_for_success(ctx: Context, run_id: str, timeout: float = RUN_TIMEOUT) -> None:
    def finished() -> bool:
        state = run_state(ctx, run_id)
        if state == "failed":
            tis = api(ctx, "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")
            bad = [
                f"{t['task_id']}[{t['map_index']}]={t['state']}"
                for t in tis["task_instances"]
                if t["state"] not in ("success", "skipped")
            ]
            raise SystemTestFailure(
                f"run {run_id} failed: {bad}; task logs under {ctx.env['AIRFLOW_HOME']}/logs"
            )
        return state == "success"

    wait_for(finished, timeout, f"run {run_id} to succeed", ctx)


def run_0(ctx: Context, documents: dict[str, int], before: int) -> None:
    """Unpausing a @daily DAG with catchup=False creates a run for the latest interval: check it too."""
    runs: list[dict[str, Any]] = []

    def created() -> bool:
        runs[:] = api(ctx, "GET", f"/dags/{DAG_ID}/dagRuns?limit=10")["dag_runs"]
        return bool(runs)

    wait_for(created, 30, "the scheduler to create the scheduled run", ctx)
    if len(runs) != 1:
        raise SystemTestFailure(
            f"expected one scheduled run after unpausing, got {[r['dag_run_id'] for r in runs]}"
        )
    run_id, day = runs[0]["dag_run_id"], str(runs[0]["logical_date"])[:10]
    wait_for_success(ctx, run_id)
    check_submissions(ctx, before, documents, run_id)
    check_trigger_logs(ctx, run_id, documents)
    check_parquet(ctx, day, documents, run_id)


def run_1(ctx: Context, documents: dict[str, int]) -> None:
    run_id, day = "system-test-1", "2026-11-01"
    before = emulator_stats(ctx)["submissions"]
    trigger_run(ctx, run_id, f"{day}T00:00:00Z")
    wait_for_success(ctx, run_id)
    check_submissions(ctx, before, documents, run_id)
    check_trigger_logs(ctx, run_id, documents)
    check_parquet(ctx, day, documents, run_id)


def run_2(ctx: Context, documents: dict[str, int]) -> None:
    run_id, day = "system-test-2", "2026-11-02"
    before = emulator_stats(ctx)["submissions"]
    old = ctx.services["triggerer"]
    trigger_run(ctx, run_id, f"{day}T00:00:00Z")

    def deferred() -> bool:
        states = sensor_states(ctx, run_id)
        if states.count("deferred") >= 2:
            return True
        state = run_state(ctx, run_id)
        if state in ("failed", "success") or states.count("success") > len(documents) - 2:
            raise SystemTestFailure(
                f"run {run_id}: sensors {states} (run {state}) before 2 were deferred at once; the "
                f"documents were done too soon to kill the triggerer under them (raise LATENCY_PER_PAGE)"
            )
        return False

    wait_for(deferred, 120, "the sensors to defer", ctx)
    waiting = sensor_states(ctx, run_id).count("deferred")
    ctx.triggerer_jobs_before = set(ctx.triggerer_jobs_seen) | current_trigger_jobs(ctx, run_id)
    os.killpg(old.proc.pid, signal.SIGKILL)
    old.proc.wait(timeout=30)
    ctx.services["triggerer-killed"] = Service("triggerer-killed", old.proc, old.log)
    del ctx.services["triggerer"]
    killed_at = time.monotonic()
    print(f"run 2: SIGKILLed the triggerer's process group with {waiting} sensors deferred", flush=True)
    time.sleep(2)
    states_while_down = sensor_states(ctx, run_id)
    new = start_service(ctx, "triggerer", "triggerer-restarted.log")
    print(f"run 2: started a new triggerer (pid {new.proc.pid})", flush=True)
    wait_for_success(ctx, run_id)
    ctx.timings.append(("run 2: triggerer killed -> run succeeded", time.monotonic() - killed_at))
    if "deferred" not in states_while_down:
        raise SystemTestFailure(
            f"no sensor was still deferred while the triggerer was down: {states_while_down}"
        )
    ctx.checks.append(
        f"{run_id}: {states_while_down.count('deferred')} sensors still deferred while the triggerer was down"
    )
    check_submissions(ctx, before, documents, run_id)
    check_trigger_logs(ctx, run_id, documents, restarted_for=states_while_down.count("deferred"))
    check_parquet(ctx, day, documents, run_id)


def current_trigger_jobs(ctx: Context, run_id: str) -> set[str]:
    base = Path(ctx.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    return {
        p.name.rsplit(".", 2)[-2]
        for p in base.glob(f"task_id={SENSOR_TASK_ID}/*/attempt=*.log.trigger.*.log")
    }


# ---------------------------------------------------------------------------------------------
# checks


def check_submissions(ctx: Context, before: int, documents: dict[str, int], run_id: str) -> None:
    submitted = emulator_stats(ctx)["submissions"] - before
    if submitted != len(documents):
        raise SystemTestFailure(
            f"{run_id}: {submitted} submissions to the emulator for {len(documents)} documents"
        )
    ctx.checks.append(f"{run_id}: exactly one submission per document ({submitted})")


def check_trigger_logs(ctx: Context, run_id: str, documents: dict[str, int], restarted_for: int = 0) -> None:
    """The sensors deferred and their triggers ran in the triggerer, from the logs Airflow keeps.

    The triggerer writes what a trigger logs next to the task's log, in
    ``attempt=N.log.trigger.<triggerer job id>.log``: "trigger <dag>/<run>/<task>/<map>/<try> (ID n)
    starting", the trigger's own progress lines, "Trigger fired event" with the event and
    "trigger completed". The sensor's task log says "deferring to the triggerer" before it does.
    With ``restarted_for``, that many sensors must also have been finished by a second triggerer
    (another job id) after the first one was killed.
    """
    base = (
        Path(ctx.env["AIRFLOW_HOME"])
        / "logs"
        / f"dag_id={DAG_ID}"
        / f"run_id={run_id}"
        / f"task_id={SENSOR_TASK_ID}"
    )
    deferred, fired, by_second = 0, 0, 0
    for map_dir in sorted(base.glob("map_index=*")):
        task_log = "".join(p.read_text(errors="replace") for p in map_dir.glob("attempt=*.log"))
        if "deferring to the triggerer" not in task_log:
            continue
        deferred += 1
        trigger_logs = {
            p.name.rsplit(".", 2)[-2]: p.read_text(errors="replace")
            for p in map_dir.glob("attempt=*.log.trigger.*.log")
        }
        ran = {job for job, text in trigger_logs.items() if " starting" in text}
        succeeded = {
            job
            for job, text in trigger_logs.items()
            if "Trigger fired event" in text and "'status': 'success'" in text
        }
        if not ran or not succeeded:
            raise SystemTestFailure(
                f"{run_id} {map_dir.name}: the sensor deferred but no trigger ran and fired success "
                f"in the triggerer (trigger logs: {sorted(trigger_logs)}) under {map_dir}"
            )
        fired += 1
        if restarted_for and succeeded - ctx.triggerer_jobs_before:
            by_second += 1
        ctx.triggerer_jobs_seen.update(ran)
    if deferred < 2:
        raise SystemTestFailure(
            f"{run_id}: only {deferred} of {len(documents)} sensors deferred; expected >= 2"
        )
    if restarted_for and by_second < restarted_for:
        raise SystemTestFailure(
            f"{run_id}: {restarted_for} sensors were deferred while the triggerer was down, but only "
            f"{by_second} triggers fired in a new triggerer"
        )
    for service in ctx.services.values():
        if service.name.startswith("triggerer"):
            text = service.log.read_text(errors="replace")
            for bad in ("Trigger failed to load code", "Trigger failed to inflate", "Traceback"):
                if bad in text:
                    raise SystemTestFailure(f"{service.log}: {bad!r}")
    extra = f", {by_second} of them finished by the restarted triggerer" if restarted_for else ""
    others = " (the others were done by the first check)" if deferred < len(documents) else ""
    ctx.checks.append(
        f"{run_id}: {deferred} of {len(documents)} sensors deferred{others}; each trigger ran in the "
        f"triggerer and fired success{extra}"
    )


def check_parquet(ctx: Context, day: str, documents: dict[str, int], run_id: str) -> None:
    import pyarrow.dataset as pads

    root = ctx.work / "lake"
    pages = (
        pads.dataset(root / "pages" / f"ds={day}", format="parquet")
        .to_table(columns=["document_uri", "page"])
        .to_pylist()
    )
    words = (
        pads.dataset(root / "words" / f"ds={day}", format="parquet")
        .to_table(columns=["document_uri", "page", "word_id"])
        .to_pylist()
    )
    per_doc: dict[str, list[int]] = {}
    for row in pages:
        per_doc.setdefault(Path(row["document_uri"]).name, []).append(row["page"])
    if set(per_doc) != set(documents):
        raise SystemTestFailure(
            f"{run_id}: pages/ has documents {sorted(per_doc)}, expected {sorted(documents)}"
        )
    for name, got in per_doc.items():
        if sorted(got) != list(range(1, documents[name] + 1)):
            raise SystemTestFailure(
                f"{run_id}: {name}: pages {sorted(got)[:40]} (rows {len(got)}), expected 1..{documents[name]}"
            )
    keys = [(Path(r["document_uri"]).name, r["page"], r["word_id"]) for r in words]
    if len(keys) != len(set(keys)):
        raise SystemTestFailure(f"{run_id}: words/ has {len(keys) - len(set(keys))} duplicate rows")
    word_docs = {key[0] for key in keys}
    if word_docs != set(documents):
        raise SystemTestFailure(
            f"{run_id}: words/ has documents {sorted(word_docs)}, expected {sorted(documents)}"
        )
    bad_pages = [k for k in keys if not 1 <= k[1] <= documents[k[0]]]
    if bad_pages:
        raise SystemTestFailure(f"{run_id}: words on pages outside 1..N: {bad_pages[:5]}")
    ctx.checks.append(
        f"{run_id}: Parquet ds={day}: {len(documents)} documents, {len(pages)} page rows (1..N each), "
        f"{len(words)} word rows, no duplicates"
    )


# ---------------------------------------------------------------------------------------------
# stopping


def stop_group(proc: subprocess.Popen[Any], grace: float = 20.0) -> bool:
    """SIGTERM the process group, wait, then SIGKILL it (a scheduler once ignored SIGTERM).

    Returns True when SIGKILL was needed.
    """
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    killed = False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        killed = sig == signal.SIGKILL
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pgid):
            proc.poll()
            time.sleep(0.2)
        if not _group_alive(pgid):
            break
    proc.poll()
    return killed


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies of our direct child keep the group "alive" until reaped
    for pid_dir in Path("/proc").iterdir():
        if pid_dir.name.isdigit():
            try:
                stat = (pid_dir / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _kill_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stray_processes(marker: str) -> list[int]:
    """Processes that inherited this run's marker variable (task runners that left their group)."""
    needle = f"UPSTAGE_SYSTEM_TEST_MARKER={marker}".encode()
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            if needle in (pid_dir / "environ").read_bytes().split(b"\0"):
                found.append(int(pid_dir.name))
        except OSError:
            continue
    return found


def stop_services(ctx: Context) -> None:
    """Stop the Airflow services started so far (the LocalExecutor ones) before the Celery run."""
    for name, service in reversed(list(ctx.services.items())):
        _stop_service(service.proc, service.name)
        del ctx.services[name]
    _kill_strays(ctx.marker, keep_group=ctx.emulator.pid if ctx.emulator else None)


def stop_everything(ctx: Context) -> None:
    """Every step runs even if an earlier one raised: no process may outlive the test."""
    steps: list[tuple[str, Callable[[], object]]] = [
        (service.name, functools.partial(_stop_service, service.proc, service.name))
        for service in reversed(list(ctx.services.values()))
    ]
    if ctx.emulator is not None:
        steps.append(("emulator", functools.partial(stop_group, ctx.emulator, grace=10)))
    steps.append(("stray processes", lambda: _kill_strays(ctx.marker)))
    steps.append(("postgres", lambda: stop_postgres(ctx)))
    for name, step in steps:
        try:
            step()
        except Exception as exc:
            print(f"warning: stopping {name}: {type(exc).__name__}: {exc}", file=sys.stderr)


def _stop_service(proc: subprocess.Popen[bytes], name: str) -> None:
    if stop_group(proc):
        print(f"note: {name} ignored SIGTERM for 20 s; SIGKILLed")


def _kill_strays(marker: str, keep_group: int | None = None) -> None:
    """SIGKILL the processes carrying ``marker``, except those in process group ``keep_group``."""
    strays = [pid for pid in stray_processes(marker) if keep_group is None or _pgid(pid) != keep_group]
    for pid in strays:
        _kill_pid(pid, signal.SIGKILL)
    if strays:
        print(f"killed {len(strays)} stray processes: {strays}")


# ---------------------------------------------------------------------------------------------
# helpers


def _flat(flags: dict[str, str]) -> list[str]:
    return [part for pair in flags.items() for part in pair]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, ctx: Context, interval: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise SystemTestFailure(f"timed out after {timeout:.0f} s waiting for {what}; logs in {ctx.logs}")


def _run(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("ab") as out:
        result = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False, stdin=subprocess.DEVNULL
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemTestFailure(f"`{' '.join(cmd[:4])}` exited {result.returncode}; see {log}:\n{tail}")


if __name__ == "__main__":
    # Run as the module system_test, the one system_test_celery imports: one SystemTestFailure class.
    import system_test

    raise SystemExit(system_test.main())
