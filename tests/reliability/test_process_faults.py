"""Process-level faults: real child processes SIGKILLed at the worst moment, real mounts.

- the triggerer killed mid-poll and started again from the trigger's serialized kwargs;
- the worker killed after its submit reached the API, then the same task instance run again;
- the worker killed while a big Parquet file is being written, then retried;
- the output folder on a full or read-only file system (a 64 KiB tmpfs, a read-only bind mount).

The children are ``tests/reliability/proc_*.py``, started with this interpreter and the test's
environment (connections, AIRFLOW_HOME, the database), so they see what the test set up.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.s3_fixtures import S3
from upstage_provider import ledger, publish
from upstage_provider.compat import AirflowException, AirflowFailException
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.emulator.synthetic import SyntheticEngine
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.operators.ocr import UpstageOCROperator
from upstage_provider.parquet import STALE_TEMP_SECONDS, output_file_name
from upstage_provider.sensors.ocr import UpstageOCRSensor
from upstage_provider.status import RequestState
from upstage_provider.triggers.ocr import UpstageOCRTrigger

REPO = Path(__file__).resolve().parents[2]
#: A guard against hangs, not a performance bound: children import Airflow, slow on a busy box.
PATIENCE = 120.0


# --- child processes ----------------------------------------------------------------------------


class Child:
    """A ``python -m tests.reliability.<module>`` process whose stdout is read line by line."""

    def __init__(self, module: str, *args: str, log: Path) -> None:
        self.log = log
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"tests.reliability.{module}", *args],
            cwd=REPO,
            env=dict(os.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []

    def expect(self, prefix: str) -> str:
        """Block until the child prints a line starting with ``prefix``; returns that line."""
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(PATIENCE)
                raise AssertionError(
                    f"child exited {self.proc.returncode} before printing {prefix!r}; "
                    f"stdout {self.lines}, stderr tail:\n{self.log.read_text(errors='replace')[-3000:]}"
                )
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL: no ``finally``, no atexit, no flush; exactly what an OOM kill or lost node does."""
        assert self.proc.poll() is None, "the child finished before it could be killed"
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(PATIENCE) == -signal.SIGKILL

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(PATIENCE)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def start(module: str, *args: str) -> Child:
        child = Child(module, *args, log=tmp_path / f"child-{len(children)}-{module}.log")
        children.append(child)
        return child

    yield start
    for child in children:
        child.close()


def wait_until(condition: Callable[[], bool], what: str, interval: float = 0.005) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def calls(server: EmulatorServer, endpoint: str) -> int:
    return int(server.stats()["endpoints"].get(endpoint, {}).get("total", 0))


# --- 5: the triggerer killed mid-poll -----------------------------------------------------------


def _submit(conn_id: str, pages: int) -> str:
    hook = UpstageOCRHook(conn_id)
    try:
        return hook.submit(load_document(make_pdf(pages), name="scan.pdf"))
    finally:
        hook.close()


def _state(conn_id: str, request_id: str) -> RequestState:
    hook = UpstageOCRHook(conn_id)
    try:
        return hook.get_request(request_id).status
    finally:
        hook.close()


def _kill_mid_poll(server: EmulatorServer, child: Child, kwargs: dict[str, Any]) -> None:
    before = calls(server, "status")
    child.send(json.dumps(kwargs))
    child.expect("POLLING")
    wait_until(lambda: calls(server, "status") >= before + 2, "the trigger's second status call")
    child.kill()


def test_trigger_killed_mid_poll_resumes_the_same_request_from_its_serialized_kwargs(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], spawn: Callable[..., Child]
) -> None:
    # 20 pages at 0.1 s each on one worker: about 2 s of work, so the kill lands mid-poll.
    server = make_emulator(FaultConfig(latency_per_page=0.1), workers=1)
    conn_id = connect(server.url)
    first, restarted = spawn("proc_trigger", "-"), spawn("proc_trigger", "-")
    first.expect("READY")
    restarted.expect("READY")
    request_id = _submit(conn_id, 20)
    trigger = UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05, deadline=time.time() + 600)
    classpath, kwargs = trigger.serialize()
    assert classpath == "upstage_provider.triggers.ocr.UpstageOCRTrigger"
    json.dumps(kwargs)  # primitives only: what the triggerer stores in the database

    _kill_mid_poll(server, first, kwargs)
    assert _state(conn_id, request_id) is not RequestState.COMPLETED, "the kill was not mid-poll"
    assert not any(line.startswith("EVENT") for line in first.lines)

    restarted.send(json.dumps(kwargs))
    events = json.loads(restarted.expect("EVENT"))
    assert restarted.proc.wait(PATIENCE) == 0
    assert len(events) == 1
    assert events[0]["status"] == "success"
    assert events[0]["request_id"] == request_id
    assert events[0]["total_pages"] == 20
    assert server.stats()["submissions"] == 1


