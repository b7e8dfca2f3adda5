"""upstage_provider.lineage without Airflow runs: dataset names, schemas, facets, the fallbacks."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import fsspec
import pyarrow as pa
import pytest

from upstage_provider import lineage
from upstage_provider.parquet import PAGES_SCHEMA, WORDS_SCHEMA


def as_json(obj: Any) -> Any:
    """What the transport writes: the OpenLineage client's own serialization."""
    from openlineage.client.serde import Serde

    return json.loads(Serde.to_json(obj))


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://inbox/scans/a.pdf", ("s3://inbox", "scans/a.pdf")),
        ("s3://aws_default@inbox/scans/a.pdf", ("s3://inbox", "scans/a.pdf")),  # conn id dropped
        ("s3://key:secret@inbox/a.pdf", ("s3://inbox", "a.pdf")),  # credentials never in a name
        ("s3://inbox", ("s3://inbox", "/")),
        ("S3://inbox/a.pdf", ("s3://inbox", "a.pdf")),
        ("gs://bucket/dir/a.png", ("gs://bucket", "dir/a.png")),
        ("gs://google_cloud_default@bucket/a.png", ("gs://bucket", "a.png")),
        (
            "abfs://container@acct.dfs.core.windows.net/dir/a.pdf",
            ("abfs://container@acct.dfs.core.windows.net", "dir/a.pdf"),
        ),
        ("abfs://wasb_default@container/dir/a.pdf", ("abfs://container", "dir/a.pdf")),
        ("/in/scan.pdf", ("file", "/in/scan.pdf")),
        ("file:///in/scan.pdf", ("file", "/in/scan.pdf")),
        ("/in/../in/scan.pdf", ("file", "/in/scan.pdf")),
        (
            "https://files.example.com:8443/a.pdf?X-Amz-Signature=abc#x",
            ("https://files.example.com:8443", "a.pdf"),
        ),
        ("memory://inbox/a.pdf", ("memory://inbox", "a.pdf")),
        # A split document's part is the document itself.
        ("/in/long.pdf#pages=1001-2000", ("file", "/in/long.pdf")),
        ("s3://inbox/long.pdf#pages=1-1000", ("s3://inbox", "long.pdf")),
    ],
)
def test_dataset_names_follow_the_openlineage_conventions(uri: str, expected: tuple[str, str]) -> None:
    assert lineage.dataset_name(uri) == expected


