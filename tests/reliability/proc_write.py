"""Child process for the killed-writer scenario: a big, slow ``write_ocr_parquet`` run.

``python -m tests.reliability.proc_write OUTPUT DOCUMENT_URI BATCHES PAGES_PER_BATCH WORDS_PER_PAGE
DELAY TAG [random]`` writes BATCHES synthetic OCR batches, sleeping DELAY seconds before each one
(a slow download), with every word's text set to TAG so a reader can tell the runs apart. With
``random`` each word's text gets a random suffix and its polygon random corners, so the file
does not compress away (an object store's multipart upload needs megabytes). OUTPUT may be a URI
(``s3://...``, credentials from the ``AWS_*`` environment). It prints ``BATCH n`` as each batch
is handed over and ``DONE <words> <pages>`` at the end. No Airflow.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator

from upstage_provider.models import OCRResult, Page, Word
from upstage_provider.parquet import DocumentMeta, write_ocr_parquet


def synthetic_batches(
    batches: int, pages_per_batch: int, words_per_page: int, delay: float, tag: str, noisy: bool = False
) -> Iterator[OCRResult]:
    word_id = 0
    rng = random.Random(word_id)
    for batch in range(batches):
        time.sleep(delay)
        pages = []
        for offset in range(pages_per_batch):
            number = batch * pages_per_batch + offset + 1
            words = []
            for i in range(words_per_page):
                x = (i % 50) / 50
                y = (i // 50) / (words_per_page // 50 + 1)
                polygon = ((x, y), (x + 0.01, y), (x + 0.01, y + 0.01), (x, y + 0.01))
                text = tag
                if noisy:
                    polygon = tuple((rng.random(), rng.random()) for _ in range(4))
                    text = f"{tag}-{rng.getrandbits(64):016x}"
                words.append(Word(id=word_id, text=text, confidence=0.9, polygon=polygon))
                word_id += 1
            pages.append(Page(number, 1000, 1400, tag, 0.9, tuple(words)))
        print(f"BATCH {batch + 1}", flush=True)
        yield OCRResult(tuple(pages), "ocr-2.2.1", "2.0", 0.9, tag, len(pages))


def main() -> None:
    output, uri, batches, per_batch, words, delay, tag = sys.argv[1:8]
    noisy = sys.argv[8:9] == ["random"]
    summary = write_ocr_parquet(
        synthetic_batches(int(batches), int(per_batch), int(words), float(delay), tag, noisy),
        output_uri=output,
        meta=DocumentMeta(uri, "0" * 64, "req-" + tag),
    )
    print(f"DONE {summary.words} {summary.pages}", flush=True)


if __name__ == "__main__":
    main()
