"""Iceberg through a REST catalog: the table operator against a real REST server on 127.0.0.1.

The server (``tests/tables/rest_catalog.py``) wants a bearer token on every call, a known
warehouse, and answers a stale commit with 409, as the spec's servers do; everything goes over
HTTP with pyiceberg's ``RestCatalog``.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.tables.conftest import REST_CLIENT, REST_TOKEN, RestWarehouse
from tests.tables.landed import WORDS_PER_PAGE, land
from tests.tables.rest_catalog import RestCatalogServer
from tests.tables.test_concurrency import race, rows_of
from tests.tables.test_operator import DAY1, DAY2, per_document, run
from upstage_provider.compat import AirflowFailException
from upstage_provider.operators.table import UpstageOCRTableOperator


@pytest.fixture
def warehouse(rest_catalog: RestCatalogServer, tmp_path: Path) -> RestWarehouse:
    (tmp_path / "tables").mkdir()
    return RestWarehouse(tmp_path / "tables", rest_catalog.uri, token=REST_TOKEN)


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "generic", **fields}))
    return conn_id


def test_first_run_creates_partitioned_sorted_tables_through_rest(
    warehouse: RestWarehouse, rest_catalog: RestCatalogServer, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"

    summary = run(warehouse, [land(lake, DAY1, "/in/b.pdf", 2), None, land(lake, DAY1, "/in/a.pdf", 3)])

    assert summary["rows"] == {"words": 5 * WORDS_PER_PAGE, "pages": 5}
    assert summary["tables"]["words"]["created"] is True
    # Created by the server's catalog, in its warehouse: the operator went through REST.
    table = rest_catalog.catalog.load_table("upstage_ocr.words")
    assert table.location().startswith((tmp_path / "rest" / "warehouse").as_uri())
    assert summary["tables"]["words"]["location"] == table.location()
    (field,) = table.spec().fields
    assert (table.schema().find_column_name(field.source_id), str(field.transform)) == ("ds", "identity")
    sort = [table.schema().find_column_name(f.source_id) for f in table.sort_order().fields]
    assert sort == ["document_uri", "page", "word_id"]
    pages = rest_catalog.catalog.load_table("upstage_ocr.pages")
    assert [pages.schema().find_column_name(f.source_id) for f in pages.sort_order().fields] == [
        "document_uri",
        "page",
    ]
    assert len(table.history()) == 1  # one commit (the staged create with the rows) per table
    # A staged create and one commit per table, each accepted at once.
    assert rest_catalog.statuses[("POST", "create_table", 200)] == 2
    assert rest_catalog.statuses[("POST", "commit", 200)] == 2
    assert rest_catalog.conflicts() == 0
    assert warehouse.read("words").num_rows == 5 * WORDS_PER_PAGE


@pytest.mark.parametrize(
    "auth",
    [{"password": REST_TOKEN}, {"login": REST_CLIENT[0], "password": REST_CLIENT[1]}],
    ids=["password-is-the-token", "login-and-password-are-oauth2-client-credentials"],
)
def test_a_catalog_connection_reruns_a_day_once_and_adds_the_next(
    rest_catalog: RestCatalogServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    auth: dict[str, str],
) -> None:
    host, port = rest_catalog.uri.rsplit(":", 1)
    conn_id = connection(
        monkeypatch, "iceberg_rest", host=host, port=int(port), extra={"warehouse": "lake"}, **auth
    )
    lake = tmp_path / "lake"
    day1 = [land(lake, DAY1, "/in/a.pdf", 2), land(lake, DAY1, "/in/b.pdf", 1)]
    caplog.set_level(logging.DEBUG)

    def commit(landed: list[dict[str, Any]]) -> dict[str, Any]:
        op = UpstageOCRTableOperator(
            task_id="tables",
            table_format="iceberg",
            words_table="upstage_ocr.words",
            pages_table="upstage_ocr.pages",
            catalog_conn_id=conn_id,
            summaries=landed,
        )
        return op.execute(context={})  # type: ignore[arg-type]

    commit(day1)
    again = commit(day1)
    commit([land(lake, DAY2, "/in/a.pdf", 4)])

    assert again["tables"]["words"]["created"] is False
    reader = RestWarehouse(tmp_path, rest_catalog.uri, token=REST_TOKEN)
    words = reader.read("words")
    assert per_document(words) == {
        ("2026-11-24", "/in/a.pdf"): 2 * WORDS_PER_PAGE,
        ("2026-11-24", "/in/b.pdf"): WORDS_PER_PAGE,
        ("2026-11-25", "/in/a.pdf"): 4 * WORDS_PER_PAGE,
    }
    keys = collections.Counter(
        zip(
            words["ds"].to_pylist(),
            words["document_uri"].to_pylist(),
            words["word_id"].to_pylist(),
            strict=True,
        )
    )
    assert set(keys.values()) == {1}
    assert per_document(reader.read("pages"))[("2026-11-24", "/in/a.pdf")] == 2
    if "login" in auth:  # the client credentials were exchanged for the token
        assert rest_catalog.statuses[("POST", "token", 200)] >= 1
    # Not one call was refused: the secret reached the server each time, and no log shows it.
    assert not [k for k in rest_catalog.statuses if k[2] == 401]
    out, err = capfd.readouterr()
    for secret in (REST_TOKEN, REST_CLIENT[1]):
        assert secret not in caplog.text
        assert secret not in out + err


@pytest.mark.parametrize("shared", [False, True], ids=["other-documents", "reruns-sharing-a-data-file"])
def test_two_runs_committing_at_once_both_land_after_a_409(
    warehouse: RestWarehouse,
    rest_catalog: RestCatalogServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    shared: bool,
) -> None:
    """With ``shared``, one run wrote all four documents first: both reruns delete from its data file."""
    lake = tmp_path / "lake"
    run(warehouse, [land(lake, "ds=2026-11-23", "/in/old.pdf", 1)])
    if shared:
        run(warehouse, [land(lake, DAY1, f"/in/{d}.pdf", 1) for d in "abcd"])
    first = rows_of(lake, DAY1, ["/in/a.pdf", "/in/b.pdf"], 2)
    other = rows_of(lake, DAY1, ["/in/c.pdf", "/in/d.pdf"], 3)
    caplog.set_level(logging.WARNING)

    results, loaded = race(warehouse, [first, other])

    assert len(set(loaded)) == 1, f"both runs must start from the same snapshot, got {loaded}"
    words = warehouse.read("words")
    counts = collections.Counter(zip(words["ds"].to_pylist(), words["document_uri"].to_pylist(), strict=True))
    assert counts == {
        ("2026-11-23", "/in/old.pdf"): WORDS_PER_PAGE,
        ("2026-11-24", "/in/a.pdf"): 2 * WORDS_PER_PAGE,
        ("2026-11-24", "/in/b.pdf"): 2 * WORDS_PER_PAGE,
        ("2026-11-24", "/in/c.pdf"): 3 * WORDS_PER_PAGE,
        ("2026-11-24", "/in/d.pdf"): 3 * WORDS_PER_PAGE,
    }
    assert rest_catalog.conflicts() >= 1, "the loser's stale commit must have been refused with 409"
    retried = [r.getMessage() for r in caplog.records if "concurrent" in r.getMessage()]
    assert retried, "the loser must have retried"
    if shared:
        # pyiceberg's own retry cannot redo a delete from a file the winner rewrote: the operator did.
        assert sorted(r.attempts for r in results) == [1, 2]


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        ({"token": "tok_WRONG_SECRET_51c3"}, "invalid bearer token"),
        ({}, "invalid bearer token"),  # pyiceberg sends "Bearer None" without one
        (
            {
                "credential": f"{REST_CLIENT[0]}:client_WRONG_SECRET_0b9e",
                "oauth2-server-uri": "{uri}/v1/oauth/tokens",
            },
            "invalid_client",
        ),
    ],
    ids=["wrong-token", "no-token", "wrong-client-secret"],
)
def test_a_refused_catalog_fails_the_task_clearly_without_the_secret(
    rest_catalog: RestCatalogServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    auth: dict[str, str],
    reason: str,
) -> None:
    auth = {k: v.format(uri=rest_catalog.uri) for k, v in auth.items()}
    warehouse = RestWarehouse(tmp_path, rest_catalog.uri, **auth)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(AirflowFailException, match="refused the credentials") as failed:
        run(warehouse, [land(tmp_path / "lake", DAY1, "/in/a.pdf", 1)])

    message = str(failed.value)
    assert rest_catalog.uri in message
    assert "***" in message or not auth  # the server echoed the secret; the error hides it
    assert reason in message
    out, err = capfd.readouterr()
    for secret in ("WRONG_SECRET", REST_TOKEN, REST_CLIENT[1]):
        assert secret not in message
        assert secret not in caplog.text
        assert secret not in out + err
    assert not rest_catalog.catalog.list_namespaces()


def test_an_unknown_warehouse_fails_the_task_clearly(rest_catalog: RestCatalogServer, tmp_path: Path) -> None:
    warehouse = RestWarehouse(tmp_path, rest_catalog.uri, token=REST_TOKEN)
    warehouse.catalog_properties["warehouse"] = "elsewhere"
    with pytest.raises(AirflowFailException, match=r"no warehouse 'elsewhere'.*check its properties"):
        run(warehouse, [land(tmp_path / "lake", DAY1, "/in/a.pdf", 1)])


def test_the_example_dags_environment_reaches_a_rest_catalog(
    rest_catalog: RestCatalogServer, tmp_path: Path
) -> None:
    """UPSTAGE_INGEST_* name the catalog; the token is pyiceberg's PYICEBERG_CATALOG__UPSTAGE__TOKEN.

    A fresh interpreter, because pyiceberg reads its environment once, when it is imported.
    """
    summary = land(tmp_path / "lake", DAY1, "/in/a.pdf", 2)
    script = (
        "import json, sys\n"
        "from upstage_provider.operators.table import UpstageOCRTableOperator\n"
        "from upstage_provider.tables import from_environment\n"
        "kwargs = from_environment()\n"
        "op = UpstageOCRTableOperator(task_id='tables', summaries=[json.loads(sys.argv[1])], **kwargs)\n"
        "print(json.dumps({'kwargs': kwargs, 'rows': op.execute(context={})['rows']}))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "UPSTAGE_INGEST_TABLE_FORMAT": "iceberg",
        "UPSTAGE_INGEST_CATALOG_URI": rest_catalog.uri,
        "UPSTAGE_INGEST_WAREHOUSE": "lake",
        "PYICEBERG_CATALOG__UPSTAGE__TOKEN": REST_TOKEN,
    }
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(summary)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kwargs"]["catalog_properties"] == {"uri": rest_catalog.uri, "warehouse": "lake"}
    assert result["rows"] == {"words": 2 * WORDS_PER_PAGE, "pages": 2}
    assert rest_catalog.catalog.load_table("upstage_ocr.pages").scan().to_arrow().num_rows == 2
    assert REST_TOKEN not in done.stdout + done.stderr
