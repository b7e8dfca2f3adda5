"""The table operator with its warehouse, its tables and its input on a real S3 server (moto).

Iceberg: a SQL catalog on SQLite with the warehouse ``s3://lake/warehouse``; Delta: the tables
``s3://lake/delta/words`` and ``.../pages``; the landed Parquet under ``s3://lake/ocr``. Credentials
come from the Airflow connection ``aws_default`` (``s3_connection``: endpoint in its extra, no
``AWS_*`` variables) or from the environment only (``s3_env_credentials``: no connection), the
operator's default ``storage_conn_id`` in both cases.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.fault_proxy import Call, FaultProxy, Rule
from tests.s3_fixtures import ACCESS_KEY, REGION, S3, SECRET_KEY
from tests.tables.conftest import Warehouse
from tests.tables.landed import WORDS_PER_PAGE, ocr_result
from upstage_provider.locations import location
from upstage_provider.operators.table import UpstageOCRTableOperator, table_storage_options
from upstage_provider.parquet import DocumentMeta, output_file_name, write_ocr_parquet
from upstage_provider.tables.inputs import files_from_summaries, read_run

DAY1, DAY2 = "ds=2026-11-24", "ds=2026-11-25"
LAKE = "s3://lake/ocr"
DOCUMENTS = {"s3://inbox/scans/a.pdf": 2, "s3://inbox/scans/b.pdf": 3}


class S3Warehouse(Warehouse):
    """Tables on the moto server, read back with the test's own keys (not the operator's)."""

    def __init__(self, table_format: str, root: Path, endpoint: str) -> None:
        super().__init__(table_format, root)
        self.endpoint = endpoint
        self.catalog_properties = {
            "type": "sql",
            "uri": f"sqlite:///{root}/catalog.db",
            "warehouse": "s3://lake/warehouse",
        }

    def table(self, kind: str) -> str:
        return f"upstage_ocr.{kind}" if self.format == "iceberg" else f"s3://lake/delta/{kind}"

    def storage_options(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }

    def catalog(self) -> Any:
        from pyiceberg.catalog import load_catalog

        return load_catalog("upstage", **self.catalog_properties, **self.iceberg_io())

    def iceberg_io(self) -> dict[str, str]:
        return {
            "s3.endpoint": self.endpoint,
            "s3.access-key-id": ACCESS_KEY,
            "s3.secret-access-key": SECRET_KEY,
            "s3.region": REGION,
        }

    def read(self, kind: str) -> pa.Table:
        if self.format == "iceberg":
            return self.catalog().load_table(self.table(kind)).scan().to_arrow()
        from deltalake import DeltaTable

        return DeltaTable(self.table(kind), storage_options=self.storage_options()).to_pyarrow_table()

    def polars(self, kind: str) -> Any:
        import polars as pl

        if self.format == "iceberg":
            table = self.catalog().load_table(self.table(kind))
            return pl.scan_iceberg(table, storage_options=self.iceberg_io()).collect()
        return pl.scan_delta(self.table(kind), storage_options=self.storage_options()).collect()


@pytest.fixture(params=["iceberg", "delta"])
def s3_warehouse(request: pytest.FixtureRequest, tmp_path: Path, s3: S3) -> S3Warehouse:
    (tmp_path / "tables").mkdir()
    return S3Warehouse(str(request.param), tmp_path / "tables", s3.endpoint)


@pytest.fixture(params=["connection", "environment"])
def credentials(request: pytest.FixtureRequest) -> S3:
    """Where the credentials come from: the ``aws_default`` connection, or ``AWS_*`` variables only."""
    return request.getfixturevalue("s3_connection" if request.param == "connection" else "s3_env_credentials")


def land_s3(partition: str, document: str, pages: int, tag: str = "") -> dict[str, Any]:
    """One document landed on S3 by the provider's writer, as the sensor does; its summary."""
    written = write_ocr_parquet(
        [ocr_result(pages, tag=tag)],
        output_uri=location(LAKE, "aws_default"),
        meta=DocumentMeta(document, hashlib.sha256(document.encode()).hexdigest(), f"req-{tag}{pages}"),
        partition=partition,
    )
    return {
        "request_id": f"req-{tag}{pages}",
        "words_uri": written.words_uri,
        "pages_uri": written.pages_uri,
        "pages": written.pages,
        "words": written.words,
        "partition": partition,
    }


