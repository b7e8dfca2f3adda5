"""Document and output locations (local paths, ``ObjectStoragePath`` URIs), checked before paying.

A document that cannot be read or is not valid for the chosen endpoint, and an output location
that takes no files, fail the task for good before the API sees anything.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from airflow.sdk import ObjectStoragePath

from upstage_provider.compat import AirflowFailException
from upstage_provider.documents import Document, load_document, validate_document
from upstage_provider.exceptions import DocumentError

#: Name prefix of the marker ``check_output_writable`` creates and deletes again.
WRITE_CHECK_PREFIX = "_upstage_write_check-"


def location(uri: Any) -> Any:
    """A local path stays a string; a URI becomes an ``ObjectStoragePath`` where Airflow knows it.

    ``ObjectStoragePath`` resolves credentials from Airflow connections (``s3://conn_id@bucket/``).
    Schemes it has no filesystem for (``memory://``, ...) go to fsspec as they are.
    """
    if isinstance(uri, ObjectStoragePath):
        return uri
    text = str(uri)
    if "://" not in text:
        return text
    try:
        path = ObjectStoragePath(text)
        path.fs  # noqa: B018 - resolving the filesystem is what tells whether Airflow knows the scheme
    except ValueError:
        return text
    return path


def read_document(uri: Any) -> Document:
    """The document at ``uri``, read through Airflow's object storage where it applies."""
    return load_document(location(uri))


def read_valid_document(document: Any, mode: Literal["sync", "async"] | None) -> Document:
    """Load (and, given a mode, validate) before any API call; bad input is permanent."""
    try:
        doc = document if isinstance(document, Document) else read_document(document)
        return doc if mode is None else validate_document(doc, mode=mode)
    except DocumentError as exc:
        raise AirflowFailException(str(exc)) from None


def check_output_writable(output_uri: Any) -> None:
    """Create, then delete, a marker under ``output_uri``: OCR that cannot be written is not paid for.

    The marker's name starts with ``_``, which Spark, Hive, DuckDB and pyarrow datasets skip.
    The folder stays: concurrent tasks check (and write into) the same one, so removing it again
    could pull it from under another task's marker or files.
    """
    target = location(output_uri)
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
