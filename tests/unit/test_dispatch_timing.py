"""The dispatch arithmetic, simulated without a clock: beat ticks every `tick` seconds and
sends each poll that is due by then at once (no countdown: a message held for later sits in
a worker's memory and is lost with the broker's connection, see tasks.dispatch_due); the
poll starts when its message runs and sets the next due time (`schedule.poll_interval`).
No latency is modelled: what is checked is the plan, not the broker."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from worker.sources.schedule import (
    JITTER_FRACTION,
    poll_interval,
    previous_base,
    scheduled_start,
    send_delay,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EVERY, WINDOW = 30, 10.0
DISPATCH, OLD_TICK = 1.0, 10.0  # the dispatch tick now, and the 10 s tick it replaced


def simulate(n: int, tick: float, minutes: int) -> dict[str, list[float]]:
    """Each source's poll start times (seconds from T0); all first due at T0. With
    OLD_TICK, as before: the next due time counted from the tick that sent the poll."""
    due = {f"s{i}": 0.0 for i in range(n)}
    starts: dict[str, list[float]] = {name: [] for name in due}
    now = 0.0
    while now < minutes * 60:
        sent = [name for name, at in due.items() if at <= now]
        for name in sent:  # claimed and sent at this tick
            starts[name].append(now)
            at = T0 + timedelta(seconds=now)
            if tick == DISPATCH:
                at = scheduled_start(T0 + timedelta(seconds=due[name]), at, tick)
            due[name] = (at - T0).total_seconds() + poll_interval(EVERY, 4 * EVERY, name=name)
        now += tick
    return starts


def test_send_delay_is_the_time_until_due_and_never_negative():
    assert send_delay(T0 + timedelta(seconds=7.5), T0) == 7.5
    assert send_delay(T0, T0) == 0.0
    assert send_delay(T0 - timedelta(seconds=30), T0) == 0.0  # overdue: at once


@pytest.mark.parametrize("tick", [DISPATCH, OLD_TICK])
def test_polls_keep_their_interval_within_the_jitter_and_a_tick(tick):
    starts = simulate(300, tick, minutes=10)
    gaps = [b - a for times in starts.values() for a, b in itertools.pairwise(times)]
    low, high = EVERY - DISPATCH, EVERY * (1 + JITTER_FRACTION) + DISPATCH
    within = all(low - 1e-6 <= g <= high + 1e-6 for g in gaps)
    # with the 1 s dispatch tick every gap is the interval chosen, within a tick; with a
    # 10 s tick each 30-33 s interval waits for the 40 s tick
    assert within is (tick == DISPATCH)
    if tick == OLD_TICK:
        assert Counter(round(g) for g in gaps).most_common(1)[0][0] == 40


@pytest.mark.parametrize("tick", [DISPATCH, OLD_TICK])
def test_polls_spread_evenly_over_time_once_the_jitter_has_drifted_them_apart(tick):
    n = 300
    starts = simulate(n, tick, minutes=40)
    late = [t for times in starts.values() for t in times if 30 * 60 <= t < 40 * 60]
    per_window = Counter(int(t // WINDOW) for t in late)
    counts = [per_window.get(k, 0) for k in range(180, 240)]
    mean = sum(counts) / len(counts)
    even = max(counts) <= 1.35 * mean and min(counts) >= 0.65 * mean
    # with a 10 s tick every source keeps the same 40 s beat: all in one window of four
    assert even is (tick == DISPATCH), counts


def test_a_poll_counts_from_its_due_time_when_it_started_within_a_tick():
    due = T0 + timedelta(seconds=30.4)
    assert scheduled_start(due, T0 + timedelta(seconds=31), 1.0) == due  # the tick's rounding
    late = T0 + timedelta(seconds=95)
    assert scheduled_start(due, late, 1.0) == late  # late (downtime, backlog): from now
    assert scheduled_start(None, late, 1.0) == late  # never dispatched by beat
    early = T0 + timedelta(seconds=29)
    assert scheduled_start(due, early, 1.0) == early  # started before due: from then


@pytest.mark.parametrize("lateness", [0.0, 0.25, 0.999])
def test_the_previous_interval_is_recovered_whole_from_a_poll_started_late_in_its_tick(lateness):
    # the row keeps the real start; the next due time counts from the due time
    for name, base in (("wire", 300.0), ("agency", 3600.0), ("x", 30.0)):
        interval = poll_interval(base, 4 * base, name=name)
        seconds = interval - lateness  # next due - real start
        assert previous_base(name, seconds) == base
    # no loss a poll: a hint kept over many 304s stays what it was
    base = 3600.0
    for _ in range(100):
        base = previous_base("wire", poll_interval(30, 7200, base, name="wire") - 0.9)
    assert base == 3600.0