def test_trigger_restarted_after_its_deadline_times_out_at_once(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str], spawn: Callable[..., Child]
) -> None:
    # 20 pages at 0.5 s each on one worker: the request outlives the whole test.
    server = make_emulator(FaultConfig(latency_per_page=0.5), workers=1)
    conn_id = connect(server.url)
    first, restarted = spawn("proc_trigger", "-"), spawn("proc_trigger", "-")
    first.expect("READY")
    restarted.expect("READY")
    request_id = _submit(conn_id, 20)
    deadline = time.time() + 2.0
    kwargs = UpstageOCRTrigger(request_id, conn_id, poll_interval=0.05, deadline=deadline).serialize()[1]

    _kill_mid_poll(server, first, kwargs)
    wait_until(lambda: time.time() > deadline + 0.1, "the deadline to pass", interval=0.05)

    before = calls(server, "status")
    restarted.send(json.dumps(kwargs))
    events = json.loads(restarted.expect("EVENT"))
    assert [e["status"] for e in events] == ["timeout"]
    assert events[0]["request_id"] == request_id
    assert "did not finish before the sensor's timeout" in events[0]["message"]
    # At once: one status call, then the deadline carried in the kwargs ends the wait.
    assert calls(server, "status") - before == 1
    assert _state(conn_id, request_id) is not RequestState.COMPLETED
    assert server.stats()["submissions"] == 1


# --- 6: the worker killed after the submit reached the API --------------------------------------

PAGES = 3
WORDS_PER_PAGE = 40  # tests.emulator_fixtures' synthetic engine


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    ("earlier_request_fails", "logical_date", "submissions"),
    [(False, "2026-11-24T01:00:00+00:00", 1), (True, "2026-11-24T02:00:00+00:00", 2)],
    ids=["reattaches", "submits-anew-after-a-failed-request"],
)
def test_worker_killed_after_submit_then_the_same_task_instance_runs_again(
    earlier_request_fails: bool,
    logical_date: str,
    submissions: int,
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    spawn: Callable[..., Child],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    faults = FaultConfig(fail_request_message="engine crashed") if earlier_request_fails else FaultConfig()
    server = make_emulator(faults)
    conn_id = connect(server.url, conn_id="upstage_default")
    document = tmp_path / "scan.pdf"
    document.write_bytes(make_pdf(PAGES))
    lake = tmp_path / "lake"
    monkeypatch.setenv("UPSTAGE_RELIABILITY_DOCUMENT", str(document))
    monkeypatch.setenv("UPSTAGE_RELIABILITY_OUTPUT", str(lake))
    # One Fernet key for both workers, as a deployment has: without it each process makes up its
    # own, and the retry cannot read the Variables the killed try encrypted.
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())

    worker = spawn("proc_dag_run", "upstage_reliability_pipeline", logical_date)
    # SIGKILL the moment the ledger holds the request id: the worker may not even have returned
    # from the submit call, let alone finished the task. (A kill between the upload and that record
    # is a different case: the retry submits again; see tests/reliability/test_ledger.py.)
    wait_until(lambda: _recorded_request(logical_date) is not None, "the recorded submission", interval=0.002)
    worker.kill()
    assert server.stats()["submissions"] == 1
    assert not (lake / "words").exists()
    if earlier_request_fails:
        listed = UpstageOCRHook(conn_id).list_requests()
        assert len(listed) == 1
        wait_until(
            lambda: _state(conn_id, listed[0]["id"]) is RequestState.FAILED, "the first request to fail"
        )
        server.set_faults(FaultConfig())

    # Same dag_id, task_id, run_id (manual__<logical date>) and map_index: the same task instance.
    retry = spawn("proc_dag_run", "upstage_reliability_pipeline", logical_date, "--rerun")
    assert retry.expect("RUN_ID") == f"manual__{logical_date}"
    assert retry.expect("STATE") == "success"
    assert retry.proc.wait(PATIENCE) == 0
    assert server.stats()["submissions"] == submissions, "\n".join(retry.lines)

    words = pads.dataset(lake / "words").to_table()
    assert words.num_rows == PAGES * WORDS_PER_PAGE
    keys = list(zip(words["page"].to_pylist(), words["word_id"].to_pylist(), strict=True))
    assert len(set(keys)) == len(keys)
    assert set(words["document_uri"].to_pylist()) == {str(document)}
    assert pads.dataset(lake / "pages").to_table().num_rows == PAGES


