"""The system test's CeleryExecutor run: Redis, two Celery workers, documents and Parquet on S3 (moto).

Run by ``scripts/system_test.py`` (``--executor celery`` or ``both``) after the LocalExecutor
runs, on the same PostgreSQL cluster (a database of its own, also the Celery result backend), with
an emulator of its own (slower pages, ``EMULATOR_FLAGS``):

1. starts Redis (Debian's ``redis-server``) and ``moto_server`` on free loopback ports, creates
   the bucket, then ``airflow db migrate``, the api-server, scheduler, dag-processor, triggerer
   and two ``airflow celery worker`` processes, each worker in a temporary directory of its own
   (cwd, ``AIRFLOW_HOME``, ``TMPDIR``): nothing can pass between tasks through local disk;
2. run 0: unpausing creates the scheduled run; the inbox holds only a hidden placeholder, so it
   finds no documents and must succeed with no submission;
3. run 1: uploads the generated PDFs (``DOCUMENTS`` of them, 1 to 20 pages) to
   ``s3://<bucket>/inbox/``, triggers the DAG, and once sensors are deferred while a submit runs
   on worker 1, SIGKILLs worker 1's process group and starts a replacement worker (a new
   directory). The scheduler fails the orphaned task instances once their heartbeat is older
   than ``[scheduler] task_instance_heartbeat_timeout`` and retries them elsewhere; the ledger
   makes a retried submit reattach to its recorded request.

Checks: the run succeeds; one submission per document (emulator stats); every document's pages
1..N and no duplicate page or word rows, read back from S3. See docs/system-test.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import system_test as st

CELERY_ENV_FILE = st.ROOT / "docker" / "airflow-celery.env"
COMPOSE_CELERY_FILE = st.ROOT / "docker" / "compose.celery.yaml"
DATABASE = "airflow_celery"
# Celery's result backend in PostgreSQL, with the driver named: SQLAlchemy 2.1 reads a bare
# postgresql:// as psycopg (3), which is not installed, and every worker then fails at start.
RESULT_BACKEND_SCHEME = "db+postgresql+psycopg2://"
BUCKET = "upstage-system-test"
# moto accepts any key pair; these are not secrets.
S3_KEY, S3_SECRET, S3_REGION = "system-test-access-key", "system-test-secret-key", "us-east-1"
# The example DAG reads and writes plain s3://bucket/... URIs with its storage connection,
# aws_default (UPSTAGE_INGEST_STORAGE_CONN_ID's default).
# The Iceberg SQL catalog's own database beside Airflow's; the tables' files go to the bucket.
CATALOG_DATABASE = "iceberg_catalog"
DOCUMENTS = 60
PAGE_COUNTS = (1, 2, 3, 4, 6, 8, 12, 20)  # cycled over the documents: 420 pages for 60
WORKERS = 2
# Celery workers, as compose.celery.yaml runs them (deploy.replicas there is WORKERS).
WORKER_COMMAND = ["celery", "worker", "--concurrency", "2", "--skip-serve-logs"]
PER_SETUP_KEYS = st.PER_SETUP_KEYS | {
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW_CONN_AWS_DEFAULT",
    "UPSTAGE_INGEST_CATALOG_URI",
}
SERVICES = {**st.SERVICES, "airflow-worker": WORKER_COMMAND}
RUN_TIMEOUT = 600.0
# The emulator of this run: 2 s of OCR a page over 8 threads. A task takes several seconds on 2
# busy cores, so a sensor first checks 10-20 s after its submit: a document of 8 or more pages is
# still running then and the sensor defers. The run's 402 pages take about 100 s of emulator time.
EMULATOR_FLAGS = {**st.EMULATOR_FLAGS, "--latency-per-page": "2.0", "--workers": "8"}


@dataclass
class CeleryRun:
    """What the Celery run measured, for the summary."""

    workers: int = 0
    kill: dict[str, Any] = field(default_factory=dict)
    retried: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    ledger_lines: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# entry point


def run(ctx: st.Context) -> CeleryRun:
    """The whole Celery part on ``ctx``'s PostgreSQL and emulator; its services join ctx.services."""
    result = CeleryRun()
    documents = st.timed(ctx, "celery: documents generated", lambda: generate_documents())
    st.timed(
        ctx, "celery: emulator started", lambda: st.start_emulator(ctx, EMULATOR_FLAGS, "celery-emulator.log")
    )
    st.timed(ctx, "celery: redis and moto started", lambda: start_redis_and_moto(ctx))
    st.timed(ctx, "celery: database created", lambda: create_database(ctx))
    ctx.env = celery_env(ctx)
    st.timed(
        ctx,
        "celery: airflow db migrate",
        lambda: st.run_airflow(ctx, ["db", "migrate"], "celery-db-migrate.log"),
    )
    st.timed(ctx, "celery: services and 2 workers ready", lambda: start_services(ctx, result))
    baseline = st.timed(ctx, "celery: DAG parsed and unpaused", lambda: st.unpause_dag(ctx))
    st.timed(ctx, "celery: run 0 (scheduled, empty inbox)", lambda: run_0(ctx, baseline))
    st.timed(ctx, "celery: documents uploaded to S3", lambda: upload(ctx, documents))
    st.timed(ctx, "celery: run 1 (worker SIGKILLed and replaced)", lambda: run_1(ctx, documents, result))
    return result


