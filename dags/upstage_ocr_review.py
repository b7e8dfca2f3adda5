"""
Downstream use of the OCR lakehouse, scheduled on the ``upstage_ocr_words`` Asset.

Runs whenever ``upstage_ocr_ingest`` lands new words. With DuckDB straight on the Parquet of the
two tables, ``<output>/words/ds=.../`` and ``<output>/pages/ds=.../`` (``ds`` read as a column):
a CSV of low-confidence words for human review, and a full-text search of the pages.
When the ingest DAG commits tables (``UPSTAGE_INGEST_TABLE_FORMAT`` set), it reads the data files
of the tables' current snapshot or version instead, so it sees exactly what table readers see.
Configure with ``UPSTAGE_INGEST_OUTPUT`` and the ``UPSTAGE_INGEST_TABLE_FORMAT`` /
``UPSTAGE_INGEST_WAREHOUSE`` / ``UPSTAGE_INGEST_CATALOG_URI`` variables (same as the ingest DAG),
``UPSTAGE_REVIEW_THRESHOLD`` (default 0.8) and ``UPSTAGE_SEARCH_TERMS`` (comma-separated, default
``total,invoice``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import pendulum
from airflow.sdk import Asset, dag, task

from upstage_provider.tables import current_files, from_environment

log = logging.getLogger(__name__)

AIRFLOW_HOME = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
OUTPUT = os.environ.get("UPSTAGE_INGEST_OUTPUT", str(AIRFLOW_HOME / "upstage-lake"))
# The asset upstage_ocr_ingest updates; the name is what ties the two DAGs together.
OCR_WORDS = Asset(name="upstage_ocr_words", uri=OUTPUT if "://" in OUTPUT else f"file://{OUTPUT}")
THRESHOLD = float(os.environ.get("UPSTAGE_REVIEW_THRESHOLD", "0.8"))
TERMS = [t.strip() for t in os.environ.get("UPSTAGE_SEARCH_TERMS", "total,invoice").split(",") if t.strip()]
#: The ingest DAG's tables, when it commits any; None for files only.
TABLES = from_environment()


def table_source(kind: Literal["words", "pages"]) -> tuple[list[str] | str, bool]:
    """What ``read_parquet`` reads for ``words`` or ``pages``, and whether ``ds`` is in folder names.

    The table's current data files when the ingest DAG commits tables (Delta keeps ``ds`` in
    folder names only, hence Hive partitioning); otherwise every ``ds=`` folder of the Parquet
    table. DuckDB's iceberg and delta extensions would download from the internet; the files
    themselves need neither.
    """
    if TABLES is None:
        return f"{OUTPUT.rstrip('/')}/{kind}/*/*.parquet", True
    files = current_files(TABLES, kind)
    log.info("%s: %d data files of %s", kind, len(files), TABLES[f"{kind}_table"])
    return files, TABLES["table_format"] == "delta"


@dag(
    dag_id="upstage_ocr_review",
    schedule=[OCR_WORDS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["upstage", "ocr", "example"],
    doc_md=__doc__,
)
def upstage_ocr_review() -> None:
    @task
    def low_confidence_words() -> dict[str, object]:
        """Every word under the threshold, newest day first, as a CSV a reviewer can open."""
        import duckdb

        base = OUTPUT.rstrip("/")
        out = f"{base}/review/low_confidence.csv"
        if "://" not in out:
            os.makedirs(os.path.dirname(out), exist_ok=True)
        con = duckdb.connect()
        words, hive = table_source("words")
        rows = con.sql(
            """
            SELECT ds, document_uri, page, word_id, text, round(confidence, 4) AS confidence,
                   round("left", 4) AS "left", round(top, 4) AS top,
                   round("right", 4) AS "right", round(bottom, 4) AS bottom
            FROM read_parquet($words, hive_partitioning = $hive)
            WHERE confidence < $threshold
            ORDER BY ds DESC, document_uri, page, word_id
            """,
            params={"words": words, "hive": hive, "threshold": THRESHOLD},
        )
        rows.write_csv(out)
        count = len(rows.fetchall())
        log.info("%d words under confidence %.2f written to %s", count, THRESHOLD, out)
        return {"csv": out, "words": count}

    @task
    def search_pages() -> dict[str, list[str]]:
        """Full-text search over page text: which documents and pages mention each term."""
        import duckdb

        pages, hive = table_source("pages")
        hits: dict[str, list[str]] = {}
        for term in TERMS:
            found = duckdb.sql(
                """
                SELECT DISTINCT document_uri, page
                FROM read_parquet($pages, hive_partitioning = $hive)
                WHERE text ILIKE '%' || $term || '%'
                ORDER BY document_uri, page
                """,
                params={"pages": pages, "hive": hive, "term": term},
            ).fetchall()
            hits[term] = [f"{uri}#page={page}" for uri, page in found]
            log.info("'%s': %d pages", term, len(found))
        return hits

    low_confidence_words()
    search_pages()


upstage_ocr_review()
