"""
Daily OCR ingest: every document in an input folder -> Upstage OCR -> word-level Parquet.

Each document has a chain of its own, the mapped task group ``ocr_document``: ``submit``
validates the document and submits it for async OCR, then ``wait_and_land`` waits in the
triggerer (no worker slot held) and lands Parquet under ``<output>/words/ds=<ds>/`` and
``<output>/pages/ds=<ds>/``: each table is one Hive-style dataset partitioned by ``ds``. A bad
document fails only its own chain; the others still land. The last task, ``summarize``, runs
whatever happened before it, reads the day back, logs which documents landed and which did not,
and fails the run when any did not, with the pages Upstage billed (and the estimated cost when
the connection has a ``price_per_page`` extra). An optional last step, ``commit_tables``, commits
the day's landed files into an Iceberg or Delta ``words`` and ``pages`` table, one commit per table
per run; a rerun of the day replaces its own rows. Configure with environment variables
(or edit the defaults):

- ``UPSTAGE_INGEST_INPUT``: folder or object-storage prefix with the documents;
- ``UPSTAGE_INGEST_OUTPUT``: the lake root, a folder or prefix (``s3://bucket/ocr``, ...);
- ``UPSTAGE_INGEST_STORAGE_CONN_ID``: the Airflow connection plain ``s3://`` input and output
  URIs are read and written with (default ``aws_default``; ``s3://other_conn@bucket/...`` keeps
  its own). Without such a connection, boto's own credentials apply (``AWS_*``, instance role);
- ``UPSTAGE_POLL_INTERVAL``: seconds between status calls (default 30);
- ``UPSTAGE_INGEST_TABLE_FORMAT``: ``iceberg``, ``delta``, or empty (the default) for files only;
- ``UPSTAGE_INGEST_WAREHOUSE``: the warehouse folder or URI; Delta tables are
  ``<warehouse>/words`` and ``<warehouse>/pages``;
- ``UPSTAGE_INGEST_CATALOG_URI``: for Iceberg, the catalog: a SQL catalog URI
  (``sqlite:////path/catalog.db``, ``postgresql+psycopg2://...``) or a REST catalog's
  ``http(s)://`` URI; the tables are ``upstage_ocr.words`` and ``upstage_ocr.pages``
  (docs/lakehouse.md);
- connection ``upstage_default``: the API key as password; host empty for the real API.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Asset, ObjectStoragePath, dag, task, task_group

# From the task SDK on Airflow 3.2+, from airflow.exceptions on 3.1: the provider's compat knows where.
from upstage_provider.compat import AirflowFailException
from upstage_provider.cost import billed_note
from upstage_provider.locations import location, plain_uri
from upstage_provider.operators.ocr import UpstageOCRSubmitOperator
from upstage_provider.operators.table import UpstageOCRTableOperator
from upstage_provider.sensors.ocr import UpstageOCRSensor
from upstage_provider.tables import from_environment

log = logging.getLogger(__name__)

AIRFLOW_HOME = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
INPUT = os.environ.get("UPSTAGE_INGEST_INPUT", str(AIRFLOW_HOME / "upstage-inbox"))
OUTPUT = os.environ.get("UPSTAGE_INGEST_OUTPUT", str(AIRFLOW_HOME / "upstage-lake"))
POLL_INTERVAL = float(os.environ.get("UPSTAGE_POLL_INTERVAL", "30"))
STORAGE_CONN_ID = os.environ.get("UPSTAGE_INGEST_STORAGE_CONN_ID", "aws_default")
#: The Hive-style partition under each table, rendered per run.
PARTITION = "ds={{ ds }}"
#: ``UpstageOCRTableOperator`` arguments for the optional table step; None for files only.
TABLES = from_environment()

# Downstream DAGs schedule on this: it is updated whenever a document's words land.
OCR_WORDS = Asset(name="upstage_ocr_words", uri=OUTPUT if "://" in OUTPUT else f"file://{OUTPUT}")

# The per-document chain's task ids, as the summary pulls them: "ocr_document.submit", ...
GROUP = "ocr_document"
SUBMIT = f"{GROUP}.submit"
WAIT_AND_LAND = f"{GROUP}.wait_and_land"


def _as_path(uri: str) -> ObjectStoragePath:
    """The location with the storage connection (plain ``s3://``), or a local folder as ``file://``."""
    found = location(uri, STORAGE_CONN_ID)
    return (
        found if isinstance(found, ObjectStoragePath) else ObjectStoragePath(f"file://{Path(uri).resolve()}")
    )


def read_day_back(ds: str, request_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Pages, words and mean confidence per request, from the day's Parquet as a reader sees it."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    found: dict[str, dict[str, Any]] = {
        r: {"pages": 0, "words": 0, "mean_confidence": None} for r in request_ids
    }
    if not request_ids:
        return found
    root = OUTPUT.rstrip("/")
    ours = pads.field("request_id").isin(request_ids)
    pages_dir, words_dir = _as_path(f"{root}/pages/ds={ds}"), _as_path(f"{root}/words/ds={ds}")
    if pages_dir.exists():
        pages = pads.dataset(pages_dir.path, filesystem=pages_dir.fs, format="parquet").to_table(
            columns=["request_id"], filter=ours
        )
        for row in pc.value_counts(pages["request_id"]).to_pylist():
            found[row["values"]]["pages"] = row["counts"]
    if words_dir.exists():
        words = pads.dataset(words_dir.path, filesystem=words_dir.fs, format="parquet").to_table(
            columns=["request_id", "confidence"], filter=ours
        )
        per_request = words.group_by("request_id").aggregate(
            [("confidence", "count"), ("confidence", "mean")]
        )
        for row in per_request.to_pylist():
            found[row["request_id"]]["words"] = row["confidence_count"]
            found[row["request_id"]]["mean_confidence"] = round(row["confidence_mean"] or 0.0, 4)
    return found


def why_not_landed(request_id: str | None, result: dict[str, Any] | None, pages_read: int) -> str | None:
    """None when the document landed; otherwise what went wrong, in words a user can act on."""
    if not request_id:
        return f"not submitted: see the {SUBMIT} task log"
    if not result:
        return f"request {request_id} submitted but not landed: see the {WAIT_AND_LAND} task log"
    if pages_read != result["pages"]:
        return f"request {request_id}: {pages_read} of {result['pages']} pages read back"
    return None


@dag(
    dag_id="upstage_ocr_ingest",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["upstage", "ocr", "example"],
    doc_md=__doc__,
)
def upstage_ocr_ingest() -> None:
    @task
    def find_documents() -> list[str]:
        """Every regular, non-hidden file in the input folder; the operators check the format."""
        root = _as_path(INPUT)
        docs = sorted(
            plain_uri(p) if "://" in INPUT else p.path
            for p in root.iterdir()
            if p.is_file() and not p.name.startswith((".", "_"))
        )
        log.info("Found %d documents in %s", len(docs), INPUT)
        return docs

    @task_group(group_id=GROUP)
    def ocr_document(document: str) -> UpstageOCRSensor:
        """One document's own chain: a failure here stops this document only."""
        submitted = UpstageOCRSubmitOperator(
            task_id="submit", document=document, storage_conn_id=STORAGE_CONN_ID, retries=2
        )
        return UpstageOCRSensor(
            task_id="wait_and_land",
            request_id=submitted.output,
            output_uri=OUTPUT,
            partition=PARTITION,
            storage_conn_id=STORAGE_CONN_ID,
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            timeout=6 * 3600,
            retries=2,
            outlets=[OCR_WORDS],
        )

    # One row per document with fixed keys. A dict keyed by document URI would be pushed as one
    # XCom per URI (multiple_outputs), and a key such as "스캔 문서.pdf" cannot be pushed.
    @task(trigger_rule="all_done", multiple_outputs=False)
    def summarize(documents: list[str], ds: str | None = None, ti: Any = None) -> list[dict[str, Any]]:
        """What landed and what did not, read back from the day's Parquet; fails if anything is missing."""
        indexes = list(range(len(documents)))  # map index i is documents[i]
        request_ids = ti.xcom_pull(task_ids=SUBMIT, map_indexes=indexes) if documents else []
        results = ti.xcom_pull(task_ids=WAIT_AND_LAND, map_indexes=indexes) if documents else []
        read_back = read_day_back(str(ds), [r["request_id"] for r in results if r])
        rows, missing = [], []
        for document, request_id, result in zip(documents, request_ids, results, strict=True):
            counts = read_back.get(result["request_id"], {}) if result else {}
            problem = why_not_landed(request_id, result, counts.get("pages", 0))
            rows.append(
                {
                    "document": document,
                    "request_id": request_id,
                    "landed": problem is None,
                    "pages": 0,
                    "words": 0,
                    "mean_confidence": None,
                    **counts,
                    "billed_pages": result.get("billed_pages") if result else None,
                    "estimated_cost": result.get("estimated_cost") if result else None,
                }
            )
            if problem:
                missing.append(f"{document} ({problem})")
                log.error("Not landed: %s: %s", document, problem)
            else:
                log.info(
                    "Landed: %s: %d pages, %d words, mean confidence %.3f",
                    document,
                    counts["pages"],
                    counts["words"],
                    counts["mean_confidence"] or 0.0,
                )
        landed = [r for r in rows if r["landed"]]
        billed = [r["billed_pages"] for r in rows if r["billed_pages"] is not None]
        prices = {r.get("price_per_page") for r in results if r and r.get("price_per_page") is not None}
        log.info(
            "ds=%s: %d of %d documents landed, %d pages, %d words, %s",
            ds,
            len(landed),
            len(rows),
            sum(r["pages"] for r in landed),
            sum(r["words"] for r in landed),
            billed_note(sum(billed) if billed else None, prices.pop() if len(prices) == 1 else None),
        )
        if missing:
            raise AirflowFailException(
                f"{len(missing)} of {len(rows)} documents did not land: " + "; ".join(missing)
            )
        return rows

    documents = find_documents()
    landed = ocr_document.expand(document=documents)
    summary = summarize(documents)
    landed >> summary
    if TABLES:
        # After the summary, whatever it found: the documents that landed are committed even when
        # others did not (their summaries are None and skipped); the run still fails for those.
        summary >> UpstageOCRTableOperator(
            task_id="commit_tables",
            summaries=landed.output,
            partition=PARTITION,
            storage_conn_id=STORAGE_CONN_ID,
            trigger_rule="all_done",
            **TABLES,
        )


upstage_ocr_ingest()
