"""When a waiting trigger makes its next status call: the adaptive polling schedule.

No Airflow import and no clock of its own (every call is given ``now``), so the schedule is
tested and benchmarked in simulated time.

- The first status call comes ``poll_interval`` after ``started_at`` (the deferral, an absolute
  epoch time the trigger serializes); a trigger rebuilt later polls at once.
- While the request reports progress (``completed_pages`` of ``total_pages``), the next call aims
  just after the earliest end that steady progress allows: from the first answer with progress
  and the latest one, the fastest rate consistent with both (the pages of unfinished batches may
  be nearly done) gives the earliest end, and the call comes at that end plus
  ``0.9 * PROGRESS_LATENESS`` of it. So completion is noticed within ``PROGRESS_LATENESS`` (10 %)
  of the request's duration. Each answer re-estimates.
- Without progress (a single batch, no completed pages yet, or the first answer with progress,
  which gives no rate), the calls come at elapsed times growing by ``NO_PROGRESS_GROWTH`` (1.25x),
  so completion is noticed within 25 % of the duration.
- Every wait is at least ``poll_interval`` and at most ``max_poll_interval`` (or
  ``poll_interval`` when that is longer). With ``adaptive=False`` every wait is ``poll_interval``.

Everything but ``started_at`` is an in-memory refinement: a rebuilt schedule re-learns the rate
from two answers and keeps both bounds meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

from upstage_provider.status import BatchState, RequestInfo

#: The default longest wait between two status calls, in seconds.
DEFAULT_MAX_POLL_INTERVAL = 300.0
#: With progress, completion is noticed within this share of the request's duration.
PROGRESS_LATENESS = 0.10
#: Without progress, each call comes at most this many times the elapsed time of the last one.
NO_PROGRESS_GROWTH = 1.25
#: The share of the lateness bound a progress-based call aims at (the rest is slack for the call).
_AIM = 0.9


@dataclass(frozen=True, slots=True)
class Progress:
    """What one status answer says about how far the request is."""

    completed_pages: int
    total_pages: int
    in_flight_pages: int  # pages of unfinished batches that may already be partly done

    @classmethod
    def of(cls, info: RequestInfo) -> Progress | None:
        """The progress an answer reports, or None when it reports none (no page counts)."""
        if not info.total_pages or info.completed_pages is None:
            return None
        unfinished = [b for b in info.batches if b.status not in (BatchState.COMPLETED, BatchState.FAILED)]
        running = [b for b in unfinished if b.status in (BatchState.STARTED, BatchState.RETRYING)]
        # An API that does not mark batches as started still works on one of them.
        in_flight = sum(b.page_count for b in running) or max((b.page_count for b in unfinished), default=0)
        return cls(info.completed_pages, info.total_pages, in_flight)


class PollSchedule:
    """
    The waits between one request's status calls.

    :param poll_interval: the shortest wait, and the first one (seconds).
    :param max_poll_interval: the longest wait (raised to ``poll_interval`` if shorter).
    :param started_at: absolute UNIX time the wait began; the schedule is anchored on it.
    :param adaptive: False gives ``poll_interval`` every time.
    """

    def __init__(
        self,
        poll_interval: float,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        *,
        started_at: float,
        adaptive: bool = True,
    ) -> None:
        check_intervals(poll_interval, max_poll_interval)
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = max(float(max_poll_interval), self.poll_interval)
        self.started_at = float(started_at)
        self.adaptive = adaptive
        self._first: tuple[float, int] | None = None  # (elapsed, completed pages) first seen moving

    def first_wait(self, now: float) -> float:
        """Seconds until the first status call: ``poll_interval`` after the start, or none."""
        return max(0.0, self.started_at + self.poll_interval - now)

    def next_wait(self, now: float, progress: Progress | None) -> float:
        """Seconds from ``now`` (an answer that was not final) to the next status call."""
        if not self.adaptive:
            return self.poll_interval
        elapsed = max(0.0, now - self.started_at)
        wait = self._progress_wait(elapsed, progress)
        if wait is None:
            wait = (NO_PROGRESS_GROWTH - 1.0) * elapsed
        return min(self.max_poll_interval, max(self.poll_interval, wait))

    def _progress_wait(self, elapsed: float, progress: Progress | None) -> float | None:
        """The wait that lands just after the earliest end steady progress allows, if known."""
        if progress is None or progress.completed_pages <= 0:
            self._first = None
            return None
        if self._first is None or progress.completed_pages < self._first[1] or elapsed <= self._first[0]:
            self._first = (elapsed, progress.completed_pages)
            # One answer gives no rate of its own. With the start of the wait as the other end it
            # does if the work began then (not later), so the geometric wait stays the cap.
            anchored = _aim(elapsed, progress, since=0.0, pages_then=0)
            geometric = (NO_PROGRESS_GROWTH - 1.0) * elapsed
            return geometric if anchored is None else min(anchored, geometric)
        return _aim(elapsed, progress, *self._first)


def _aim(elapsed: float, progress: Progress, since: float, pages_then: int) -> float | None:
    """
    The wait to just after the earliest end steady progress since ``since`` allows: the pages
    then were at least ``pages_then``, the pages now at most the completed and in-flight ones.
    """
    if elapsed <= since:
        return None
    fastest = (progress.completed_pages + progress.in_flight_pages - pages_then) / (elapsed - since)
    if fastest <= 0:
        return None
    left = progress.total_pages - progress.completed_pages - progress.in_flight_pages
    earliest_end = elapsed + max(0, left) / fastest
    return earliest_end * (1.0 + _AIM * PROGRESS_LATENESS) - elapsed


def check_intervals(poll_interval: float, max_poll_interval: float) -> None:
    """A clear error for intervals no schedule can keep, before anything is submitted."""
    if not poll_interval > 0:
        raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
    if not max_poll_interval > 0:
        raise ValueError(f"max_poll_interval must be a positive number of seconds, got {max_poll_interval!r}")
