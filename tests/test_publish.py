"""Parquet on a real S3 server (moto): in-place uploads, aborted on failure, and the location rules."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from tests.reliability.proc_write import synthetic_batches
from tests.s3_fixtures import S3
from upstage_provider import publish
from upstage_provider.exceptions import ParquetWriteError
from upstage_provider.locations import connection_for, location, plain_uri, read_document
from upstage_provider.models import OCRResult
from upstage_provider.parquet import DocumentMeta, output_file_name, write_ocr_parquet

DOC = "s3://inbox/scans/invoice.pdf"
META = DocumentMeta(DOC, "0" * 64, "req-1")
NAME = output_file_name(DOC)


def write(results: Any, root: str = "s3://lake/ocr", partition: str | None = "ds=2026-11-24") -> Any:
    return write_ocr_parquet(
        results, output_uri=location(root, "aws_default"), meta=META, partition=partition
    )


def words_of(s3: S3, key: str) -> Any:
    return pq.read_table(io.BytesIO(s3.get("lake", key)))


def test_s3_write_lands_one_object_per_table_and_a_rerun_replaces_them(s3_connection: S3) -> None:
    s3 = s3_connection
    first = write(synthetic_batches(2, 2, 10, 0, "v1"))
    keys = [f"ocr/pages/ds=2026-11-24/{NAME}", f"ocr/words/ds=2026-11-24/{NAME}"]
    assert s3.keys("lake") == keys
    assert first.words_uri == f"s3://lake/{keys[1]}"
    assert first.partition == "ds=2026-11-24"
    assert s3.uploads("lake") == []

    second = write(synthetic_batches(1, 2, 7, 0, "v2"))
    assert s3.keys("lake") == keys, "replaced in place, nothing added"
    table = words_of(s3, keys[1])
    assert table.num_rows == second.words == 14
    assert set(table["text"].to_pylist()) == {"v2"}
    footer = pq.read_metadata(io.BytesIO(s3.get("lake", keys[0]))).metadata
    assert footer[b"upstage.write_id"].decode() == second.write_id != first.write_id


def _failing_after(results: Iterator[OCRResult], batches: int) -> Iterator[OCRResult]:
    for index, result in enumerate(results):
        if index == batches:
            raise ConnectionError("download reset")
        yield result


def test_failure_mid_multipart_upload_aborts_it_and_keeps_the_earlier_pair(s3_connection: S3) -> None:
    """A 10 MiB first batch starts a multipart upload; the failure after it leaves no trace."""
    s3 = s3_connection
    write(synthetic_batches(1, 2, 10, 0, "v1"), partition=None)
    before = {key: s3.get("lake", key) for key in s3.keys("lake")}
    assert sorted(before) == [f"ocr/pages/{NAME}", f"ocr/words/{NAME}"]
    started: list[int] = []

    def big_then_failing() -> Iterator[OCRResult]:
        batches = synthetic_batches(3, 2, 50_000, 0, "v2", noisy=True)
        yield next(batches)
        started.append(len(s3.uploads("lake")))
        yield from _failing_after(batches, 0)

    with pytest.raises(ConnectionError, match="download reset"):
        write(big_then_failing(), partition=None)
    assert started == [1], "the first batch went out as a part of a multipart upload"
    assert s3.uploads("lake") == [], "the upload was aborted"
    assert {key: s3.get("lake", key) for key in s3.keys("lake")} == before


def test_a_failing_commit_aborts_the_upload(s3_connection: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    """CompleteMultipartUpload refused: a ParquetWriteError, the upload aborted, nothing listed."""
    s3 = s3_connection
    from s3fs.core import S3File

    def refuse(self: Any) -> None:
        raise ConnectionError("complete refused")

    monkeypatch.setattr(S3File, "commit", refuse)
    with pytest.raises(ParquetWriteError, match="complete refused"):
        write(synthetic_batches(1, 2, 50_000, 0, "v1", noisy=True))
    assert s3.uploads("lake") == []
    assert s3.keys("lake") == []


def test_stale_uploads_of_the_same_key_are_aborted_and_others_kept(
    s3_connection: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload's age is its last part's (moto lists every upload as initiated in 2010)."""
    s3 = s3_connection
    client = s3.client()
    words_key = f"ocr/words/ds=2026-11-24/{NAME}"
    ours = client.create_multipart_upload(Bucket="lake", Key=words_key)["UploadId"]
    other = client.create_multipart_upload(Bucket="lake", Key=words_key + "-other.parquet")["UploadId"]
    for key, upload_id in ((words_key, ours), (words_key + "-other.parquet", other)):
        client.upload_part(Bucket="lake", Key=key, UploadId=upload_id, PartNumber=1, Body=b"part")
    write(synthetic_batches(1, 1, 5, 0, "v1"))
    assert {u["UploadId"] for u in s3.uploads("lake")} == {ours, other}, "young uploads stay"

    monkeypatch.setattr(publish, "STALE_TEMP_SECONDS", 0.0)
    write(synthetic_batches(1, 1, 5, 0, "v2"))
    assert [u["UploadId"] for u in s3.uploads("lake")] == [other]


