"""Document and output locations (local paths, ``ObjectStoragePath`` URIs), checked before paying.

A document that cannot be read or is not valid for the chosen endpoint, and an output location
that takes no files, fail the task for good before the API sees anything. Which Airflow
connection a URI is read or written with is decided here (``location``), and so is the plain
form of a URI that goes into the ``document_uri`` column and the XCom handoff (``plain_uri``).
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow.sdk import ObjectStoragePath

from upstage_provider.compat import AirflowFailException
from upstage_provider.documents import Document, load_document, validate_document
from upstage_provider.exceptions import DocumentError

#: Name prefix of the marker ``check_output_writable`` creates and deletes again.
WRITE_CHECK_PREFIX = "_upstage_write_check-"

#: The operators' default ``storage_conn_id``: Airflow's usual AWS connection.
DEFAULT_STORAGE_CONN_ID = "aws_default"

#: Schemes the AWS connection serves; the default connection applies to these only.
S3_SCHEMES = frozenset({"s3", "s3a", "s3n"})


def location(uri: Any, conn_id: str | None = None) -> Any:
    """A local path stays a string; a URI becomes an ``ObjectStoragePath`` where Airflow knows it.

    The connection: a URI that names one (``s3://my_conn@bucket/key``) keeps it; a plain URI
    (``s3://bucket/key``) takes ``conn_id``. The default ``aws_default`` is an AWS connection, so
    it is applied to ``s3://`` URIs only; another ``conn_id`` applies to every remote scheme. A
    connection that does not exist is no error: the amazon provider then falls back to boto's own
    chain (``AWS_*`` environment variables, the instance role). An ``ObjectStoragePath`` is
    taken as it is. Schemes Airflow has no filesystem for (``memory://``, ...) go to fsspec as
    they are.
    """
    if isinstance(uri, ObjectStoragePath):
        return uri
    text = str(uri)
    if "://" not in text:
        return text
    attached = connection_for(text, conn_id)
    try:
        path = ObjectStoragePath(text, conn_id=attached) if attached else ObjectStoragePath(text)
        path.fs  # noqa: B018 - resolving the filesystem is what tells whether Airflow knows the scheme
    except ValueError:
        return text
    return path


def connection_for(uri: str, conn_id: str | None) -> str | None:
    """The connection ``location`` attaches to ``uri``; None where the URI names its own or none applies."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not conn_id or "@" in parts.netloc or scheme in ("", "file"):
        return None
    if conn_id == DEFAULT_STORAGE_CONN_ID and scheme not in S3_SCHEMES:
        return None
    return conn_id


def plain_uri(uri: Any) -> str:
    """``uri`` without a connection id (or any user info): ``s3://conn@bucket/key`` -> ``s3://bucket/key``.

    What the ``document_uri`` column and the submit task's XCom handoff hold: the object's
    address, the same whichever connection read it. Local paths are returned as they are.
    """
    text = str(uri)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    if "@" not in parts.netloc:
        return text
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def read_document(uri: Any, conn_id: str | None = None) -> Document:
    """The document at ``uri``, read through Airflow's object storage; its ``uri`` is the plain one."""
    doc = load_document(location(uri, conn_id))
    plain = plain_uri(doc.uri)
    return doc if plain == doc.uri else dataclasses.replace(doc, uri=plain)


def read_valid_document(
    document: Any, mode: Literal["sync", "async"] | None, conn_id: str | None = None
) -> Document:
    """Load (and, given a mode, validate) before any API call; bad input is permanent."""
    try:
        doc = document if isinstance(document, Document) else read_document(document, conn_id)
        return doc if mode is None else validate_document(doc, mode=mode)
    except DocumentError as exc:
        raise AirflowFailException(str(exc)) from None


def check_output_writable(output_uri: Any, conn_id: str | None = None) -> None:
    """Create, then delete, a marker under ``output_uri``: OCR that cannot be written is not paid for.

    The marker's name starts with ``_``, which Spark, Hive, DuckDB and pyarrow datasets skip.
    The folder stays: concurrent tasks check (and write into) the same one, so removing it again
    could pull it from under another task's marker or files.
    """
    target = location(output_uri, conn_id)
    try:
        if isinstance(target, ObjectStoragePath):
            fs, root = target.fs, target.path
        else:
            import fsspec

            fs, root = fsspec.core.url_to_fs(str(target))
        root = root.rstrip("/") or "/"
        fs.makedirs(root, exist_ok=True)
        marker = f"{root.rstrip('/')}/{WRITE_CHECK_PREFIX}{uuid.uuid4().hex}"
        fs.pipe_file(marker, b"")
        fs.rm_file(marker)
    except Exception as exc:
        raise AirflowFailException(
            f"output_uri {output_uri} is not writable ({type(exc).__name__}: {exc}); check permissions "
            "or choose another output_uri (checked before any paid OCR call or download)"
        ) from None
