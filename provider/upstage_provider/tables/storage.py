"""S3 credentials as each table library wants them: pyiceberg FileIO properties, delta-rs storage options.

Two sources, as for the other operators' ``storage_conn_id``: an Airflow ``aws`` connection (the
operator reads it into :class:`S3Credentials`), or, when there is none, the environment. Neither
library reads everything boto reads: pyiceberg's pyarrow FileIO ignores ``AWS_ENDPOINT_URL``
and guesses the bucket's region, and delta-rs refuses a plain ``http`` endpoint unless told
``AWS_ALLOW_HTTP``. So from the environment only the endpoint and the region are passed on
(:func:`credentials_from_environment`); keys and session tokens are left to each library's own
chain (``AWS_*`` variables, the instance role), which also refreshes them.

Concurrent Delta writers on S3 need no lock: delta-rs (1.x) commits a log entry with a
conditional put (``If-None-Match: *``), which S3 has honoured since 2024; see docs/lakehouse.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: URI schemes whose tables take these options (delta-rs rejects ``AWS_*`` keys for local tables).
S3_TABLE_SCHEMES = ("s3://", "s3a://")


@dataclass(frozen=True)
class S3Credentials:
    """What an ``aws`` connection (or the environment) resolves to; ``None``: the library's default."""

    access_key: str | None = None
    secret_key: str | None = None
    token: str | None = None
    endpoint_url: str | None = None
    region: str | None = None

    def __repr__(self) -> str:  # never the secrets
        return f"S3Credentials(endpoint_url={self.endpoint_url!r}, region={self.region!r})"


def credentials_from_environment(environ: Mapping[str, str]) -> S3Credentials:
    """The endpoint and region boto would use (``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
    ``AWS_REGION``/``AWS_DEFAULT_REGION``); keys stay with the libraries' own chains."""
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
    return S3Credentials(endpoint_url=endpoint, region=region)


def iceberg_properties(credentials: S3Credentials) -> dict[str, str]:
    """pyiceberg's S3 FileIO properties (``s3.*``), merged under the catalog's own properties."""
    values = {
        "s3.access-key-id": credentials.access_key,
        "s3.secret-access-key": credentials.secret_key,
        "s3.session-token": credentials.token,
        "s3.endpoint": credentials.endpoint_url,
        "s3.region": credentials.region,
    }
    return {k: v for k, v in values.items() if v}


def delta_storage_options(credentials: S3Credentials) -> dict[str, str]:
    """delta-rs (object_store) options; a plain ``http`` endpoint (a local S3) needs ``AWS_ALLOW_HTTP``."""
    values = {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_SESSION_TOKEN": credentials.token,
        "AWS_ENDPOINT_URL": credentials.endpoint_url,
        "AWS_REGION": credentials.region,
    }
    options = {k: v for k, v in values.items() if v}
    if credentials.endpoint_url and credentials.endpoint_url.startswith("http://"):
        options["AWS_ALLOW_HTTP"] = "true"
    return options


def on_s3(uri: str) -> bool:
    """Whether a table URI is on S3, where the storage options apply."""
    return str(uri).lower().startswith(S3_TABLE_SCHEMES)