# --- which connection a URI is read and written with ---------------------------------------------


def test_location_gives_a_plain_s3_uri_the_connection_and_keeps_a_named_one() -> None:
    plain = location("s3://lake/ocr", "my_aws")
    assert isinstance(plain, ObjectStoragePath)
    assert plain.conn_id == "my_aws"
    named = location("s3://other_conn@lake/ocr", "my_aws")
    assert named.conn_id == "other_conn"
    assert location("s3://lake/ocr").conn_id is None
    assert location("/data/lake", "my_aws") == "/data/lake"
    assert location("memory://lake/ocr", "aws_default") == "memory://lake/ocr"
    given = ObjectStoragePath("s3://lake/x", conn_id="mine")
    assert location(given, "my_aws") is given


def test_the_default_aws_connection_is_not_applied_to_other_schemes() -> None:
    """The rule alone: resolving a gs:// filesystem would need gcsfs, which nothing else here uses."""
    assert connection_for("gs://bucket/x", "aws_default") is None
    assert connection_for("gs://bucket/x", "google_cloud_default") == "google_cloud_default"
    assert connection_for("s3a://bucket/x", "aws_default") == "aws_default"
    assert connection_for("s3://named@bucket/x", "aws_default") is None
    assert connection_for("file:///data/x", "my_conn") is None
    assert connection_for("s3://bucket/x", None) is None


@pytest.mark.parametrize(
    ("uri", "plain"),
    [
        ("s3://aws_default@inbox/스캔 문서.pdf", "s3://inbox/스캔 문서.pdf"),
        ("s3://inbox/a.pdf", "s3://inbox/a.pdf"),
        ("s3://conn@inbox/a.pdf#pages=1-1000", "s3://inbox/a.pdf#pages=1-1000"),
        ("/data/inbox/a@b.pdf", "/data/inbox/a@b.pdf"),
        ("file:///data/inbox/a.pdf", "file:///data/inbox/a.pdf"),
    ],
)
def test_plain_uri_drops_the_connection_id(uri: str, plain: str) -> None:
    assert plain_uri(uri) == plain


def test_plain_uri_of_an_object_storage_path_with_a_connection() -> None:
    assert plain_uri(ObjectStoragePath("s3://inbox/a.pdf", conn_id="my_aws")) == "s3://inbox/a.pdf"


@pytest.mark.parametrize("credentials", ["s3_connection", "s3_env_credentials"])
def test_documents_read_from_s3_with_the_connection_or_the_environment(
    credentials: str, request: pytest.FixtureRequest, make_pdf: Any
) -> None:
    """``aws_default`` missing (env variant): the amazon provider falls back to boto's own chain."""
    s3: S3 = request.getfixturevalue(credentials)
    uri = s3.put("inbox", "scans/a.pdf", make_pdf(2))
    doc = read_document(uri, "aws_default")
    assert (doc.uri, doc.page_count) == (uri, 2)
    named = read_document("s3://aws_default@inbox/scans/a.pdf")
    assert (named.uri, named.sha256) == (uri, doc.sha256)