def run(warehouse: S3Warehouse, summaries: list[Any], **kwargs: Any) -> dict[str, Any]:
    op = UpstageOCRTableOperator(task_id="commit_tables", summaries=summaries, **warehouse.kwargs(), **kwargs)
    return op.execute(context={})  # type: ignore[arg-type]


def per_document(table: pa.Table) -> dict[tuple[str, str], int]:
    return dict(
        collections.Counter(zip(table["ds"].to_pylist(), table["document_uri"].to_pylist(), strict=True))
    )


#: Every object a run may leave in the lake bucket: landed files, table data and metadata.
_ALLOWED = {
    "iceberg": [
        r"ocr/(words|pages)/ds=[\d-]+/[\w.-]+\.parquet",
        r"warehouse/upstage_ocr/(words|pages)/data/ds=[\d-]+/[\w.-]+\.parquet",
        r"warehouse/upstage_ocr/(words|pages)/metadata/[\w.-]+\.(metadata\.json|avro)",
    ],
    "delta": [
        r"ocr/(words|pages)/ds=[\d-]+/[\w.-]+\.parquet",
        r"delta/(words|pages)/_delta_log/\d{20}\.json",
        r"delta/(words|pages)/ds=[\d-]+/part-[\w.-]+\.parquet",
    ],
}


def test_s3_tables_run_twice_keep_every_word_once_and_a_second_day_adds(
    s3_warehouse: S3Warehouse, credentials: S3, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = credentials
    caplog.set_level(logging.DEBUG)
    day1 = [land_s3(DAY1, d, p) for d, p in DOCUMENTS.items()]
    first = run(s3_warehouse, day1)
    again = run(s3_warehouse, [land_s3(DAY1, d, p) for d, p in DOCUMENTS.items()])
    second = run(s3_warehouse, [land_s3(DAY2, d, p, tag="d2") for d, p in DOCUMENTS.items()])

    expected = {(day[3:], d): p * WORDS_PER_PAGE for day in (DAY1, DAY2) for d, p in DOCUMENTS.items()}
    words = s3_warehouse.read("words")
    assert per_document(words) == expected
    keys = collections.Counter(
        zip(
            words["ds"].to_pylist(),
            words["document_uri"].to_pylist(),
            words["word_id"].to_pylist(),
            strict=True,
        )
    )
    assert set(keys.values()) == {1}, "every word once"
    pages = s3_warehouse.read("pages")
    assert sorted(per_document(pages).values()) == sorted(p for _ in (DAY1, DAY2) for p in DOCUMENTS.values())
    # Polars reads the same rows (scan_iceberg over the catalog's table, scan_delta with the options).
    frame = s3_warehouse.polars("words")
    assert frame.height == words.num_rows
    assert sorted(frame["ds"].unique().to_list()) == ["2026-11-24", "2026-11-25"]

    for summary in (first, again, second):
        assert summary["documents"] == 2
        assert summary["rows"]["words"] == 5 * WORDS_PER_PAGE
        for kind in ("words", "pages"):
            assert summary["tables"][kind]["bytes"] > 0
    if s3_warehouse.format == "iceberg":
        assert first["tables"]["words"]["location"] == "s3://lake/warehouse/upstage_ocr/words"
    else:
        assert first["tables"]["words"]["location"] == "s3://lake/delta/words"
        assert (first["tables"]["words"]["version"], second["tables"]["words"]["version"]) == (1, 3)

    # No stray objects: landed files, the tables' data and metadata; no temporaries, no open uploads.
    lake = s3.keys("lake")
    stray = [k for k in lake if not any(re.fullmatch(p, k) for p in _ALLOWED[s3_warehouse.format])]
    assert stray == []
    assert s3.uploads("lake") == []
    names = {output_file_name(d) for d in DOCUMENTS}
    assert {k.rsplit("/", 1)[-1] for k in lake if k.startswith("ocr/")} == names
    assert s3.keys("inbox") == []

    # The secret never reaches the logs (botocore's DEBUG lines included) or the XCom summary; the
    # key id (an identifier, in every request's signature botocore logs at DEBUG) not the summary
    # and no log line above DEBUG.
    returned = json.dumps([first, again, second])
    assert SECRET_KEY not in caplog.text + returned
    assert ACCESS_KEY not in returned
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG and ACCESS_KEY in r.getMessage()]