# ---------------------------------------------------------------------------------------------
# configuration


def check_compose_matches() -> None:
    """compose.celery.yaml: the same checks as compose.yaml, plus the workers and both env files."""
    import yaml

    st.check_compose_file(
        COMPOSE_CELERY_FILE,
        SERVICES,
        PER_SETUP_KEYS,
        ("airflow.env", CELERY_ENV_FILE.name),
        EMULATOR_FLAGS,
    )
    compose = yaml.safe_load(COMPOSE_CELERY_FILE.read_text())
    services = compose["services"]
    replicas = (services["airflow-worker"].get("deploy") or {}).get("replicas", 1)
    if replicas != WORKERS:
        raise st.SystemTestFailure(
            f"{COMPOSE_CELERY_FILE}: airflow-worker has {replicas} replicas, the test runs {WORKERS}"
        )
    for needed in ("redis", "moto"):
        if needed not in services:
            raise st.SystemTestFailure(f"{COMPOSE_CELERY_FILE}: no service {needed!r}")
    for name in SERVICES:
        env = services[name]["environment"]
        for key in ("UPSTAGE_INGEST_INPUT", "UPSTAGE_INGEST_OUTPUT"):
            if not str(env[key]).startswith(f"s3://{BUCKET}/"):
                raise st.SystemTestFailure(f"{COMPOSE_CELERY_FILE}: {name}: {key} must be s3://{BUCKET}/...")
        if not str(env["UPSTAGE_INGEST_CATALOG_URI"]).startswith("postgresql+psycopg2://"):
            raise st.SystemTestFailure(
                f"{COMPOSE_CELERY_FILE}: {name}: UPSTAGE_INGEST_CATALOG_URI must be postgresql+psycopg2://..."
            )
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg (3), which Airflow does not install.
        if not str(env["AIRFLOW__CELERY__RESULT_BACKEND"]).startswith(RESULT_BACKEND_SCHEME):
            raise st.SystemTestFailure(
                f"{COMPOSE_CELERY_FILE}: {name}: the result backend must be {RESULT_BACKEND_SCHEME}..."
            )
    overlap = set(st.read_env_file(CELERY_ENV_FILE)) & PER_SETUP_KEYS
    if overlap:
        raise st.SystemTestFailure(f"{CELERY_ENV_FILE} sets per-setup keys {sorted(overlap)}")


