"""Landed OCR Parquet in the table-first layout, as the sensors leave it, for the table tests.

``land(root, partition, document, pages)`` writes one document's pair with the provider's own
writer (``write_ocr_parquet``) and puts it at ``<root>/words/<partition>/<name>`` and
``<root>/pages/<partition>/<name>``, returning the sensor's XCom summary for it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from upstage_provider.models import OCRResult, Page, Word
from upstage_provider.parquet import DocumentMeta, write_ocr_parquet

WORDS_PER_PAGE = 5


def ocr_result(pages: int, first_page: int = 1, words: int = WORDS_PER_PAGE, tag: str = "") -> OCRResult:
    """A response with ``pages`` pages of ``words`` words each; ``tag`` goes into every word's text."""
    box = ((0.1, 0.1), (0.2, 0.1), (0.2, 0.2), (0.1, 0.2))
    made = tuple(
        Page(
            page=p,
            width=1000,
            height=1400,
            text=" ".join(f"{tag}w{p}-{i}" for i in range(words)),
            confidence=0.9,
            words=tuple(
                Word(id=(p - 1) * words + i, text=f"{tag}w{p}-{i}", confidence=0.5, polygon=box)
                for i in range(words)
            ),
        )
        for p in range(first_page, first_page + pages)
    )
    return OCRResult(
        pages=made, model_version="ocr-2.2.1", api_version="1.1", confidence=0.9, text="", billed_pages=pages
    )


def land(
    root: Path, partition: str, document: str, pages: int, words: int = WORDS_PER_PAGE, tag: str = ""
) -> dict[str, Any]:
    """Land one document under ``root`` in the table-first layout; the sensor's summary for it."""
    staging = root / ".staging" / hashlib.sha256(f"{partition}{document}".encode()).hexdigest()[:12]
    summary = write_ocr_parquet(
        [ocr_result(pages, words=words, tag=tag)],
        output_uri=str(staging),
        meta=DocumentMeta(document, hashlib.sha256(document.encode()).hexdigest(), f"req-{tag}{pages}"),
    )
    out: dict[str, str] = {}
    for kind, written in (("words", summary.words_uri), ("pages", summary.pages_uri)):
        target = root / kind / partition / Path(written).name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(written, target)
        out[kind] = str(target)
    return {
        "request_id": f"req-{tag}{pages}",
        "words_uri": out["words"],
        "pages_uri": out["pages"],
        "pages": summary.pages,
        "words": summary.words,
        "partition": partition,
    }
