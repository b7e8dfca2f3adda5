"""The result of one table commit, and the retry of commits that lose a race with a concurrent writer.

Both formats commit optimistically: load the table's current version, write data files, then swap
the table's pointer only if nobody else moved it. The loser of such a race must start again from
the winner's version (the rows to delete may have moved into new files), so a retry reloads the
table and redoes the whole delete-and-append; nothing is carried over from the failed attempt.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

#: Attempts per table commit (the first one included) before the conflict fails the task.
DEFAULT_COMMIT_ATTEMPTS = 6
#: Backoff between attempts: ``base * 2**(n-1)`` seconds, capped, plus up to 100 % jitter.
BASE_DELAY = 0.2
MAX_DELAY = 10.0

T = TypeVar("T")

#: Called once per attempt after the table is loaded and the new files are written, just before the
#: commit, with the table, the attempt number and the version loaded (snapshot id or Delta version).
BeforeCommit = Callable[[str, int, Any], None]


class CommitConflictError(RuntimeError):
    """Every attempt lost to a concurrent writer; a task retry (or a later run) can still succeed."""


class CatalogAccessError(RuntimeError):
    """The catalog refused this configuration (credentials, warehouse): retrying cannot help."""


@dataclass(frozen=True)
class CommitResult:
    """One table's commit, as the operator reports it (and lineage reads it)."""

    table: str
    format: str
    rows: int
    bytes: int
    files: int
    #: Iceberg: the snapshot id now current; Delta: the table version this commit made.
    snapshot_id: int | None
    version: int | None
    attempts: int
    created: bool
    #: Where the table's files live (Iceberg table location, Delta table URI), for readers and lineage.
    location: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def with_retries(
    commit: Callable[[int], T],
    is_conflict: Callable[[BaseException], bool],
    *,
    table: str,
    attempts: int = DEFAULT_COMMIT_ATTEMPTS,
    base_delay: float = BASE_DELAY,
    max_delay: float = MAX_DELAY,
) -> T:
    """Run ``commit(attempt)`` until it does not lose a race, at most ``attempts`` times.

    Only errors ``is_conflict`` accepts are retried; any other error propagates at once.
    """
    if attempts < 1:
        raise ValueError(f"commit attempts must be at least 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return commit(attempt)
        except Exception as exc:
            if not is_conflict(exc):
                raise
            if attempt == attempts:
                raise CommitConflictError(
                    f"{table}: commit lost to concurrent writers {attempts} times in a row "
                    f"({type(exc).__name__}: {exc}); a retry of the task starts again"
                ) from exc
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            delay += random.uniform(0, delay)
            log.warning(
                "%s: commit attempt %d/%d lost to a concurrent writer (%s); reloading and retrying in %.2f s",
                table,
                attempt,
                attempts,
                type(exc).__name__,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