def celery_env(ctx: st.Context) -> dict[str, str]:
    """The LocalExecutor run's keys with this run's database, inbox and lake, plus the Celery keys."""
    env = st.airflow_env(ctx, home=ctx.work / "celery-home", database=DATABASE)
    env.update(st.read_env_file(CELERY_ENV_FILE))
    s3_url = ctx.extra["moto_url"]
    env.update(
        {
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{ctx.extra['redis_port']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": (
                f"{RESULT_BACKEND_SCHEME}postgres@127.0.0.1:{ctx.pg_port}/{DATABASE}"
            ),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": S3_KEY,
                    "password": S3_SECRET,
                    "extra": {"endpoint_url": s3_url, "region_name": S3_REGION},
                }
            ),
            "UPSTAGE_INGEST_INPUT": f"s3://{BUCKET}/inbox",
            "UPSTAGE_INGEST_OUTPUT": f"s3://{BUCKET}/lake",
            "UPSTAGE_INGEST_CATALOG_URI": (
                f"postgresql+psycopg2://postgres@127.0.0.1:{ctx.pg_port}/{CATALOG_DATABASE}"
            ),
        }
    )
    missing = PER_SETUP_KEYS - set(env)
    assert not missing, missing
    return env


# ---------------------------------------------------------------------------------------------
# Redis, moto, the database


def start_redis_and_moto(ctx: st.Context) -> None:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise st.SystemTestFailure(
            "redis-server not found; scripts/system-test.sh installs it (apt-get install redis-server)"
        )
    port = st.free_port()
    redis_dir = ctx.work / "redis"
    redis_dir.mkdir()
    start_process(
        ctx,
        "redis",
        [
            redis_server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(redis_dir),
        ],
    )
    ctx.extra["redis_port"] = port
    st.wait_for(lambda: _redis_ping(port), 30, "redis-server to answer PING", ctx)

    moto_port = st.free_port()
    start_process(ctx, "moto", [str(st.BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)])
    ctx.extra["moto_url"] = f"http://127.0.0.1:{moto_port}"
    st.wait_for(lambda: _moto_up(ctx), 60, "moto_server to answer", ctx)
    s3_client(ctx).create_bucket(Bucket=BUCKET)
    # find_documents lists the inbox; an empty prefix is no folder at all on S3, so run 0 (no
    # documents) gets a hidden placeholder, which find_documents skips.
    s3_client(ctx).put_object(Bucket=BUCKET, Key="inbox/.keep", Body=b"")
    print(f"redis: 127.0.0.1:{port}; moto S3: {ctx.extra['moto_url']}, bucket {BUCKET}")


def _redis_ping(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _moto_up(ctx: st.Context) -> bool:
    try:
        s3_client(ctx).list_buckets()
        return True
    except Exception:
        return False


def s3_client(ctx: st.Context) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=ctx.extra["moto_url"],
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )


