"""OpenLineage for the provider: dataset names, the words/pages outputs, the run facets.

The operators' ``get_openlineage_facets_on_*`` methods delegate here. Nothing at module level
imports Airflow or OpenLineage: the OpenLineage classes are imported inside the functions, and
without the ``[openlineage]`` extra (``apache-airflow-providers-openlineage``) every function that
would build them returns None, as the apache providers' methods do when there is nothing to say.
Dataset names follow the OpenLineage naming conventions
(https://openlineage.io/docs/spec/naming): ``s3://bucket/key`` is namespace ``s3://bucket``, name
``key``; a local file is namespace ``file``, name its absolute path. What is emitted is listed in
``docs/lineage.md``.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import pyarrow as pa

from upstage_provider.parquet import PAGES_SCHEMA, WORDS_SCHEMA

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

#: Run facet key of :class:`~upstage_provider.lineage_facets.UpstageOCRRunFacet`.
UPSTAGE_FACET_KEY = "upstage_ocr"
#: The public API's host: the ``source`` of the external query when no connection says otherwise.
DEFAULT_API_SOURCE = "upstage://api.upstage.ai"
#: Azure hosts whose ``container@account`` user part is part of the address, not a connection id.
_AZURE_HOST_SUFFIXES = (".dfs.core.windows.net", ".blob.core.windows.net")
#: Where the sensor records a document it does not know (``upstage://requests/<id>``): no dataset.
_UNKNOWN_DOCUMENT_PREFIX = "upstage://requests/"
#: A split document's part is ``<document uri>#pages=<first>-<last>``: its dataset is the document.
_PART_SUFFIX = re.compile(r"#pages=\d+-\d+$")


# --- names (no OpenLineage needed) --------------------------------------------------------------


def dataset_name(uri: str) -> tuple[str, str]:
    """``(namespace, name)`` of a file or object by the OpenLineage naming conventions.

    ``s3://aws_default@bucket/key`` (Airflow's object storage with a connection id) names the same
    object as ``s3://bucket/key``: the connection id is dropped, and so are a password, a query
    string (pre-signed URLs) and a fragment (``#pages=1001-2000`` of a split document's part).
    """
    text = _PART_SUFFIX.sub("", os.fspath(uri))
    if "://" not in text:
        return "file", os.path.abspath(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return "file", os.path.abspath(parts.path or "/")
    user, at, host = parts.netloc.rpartition("@")
    if at and host.split(":", 1)[0].lower().endswith(_AZURE_HOST_SUFFIXES):
        # abfs://container@account.dfs.core.windows.net/path: the container is part of the address.
        host = f"{user.split(':', 1)[0]}@{host}"
    name = parts.path.lstrip("/") or "/"
    return f"{scheme}://{host}", name


def safe_namespace(uri: str) -> str:
    """A catalog or warehouse URI fit for a namespace: no user, password or query string."""
    text = str(uri)
    if "://" not in text:
        return dataset_name(text)[1] if text else text
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


def api_source(base_url: str | None) -> str:
    """The external query's source: ``upstage://<host[:port]>`` of the API the request went to."""
    if not base_url:
        return DEFAULT_API_SOURCE
    host = urlsplit(base_url if "://" in base_url else f"https://{base_url}").netloc.rpartition("@")[2]
    return f"upstage://{host}" if host else DEFAULT_API_SOURCE


def arrow_type_name(type_: pa.DataType) -> str:
    """The type as a schema facet gives it: Arrow's own names, nested types by their kind."""
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return "list"
    if pa.types.is_struct(type_):
        return "struct"
    if pa.types.is_map(type_):
        return "map"
    return str(type_)


def schema_fields(schema: pa.Schema) -> list[dict[str, Any]]:
    """The schema as plain dicts (name, type, description, fields), nested types with children."""
    return [_field(field) for field in schema]


def _field(field: pa.Field) -> dict[str, Any]:
    children: list[pa.Field] = []
    if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
        children = [field.type.value_field]
    elif pa.types.is_struct(field.type):
        children = [field.type.field(i) for i in range(field.type.num_fields)]
    return {
        "name": field.name,
        "type": arrow_type_name(field.type),
        "description": None if field.nullable else "not null",
        "fields": [_field(child) for child in children],
    }


def file_size(uri: str, fs: AbstractFileSystem | None = None) -> int | None:
    """Bytes of a written file (one stat or HEAD); None when it cannot be told.

    ``fs`` is the output location's filesystem (an ``ObjectStoragePath``'s ``.fs`` carries the
    connection's credentials, which the bare ``s3://bucket/key`` in the summary does not).
    """
    try:
        if fs is None:
            import fsspec

            fs, path = fsspec.core.url_to_fs(uri)
        else:
            path = fs._strip_protocol(uri)
        return int(fs.size(path))
    except Exception as exc:
        log.debug("size of %s unknown for lineage: %s", uri, exc)
        return None


# --- OpenLineage objects ------------------------------------------------------------------------


def _openlineage() -> Any:
    """The OpenLineage provider's ``OperatorLineage``, or None without the ``[openlineage]`` extra."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return OperatorLineage


def document_dataset(document_uri: str | None) -> Any:
    """The input: the document OCR read. None for an unknown document or without OpenLineage."""
    if not document_uri or document_uri.startswith(_UNKNOWN_DOCUMENT_PREFIX):
        return None
    try:
        from openlineage.client.generated.base import InputDataset
    except ImportError:
        return None
    namespace, name = dataset_name(document_uri)
    return InputDataset(namespace=namespace, name=name)


def schema_facet(schema: pa.Schema) -> Any:
    from openlineage.client.generated.schema_dataset import SchemaDatasetFacet, SchemaDatasetFacetFields

    def build(spec: Mapping[str, Any]) -> SchemaDatasetFacetFields:
        return SchemaDatasetFacetFields(
            name=spec["name"],
            type=spec["type"],
            description=spec["description"],
            fields=[build(child) for child in spec["fields"]],
        )

    return SchemaDatasetFacet(fields=[build(spec) for spec in schema_fields(schema)])


def _output(
    namespace: str,
    name: str,
    schema: pa.Schema,
    rows: int | None,
    size: int | None,
    *,
    files: int | None = None,
    storage: tuple[str, str] | None = None,
) -> Any:
    from openlineage.client.generated.base import OutputDataset
    from openlineage.client.generated.output_statistics_output_dataset import (
        OutputStatisticsOutputDatasetFacet,
    )

    facets: dict[str, Any] = {"schema": schema_facet(schema)}
    if storage is not None:
        from openlineage.client.generated.storage_dataset import StorageDatasetFacet

        facets["storage"] = StorageDatasetFacet(storageLayer=storage[0], fileFormat=storage[1])
    output_facets: dict[str, Any] = {}
    if rows is not None or size is not None:
        output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
            rowCount=rows, size=size, fileCount=files
        )
    return OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=output_facets)


def file_datasets(summary: Mapping[str, Any], fs: AbstractFileSystem | None = None) -> list[Any]:
    """The outputs: the words and the pages Parquet file of one landed document.

    Rows come from the summary; bytes from the written files (``fs``: see :func:`file_size`).
    """
    if _openlineage() is None:
        return []
    outputs = []
    for key, rows_key, schema in (("words_uri", "words", WORDS_SCHEMA), ("pages_uri", "pages", PAGES_SCHEMA)):
        uri = summary.get(key)
        if not uri:
            continue
        namespace, name = dataset_name(str(uri))
        rows = summary.get(rows_key)
        outputs.append(_output(namespace, name, schema, rows, file_size(str(uri), fs), files=1))
    return outputs


def table_datasets(
    table_format: Literal["iceberg", "delta"],
    words_table: str,
    pages_table: str,
    *,
    namespace: str | None = None,
    words_rows: int | None = None,
    pages_rows: int | None = None,
    words_bytes: int | None = None,
    pages_bytes: int | None = None,
    words_schema: pa.Schema | None = None,
    pages_schema: pa.Schema | None = None,
) -> list[Any]:
    """The outputs of a table commit: the words and the pages table, for the table operator.

    - Iceberg: ``words_table``/``pages_table`` are identifiers (``upstage_ocr.words``), the name;
      ``namespace`` is where the catalog lives (the SQL catalog URI, the REST catalog URI or the
      warehouse location). User, password and query string are dropped from it.
    - Delta: the tables are URIs or paths, named like files (``s3://bucket`` + ``lake/words``);
      ``namespace`` is not used.

    ``*_rows``/``*_bytes`` are what this commit added; the schemas default to the Parquet files'
    (pass the table's own when it has more columns, such as a ``ds`` partition column).
    """
    if _openlineage() is None:
        return []
    if table_format not in ("iceberg", "delta"):
        raise ValueError(f"table_format must be 'iceberg' or 'delta', not {table_format!r}")
    if table_format == "iceberg" and not namespace:
        raise ValueError("an Iceberg table's lineage needs the catalog's namespace (its URI or warehouse)")
    outputs = []
    for table, rows, size, schema in (
        (words_table, words_rows, words_bytes, words_schema or WORDS_SCHEMA),
        (pages_table, pages_rows, pages_bytes, pages_schema or PAGES_SCHEMA),
    ):
        if table_format == "iceberg":
            where, name = safe_namespace(str(namespace)), str(table)
        else:
            where, name = dataset_name(str(table))
        outputs.append(_output(where, name, schema, rows, size, storage=(table_format, "parquet")))
    return outputs


def run_facets(
    request_id: str | None,
    *,
    source: str = DEFAULT_API_SOURCE,
    summary: Mapping[str, Any] | None = None,
    pages: int | None = None,
    parts: int | None = None,
) -> dict[str, Any]:
    """The external query (the Upstage request id) and the Upstage facet with the run's counts.

    ``summary`` is the XCom summary (``pages``, ``words``, and when present ``billed_pages``,
    ``model_version``, ``estimated_cost``, ``parts``); ``pages``/``parts`` stand in without one.
    """
    from openlineage.client.generated.external_query_run import ExternalQueryRunFacet

    from upstage_provider.lineage_facets import UpstageOCRRunFacet

    facets: dict[str, Any] = {}
    if request_id:
        facets["externalQuery"] = ExternalQueryRunFacet(externalQueryId=str(request_id), source=source)
    summary = summary or {}
    split = summary.get("parts")
    facets[UPSTAGE_FACET_KEY] = UpstageOCRRunFacet(
        pages=summary.get("pages", pages),
        words=summary.get("words"),
        billedPages=summary.get("billed_pages"),
        modelVersion=summary.get("model_version"),
        parts=len(split) if isinstance(split, Sequence) and not isinstance(split, str) else parts,
        estimatedCost=summary.get("estimated_cost"),
    )
    return facets


def error_facet(error: BaseException | str | None) -> dict[str, Any]:
    """The failure as an ``errorMessage`` run facet (message, ``python``, the stack trace)."""
    if error is None:
        return {}
    from openlineage.client.generated.error_message_run import ErrorMessageRunFacet

    trace = None
    if isinstance(error, BaseException) and error.__traceback__ is not None:
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return {
        "errorMessage": ErrorMessageRunFacet(
            message=str(error), programmingLanguage="python", stackTrace=trace
        )
    }


# --- what the operators return ------------------------------------------------------------------


def ocr_lineage(
    document_uri: str | None,
    summary: Mapping[str, Any] | None,
    *,
    source: str = DEFAULT_API_SOURCE,
    fs: AbstractFileSystem | None = None,
) -> Any:
    """A landed document: the document in, the words and pages files out, the run facets.

    Without a summary (the task never landed anything) only the document is known.
    """
    operator_lineage = _openlineage()
    if operator_lineage is None:
        return None
    summary = summary or {}
    return operator_lineage(
        inputs=_present([document_dataset(document_uri)]),
        outputs=file_datasets(summary, fs) if summary else [],
        run_facets=run_facets(summary.get("request_id"), source=source, summary=summary),
    )


def submit_lineage(
    document_uri: str | None,
    request_ids: Iterable[str],
    *,
    source: str = DEFAULT_API_SOURCE,
    pages: int | None = None,
) -> Any:
    """A submission: the document in, nothing out yet, the request id(s) as the external query."""
    operator_lineage = _openlineage()
    if operator_lineage is None:
        return None
    ids = [str(i) for i in request_ids]
    return operator_lineage(
        inputs=_present([document_dataset(document_uri)]),
        outputs=[],
        run_facets=run_facets(
            ",".join(ids) or None, source=source, pages=pages, parts=len(ids) if len(ids) > 1 else None
        ),
    )


def failure_lineage(
    document_uri: str | None,
    request_id: str | None,
    error: BaseException | str | None,
    *,
    source: str = DEFAULT_API_SOURCE,
) -> Any:
    """A failed task: the document it was given, the request if one was made, the error."""
    operator_lineage = _openlineage()
    if operator_lineage is None:
        return None
    facets = run_facets(request_id, source=source) if request_id else {}
    facets.pop(UPSTAGE_FACET_KEY, None)  # nothing landed: no counts to report
    return operator_lineage(
        inputs=_present([document_dataset(document_uri)]),
        outputs=[],
        run_facets={**facets, **error_facet(error)},
    )


def file_inputs(uris: Iterable[str]) -> list[Any]:
    """Landed files read again (by the table operator) as input datasets, named as the sensors name them."""
    try:
        from openlineage.client.generated.base import InputDataset
    except ImportError:
        return []
    seen: dict[tuple[str, str], Any] = {}
    for uri in uris:
        key = dataset_name(str(uri))
        seen.setdefault(key, InputDataset(namespace=key[0], name=key[1]))
    return list(seen.values())


def table_lineage(
    table_format: Literal["iceberg", "delta"],
    words_table: str,
    pages_table: str,
    *,
    inputs: Iterable[str],
    namespace: str | None = None,
    results: Mapping[str, Mapping[str, Any]] | None = None,
    schemas: Mapping[str, pa.Schema] | None = None,
) -> Any:
    """A table commit: the landed files in, the two tables out (:func:`table_datasets`).

    ``results`` are the commits' ``CommitResult.to_json()`` per table (``rows``, ``bytes``);
    without them (nothing landed, nothing committed) only the inputs are reported.
    """
    operator_lineage = _openlineage()
    if operator_lineage is None:
        return None
    results = results or {}
    schemas = schemas or {}
    outputs = []
    if results:
        words, pages = results.get("words", {}), results.get("pages", {})
        outputs = table_datasets(
            table_format,
            words_table,
            pages_table,
            namespace=namespace,
            words_rows=words.get("rows"),
            pages_rows=pages.get("rows"),
            words_bytes=words.get("bytes"),
            pages_bytes=pages.get("bytes"),
            words_schema=schemas.get("words"),
            pages_schema=schemas.get("pages"),
        )
    return operator_lineage(inputs=file_inputs(inputs), outputs=outputs, run_facets={})


def table_failure_lineage(inputs: Iterable[str], error: BaseException | str | None) -> Any:
    """A failed table commit: the landed files it was given (when it got to read them), the error."""
    operator_lineage = _openlineage()
    if operator_lineage is None:
        return None
    return operator_lineage(inputs=file_inputs(inputs), outputs=[], run_facets=error_facet(error))


def task_error(task_instance: Any) -> BaseException | None:
    """The exception the task failed with: the task runner puts it into the context it keeps."""
    try:
        error = task_instance.get_template_context().get("exception")
    except Exception:
        return None
    return error if isinstance(error, BaseException) else None


def api_source_for(conn_id: str) -> str:
    """:func:`api_source` of the connection's base URL; the public API's when it cannot be read."""
    try:
        from upstage_provider.hooks.upstage import UpstageOCRHook

        return api_source(UpstageOCRHook(conn_id).base_url)
    except Exception as exc:
        log.debug("connection %s unreadable for lineage: %s", conn_id, exc)
        return DEFAULT_API_SOURCE


def storage_fs(output_uri: Any, conn_id: str | None = None) -> AbstractFileSystem | None:
    """The filesystem an output location resolves to, with its connection; None when unknown."""
    from fsspec import AbstractFileSystem

    try:
        from upstage_provider.locations import location

        fs = getattr(location(output_uri, conn_id), "fs", None)
    except Exception as exc:
        log.debug("filesystem of %s unknown for lineage: %s", output_uri, exc)
        return None
    return fs if isinstance(fs, AbstractFileSystem) else None


def _present(items: Iterable[Any]) -> list[Any]:
    return [item for item in items if item is not None]
