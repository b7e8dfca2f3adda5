"""The table operator: commit a run's landed OCR Parquet into Iceberg or Delta words and pages tables."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator

from upstage_provider import lineage
from upstage_provider.compat import AirflowException, AirflowFailException, AirflowNotFoundException
from upstage_provider.locations import DEFAULT_STORAGE_CONN_ID, location
from upstage_provider.tables import TABLE_FORMATS
from upstage_provider.tables.commit import (
    DEFAULT_COMMIT_ATTEMPTS,
    CatalogAccessError,
    CommitConflictError,
    CommitResult,
)
from upstage_provider.tables.inputs import RunFiles, RunRows, files_from_summaries, files_in_folder, read_run
from upstage_provider.tables.schema import TableInputError, TableKind
from upstage_provider.tables.storage import (
    S3Credentials,
    credentials_from_environment,
    delta_storage_options,
    iceberg_properties,
    on_s3,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

KINDS: tuple[TableKind, ...] = ("words", "pages")


class UpstageOCRTableOperator(BaseOperator):
    """
    Commit the OCR results a run landed as Parquet into two tables, words and pages.

    Run it once after the per-document tasks (mapped sensors), reading all their files: each table
    gets ONE commit per run, not one per document. A commit replaces exactly this run's rows:
    those of ``partition`` whose ``document_uri`` is one of the documents this run landed (deleted
    and appended in one atomic commit), so a rerun never duplicates and other partitions, and
    documents this run did not land (a failed one keeps its earlier rows), stay as they are. Tables
    are created on first use, partitioned by the partition column, sorted by document and page.
    A commit that loses a race with a concurrent writer is retried from a fresh load. See
    docs/lakehouse.md; the logic lives in :mod:`upstage_provider.tables` (no Airflow there).

    :param table_format: ``"iceberg"`` or ``"delta"``.
    :param words_table: Iceberg identifier (``upstage_ocr.words``) or Delta table URI.
    :param pages_table: as ``words_table``, for the pages.
    :param catalog_properties: pyiceberg catalog properties, e.g. ``{"type": "sql", "uri":
        "sqlite:////data/catalog.db", "warehouse": "file:///data/warehouse"}`` or ``{"type":
        "rest", "uri": "https://catalog", "credential": "id:secret", "warehouse": "lake"}``.
    :param catalog_conn_id: an Airflow connection holding the catalog instead: its extra is the
        properties; ``host`` (with ``port``) is the ``uri``; ``login`` and ``password`` become
        ``credential`` (``login:password``, OAuth2 client credentials), a ``password`` alone a
        bearer ``token``. Keys in the extra win. Merged under ``catalog_properties``.
    :param catalog_name: the pyiceberg catalog name (the SQL catalog keeps its tables under it).
    :param summaries: the sensors' XCom summaries (``landed.output``); ``None`` entries (documents
        that failed) are skipped. The partition comes from ``partition``, the summaries'
        ``partition`` key, or the files' folder (``.../words/ds=2026-11-24/``).
    :param output_uri: instead of ``summaries``, the run's output root: every file of
        ``<output_uri>/words/<partition>/`` and ``<output_uri>/pages/<partition>/`` is committed.
    :param partition: the Hive partition, ``ds=2026-11-24`` (column ``ds``, a string).
    :param storage_conn_id: an ``aws`` connection for S3 (input files and warehouse), default
        ``aws_default`` as for the other operators. A connection that does not exist (or None)
        means the environment: ``AWS_*`` variables or the instance role, with the endpoint and
        region taken from ``AWS_ENDPOINT_URL``/``AWS_REGION`` for the table libraries too.
    :param commit_attempts: attempts per table commit when concurrent writers win the race.

    Returns ``{"table_format", "partition", "documents", "files", "rows": {"words", "pages"},
    "commit_attempts": {...}, "tables": {"words": {...}, "pages": {...}}}``, each table entry
    with its identifier, rows, bytes and files added, snapshot id (Iceberg) or version (Delta)
    and location; also kept on ``self.commit_results`` for lineage.
    """

    template_fields: Sequence[str] = (
        "table_format",
        "words_table",
        "pages_table",
        "catalog_properties",
        "catalog_conn_id",
        "catalog_name",
        "summaries",
        "output_uri",
        "partition",
        "storage_conn_id",
    )
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        table_format: str,
        words_table: str,
        pages_table: str,
        catalog_properties: Mapping[str, Any] | None = None,
        catalog_conn_id: str | None = None,
        catalog_name: str = "upstage",
        summaries: Any = None,
        output_uri: str | None = None,
        partition: str | None = None,
        storage_conn_id: str | None = DEFAULT_STORAGE_CONN_ID,
        commit_attempts: int = DEFAULT_COMMIT_ATTEMPTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if summaries is None and output_uri is None:
            raise ValueError("give summaries (the sensors' landed.output) or output_uri with partition")
        if summaries is not None and output_uri is not None:
            raise ValueError("give summaries or output_uri, not both")
        if output_uri is not None and not partition:
            raise ValueError("output_uri needs partition, e.g. partition='ds={{ ds }}'")
        if commit_attempts < 1:
            raise ValueError(f"commit_attempts must be at least 1, got {commit_attempts}")
        self.table_format = table_format
        self.words_table = words_table
        self.pages_table = pages_table
        self.catalog_properties = dict(catalog_properties) if catalog_properties else None
        self.catalog_conn_id = catalog_conn_id
        self.catalog_name = catalog_name
        self.summaries = summaries
        self.output_uri = output_uri
        self.partition = partition
        self.storage_conn_id = storage_conn_id
        self.commit_attempts = commit_attempts
        self.commit_results: dict[str, CommitResult] = {}
        # What lineage reports: the files read, the tables' schemas, where the Iceberg catalog is.
        self._lineage_inputs: tuple[str, ...] = ()
        self._lineage_schemas: dict[str, Any] = {}
        self._lineage_namespace: str | None = None

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render, then register the catalog's secrets with Airflow's masker.

        Airflow masks secret-named keys (``token``, ``s3.secret-access-key``) in the rendered
        fields it stores and shows, but not a REST ``credential`` or the password in a SQL
        catalog's ``uri``; registered here, they are masked there and in every log line.
        """
        super().render_template_fields(context, jinja_env)
        if not self.catalog_properties:
            return
        from upstage_provider.tables.iceberg import secret_values

        try:
            from airflow.sdk.log import mask_secret
        except ImportError:  # Airflow 3.1
            from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
        for secret in secret_values(self.catalog_properties):
            mask_secret(secret)

    def execute(self, context: Context) -> dict[str, Any]:
        table_format = str(self.table_format).strip().lower()
        if table_format not in TABLE_FORMATS:
            raise AirflowFailException(f"table_format {self.table_format!r}: use 'iceberg' or 'delta'")
        try:
            files = self._files()
            self._lineage_inputs = (*files.words, *files.pages)
            run = read_run(files, resolve=self._resolve)
        except TableInputError as exc:
            raise AirflowFailException(str(exc)) from None
        self._lineage_schemas = {kind: run.rows(kind).schema for kind in KINDS}
        tables = {"words": str(self.words_table), "pages": str(self.pages_table)}
        if run.documents:
            try:
                self.commit_results = self._commit(table_format, run, tables)
            except (ImportError, CatalogAccessError) as exc:
                raise AirflowFailException(str(exc)) from None
            except CommitConflictError as exc:
                raise AirflowException(str(exc)) from None
        else:
            self.log.info("%s: no landed documents, nothing to commit", run.partition.path)
        return {
            "table_format": table_format,
            "partition": run.partition.path,
            "documents": len(run.documents),
            "files": run.files,
            "rows": {kind: run.rows(kind).num_rows for kind in KINDS},
            "commit_attempts": {kind: r.attempts for kind, r in self.commit_results.items()},
            "tables": {kind: r.to_json() for kind, r in self.commit_results.items()},
        }

    def _files(self) -> RunFiles:
        if self.output_uri is not None:
            return files_in_folder(str(self.output_uri), str(self.partition), resolve=self._resolve)
        summaries = self.summaries
        if isinstance(summaries, Mapping):  # one unmapped sensor's summary
            summaries = [summaries]
        return files_from_summaries(list(summaries or []), self.partition or None)

    def _resolve(self, uri: str) -> Any:
        """Input files through Airflow's object storage, with the storage connection (``location``)."""
        return location(uri, conn_id=self.storage_conn_id or None)

    def _commit(self, table_format: str, run: RunRows, tables: dict[str, str]) -> dict[str, CommitResult]:
        results: dict[str, CommitResult] = {}
        if table_format == "iceberg":
            from upstage_provider.tables.iceberg import commit_iceberg, load_catalog

            properties = self.iceberg_catalog_properties()
            self._lineage_namespace = properties.get("uri") or properties.get("warehouse")
            catalog = load_catalog(str(self.catalog_name), properties)
            for kind in KINDS:
                results[kind] = commit_iceberg(
                    catalog, tables[kind], kind, run, attempts=self.commit_attempts
                )
        else:
            from upstage_provider.tables.delta import commit_delta

            options = table_storage_options("delta", self.storage_conn_id)
            for kind in KINDS:
                results[kind] = commit_delta(
                    tables[kind],
                    kind,
                    run,
                    storage_options=options if on_s3(tables[kind]) else None,
                    attempts=self.commit_attempts,
                )
        return results

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the landed files in, the two tables out with their schema and what was added."""
        table_format = str(self.table_format).strip().lower()
        return lineage.table_lineage(
            "iceberg" if table_format == "iceberg" else "delta",
            str(self.words_table),
            str(self.pages_table),
            inputs=self._lineage_inputs,
            namespace=self._lineage_namespace,
            results={kind: result.to_json() for kind, result in self.commit_results.items()},
            schemas=self._lineage_schemas,
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage: the landed files the task was given, and the error it failed with."""
        return lineage.table_failure_lineage(self._lineage_inputs, lineage.task_error(task_instance))

    def iceberg_catalog_properties(self) -> dict[str, str]:
        """Storage credentials, then the connection's properties, then ``catalog_properties`` (last wins)."""
        properties: dict[str, Any] = dict(table_storage_options("iceberg", self.storage_conn_id))
        if self.catalog_conn_id:
            properties.update(catalog_properties_from_connection(str(self.catalog_conn_id)))
        properties.update(self.catalog_properties or {})
        if "uri" not in properties and properties.get("type") != "in-memory":
            raise AirflowFailException(
                "no Iceberg catalog: give catalog_properties (with 'uri') or catalog_conn_id"
            )
        return {k: str(v) for k, v in properties.items() if v is not None}