def create_database(ctx: st.Context) -> None:
    assert ctx.pg_bin is not None
    for name in (DATABASE, CATALOG_DATABASE):
        st._run(
            [str(ctx.pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(ctx.pg_port), "-U", "postgres", name],
            ctx.logs / f"createdb-{name}.log",
        )


# ---------------------------------------------------------------------------------------------
# processes


def start_process(
    ctx: st.Context, name: str, command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> st.Service:
    log = ctx.logs / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            env=env or {**os.environ, "UPSTAGE_SYSTEM_TEST_MARKER": ctx.marker},
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    service = st.Service(name, proc, log)
    ctx.services[name] = service
    return service


def start_worker(ctx: st.Context, number: int) -> st.Service:
    """A Celery worker in a fresh directory of its own: cwd, AIRFLOW_HOME (task logs) and TMPDIR."""
    scratch = Path(tempfile.mkdtemp(prefix=f"worker-{number}-", dir=ctx.work))
    (scratch / "home").mkdir()
    (scratch / "tmp").mkdir()
    env = {**ctx.env, "AIRFLOW_HOME": str(scratch / "home"), "TMPDIR": str(scratch / "tmp")}
    command = [str(st.BIN / "airflow"), *WORKER_COMMAND, "--celery-hostname", f"worker-{number}@%h"]
    service = start_process(ctx, f"worker-{number}", command, env=env, cwd=scratch)
    ctx.extra.setdefault("worker_dirs", {})[service.name] = str(scratch)
    return service


def start_services(ctx: st.Context, result: CeleryRun) -> None:
    for name in st.SERVICES:
        st.start_service(ctx, name, f"celery-{name}.log")
    workers = [start_worker(ctx, n) for n in range(1, WORKERS + 1)]
    result.workers = len(workers)
    st.wait_for(
        lambda: st.health(ctx, require=("metadatabase", "scheduler", "triggerer", "dag_processor")),
        120,
        "all services healthy",
        ctx,
    )
    for worker in workers:
        st.wait_for(lambda w=worker: _worker_ready(w), 120, f"{worker.name} to be ready", ctx)
    ctx.token = st.api_token(ctx)
    print(
        f"airflow (CeleryExecutor): api-server {ctx.api}, scheduler, dag-processor, triggerer, "
        f"{len(workers)} workers"
    )


def _worker_ready(worker: st.Service) -> bool:
    if worker.proc.poll() is not None:
        raise st.SystemTestFailure(f"{worker.name} exited with {worker.proc.returncode}; see {worker.log}")
    return " ready." in worker.log.read_text(errors="replace")


# ---------------------------------------------------------------------------------------------
# documents


def generate_documents() -> dict[str, bytes]:
    """DOCUMENTS distinct PDFs (the page width varies, so no two are the same bytes)."""
    from upstage_provider.emulator.synthetic import blank_pdf

    docs: dict[str, bytes] = {}
    for i in range(DOCUMENTS):
        pages = PAGE_COUNTS[i % len(PAGE_COUNTS)]
        docs[f"doc-{i:03d}-{pages}-pages.pdf"] = blank_pdf(pages, size=(600 + i, 792))
    return docs


def expected_pages(documents: dict[str, bytes]) -> dict[str, int]:
    return {name: int(name.rsplit("-", 2)[-2]) for name in documents}


def upload(ctx: st.Context, documents: dict[str, bytes]) -> None:
    client = s3_client(ctx)
    for name, data in documents.items():
        client.put_object(Bucket=BUCKET, Key=f"inbox/{name}", Body=data)
    pages = sum(expected_pages(documents).values())
    print(f"inbox: {len(documents)} documents, {pages} pages in s3://{BUCKET}/inbox/")


# ---------------------------------------------------------------------------------------------
# the runs


def run_0(ctx: st.Context, before: int) -> None:
    runs: list[dict[str, Any]] = []

    def created() -> bool:
        runs[:] = st.api(ctx, "GET", f"/dags/{st.DAG_ID}/dagRuns?limit=10")["dag_runs"]
        return bool(runs)

    st.wait_for(created, 30, "the scheduler to create the scheduled run", ctx)
    run_id = runs[0]["dag_run_id"]
    st.wait_for_success(ctx, run_id, timeout=RUN_TIMEOUT)
    submitted = st.emulator_stats(ctx)["submissions"] - before
    if submitted:
        raise st.SystemTestFailure(f"celery {run_id}: {submitted} submissions for an empty inbox")
    ctx.checks.append(f"celery {run_id}: empty inbox, run succeeded on the Celery workers, 0 submissions")


def _task_instances(ctx: st.Context, run_id: str) -> list[dict[str, Any]]:
    answer = st.api(ctx, "GET", f"/dags/{st.DAG_ID}/dagRuns/{run_id}/taskInstances?limit=1000")
    return list(answer["task_instances"])


def _descends_from(pid: int, root: int) -> bool:
    """Whether process ``pid`` is ``root`` or one of its descendants (walks /proc's parent ids)."""
    for _ in range(64):
        if pid == root:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[-1].split()[1])
        if pid <= 1:
            return False
    return False


def run_1(ctx: st.Context, documents: dict[str, bytes], result: CeleryRun) -> None:
    run_id, day = "system-test-celery-1", "2026-11-03"
    expected = expected_pages(documents)
    before = st.emulator_stats(ctx)["submissions"]
    st.trigger_run(ctx, run_id, f"{day}T00:00:00Z")
    started = time.monotonic()
    victim = ctx.services["worker-1"]
    seen: dict[str, Any] = {}

    def moment() -> bool:
        tis = _task_instances(ctx, run_id)
        deferred = [t for t in tis if t["task_id"] == st.SENSOR_TASK_ID and t["state"] == "deferred"]
        on_victim = [
            t
            for t in tis
            if t["state"] == "running" and t.get("pid") and _descends_from(int(t["pid"]), victim.proc.pid)
        ]
        submits = [t for t in on_victim if t["task_id"] == st.SUBMIT_TASK_ID]
        state = st.run_state(ctx, run_id)
        if state in ("success", "failed"):
            raise st.SystemTestFailure(
                f"celery {run_id}: the run was {state} before the worker could be killed"
            )
        if len(deferred) >= 2 and submits:
            seen.update(
                deferred=len(deferred),
                running_on_victim=sorted(f"{t['task_id']}[{t['map_index']}]" for t in on_victim),
                submits_running=sum(
                    1 for t in tis if t["task_id"] == st.SUBMIT_TASK_ID and t["state"] == "running"
                ),
                submits_done=sum(
                    1 for t in tis if t["task_id"] == st.SUBMIT_TASK_ID and t["state"] == "success"
                ),
            )
            return True
        return False

    st.wait_for(moment, 180, "sensors deferred while a submit runs on worker-1", ctx, interval=0.2)
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(timeout=30)
    killed_at = time.monotonic()
    del ctx.services["worker-1"]
    ctx.services["worker-1-killed"] = st.Service("worker-1-killed", victim.proc, victim.log)
    seen["seconds_after_trigger"] = round(killed_at - started, 1)
    result.kill = seen
    print(
        f"celery run 1: SIGKILLed worker-1's process group {seen['seconds_after_trigger']} s after the "
        f"trigger: {seen['deferred']} sensors deferred, {seen['submits_running']} submits running "
        f"({seen['submits_done']} done), on worker-1: {seen['running_on_victim']}",
        flush=True,
    )
    replacement = start_worker(ctx, WORKERS + 1)
    st.wait_for(lambda: _worker_ready(replacement), 120, f"{replacement.name} to be ready", ctx)
    ctx.timings.append(("celery run 1: trigger -> worker-1 killed", killed_at - started))
    st.wait_for_success(ctx, run_id, timeout=RUN_TIMEOUT)
    ctx.timings.append(("celery run 1: worker-1 killed -> run succeeded", time.monotonic() - killed_at))
    tis = _task_instances(ctx, run_id)
    result.retried = sorted(
        f"{t['task_id']}[{t['map_index']}] try {t['try_number']}" for t in tis if int(t["try_number"]) > 1
    )
    # A task on the killed worker may have finished or deferred between the last look and the
    # SIGKILL; the others must have been failed by the heartbeat timeout and retried elsewhere.
    killed = set(seen["running_on_victim"])
    retried = {r.split(" try ")[0] for r in result.retried}
    if not killed & retried:
        raise st.SystemTestFailure(
            f"celery {run_id}: none of the task instances on the killed worker {sorted(killed)} was "
            f"retried (retried: {result.retried})"
        )
    result.ledger_lines = ledger_lines(ctx)
    if result.ledger_lines["possible duplicate charge"]:
        ctx.checks.append(
            f"celery {run_id}: NOTE a retried submit found only a pending mark "
            f"({result.ledger_lines['possible duplicate charge']}x) and submitted again"
        )
    submitted = st.emulator_stats(ctx)["submissions"] - before
    result.counts["submissions"] = submitted
    if submitted != len(documents):
        raise st.SystemTestFailure(
            f"celery {run_id}: {submitted} submissions to the emulator for {len(documents)} documents"
        )
    ctx.checks.append(f"celery {run_id}: exactly one submission per document ({submitted})")
    ctx.checks.append(
        f"celery {run_id}: killed worker's tasks {sorted(killed)} retried on another worker; retried: "
        f"{result.retried}; ledger: {result.ledger_lines}"
    )
    result.counts.update(check_parquet_s3(ctx, day, expected, run_id))
    result.counts.update(check_iceberg(ctx, day, result.counts, run_id))


def ledger_lines(ctx: st.Context) -> dict[str, int]:
    """What retried submits logged, from the task logs in every worker's own directory."""
    found = {"reattached": 0, "possible duplicate charge": 0}
    for scratch in ctx.extra.get("worker_dirs", {}).values():
        for log in Path(scratch, "home", "logs").rglob("attempt=*.log"):
            text = log.read_text(errors="replace")
            found["reattached"] += text.count("Reattaching to Upstage request")
            found["possible duplicate charge"] += text.count("Possible duplicate charge")
    return found


def check_parquet_s3(ctx: st.Context, day: str, expected: dict[str, int], run_id: str) -> dict[str, int]:
    """Read the day's Parquet back from S3 (pyarrow over s3fs): pages 1..N, no duplicate rows."""
    import pyarrow.dataset as pads
    import s3fs

    fs = s3fs.S3FileSystem(
        key=S3_KEY,
        secret=S3_SECRET,
        endpoint_url=ctx.extra["moto_url"],
        client_kwargs={"region_name": S3_REGION},
    )
    root = f"{BUCKET}/lake"
    pages = (
        pads.dataset(f"{root}/pages/ds={day}", filesystem=fs, format="parquet")
        .to_table(columns=["document_uri", "page", "request_id"])
        .to_pylist()
    )
    words = (
        pads.dataset(f"{root}/words/ds={day}", filesystem=fs, format="parquet")
        .to_table(columns=["document_uri", "page", "word_id"])
        .to_pylist()
    )
    per_doc: dict[str, list[int]] = {}
    requests: dict[str, set[str]] = {}
    for row in pages:
        name = row["document_uri"].rsplit("/", 1)[-1]
        per_doc.setdefault(name, []).append(row["page"])
        requests.setdefault(name, set()).add(row["request_id"])
    if set(per_doc) != set(expected):
        missing, extra = sorted(set(expected) - set(per_doc)), sorted(set(per_doc) - set(expected))
        raise st.SystemTestFailure(f"celery {run_id}: pages/ misses {missing}, has extra {extra}")
    for name, got in per_doc.items():
        if sorted(got) != list(range(1, expected[name] + 1)):
            raise st.SystemTestFailure(
                f"celery {run_id}: {name}: pages {sorted(got)[:40]} (rows {len(got)}), "
                f"expected 1..{expected[name]}"
            )
    mixed = {name: sorted(ids) for name, ids in requests.items() if len(ids) != 1}
    if mixed:
        raise st.SystemTestFailure(f"celery {run_id}: documents landed from several requests: {mixed}")
    keys = [(r["document_uri"], r["page"], r["word_id"]) for r in words]
    duplicates = len(keys) - len(set(keys))
    if duplicates:
        raise st.SystemTestFailure(f"celery {run_id}: words/ has {duplicates} duplicate rows")
    if {k[0].rsplit("/", 1)[-1] for k in keys} != set(expected):
        raise st.SystemTestFailure(f"celery {run_id}: words/ does not have every document")
    s3 = s3_client(ctx)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="lake/").get("Contents", [])
    stray = [
        o["Key"]
        for o in listed
        if not any(o["Key"].startswith(f"lake/{t}/ds={day}/") for t in ("words", "pages"))
        or not o["Key"].endswith(".parquet")
        or o["Key"].rsplit("/", 1)[-1].startswith((".", "_"))
    ]
    uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    if stray or uploads or len(listed) != 2 * len(per_doc):
        raise st.SystemTestFailure(
            f"celery {run_id}: s3://{BUCKET}/lake/ holds {len(listed)} objects for {len(per_doc)} documents; "
            f"stray {stray[:10]}, unfinished uploads {len(uploads)}"
        )
    counts = {
        "documents": len(per_doc),
        "page_rows": len(pages),
        "word_rows": len(words),
        "duplicates": duplicates,
    }
    ctx.checks.append(
        f"celery {run_id}: Parquet read back from s3://{BUCKET}/lake/{{words,pages}}/ds={day}: "
        f"{len(per_doc)} documents, "
        f"{len(pages)} page rows (1..N each, one request per document), {len(words)} word rows, "
        f"0 duplicates; {len(listed)} objects under lake/, no stray object or unfinished upload"
    )
    return counts


