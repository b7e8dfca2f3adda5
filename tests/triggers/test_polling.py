"""The adaptive polling schedule, alone and inside UpstageOCRTrigger, in simulated time."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.emulator_fixtures import pdf_bytes
from tests.simulated_time import EPOCH, SimulatedClock, SimulatedRequest, run, run_trigger
from upstage_provider.documents import load_document
from upstage_provider.emulator.config import FaultConfig
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.polling import (
    DEFAULT_MAX_POLL_INTERVAL,
    NO_PROGRESS_GROWTH,
    PROGRESS_LATENESS,
    PollSchedule,
    Progress,
)
from upstage_provider.triggers.ocr import UpstageOCRTrigger

SLACK = 1e-6  # float rounding in simulated time


def within(late: float, poll_interval: float, share: float, duration: float) -> bool:
    return late <= max(poll_interval, share * duration) + SLACK


# --- the goal, through the trigger ----------------------------------------------------------


def test_a_100_page_request_in_10_batches_of_6_s_takes_few_status_calls() -> None:
    request = SimulatedRequest(batches=10, seconds_per_batch=6.0)
    outcome = run(request, poll_interval=2)
    assert outcome.event is not None
    assert outcome.event["status"] == "success"
    assert outcome.calls <= 12
    assert 0 <= outcome.late <= 6.0
    fixed = run(SimulatedRequest(batches=10, seconds_per_batch=6.0), poll_interval=2, adaptive_polling=False)
    assert fixed.calls == 30  # every 2 s for 60 s: what the fixed interval costs


def test_without_progress_completion_is_noticed_within_a_quarter_of_the_wait() -> None:
    request = SimulatedRequest(batches=1, seconds_per_batch=60.0)
    outcome = run(request, poll_interval=2)
    assert outcome.event is not None
    assert outcome.event["status"] == "success"
    assert 0 <= outcome.late <= 0.25 * 60.0
    assert outcome.calls < 30 / 2
    # The waits grow, by 1.25x at most from one to the next.
    ratios = [b / a for a, b in itertools.pairwise(outcome.waits)]
    assert max(ratios) <= NO_PROGRESS_GROWTH + SLACK
    assert outcome.waits[-1] > outcome.waits[0]


def test_a_six_hour_wait_costs_under_a_hundred_calls_not_2160() -> None:
    outcome = run(SimulatedRequest(batches=1, seconds_per_batch=6 * 3600.0), poll_interval=10)
    assert outcome.calls < 100
    assert max(outcome.waits) == pytest.approx(DEFAULT_MAX_POLL_INTERVAL)


def test_adaptive_polling_off_gives_the_fixed_interval() -> None:
    outcome = run(
        SimulatedRequest(batches=1, seconds_per_batch=50.0), poll_interval=5, adaptive_polling=False
    )
    assert outcome.waits == pytest.approx([5.0] * 10)
    assert outcome.calls == 10


def test_the_deadline_still_caps_every_wait() -> None:
    request = SimulatedRequest(batches=1, seconds_per_batch=3600.0)
    outcome = run(request, poll_interval=10, deadline=EPOCH + 1000.0)
    assert outcome.event is not None
    assert outcome.event["status"] == "timeout"
    assert EPOCH + 1000.0 - request.calls[-1] == pytest.approx(0.0)  # the last call at the deadline


def test_max_poll_interval_caps_the_waits() -> None:
    outcome = run(
        SimulatedRequest(batches=1, seconds_per_batch=3600.0), poll_interval=10, max_poll_interval=60
    )
    assert max(outcome.waits) == pytest.approx(60.0)
    assert outcome.late <= 60.0


# --- a triggerer restart keeps the schedule ---------------------------------------------------------------


@pytest.mark.parametrize("batches", [1, 10])
async def test_a_trigger_rebuilt_from_serialize_keeps_the_schedule(batches: int) -> None:
    # An hour-long wait, the triggerer going down after 40 minutes and coming back at once.
    request = SimulatedRequest(batches=batches, seconds_per_batch=3600.0 / batches)
    clock = SimulatedClock()
    first = await run_trigger(request, clock, stop_at=EPOCH + 2400.0, poll_interval=10)
    assert first.event is None
    calls_before = first.calls
    _path, kwargs = first.trigger.serialize()
    assert kwargs["started_at"] == EPOCH  # the anchor, not the time of the rebuild
    resumed = await run_trigger(request, clock, **kwargs)
    assert resumed.event is not None
    assert resumed.event["status"] == "success"
    # Polls once on resuming, then keeps to the old schedule's spacing, not poll_interval's.
    assert resumed.waits[0] > 10 * 10
    assert resumed.calls - calls_before <= 8
    uninterrupted = await run_trigger(
        SimulatedRequest(batches=batches, seconds_per_batch=3600.0 / batches), poll_interval=10
    )
    share = 0.25 if batches == 1 else PROGRESS_LATENESS
    assert within(resumed.late, 10, share, request.duration)
    assert resumed.calls <= uninterrupted.calls + 3


def test_the_trigger_serializes_its_schedule_as_primitives() -> None:
    trigger = UpstageOCRTrigger(
        "r-1",
        "upstage_default",
        poll_interval=3,
        max_poll_interval=90,
        adaptive_polling=False,
        started_at=5.0,
    )
    _path, kwargs = trigger.serialize()
    assert (kwargs["max_poll_interval"], kwargs["adaptive_polling"], kwargs["started_at"]) == (
        90.0,
        False,
        5.0,
    )
    assert UpstageOCRTrigger(**kwargs).serialize() == trigger.serialize()


@pytest.mark.parametrize(
    ("poll_interval", "max_poll_interval", "named"),
    [(0, 300, "poll_interval"), (-1, 300, "poll_interval"), (10, 0, "max_poll_interval")],
)
def test_intervals_no_schedule_can_keep_are_refused(
    poll_interval: float, max_poll_interval: float, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        UpstageOCRTrigger("r-1", poll_interval=poll_interval, max_poll_interval=max_poll_interval)


# --- the schedule alone ---------------------------------------------------------------------------------


def test_the_first_call_comes_one_poll_interval_after_the_start() -> None:
    schedule = PollSchedule(4.0, started_at=100.0)
    assert schedule.first_wait(100.0) == 4.0
    assert schedule.first_wait(103.0) == pytest.approx(1.0)
    assert schedule.first_wait(500.0) == 0.0  # rebuilt later: poll at once


def test_progress_aims_near_the_expected_end() -> None:
    # 10 pages of 100 done after 10 s, 20 after 20 s: steady, so the end is near 100 s.
    schedule = PollSchedule(1.0, started_at=0.0)
    # One answer: the rate since the start (20 pages in 10 s at most: the end at 50 s at the
    # earliest) if the work began then, but no more than 25 % of the elapsed time.
    assert schedule.next_wait(10.0, Progress(10, 100, 10)) == pytest.approx(2.5)
    wait = schedule.next_wait(20.0, Progress(20, 100, 10))
    # The fastest rate both answers allow: (20 + 10 - 10) pages in 10 s, 70 pages left after the
    # in-flight ones: the earliest end at 55 s, and the call 9 % of that later.
    assert 20.0 + wait == pytest.approx(55.0 * (1 + 0.9 * PROGRESS_LATENESS))


def test_progress_going_backwards_starts_the_estimate_again() -> None:
    schedule = PollSchedule(1.0, started_at=0.0)
    schedule.next_wait(10.0, Progress(50, 100, 10))
    assert schedule.next_wait(20.0, Progress(20, 100, 10)) == pytest.approx(5.0)  # no rate yet: 25 %


durations = st.floats(min_value=1.0, max_value=8 * 3600.0)
poll_intervals = st.floats(min_value=0.5, max_value=120.0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.integers(min_value=2, max_value=100),
    duration=durations,
    workers=st.integers(min_value=1, max_value=4),
    poll_interval=poll_intervals,
    max_poll_interval=st.one_of(
        st.just(DEFAULT_MAX_POLL_INTERVAL), st.floats(min_value=1.0, max_value=3600.0)
    ),
)
def test_with_progress_completion_is_noticed_within_10_percent(
    batches: int, duration: float, workers: int, poll_interval: float, max_poll_interval: float
) -> None:
    rounds = math.ceil(batches / workers)
    assume(rounds >= 2)  # batches all finishing at once report no progress before the end
    request = SimulatedRequest(batches=batches, seconds_per_batch=duration / rounds, workers=workers)
    outcome = run(request, poll_interval=poll_interval, max_poll_interval=max_poll_interval)
    assert outcome.event is not None
    assert outcome.event["status"] == "success"
    assert outcome.late >= 0
    assert within(outcome.late, poll_interval, PROGRESS_LATENESS, request.duration), outcome.waits
    longest = max(poll_interval, max_poll_interval)
    assert all(poll_interval - SLACK <= w <= longest + SLACK for w in outcome.waits), outcome.waits


@settings(max_examples=100, deadline=None)
@given(
    duration=durations,
    poll_interval=poll_intervals,
    batches=st.integers(min_value=1, max_value=50),
    max_poll_interval=st.one_of(
        st.just(DEFAULT_MAX_POLL_INTERVAL), st.floats(min_value=1.0, max_value=3600.0)
    ),
)
def test_without_progress_completion_is_noticed_within_25_percent(
    duration: float, poll_interval: float, batches: int, max_poll_interval: float
) -> None:
    # A single batch, or an API that reports no page counts at all.
    request = SimulatedRequest(
        batches=batches, seconds_per_batch=duration / batches, report_progress=batches == 1
    )
    outcome = run(request, poll_interval=poll_interval, max_poll_interval=max_poll_interval)
    assert outcome.late >= 0
    assert within(outcome.late, poll_interval, 0.25, request.duration), outcome.waits
    longest = max(poll_interval, max_poll_interval)
    assert all(poll_interval - SLACK <= w <= longest + SLACK for w in outcome.waits), outcome.waits
    ratios = [b / a for a, b in itertools.pairwise(outcome.waits)]
    assert all(r <= NO_PROGRESS_GROWTH + SLACK for r in ratios), outcome.waits


@settings(max_examples=200, deadline=None)
@given(
    poll_interval=poll_intervals,
    max_poll_interval=st.floats(min_value=0.1, max_value=3600.0),
    elapsed=st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=30),
    pages=st.lists(st.integers(min_value=0, max_value=1000), min_size=30, max_size=30),
    adaptive=st.booleans(),
)
def test_no_wait_is_shorter_than_poll_interval_or_longer_than_the_cap(
    poll_interval: float, max_poll_interval: float, elapsed: list[float], pages: list[int], adaptive: bool
) -> None:
    schedule = PollSchedule(poll_interval, max_poll_interval, started_at=0.0, adaptive=adaptive)
    for now, done in zip(sorted(elapsed), pages, strict=False):
        progress = None if done == 0 else Progress(min(done, 999), 1000, done % 30)
        wait = schedule.next_wait(now, progress)
        assert poll_interval <= wait <= max(poll_interval, max_poll_interval)
        if not adaptive:
            assert wait == poll_interval


# --- for real, against the emulator --------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_against_the_emulator_the_goal_takes_at_most_12_status_calls(
    make_emulator: Callable[..., EmulatorServer], connect: Callable[..., str]
) -> None:
    # The request at 1/20 of the time: 100 pages, one 10-page batch every 0.3 s on one
    # worker, poll_interval 0.1 s (the schedule scales with time). The fixed interval: 30 calls.
    server = make_emulator(FaultConfig(latency_per_page=0.03), workers=1, batch_size=10)
    conn_id = connect(server.url)
    hook = UpstageOCRHook(conn_id)
    try:
        request_id = hook.submit(load_document(pdf_bytes(100), name="100.pdf"))
    finally:
        hook.close()
    trigger = UpstageOCRTrigger(request_id, conn_id, poll_interval=0.1)
    (event,) = [e async for e in trigger.run()]
    assert event.payload["status"] == "success"
    assert event.payload["total_pages"] == 100
    calls = server.stats()["endpoints"]["status"]["total"]
    assert 4 <= calls <= 12, calls
