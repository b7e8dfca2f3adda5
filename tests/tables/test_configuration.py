"""How the table operator is configured: the example DAG's environment, catalog connections, extras."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.tables.landed import land
from upstage_provider.compat import AirflowFailException
from upstage_provider.operators.table import UpstageOCRTableOperator, catalog_properties_from_connection
from upstage_provider.tables import from_environment


def test_no_format_means_files_only() -> None:
    assert from_environment({}) is None
    assert from_environment({"UPSTAGE_INGEST_TABLE_FORMAT": " "}) is None


def test_delta_tables_sit_under_the_warehouse(tmp_path: Path) -> None:
    kwargs = from_environment(
        {"UPSTAGE_INGEST_TABLE_FORMAT": "Delta", "UPSTAGE_INGEST_WAREHOUSE": "s3://lake/tables/"}
    )
    assert kwargs == {
        "table_format": "delta",
        "words_table": "s3://lake/tables/words",
        "pages_table": "s3://lake/tables/pages",
    }
    local = from_environment(
        {"UPSTAGE_INGEST_TABLE_FORMAT": "delta", "UPSTAGE_INGEST_WAREHOUSE": str(tmp_path)}
    )
    assert local is not None
    assert local["words_table"] == f"{tmp_path}/words"


def test_iceberg_uses_the_sql_catalog_with_the_warehouse(tmp_path: Path) -> None:
    kwargs = from_environment(
        {
            "UPSTAGE_INGEST_TABLE_FORMAT": "iceberg",
            "UPSTAGE_INGEST_WAREHOUSE": str(tmp_path / "wh"),
            "UPSTAGE_INGEST_CATALOG_URI": "postgresql+psycopg2://u:p@127.0.0.1:5432/cat",
        }
    )
    assert kwargs == {
        "table_format": "iceberg",
        "words_table": "upstage_ocr.words",
        "pages_table": "upstage_ocr.pages",
        "catalog_properties": {
            "type": "sql",
            "uri": "postgresql+psycopg2://u:p@127.0.0.1:5432/cat",
            "warehouse": (tmp_path / "wh").as_uri(),
        },
    }
    rest = from_environment(
        {"UPSTAGE_INGEST_TABLE_FORMAT": "iceberg", "UPSTAGE_INGEST_CATALOG_URI": "http://127.0.0.1:8181"}
    )
    assert rest is not None
    assert rest["catalog_properties"] == {"uri": "http://127.0.0.1:8181"}  # pyiceberg infers type=rest


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"UPSTAGE_INGEST_TABLE_FORMAT": "hudi"}, "use iceberg, delta"),
        ({"UPSTAGE_INGEST_TABLE_FORMAT": "delta"}, "needs UPSTAGE_INGEST_WAREHOUSE"),
        ({"UPSTAGE_INGEST_TABLE_FORMAT": "iceberg"}, "needs UPSTAGE_INGEST_CATALOG_URI"),
        (
            {"UPSTAGE_INGEST_TABLE_FORMAT": "iceberg", "UPSTAGE_INGEST_CATALOG_URI": "sqlite:////x.db"},
            "WAREHOUSE",
        ),
    ],
)
def test_incomplete_settings_name_the_missing_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_environment(env)


def test_the_environment_runs_the_operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = tmp_path / "lake"
    summary = land(lake, "ds=2026-11-24", "/in/a.pdf", 2)
    monkeypatch.setenv("UPSTAGE_INGEST_TABLE_FORMAT", "iceberg")
    monkeypatch.setenv("UPSTAGE_INGEST_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv("UPSTAGE_INGEST_CATALOG_URI", f"sqlite:///{tmp_path}/catalog.db")
    kwargs = from_environment()
    assert kwargs is not None
    result = UpstageOCRTableOperator(task_id="tables", summaries=[summary], **kwargs).execute(context={})  # type: ignore[arg-type]
    assert result["rows"] == {"words": 10, "pages": 2}
    assert result["tables"]["words"]["location"].startswith((tmp_path / "wh").as_uri())


def test_a_catalog_connection_maps_host_login_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "generic",
        "host": "https://catalog.example",
        "port": 8181,
        "login": "client",
        "password": "s3cret-value",
        "extra": {"warehouse": "lake", "type": "rest"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_TEST", json.dumps(conn))
    assert catalog_properties_from_connection("iceberg_test") == {
        "uri": "https://catalog.example:8181",
        "credential": "client:s3cret-value",
        "oauth2-server-uri": "https://catalog.example:8181/v1/oauth/tokens",
        "warehouse": "lake",
        "type": "rest",
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_ICEBERG_TOKEN", json.dumps({"conn_type": "generic", "password": "tok-123456"})
    )
    assert catalog_properties_from_connection("iceberg_token") == {"token": "tok-123456"}


def test_a_catalog_connection_runs_the_operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"type": "sql", "uri": f"sqlite:///{tmp_path}/c.db", "warehouse": (tmp_path / "wh").as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_SQL", json.dumps({"conn_type": "generic", "extra": extra}))
    op = UpstageOCRTableOperator(
        task_id="tables",
        table_format="iceberg",
        words_table="ocr.words",
        pages_table="ocr.pages",
        catalog_conn_id="iceberg_sql",
        summaries=[land(tmp_path / "lake", "ds=2026-11-24", "/in/a.pdf", 1)],
    )
    assert op.execute(context={})["tables"]["pages"]["rows"] == 1  # type: ignore[arg-type]


def test_a_missing_extra_names_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "deltalake", None)  # as if deltalake were not installed
    op = UpstageOCRTableOperator(
        task_id="tables",
        table_format="delta",
        words_table=str(tmp_path / "words"),
        pages_table=str(tmp_path / "pages"),
        summaries=[land(tmp_path / "lake", "ds=2026-11-24", "/in/a.pdf", 1)],
    )
    with pytest.raises(AirflowFailException, match=r"airflow-provider-upstage\[delta\]"):
        op.execute(context={})  # type: ignore[arg-type]


def test_arguments_are_checked_when_the_dag_is_parsed() -> None:
    common = {"task_id": "t", "table_format": "delta", "words_table": "w", "pages_table": "p"}
    with pytest.raises(ValueError, match="summaries"):
        UpstageOCRTableOperator(**common)
    with pytest.raises(ValueError, match="not both"):
        UpstageOCRTableOperator(**common, summaries=[], output_uri="/lake")
    with pytest.raises(ValueError, match="needs partition"):
        UpstageOCRTableOperator(**common, output_uri="/lake")


def test_catalog_secrets_are_masked_in_the_rendered_fields() -> None:
    """Airflow's own key names miss ``credential`` and a URI's password; the operator registers them."""
    from airflow.sdk._shared.secrets_masker import redact

    properties = {
        "type": "sql",
        "uri": "postgresql+psycopg2://ocr:pg_SECRET_93f1@db.example/catalog",
        "credential": "client-id:client_SECRET_5d2e",
        "warehouse": "s3://lake/warehouse",
    }
    op = UpstageOCRTableOperator(
        task_id="commit_tables",
        table_format="iceberg",
        words_table="upstage_ocr.words",
        pages_table="upstage_ocr.pages",
        catalog_properties=properties,
        output_uri="/lake",
        partition="ds=2026-11-24",
    )
    op.render_template_fields(context={})  # type: ignore[arg-type]

    shown = str(redact(op.catalog_properties, "catalog_properties"))
    assert "pg_SECRET_93f1" not in shown
    assert "client_SECRET_5d2e" not in shown
    assert "db.example" in shown
    assert "s3://lake/warehouse" in shown