def _recorded_request(logical_date: str) -> str | None:
    """The request id the submit task's ledger entry holds in the task state store, if any yet."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    with create_session() as session:
        values = session.scalars(
            select(TaskStateStoreModel.value).where(
                TaskStateStoreModel.run_id == f"manual__{logical_date}",
                TaskStateStoreModel.task_id == "submit",
            )
        ).all()
    for value in values:
        request_id = json.loads(value).get("request_id")
        if request_id:
            return str(request_id)
    return None


def test_the_opt_in_reattachment_takes_only_the_one_request_with_the_documents_page_sizes(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    """``reattach_unrecorded``'s look-up: page count, every page's size, the window, one match only."""
    hook = UpstageOCRHook(connect(emulator.url))
    letter = load_document(make_pdf(PAGES), name="scan.pdf")
    since = time.time()
    ours = hook.submit(letter)
    same_count_other_size = hook.submit(load_document(make_pdf(PAGES, size=(595, 842)), name="a4.pdf"))
    other_count = hook.submit(load_document(make_pdf(PAGES + 1), name="other.pdf"))
    for request_id in (ours, same_count_other_size, other_count):
        wait_until(lambda r=request_id: _state(hook.conn_id, r) is RequestState.COMPLETED, "completion", 0.02)
    assert ledger.find_unrecorded_submission(hook, letter, since) == ours
    assert ledger.find_unrecorded_submission(hook, letter, since - ledger.PENDING_AFTER - 60) is None
    twin = hook.submit(letter)  # e.g. another task instance killed at the same moment
    wait_until(lambda: _state(hook.conn_id, twin) is RequestState.COMPLETED, "completion", 0.02)
    assert ledger.find_unrecorded_submission(hook, letter, since) is None, "two matches: never guess"
    hook.close()


# --- 7: the worker killed in the middle of the Parquet write ------------------------------------

DOC_URI = "s3://inbox/scans/big-scan.pdf"


def _write(spawn: Callable[..., Child], out: Path, batches: int, delay: float, tag: str) -> tuple[int, int]:
    """Run a writer child to the end; returns (words, pages) it reports."""
    child = spawn("proc_write", str(out), DOC_URI, str(batches), "2", "1500", str(delay), tag)
    words, pages = child.expect("DONE").split()
    assert child.proc.wait(PATIENCE) == 0
    return int(words), int(pages)


def _visible(folder: Path) -> tuple[list[str], Any]:
    """What readers see: the ``*.parquet`` glob and a pyarrow dataset of the folder."""
    return sorted(p.name for p in folder.glob("*.parquet")), pads.dataset(folder).to_table()


def _temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp-*"))


def test_writer_killed_mid_write_leaves_readers_the_earlier_file_and_the_retry_replaces_it(
    spawn: Callable[..., Child], tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    name = output_file_name(DOC_URI)
    words_dir = out / "words"
    v1_words, _ = _write(spawn, out, batches=2, delay=0.0, tag="v1")

    # v2: 40 batches of 3,000 words, 50 ms apart: a temp file that grows for seconds.
    writer = spawn("proc_write", str(out), DOC_URI, "40", "2", "1500", "0.05", "v2")
    writer.expect("BATCH 3")
    sizes: list[int] = []
    while len(sizes) < 2 or sizes[-1] <= sizes[0]:
        temps = _temps(words_dir)
        if temps:
            sizes.append(temps[0].stat().st_size)
        names, table = _visible(words_dir)
        assert names == [name]
        assert table.num_rows == v1_words
        assert set(table["text"].to_pylist()) == {"v1"}
        time.sleep(0.01)
    writer.kill()

    leftovers = _temps(words_dir) + _temps(out / "pages")
    assert len(leftovers) == 2, "a SIGKILLed writer runs no clean-up: its temporaries stay"
    assert writer.lines[-1].startswith("BATCH")
    assert not any(line.startswith("DONE") for line in writer.lines)
    names, table = _visible(words_dir)
    assert names == [name]
    assert (table.num_rows, set(table["text"].to_pylist())) == (v1_words, {"v1"})
    assert pq.read_metadata(words_dir / name).metadata[b"upstage.words"] == str(v1_words).encode()

    # The retry comes after Airflow's retry delay: by then the killed writer's files are stale.
    # A younger temporary of the same name (a concurrent run) and another document's stale one
    # must survive it.
    aged = time.time() - STALE_TEMP_SECONDS - 60
    for path in leftovers:
        os.utime(path, (aged, aged))
    concurrent = words_dir / f".{name}.tmp-{'a' * 32}"
    concurrent.write_bytes(b"in flight")
    other = words_dir / f".other-0123456789ab.parquet.tmp-{'b' * 32}"
    other.write_bytes(b"someone else's")
    os.utime(other, (aged, aged))

    v3_words, v3_pages = _write(spawn, out, batches=3, delay=0.0, tag="v3")
    for path in leftovers:
        assert not path.exists(), f"{path.name} was not cleaned up by the retry"
    assert concurrent.exists()
    assert other.exists()
    names, table = _visible(words_dir)
    assert names == [name]
    assert table.num_rows == v3_words == 3 * 2 * 1500
    assert set(table["text"].to_pylist()) == {"v3"}
    ids = table["word_id"].to_pylist()
    assert len(set(ids)) == len(ids), "duplicate rows"
    pages = pads.dataset(out / "pages").to_table()
    assert pages.num_rows == v3_pages == 6
    assert sorted(pages["page"].to_pylist()) == list(range(1, 7))
    assert _temps(out / "pages") == []


# --- 7b: the worker killed in the middle of a multipart upload to S3 (moto) ---------------------


def _s3_write(spawn: Callable[..., Child], root: str, batches: int, words_per_page: int, tag: str) -> int:
    child = spawn("proc_write", root, DOC_URI, str(batches), "2", str(words_per_page), "0", tag, "random")
    words, _ = child.expect("DONE").split()
    assert child.proc.wait(PATIENCE) == 0
    return int(words)


def _parts(s3: S3, upload: dict[str, Any]) -> int:
    listed = s3.client().list_parts(Bucket="lake", Key=upload["Key"], UploadId=upload["UploadId"])
    return len(listed.get("Parts", []))


def test_writer_killed_mid_multipart_upload_leaves_nothing_visible_on_s3(
    spawn: Callable[..., Child], s3_env_credentials: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL after the first 8 MiB part of a words file: readers still list only the earlier pair."""
    s3 = s3_env_credentials
    root = "s3://lake/ocr"
    name = output_file_name(DOC_URI)
    words_key, pages_key = f"ocr/words/{name}", f"ocr/pages/{name}"
    v1_words = _s3_write(spawn, root, batches=1, words_per_page=10, tag="v1")
    published = {key: s3.get("lake", key) for key in (words_key, pages_key)}
    assert s3.uploads("lake") == [], "a small file is one PUT"

    # v2: a first batch of 100,000 noisy words (about 10 MiB of Parquet: over one 8 MiB part),
    # then a long pause before the second, which never comes.
    writer = spawn("proc_write", root, DOC_URI, "2", "2", "50000", "0", "v2", "random")
    writer.expect("BATCH 1")
    wait_until(
        lambda: any(u["Key"] == words_key and _parts(s3, u) >= 1 for u in s3.uploads("lake")),
        "the first part of the words upload",
        0.02,
    )
    writer.kill()

    (killed,) = s3.uploads("lake")
    assert killed["Key"] == words_key
    assert _parts(s3, killed) >= 1
    assert s3.keys("lake") == sorted([pages_key, words_key]), "no temporary or partial object is listed"
    assert {key: s3.get("lake", key) for key in published} == published, "the earlier pair is intact"

    # The retry replaces the pair; its clean-up aborts the killed writer's upload once it is stale
    # (a younger one might be a concurrent run's, so it is left alone).
    v3_words = _s3_write(spawn, root, batches=1, words_per_page=30, tag="v3")
    assert [u["UploadId"] for u in s3.uploads("lake")] == [killed["UploadId"]]
    monkeypatch.setattr(publish, "STALE_TEMP_SECONDS", 0.0)
    assert publish.abort_stale_uploads(s3_filesystem(), f"lake/{words_key}") == 1
    assert s3.uploads("lake") == []
    assert s3.keys("lake") == sorted([pages_key, words_key])
    table = pq.read_table(io.BytesIO(s3.get("lake", words_key)))
    assert table.num_rows == v3_words == 60 != v1_words
    assert {t.split("-")[0] for t in table["text"].to_pylist()} == {"v3"}


