"""S3 credentials as each table library wants them: pyiceberg FileIO properties, delta-rs storage options.

The operator reads an Airflow ``aws`` connection into :class:`S3Credentials`; without one, both
libraries fall back to the environment (``AWS_*`` variables, an instance role), as boto does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class S3Credentials:
    """What an ``aws`` connection resolves to; ``None`` fields are left to the library's defaults."""

    access_key: str | None = None
    secret_key: str | None = None
    token: str | None = None
    endpoint_url: str | None = None
    region: str | None = None

    def __repr__(self) -> str:  # never the secrets
        return f"S3Credentials(endpoint_url={self.endpoint_url!r}, region={self.region!r})"


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
