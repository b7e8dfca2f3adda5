"""
Daily OCR ingest: every document in an input folder -> Upstage OCR -> word-level Parquet.

Each document is submitted for async OCR, waited for in the triggerer (no worker slot held),
and landed as Parquet under ``<output>/ds=<ds>/words/`` and ``.../pages/``. The last task reads
the day's dataset back. Configure with environment variables (or edit the defaults):

- ``UPSTAGE_INGEST_INPUT``: folder or object-storage prefix with the documents;
- ``UPSTAGE_INGEST_OUTPUT``: lakehouse folder or prefix (``s3://bucket/ocr``, ...);
- ``UPSTAGE_POLL_INTERVAL``: seconds between status calls (default 30);
- connection ``upstage_default``: the API key as password; host empty for the real API.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pendulum
from airflow.sdk import Asset, ObjectStoragePath, dag, task

from upstage_provider.operators.ocr import UpstageOCRSubmitOperator
from upstage_provider.sensors.ocr import UpstageOCRSensor

log = logging.getLogger(__name__)

AIRFLOW_HOME = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
INPUT = os.environ.get("UPSTAGE_INGEST_INPUT", str(AIRFLOW_HOME / "upstage-inbox"))
OUTPUT = os.environ.get("UPSTAGE_INGEST_OUTPUT", str(AIRFLOW_HOME / "upstage-lake"))
POLL_INTERVAL = float(os.environ.get("UPSTAGE_POLL_INTERVAL", "30"))

# Downstream DAGs schedule on this: it is updated whenever a document's words land.
OCR_WORDS = Asset(name="upstage_ocr_words", uri=OUTPUT if "://" in OUTPUT else f"file://{OUTPUT}")


def _as_path(uri: str) -> ObjectStoragePath:
    return ObjectStoragePath(uri if "://" in uri else f"file://{Path(uri).resolve()}")


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
            str(p) if "://" in INPUT else p.path
            for p in root.iterdir()
            if p.is_file() and not p.name.startswith((".", "_"))
        )
        log.info("Found %d documents in %s", len(docs), INPUT)
        return docs

    submitted = UpstageOCRSubmitOperator.partial(task_id="submit", retries=2).expand(
        document=find_documents()
    )
    landed = UpstageOCRSensor.partial(
        task_id="wait_and_land",
        output_uri=OUTPUT.rstrip("/") + "/ds={{ ds }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=6 * 3600,
        retries=2,
        outlets=[OCR_WORDS],
    ).expand(request_id=submitted.output)

    @task
    def summarize(ds: str | None = None) -> dict[str, dict[str, float]]:
        """Read the day's dataset back, as a downstream engine would."""
        import pyarrow.compute as pc
        import pyarrow.dataset as pads

        day = _as_path(f"{OUTPUT.rstrip('/')}/ds={ds}/words")
        table = pads.dataset(day.path, filesystem=day.fs, format="parquet").to_table(
            columns=["document_uri", "page", "confidence"]
        )
        grouped = table.group_by("document_uri").aggregate(
            [("page", "max"), ("confidence", "count"), ("confidence", "mean")]
        )
        summary = {}
        for row in grouped.sort_by("document_uri").to_pylist():
            summary[row["document_uri"]] = {
                "pages": row["page_max"],
                "words": row["confidence_count"],
                "mean_confidence": round(row["confidence_mean"] or 0.0, 4),
            }
            log.info(
                "%s: %d pages, %d words, mean confidence %.3f",
                row["document_uri"],
                row["page_max"],
                row["confidence_count"],
                row["confidence_mean"] or 0.0,
            )
        log.info("ds=%s: %d documents, %d words", ds, len(summary), table.num_rows)
        log.info("Mean confidence over the day: %.3f", pc.mean(table["confidence"]).as_py() or 0.0)
        return summary

    landed >> summarize()


upstage_ocr_ingest()
