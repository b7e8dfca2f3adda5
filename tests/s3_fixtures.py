"""A real S3 server for the suite: moto's, on 127.0.0.1, with credentials from a connection or the env.

``moto_s3`` starts ``moto.server.ThreadedMotoServer`` once per session on a free loopback port.
``s3`` (per test) resets it, creates the buckets ``inbox`` and ``lake``, clears the filesystem
caches (Airflow's object store cache and s3fs's instances) so no credentials leak between tests,
and turns off the EC2 metadata lookup boto would otherwise wait on. Then either
``s3_connection`` (an ``aws`` Airflow connection ``aws_default`` with ``endpoint_url`` in its
extra, no ``AWS_*`` variables) or ``s3_env_credentials`` (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, no connection) says where credentials come from.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# moto accepts any key pair; these are not secrets.
ACCESS_KEY = "upstage-test-access-key"
SECRET_KEY = "upstage-test-secret-key"
REGION = "us-east-1"
BUCKETS = ("inbox", "lake")
#: Variables that would let boto find credentials or an endpoint without the connection.
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """The endpoint URL of a moto S3 server for the session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class S3:
    """The server, and what a test needs to look at it with its own (boto3) eyes."""

    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` (under ``prefix``), sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def uploads(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's multipart uploads not yet completed or aborted."""
        return list(self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    def put(self, bucket: str, key: str, data: bytes) -> str:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def get(self, bucket: str, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def clear_filesystem_caches() -> None:
    """Forget cached filesystems: each holds the credentials it was built with."""
    from airflow.sdk.io import store

    store._STORE_CACHE.clear()
    try:
        from s3fs import S3FileSystem
    except ImportError:
        return
    S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """An empty moto with the buckets ``inbox`` and ``lake``; no credentials anywhere yet."""
    import requests

    requests.post(f"{moto_s3}/moto-api/reset", timeout=10).raise_for_status()
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # No shared credentials or config file of the machine's user either.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    server = S3(moto_s3)
    client = server.client()
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket)
    clear_filesystem_caches()
    yield server
    clear_filesystem_caches()


def aws_connection(endpoint: str) -> str:
    """The JSON of an ``aws`` connection to the server (``AIRFLOW_CONN_...``)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"endpoint_url": endpoint, "region_name": REGION},
        }
    )


@pytest.fixture
def s3_connection(s3: S3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """Credentials and endpoint only in the Airflow connection ``aws_default``."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection(s3.endpoint))
    return s3


@pytest.fixture
def s3_env_credentials(s3: S3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """Credentials and endpoint only in ``AWS_*`` variables, as on an instance role; no connection."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return s3