def s3_filesystem() -> Any:
    """An s3fs filesystem from the environment (the ``AWS_*`` variables), as the writer child has."""
    import fsspec

    return fsspec.filesystem("s3", skip_instance_cache=True)


# --- 8: output storage failing: a full disk, a read-only file system -----------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _read_only(folder: Path, mounts: list[Path]) -> None:
    """Bind-mount ``folder`` onto itself read-only (root ignores file modes, not a read-only mount)."""
    _mount("--bind", str(folder), str(folder))
    mounts.append(folder)
    _mount("-o", "remount,bind,ro", str(folder))


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount at the end (lazily, so a held file cannot leave one behind)."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_full_disk_fails_the_operator_for_a_retry_naming_the_file_and_leaves_nothing(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    mounts: list[Path],
    tmp_path: Path,
) -> None:
    full = tmp_path / "full"
    full.mkdir()
    _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full))
    mounts.append(full)
    server = make_emulator(engine=SyntheticEngine(words_per_page=3000))
    conn_id = connect(server.url)
    document = tmp_path / "scan.pdf"
    document.write_bytes(make_pdf(4))
    operator = UpstageOCROperator(
        task_id="ocr", document=str(document), output_uri=str(full), conn_id=conn_id, mode="sync"
    )
    with pytest.raises(AirflowException) as raised:
        operator.execute({})
    assert not isinstance(raised.value, AirflowFailException), "a full disk is worth a retry"
    message = str(raised.value)
    assert f"could not write {full}/" in message
    assert output_file_name(str(document)) in message
    assert "No space left on device" in message
    assert _files(full) == []
    assert server.stats()["endpoints"]["sync"]["total"] == 1


