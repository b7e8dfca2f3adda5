"""OpenLineage events of real dag.test() runs, written by the file transport and read back.

The suite turns OpenLineage off (tests/conftest.py). ``openlineage_events`` configures the file
transport through ``[openlineage] transport`` and registers the provider's listener with the task
SDK's listener manager, as the OpenLineage provider's own system tests do: the plugin decides
whether it has a listener once per process, when plugins are first loaded, which in this suite
has long happened. That the plugin does register it from the same configuration in a fresh
process is checked in ``test_the_provider_plugin_registers_the_listener_from_the_configuration``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest

from tests.emulator_fixtures import pdf_bytes as make_pdf
from tests.integration.test_dags import load_dag, returned
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.parquet import PAGES_SCHEMA, WORDS_SCHEMA

Events = Callable[[], list[dict[str, Any]]]
DAG_FILE = "upstage_lineage_dags.py"

#: START events of a deferrable task: one per run of it, so 2 when it deferred and resumed, 1 when
#: the request was done at its first look (on a slow machine, or Airflow 3.1's slower dag.test()).
DEFERRABLE_STARTS = (1, 2)


def _clear_openlineage_conf() -> None:
    """The provider caches every ``[openlineage]`` option for the process."""
    from airflow.providers.openlineage import conf as ol_conf

    for value in vars(ol_conf).values():
        clear = getattr(value, "cache_clear", None)
        if callable(clear) and getattr(value, "__module__", "") == ol_conf.__name__:
            clear()


@pytest.fixture
def openlineage_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Events]:
    """The OpenLineage listener on, writing to a file transport; returns a reader of the events."""
    from airflow.listeners.listener import get_listener_manager as core_listener_manager
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener

    try:
        from airflow.sdk.listener import get_listener_manager
    except ImportError:  # Airflow 3.1: the core's manager serves the task SDK too
        get_listener_manager = core_listener_manager
    # Plugins load once per process, here (if no earlier test loaded them) with the suite's
    # `disabled`: loaded after the switch below, the plugin would add a listener of its own.
    manager = get_listener_manager()
    core_listener_manager()
    assert not manager.has_listeners, "the suite's OpenLineage switch (tests/conftest.py) is not off"
    log_file = tmp_path / "openlineage" / "events.jsonl"
    log_file.parent.mkdir()
    transport = {"type": "file", "log_file_path": str(log_file), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    # The listener's default forks the task process per event; a thread is the provider's opt-in
    # alternative and keeps pytest (and the emulator's server thread) from being forked.
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    _clear_openlineage_conf()
    listener = OpenLineageListener()
    manager.add_listener(listener)

    def read() -> list[dict[str, Any]]:
        if not log_file.exists():
            return []
        return [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]

    try:
        yield read
    finally:
        manager.pm.unregister(listener)
        _clear_openlineage_conf()


def task_events(events: list[dict[str, Any]], dag_id: str, task_id: str) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["job"]["name"] == f"{dag_id}.{task_id}":
            by_type.setdefault(event["eventType"], []).append(event)
    return by_type


def only(events: dict[str, list[dict[str, Any]]], event_type: str) -> dict[str, Any]:
    found = events.get(event_type, [])
    assert len(found) == 1, f"{len(found)} {event_type} events: {sorted(events)}"
    return found[0]


def dataset(path: str | Path) -> dict[str, str]:
    return {"namespace": "file", "name": str(path)}


def names(datasets: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"namespace": d["namespace"], "name": d["name"]} for d in datasets]


def schema_names(output: dict[str, Any]) -> list[str]:
    return [field["name"] for field in output["facets"]["schema"]["fields"]]


def check_outputs(event: dict[str, Any], summary: dict[str, Any]) -> None:
    """The words and pages files as outputs: names, schemas, rows and bytes as written."""
    outputs = {o["name"]: o for o in event["outputs"]}
    assert sorted(outputs) == sorted([summary["words_uri"], summary["pages_uri"]])
    for uri, schema in ((summary["words_uri"], WORDS_SCHEMA), (summary["pages_uri"], PAGES_SCHEMA)):
        output = outputs[uri]
        assert output["namespace"] == "file"
        assert schema_names(output) == schema.names
        stats = output["outputFacets"]["outputStatistics"]
        assert stats["rowCount"] == pq.read_metadata(uri).num_rows
        assert stats["size"] == os.path.getsize(uri) > 0
        assert stats["fileCount"] == 1
    words = outputs[summary["words_uri"]]
    polygon = next(f for f in words["facets"]["schema"]["fields"] if f["name"] == "polygon")
    assert polygon["type"] == "list"
    assert [f["name"] for f in polygon["fields"][0]["fields"]] == ["x", "y"]
    assert outputs[summary["words_uri"]]["outputFacets"]["outputStatistics"]["rowCount"] == summary["words"]
    assert outputs[summary["pages_uri"]]["outputFacets"]["outputStatistics"]["rowCount"] == summary["pages"]


def check_run_facets(event: dict[str, Any], summary: dict[str, Any], source: str) -> None:
    """The request as the external query, the Upstage facet with what the Parquet holds."""
    facets = event["run"]["facets"]
    words = pq.read_table(summary["words_uri"])
    request_ids = set(words["request_id"].to_pylist())
    if summary["request_id"] is None:
        assert "externalQuery" not in facets
    else:
        assert request_ids == {summary["request_id"]}
        assert facets["externalQuery"]["externalQueryId"] == summary["request_id"]
        assert facets["externalQuery"]["source"] == source
    upstage = facets["upstage_ocr"]
    assert upstage["pages"] == pq.read_metadata(summary["pages_uri"]).num_rows == summary["pages"]
    assert upstage["words"] == words.num_rows
    assert upstage["modelVersion"] == summary["model_version"]
    assert set(words["model_version"].to_pylist()) == {upstage["modelVersion"]}
    assert upstage["modelVersion"]
    # Billed pages arrive with the cost work (issue 13, section 4); until then they are unknown.
    assert upstage.get("billedPages") == summary.get("billed_pages")
    assert upstage["_schemaURL"].endswith("UpstageOCRRunFacet.json#/$defs/UpstageOCRRunFacet")


@pytest.fixture
def lineage_env(
    monkeypatch: pytest.MonkeyPatch, connect: Callable[..., str], tmp_path: Path
) -> Callable[[EmulatorServer], dict[str, Path]]:
    def configure(server: EmulatorServer) -> dict[str, Path]:
        connect(server.url, conn_id="upstage_default")
        inbox = tmp_path / "inbox"
        inbox.mkdir(exist_ok=True)
        paths = {
            "async": inbox / "scan-12-pages.pdf",
            "one_task": inbox / "scan-4-pages.pdf",
            "sync": inbox / "scan-2-pages.pdf",
            "bad": inbox / "broken.pdf",
            "output": tmp_path / "lake",
        }
        paths["async"].write_bytes(make_pdf(12))
        paths["one_task"].write_bytes(make_pdf(4))
        paths["sync"].write_bytes(make_pdf(2))
        paths["bad"].write_bytes(b"%PDF-1.7\nthis is not a PDF body at all\n")
        for key, name in (
            ("async", "ASYNC_DOCUMENT"),
            ("one_task", "ONE_TASK_DOCUMENT"),
            ("sync", "SYNC_DOCUMENT"),
            ("bad", "BAD_DOCUMENT"),
            ("output", "OUTPUT"),
        ):
            monkeypatch.setenv(f"UPSTAGE_LINEAGE_{name}", str(paths[key]))
        return paths

    return configure


@pytest.mark.usefixtures("airflow_db")
def test_every_task_emits_its_document_files_and_request(
    openlineage_events: Events,
    make_emulator: Callable[..., EmulatorServer],
    lineage_env: Callable[[EmulatorServer], dict[str, Path]],
) -> None:
    # Slow enough pages that both waiting tasks defer: their COMPLETE comes from the resumed task.
    server = make_emulator(faults=FaultConfig(latency_per_page=0.2))
    paths = lineage_env(server)
    source = f"upstage://{urlsplit(server.url).netloc}"
    dag = load_dag(DAG_FILE, "upstage_lineage_pipeline")

    run = dag.test()
    assert run.state == "success"
    events = openlineage_events()
    dag_id = "upstage_lineage_pipeline"

    # The submission: the document in, nothing out yet, the request it made.
    submit = task_events(events, dag_id, "submit")
    assert submit.get("START"), sorted(submit)
    complete = only(submit, "COMPLETE")
    request_id = returned(run, "submit")
    assert names(complete["inputs"]) == [dataset(paths["async"])]
    assert complete["outputs"] == []
    assert complete["run"]["facets"]["externalQuery"] == {
        **complete["run"]["facets"]["externalQuery"],
        "externalQueryId": request_id,
        "source": source,
    }
    assert complete["run"]["facets"]["upstage_ocr"]["pages"] == 12

    # The sensor (deferred, resumed) and the one-task operator (deferred, resumed; and sync).
    for task_id, document, starts in (
        ("wait_and_land", paths["async"], DEFERRABLE_STARTS),
        ("ocr_async", paths["one_task"], DEFERRABLE_STARTS),
        ("ocr_sync", paths["sync"], (1,)),
    ):
        emitted = task_events(events, dag_id, task_id)
        assert len(emitted.get("START", [])) in starts, (task_id, sorted(emitted))
        assert "FAIL" not in emitted
        complete = only(emitted, "COMPLETE")
        summary = returned(run, task_id)
        assert names(complete["inputs"]) == [dataset(document)], task_id
        check_outputs(complete, summary)
        check_run_facets(complete, summary, source)
    assert returned(run, "wait_and_land")["request_id"] == request_id
    assert returned(run, "ocr_sync")["request_id"] is None


@pytest.mark.usefixtures("airflow_db")
def test_failed_tasks_emit_the_error_with_their_document_and_request(
    openlineage_events: Events,
    make_emulator: Callable[..., EmulatorServer],
    lineage_env: Callable[[EmulatorServer], dict[str, Path]],
) -> None:
    # The first batch of every request fails, after its pages' latency: both waiting tasks defer.
    server = make_emulator(faults=FaultConfig(fail_batches=(0,), latency_per_page=0.2))
    paths = lineage_env(server)
    dag = load_dag(DAG_FILE, "upstage_lineage_failures")

    run = dag.test()
    assert run.state == "failed"
    events = openlineage_events()
    dag_id = "upstage_lineage_failures"
    request_id = returned(run, "submit")

    # The API failed the requests: each FAIL names the request, the document, the reason; the
    # one-task operator's after it was resumed from deferral.
    one_task = task_events(events, dag_id, "ocr_failed")
    one_task_request = one_task["FAIL"][0]["run"]["facets"].get("externalQuery", {}).get("externalQueryId")
    for task_id, document, request in (
        ("wait_and_land", paths["async"], request_id),
        ("ocr_failed", paths["one_task"], one_task_request),
    ):
        emitted = task_events(events, dag_id, task_id)
        failed = only(emitted, "FAIL")
        assert "COMPLETE" not in emitted
        facets = failed["run"]["facets"]
        assert "could not be processed (injected fault)" in facets["errorMessage"]["message"]
        assert facets["errorMessage"]["programmingLanguage"] == "python"
        assert request
        assert facets["externalQuery"]["externalQueryId"] == request
        assert request in facets["errorMessage"]["message"]
        assert names(failed["inputs"]) == [dataset(document)]
        assert failed["outputs"] == []
        assert len(emitted["START"]) in DEFERRABLE_STARTS, task_id

    # A document refused before any API call: the document and the reason, no request.
    failed = only(task_events(events, dag_id, "bad_document"), "FAIL")
    facets = failed["run"]["facets"]
    assert "broken.pdf" in facets["errorMessage"]["message"]
    assert facets["errorMessage"]["programmingLanguage"] == "python"
    assert "Traceback" in facets["errorMessage"]["stackTrace"]
    assert "externalQuery" not in facets
    assert names(failed["inputs"]) == [dataset(paths["bad"])]
    assert server.stats()["submissions"] == 2  # the broken document never reached the API


@pytest.mark.usefixtures("airflow_db")
def test_the_table_operator_emits_the_landed_files_in_and_the_tables_out(
    openlineage_events: Events,
    make_emulator: Callable[..., EmulatorServer],
    lineage_env: Callable[[EmulatorServer], dict[str, Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_emulator(faults=FaultConfig(latency_per_page=0.2))
    lineage_env(server)
    catalog_uri = f"sqlite:///{tmp_path}/catalog.db"
    monkeypatch.setenv("UPSTAGE_LINEAGE_CATALOG_URI", catalog_uri)
    monkeypatch.setenv("UPSTAGE_LINEAGE_WAREHOUSE", (tmp_path / "warehouse").as_uri())
    dag_id = "upstage_lineage_tables"
    dag = load_dag(DAG_FILE, dag_id)

    run = dag.test()
    assert run.state == "failed"  # the bad catalog's task, after the good one
    events = openlineage_events()
    landed = returned(run, "wait_and_land")
    committed = returned(run, "commit_tables")

    emitted = task_events(events, dag_id, "commit_tables")
    assert "FAIL" not in emitted
    complete = only(emitted, "COMPLETE")
    # In: the landed words and pages files, named as the sensor's outputs name them.
    sensor_outputs = names(only(task_events(events, dag_id, "wait_and_land"), "COMPLETE")["outputs"])
    assert names(complete["inputs"]) == [dataset(landed["words_uri"]), dataset(landed["pages_uri"])]
    assert sorted(map(str, names(complete["inputs"]))) == sorted(map(str, sensor_outputs))
    # Out: the two tables in the catalog's namespace, with the table schema and what was added.
    outputs = {o["name"]: o for o in complete["outputs"]}
    assert sorted(outputs) == ["upstage_ocr.pages", "upstage_ocr.words"]
    for kind, schema in (("words", WORDS_SCHEMA), ("pages", PAGES_SCHEMA)):
        output = outputs[f"upstage_ocr.{kind}"]
        assert output["namespace"] == catalog_uri
        assert schema_names(output) == [*schema.names, "ds"]
        stats = output["outputFacets"]["outputStatistics"]
        assert stats["rowCount"] == committed["tables"][kind]["rows"] == landed[kind] > 0
        assert stats["size"] == committed["tables"][kind]["bytes"] > 0
        assert output["facets"]["storage"]["storageLayer"] == "iceberg"
        assert output["facets"]["storage"]["fileFormat"] == "parquet"

    failed = only(task_events(events, dag_id, "commit_bad_catalog"), "FAIL")
    assert "COMPLETE" not in task_events(events, dag_id, "commit_bad_catalog")
    facets = failed["run"]["facets"]
    assert facets["errorMessage"]["programmingLanguage"] == "python"
    assert "unable to open database file" in facets["errorMessage"]["message"]
    assert names(failed["inputs"]) == names(complete["inputs"])
    assert failed["outputs"] == []


def test_the_provider_plugin_registers_the_listener_from_the_configuration(tmp_path: Path) -> None:
    """In a fresh process, ``[openlineage] transport`` alone turns the listener on; the suite's
    ``disabled`` (tests/conftest.py) keeps it off, so no other test's dag.test() emits anything."""
    probe = (
        "try:\n"
        "    from airflow.sdk.listener import get_listener_manager\n"
        "except ImportError:\n"  # Airflow 3.1: the core's manager serves the task SDK too
        "    from airflow.listeners.listener import get_listener_manager\n"
        "print(sorted(type(p).__name__ for p in get_listener_manager().pm.get_plugins()))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__OPENLINEAGE__", "OPENLINEAGE"))}
    transport = json.dumps({"type": "file", "log_file_path": str(tmp_path / "events.jsonl"), "append": True})

    def listeners(**extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    assert listeners(AIRFLOW__OPENLINEAGE__TRANSPORT=transport) == "['OpenLineageListener']"
    assert listeners(AIRFLOW__OPENLINEAGE__TRANSPORT=transport, AIRFLOW__OPENLINEAGE__DISABLED="True") == "[]"