def test_a_relative_path_is_named_by_its_absolute_path(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert lineage.dataset_name("inbox/a.pdf") == ("file", str(tmp_path / "inbox" / "a.pdf"))


def test_namespaces_and_sources_carry_no_credentials() -> None:
    assert lineage.safe_namespace("postgresql://ocr:s3cret@db:5432/catalog?sslmode=require") == (
        "postgresql://db:5432/catalog"
    )
    assert lineage.safe_namespace("sqlite:////var/lake/catalog.db") == "sqlite:////var/lake/catalog.db"
    assert lineage.safe_namespace("s3://warehouse/") == "s3://warehouse"
    assert lineage.api_source("http://127.0.0.1:8765") == "upstage://127.0.0.1:8765"
    assert lineage.api_source("https://api.upstage.ai") == "upstage://api.upstage.ai"
    assert lineage.api_source("") == lineage.DEFAULT_API_SOURCE


def test_the_schema_facet_is_the_parquet_schema_with_nested_types() -> None:
    fields = lineage.schema_fields(WORDS_SCHEMA)
    assert [f["name"] for f in fields] == WORDS_SCHEMA.names
    by_name = {f["name"]: f for f in fields}
    assert by_name["page"]["type"] == "int32"
    assert by_name["word_id"]["type"] == "int64"
    assert by_name["confidence"] == {
        "name": "confidence",
        "type": "double",
        "description": None,
        "fields": [],
    }
    assert by_name["text"]["description"] == "not null"
    assert by_name["processed_at"]["type"] == "timestamp[us, tz=UTC]"
    polygon = by_name["polygon"]
    assert polygon["type"] == "list"
    (item,) = polygon["fields"]
    assert item["type"] == "struct"
    assert [(f["name"], f["type"]) for f in item["fields"]] == [("x", "double"), ("y", "double")]
    assert lineage.arrow_type_name(pa.map_(pa.string(), pa.int32())) == "map"
    assert lineage.arrow_type_name(pa.large_list(pa.int8())) == "list"


def written(tmp_path: Any) -> dict[str, Any]:
    words, pages = tmp_path / "words.parquet", tmp_path / "pages.parquet"
    words.write_bytes(b"x" * 1234)
    pages.write_bytes(b"y" * 56)
    return {
        "request_id": "req-1",
        "words_uri": str(words),
        "pages_uri": str(pages),
        "pages": 3,
        "words": 120,
        "model_version": "ocr-2.2.1",
    }


def test_a_landed_document_is_one_input_two_outputs_and_the_request(tmp_path: Any) -> None:
    summary = written(tmp_path)
    result = lineage.ocr_lineage("s3://aws_default@inbox/a.pdf", summary, source="upstage://h:1")
    assert [(d.namespace, d.name) for d in result.inputs] == [("s3://inbox", "a.pdf")]
    outputs = [as_json(o) for o in result.outputs]
    assert [(o["namespace"], o["name"]) for o in outputs] == [
        ("file", summary["words_uri"]),
        ("file", summary["pages_uri"]),
    ]
    assert [f["name"] for f in outputs[0]["facets"]["schema"]["fields"]] == WORDS_SCHEMA.names
    assert [f["name"] for f in outputs[1]["facets"]["schema"]["fields"]] == PAGES_SCHEMA.names
    assert outputs[0]["outputFacets"]["outputStatistics"] == {
        **outputs[0]["outputFacets"]["outputStatistics"],
        "rowCount": 120,
        "size": 1234,
        "fileCount": 1,
    }
    assert outputs[1]["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert outputs[1]["outputFacets"]["outputStatistics"]["size"] == 56
    facets = {key: as_json(value) for key, value in result.run_facets.items()}
    assert facets["externalQuery"]["externalQueryId"] == "req-1"
    assert facets["externalQuery"]["source"] == "upstage://h:1"
    upstage = facets["upstage_ocr"]
    assert (upstage["pages"], upstage["words"], upstage["modelVersion"]) == (3, 120, "ocr-2.2.1")
    assert "billedPages" not in upstage  # not in this summary: left out, not guessed


def test_the_cost_fields_and_parts_are_taken_when_the_summary_has_them(tmp_path: Any) -> None:
    summary = {
        **written(tmp_path),
        "request_id": "a,b",
        "billed_pages": 3,
        "estimated_cost": 0.045,
        "partition": "ds=2026-11-24",
        "parts": [{"request_id": "a"}, {"request_id": "b"}],
    }
    upstage = as_json(lineage.run_facets("a,b", summary=summary)["upstage_ocr"])
    assert (upstage["billedPages"], upstage["estimatedCost"], upstage["parts"]) == (3, 0.045, 2)


def test_a_file_whose_size_cannot_be_read_has_its_rows_but_no_size(tmp_path: Any) -> None:
    summary = {**written(tmp_path), "words_uri": str(tmp_path / "gone.parquet")}
    words = as_json(lineage.file_datasets(summary)[0])
    assert words["outputFacets"]["outputStatistics"]["rowCount"] == 120
    assert "size" not in words["outputFacets"]["outputStatistics"]


def test_sizes_are_read_through_the_output_locations_filesystem() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/lake/words/a.parquet", b"z" * 77)
    assert lineage.file_size("memory:///lake/words/a.parquet", fs) == 77
    assert lineage.file_size("memory:///lake/words/missing.parquet", fs) is None


def test_a_submission_has_the_document_and_its_requests_but_no_outputs() -> None:
    result = lineage.submit_lineage("/in/a.pdf", ["r1"], pages=12)
    assert [(d.namespace, d.name) for d in result.inputs] == [("file", "/in/a.pdf")]
    assert result.outputs == []
    assert result.run_facets["externalQuery"].externalQueryId == "r1"
    assert result.run_facets["upstage_ocr"].pages == 12
    assert result.run_facets["upstage_ocr"].parts is None
    split = lineage.submit_lineage("/in/long.pdf", ["r1", "r2"])
    assert split.run_facets["externalQuery"].externalQueryId == "r1,r2"
    assert split.run_facets["upstage_ocr"].parts == 2


def test_an_unknown_document_is_no_input() -> None:
    result = lineage.ocr_lineage("upstage://requests/abc", None)
    assert result.inputs == []
    assert result.outputs == []
    assert lineage.document_dataset(None) is None


def test_a_failure_carries_the_error_with_its_stack_trace() -> None:
    try:
        raise ValueError("scan.gif: GIF is not supported")
    except ValueError as exc:
        error = exc
    result = lineage.failure_lineage("/in/scan.gif", "req-9", error)
    facet = as_json(result.run_facets["errorMessage"])
    assert facet["message"] == "scan.gif: GIF is not supported"
    assert facet["programmingLanguage"] == "python"
    assert facet["stackTrace"].startswith("Traceback (most recent call last):")
    assert result.run_facets["externalQuery"].externalQueryId == "req-9"
    assert "upstage_ocr" not in result.run_facets
    assert [(d.namespace, d.name) for d in result.inputs] == [("file", "/in/scan.gif")]
    assert "errorMessage" not in lineage.failure_lineage("/in/a.pdf", None, None).run_facets


def test_the_task_error_is_read_from_the_context_the_task_runner_keeps() -> None:
    class TaskInstance:
        def __init__(self, context: dict[str, Any]) -> None:
            self.context = context

        def get_template_context(self) -> dict[str, Any]:
            return self.context

    error = RuntimeError("boom")
    assert lineage.task_error(TaskInstance({"exception": error})) is error
    assert lineage.task_error(TaskInstance({})) is None
    assert lineage.task_error(object()) is None


def test_iceberg_tables_are_named_by_identifier_in_the_catalogs_namespace() -> None:
    ds_schema = WORDS_SCHEMA.append(pa.field("ds", pa.string(), nullable=False))
    words, pages = (
        as_json(d)
        for d in lineage.table_datasets(
            "iceberg",
            "upstage_ocr.words",
            "upstage_ocr.pages",
            namespace="postgresql://ocr:s3cret@db:5432/catalog",
            words_rows=120,
            pages_rows=3,
            words_bytes=9000,
            words_schema=ds_schema,
        )
    )
    assert (words["namespace"], words["name"]) == ("postgresql://db:5432/catalog", "upstage_ocr.words")
    assert (pages["namespace"], pages["name"]) == ("postgresql://db:5432/catalog", "upstage_ocr.pages")
    assert [f["name"] for f in words["facets"]["schema"]["fields"]] == [*WORDS_SCHEMA.names, "ds"]
    assert [f["name"] for f in pages["facets"]["schema"]["fields"]] == PAGES_SCHEMA.names
    assert words["facets"]["storage"]["storageLayer"] == "iceberg"
    assert words["facets"]["storage"]["fileFormat"] == "parquet"
    assert words["outputFacets"]["outputStatistics"]["rowCount"] == 120
    assert words["outputFacets"]["outputStatistics"]["size"] == 9000
    assert pages["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert "size" not in pages["outputFacets"]["outputStatistics"]
    assert "s3cret" not in json.dumps([words, pages])


def test_delta_tables_are_named_by_their_location(tmp_path: Any) -> None:
    words, pages = lineage.table_datasets(
        "delta", "s3://aws_default@lake/warehouse/words", str(tmp_path / "pages"), words_rows=1
    )
    assert (words.namespace, words.name) == ("s3://lake", "warehouse/words")
    assert (pages.namespace, pages.name) == ("file", str(tmp_path / "pages"))
    assert words.facets["storage"].storageLayer == "delta"
    assert pages.outputFacets == {}  # no counts given: no statistics facet


def test_table_datasets_refuse_what_they_cannot_name() -> None:
    with pytest.raises(ValueError, match="table_format"):
        lineage.table_datasets("hudi", "a", "b")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="namespace"):
        lineage.table_datasets("iceberg", "upstage_ocr.words", "upstage_ocr.pages")


def test_without_the_openlineage_provider_everything_is_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """As when the [openlineage] extra is not installed: nothing raises, nothing is built."""
    for name in (
        "airflow.providers.openlineage",
        "airflow.providers.openlineage.extractors",
        "openlineage",
        "openlineage.client",
        "openlineage.client.generated",
        "openlineage.client.generated.base",
    ):
        monkeypatch.setitem(sys.modules, name, None)
    assert lineage.ocr_lineage("/in/a.pdf", written(tmp_path)) is None
    assert lineage.submit_lineage("/in/a.pdf", ["r1"]) is None
    assert lineage.failure_lineage("/in/a.pdf", "r1", RuntimeError("x")) is None
    assert lineage.document_dataset("/in/a.pdf") is None
    assert lineage.file_datasets(written(tmp_path)) == []
    assert lineage.table_datasets("delta", "/w/words", "/w/pages") == []


def test_importing_the_module_needs_neither_airflow_nor_openlineage() -> None:
    code = (
        "import sys\n"
        "import upstage_provider.lineage\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'openlineage')]\n"
        "print(loaded)\n"
    )
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.stdout.strip() == "[]"