class DictStateStore(dict):  # type: ignore[type-arg]
    """The task state store's calls the ledger makes, for an operator run outside a DAG."""

    def set(self, key: str, value: Any, **_: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_read_only_output_fails_the_operator_before_any_paid_call(
    mode: str,
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    mounts: list[Path],
    tmp_path: Path,
) -> None:
    server = make_emulator()
    conn_id = connect(server.url)
    document = tmp_path / "scan.pdf"
    document.write_bytes(make_pdf(2))
    lake = tmp_path / "lake"
    lake.mkdir()
    _read_only(lake, mounts)
    operator = UpstageOCROperator(
        task_id="ocr",
        document=str(document),
        output_uri=str(lake),
        partition="ds=2026-11-24",
        conn_id=conn_id,
        mode=mode,
    )
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({"task_state_store": DictStateStore()})  # type: ignore[arg-type]
    message = str(raised.value)
    assert "Read-only file system" in message
    assert "check permissions or choose another output_uri" in message
    assert calls(server, "sync") + calls(server, "submit") == 0, "OCR that cannot be written was paid for"
    assert server.stats()["submissions"] == 0
    assert _files(lake) == []


def test_read_only_output_fails_the_sensor_for_good_before_it_waits_and_keeps_the_earlier_files(
    make_emulator: Callable[..., EmulatorServer],
    connect: Callable[..., str],
    mounts: list[Path],
    tmp_path: Path,
) -> None:
    server = make_emulator()
    conn_id = connect(server.url)
    document = tmp_path / "scan.pdf"
    document.write_bytes(make_pdf(2))
    request_id = UpstageOCRHook(conn_id).submit(load_document(document))
    lake = tmp_path / "lake"
    sensor = UpstageOCRSensor(
        task_id="land",
        request_id=request_id,
        output_uri=str(lake),
        conn_id=conn_id,
        document=str(document),
        deferrable=True,
        poll_interval=0.05,
    )
    wait_until(lambda: _state(conn_id, request_id) is RequestState.COMPLETED, "the request", interval=0.05)
    sensor.execute({})  # the earlier, good version
    before = {name: (lake / name).read_bytes() for name in _files(lake)}
    assert len(before) == 2

    _read_only(lake, mounts)
    status_calls = calls(server, "status")
    with pytest.raises(AirflowFailException) as raised:
        sensor.execute({})
    message = str(raised.value)
    # Found before the wait and the download, not after them.
    assert f"output_uri {lake} is not writable" in message
    assert "Read-only file system" in message
    assert "check permissions or choose another output_uri" in message
    assert calls(server, "status") == status_calls
    assert {name: (lake / name).read_bytes() for name in _files(lake)} == before