def check_iceberg(ctx: st.Context, day: str, parquet: dict[str, int], run_id: str) -> dict[str, int]:
    """The run's commit_tables step: the day's rows in the Iceberg tables on the PostgreSQL catalog.

    Read with pyiceberg from the catalog and the bucket, as a table reader would: the same rows as
    the day's Parquet, every word once, and one snapshot per table for the run.
    """
    from pyiceberg.catalog import load_catalog
    from pyiceberg.expressions import EqualTo

    catalog = load_catalog(
        "upstage",  # the operator's catalog_name: a SQL catalog keeps its tables under it
        type="sql",
        uri=ctx.env["UPSTAGE_INGEST_CATALOG_URI"],
        **{
            "s3.endpoint": ctx.extra["moto_url"],
            "s3.access-key-id": S3_KEY,
            "s3.secret-access-key": S3_SECRET,
            "s3.region": S3_REGION,
        },
    )
    warehouse = ctx.env["UPSTAGE_INGEST_WAREHOUSE"]
    counts: dict[str, int] = {}
    for kind, key in (("pages", "page_rows"), ("words", "word_rows")):
        table = catalog.load_table(f"upstage_ocr.{kind}")
        rows = table.scan(row_filter=EqualTo("ds", day)).to_arrow()
        if rows.num_rows != parquet[key]:
            raise st.SystemTestFailure(
                f"celery {run_id}: upstage_ocr.{kind} has {rows.num_rows} rows for ds={day}, "
                f"the Parquet {parquet[key]}"
            )
        columns = ["document_uri", "page"] + (["word_id"] if kind == "words" else [])
        keys = set(zip(*(rows[c].to_pylist() for c in columns), strict=True))
        if len(keys) != rows.num_rows:
            raise st.SystemTestFailure(
                f"celery {run_id}: upstage_ocr.{kind} has {rows.num_rows - len(keys)} duplicate rows"
            )
        if not str(table.location()).startswith(warehouse):
            raise st.SystemTestFailure(
                f"celery {run_id}: upstage_ocr.{kind} lives at {table.location()}, not under {warehouse}"
            )
        counts[f"iceberg_{kind}_rows"] = rows.num_rows
        counts[f"iceberg_{kind}_snapshots"] = len(table.metadata.snapshots)
    ctx.checks.append(
        f"celery {run_id}: Iceberg upstage_ocr.words/pages on the PostgreSQL catalog, files in "
        f"{warehouse}: {counts['iceberg_words_rows']} word rows and {counts['iceberg_pages_rows']} page rows "
        "for the day, as in the Parquet, 0 duplicates"
    )
    return counts


def describe(result: CeleryRun) -> list[str]:
    """Summary lines: the counts to quote."""
    if not result.workers:
        return []
    lines = [f"celery: {result.workers} workers + 1 replacement"]
    if result.kill:
        lines.append(
            f"celery: worker-1 SIGKILLed {result.kill['seconds_after_trigger']} s after the trigger, with "
            f"{result.kill['deferred']} sensors deferred, {result.kill['submits_running']} submits running, "
            f"{result.kill['submits_done']} done; running on it: "
            f"{', '.join(result.kill['running_on_victim'])}"
        )
    if result.counts:
        lines.append("celery: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    return lines
