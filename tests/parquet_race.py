"""Child process for the concurrent-writer race: one writer of a document, round after round.

``race_writer`` runs in a process of its own (multiprocessing, spawn). In every round it waits at
``start`` with the other writer and the test, writes the same document (the same output file
names) with a request id of its own, reports what happened on ``outcomes`` and waits at ``done``
so the test can read the pair before the next round. No Airflow.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

from upstage_provider.models import OCRResult, Page, Word
from upstage_provider.parquet import DocumentMeta, write_ocr_parquet

DOCUMENT_URI = "s3://inbox/scans/shared-scan.pdf"
SHA256 = "0" * 64
#: An object store's move is a copy, then a delete of the temporary; each takes up to this long.
MOVE_SECONDS = 0.01


@dataclass(frozen=True)
class Location:
    """An output location given as ``.fs`` and ``.path``, as ``ObjectStoragePath`` does."""

    fs: AbstractFileSystem
    path: str


class ObjectStoreLikeFileSystem(DirFileSystem):
    """Local disk behind a filesystem that is not ``LocalFileSystem``, with an object store's move.

    The writer treats it like an object store (no file locks, ``fs.mv``). Each move takes a copy's
    time, publishes at once (a rename), then takes a delete's time, both varying as an object
    store's latency does, so separate processes race over real files with an object store's timing.
    """

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        time.sleep(random.uniform(0, MOVE_SECONDS))
        super().mv(path1, path2, *args, **kwargs)
        time.sleep(random.uniform(0, MOVE_SECONDS))


def unlocked_location(root: str) -> Location:
    return Location(ObjectStoreLikeFileSystem(path=root, fs=LocalFileSystem()), "/")


def request_id(round_: int, writer: int) -> str:
    return f"req-{round_:03d}-{writer}"


def one_batch(tag: str, pages: int = 2, words_per_page: int = 200) -> OCRResult:
    built = []
    for number in range(1, pages + 1):
        words = tuple(
            Word(
                id=(number - 1) * words_per_page + i,
                text=tag,
                confidence=0.9,
                polygon=((0.1, 0.1), (0.2, 0.1), (0.2, 0.2), (0.1, 0.2)),
            )
            for i in range(words_per_page)
        )
        built.append(Page(number, 1000, 1400, tag, 0.9, words))
    return OCRResult(tuple(built), "ocr-2.2.1", "2.0", 0.9, tag, pages)


def race_writer(
    root: str, unlocked: bool, writer: int, rounds: int, start: Any, done: Any, outcomes: Any
) -> None:
    """Write the shared document once per round; put ``(round, writer, outcome, detail)``.

    ``outcome`` is ``"ok"`` or the name of the exception's type, so the test can tell a detected
    mismatch from any other failure.
    """
    output: Any = unlocked_location(root) if unlocked else root
    for round_ in range(rounds):
        rid = request_id(round_, writer)
        batch = one_batch(rid)
        start.wait()
        try:
            write_ocr_parquet([batch], output_uri=output, meta=DocumentMeta(DOCUMENT_URI, SHA256, rid))
            outcomes.put((round_, writer, "ok", ""))
        except Exception as exc:
            outcomes.put((round_, writer, type(exc).__name__, str(exc)))
        done.wait()