def test_storage_options_from_the_connection_and_from_the_environment(
    credentials: S3, request: pytest.FixtureRequest
) -> None:
    """The connection gives keys, endpoint and region; the environment only endpoint and region."""
    from_connection = "s3_connection" in request.fixturenames
    iceberg = table_storage_options("iceberg", "aws_default")
    delta = table_storage_options("delta", "aws_default")
    assert iceberg["s3.endpoint"] == delta["AWS_ENDPOINT_URL"] == credentials.endpoint
    assert iceberg["s3.region"] == delta["AWS_REGION"] == REGION
    assert delta["AWS_ALLOW_HTTP"] == "true"
    if from_connection:
        assert (iceberg["s3.access-key-id"], iceberg["s3.secret-access-key"]) == (ACCESS_KEY, SECRET_KEY)
        assert (delta["AWS_ACCESS_KEY_ID"], delta["AWS_SECRET_ACCESS_KEY"]) == (ACCESS_KEY, SECRET_KEY)
    else:  # left to the libraries' own chains, which read the variables (or the instance role) themselves
        assert not {"s3.access-key-id", "s3.secret-access-key"} & set(iceberg)
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(delta)


def test_delta_on_s3_commits_with_a_conditional_put_so_a_racing_writer_is_never_overwritten(
    s3_connection: S3,
) -> None:
    """A competitor commits the very log version we are about to PUT, between delta-rs' listing and
    its PUT (a proxy in front of moto runs it when our PUT arrives). The PUT carries ``If-None-Match:
    *``, moto answers 412, and our commit lands on the next version: no lock, no unsafe rename."""
    from upstage_provider.tables.delta import commit_delta

    s3 = s3_connection
    direct = S3Warehouse("delta", Path("/nonexistent"), s3.endpoint).storage_options()
    table = "s3://lake/delta/words"

    def rows(partition: str, documents: list[str], pages: int) -> Any:
        landed = files_from_summaries([land_s3(partition, d, pages) for d in documents], None)
        return read_run(landed, resolve=lambda uri: location(uri, "aws_default"))

    commit_delta(table, "words", rows(DAY1, ["s3://inbox/old.pdf"], 1), storage_options=direct)
    ours = rows(DAY1, ["s3://inbox/ours.pdf"], 2)
    theirs = rows(DAY1, ["s3://inbox/theirs.pdf"], 3)
    seen: list[dict[str, str]] = []

    def race_the_log_put(call: Call) -> bool:
        if not seen:
            seen.append(call.headers)
            commit_delta(table, "words", theirs, storage_options=direct)  # takes the version we PUT
        return False  # our PUT is then forwarded as it is

    port = int(s3.endpoint.rsplit(":", 1)[1])
    with FaultProxy(upstream_port=port) as proxy:
        proxy.add(Rule("answer", "PUT", "/lake/delta/words/_delta_log/", when=race_the_log_put))
        result = commit_delta(table, "words", ours, storage_options={**direct, "AWS_ENDPOINT_URL": proxy.url})

    assert len(seen) == 1
    assert seen[0].get("if-none-match") == "*", seen
    assert result.version == 3, "theirs took version 2, ours the next one"
    from deltalake import DeltaTable

    words = DeltaTable(table, storage_options=direct).to_pyarrow_table()
    assert per_document(words) == {
        ("2026-11-24", "s3://inbox/old.pdf"): WORDS_PER_PAGE,
        ("2026-11-24", "s3://inbox/ours.pdf"): 2 * WORDS_PER_PAGE,
        ("2026-11-24", "s3://inbox/theirs.pdf"): 3 * WORDS_PER_PAGE,
    }
    assert [k for k in s3.keys("lake", "delta/words/_delta_log/")] == [
        f"delta/words/_delta_log/{v:020d}.json" for v in range(4)
    ]