def catalog_properties_from_connection(conn_id: str) -> dict[str, Any]:
    """pyiceberg catalog properties from an Airflow connection (see ``catalog_conn_id``)."""
    conn = BaseHook.get_connection(conn_id)
    properties: dict[str, Any] = {}
    if conn.host:
        host = conn.host
        if conn.port and "://" in host and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        properties["uri"] = host
    if conn.password:
        if conn.login:
            properties["credential"] = f"{conn.login}:{conn.password}"
            if "uri" in properties:  # the spec's token endpoint; pyiceberg warns when it has to guess it
                properties["oauth2-server-uri"] = f"{properties['uri'].rstrip('/')}/v1/oauth/tokens"
        else:
            properties["token"] = conn.password
    properties.update(conn.extra_dejson or {})
    return properties


def storage_credentials(storage_conn_id: str | None) -> S3Credentials:
    """S3 credentials from the ``aws`` connection; without one (missing, or None) the environment's.

    As ``locations.location``: a connection that does not exist is no error. The default
    ``aws_default`` without the Amazon provider installed is the environment, too; a connection
    named on purpose needs the provider.
    """
    if storage_conn_id:
        try:
            BaseHook.get_connection(storage_conn_id)
        except AirflowNotFoundException:
            log.info("no connection %s: S3 credentials from the environment", storage_conn_id)
        else:
            try:
                from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
            except ImportError:
                if storage_conn_id != DEFAULT_STORAGE_CONN_ID:
                    raise AirflowFailException(
                        "storage_conn_id needs the Amazon provider: "
                        "pip install 'airflow-provider-upstage[amazon]'"
                    ) from None
            else:
                hook = AwsBaseHook(aws_conn_id=storage_conn_id, client_type="s3")
                frozen = hook.get_credentials()
                environment = credentials_from_environment(os.environ)
                return S3Credentials(
                    access_key=frozen.access_key,
                    secret_key=frozen.secret_key,
                    token=frozen.token,
                    endpoint_url=hook.conn_config.endpoint_url or environment.endpoint_url,
                    region=hook.conn_region_name or environment.region,
                )
    return credentials_from_environment(os.environ)


def table_storage_options(table_format: str, storage_conn_id: str | None) -> dict[str, str]:
    """The table library's S3 options: pyiceberg ``s3.*`` properties or delta-rs ``AWS_*`` options."""
    credentials = storage_credentials(storage_conn_id)
    if table_format == "iceberg":
        return iceberg_properties(credentials)
    return delta_storage_options(credentials)
