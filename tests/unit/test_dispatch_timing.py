"""The dispatch arithmetic, simulated without a clock: beat ticks, looks one tick ahead and
sends each due poll with its countdown (`schedule.send_delay`); the poll starts when its
message runs and sets the next due time (`schedule.poll_interval`). No latency is modelled:
what is checked is the plan, not the broker."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from worker.sources.schedule import JITTER_FRACTION, poll_interval, send_delay

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EVERY, TICK = 30, 10.0


def simulate(n: int, ahead: float, minutes: int) -> dict[str, list[float]]:
    """Each source's poll start times (seconds from T0); all first due at T0."""
    due = {f"s{i}": 0.0 for i in range(n)}
    starts: dict[str, list[float]] = {name: [] for name in due}
    tick = 0.0
    while tick < minutes * 60:
        now = T0 + timedelta(seconds=tick)
        sent = []
        for name, at in due.items():
            if at is not None and at <= tick + ahead:
                delay = send_delay(T0 + timedelta(seconds=at), now)
                assert 0 <= delay <= ahead
                sent.append((name, tick + delay))
        for name, start in sent:  # claimed: not dispatched again until polled
            starts[name].append(start)
            due[name] = start + poll_interval(EVERY, 4 * EVERY, name=name)
        tick += TICK
    return starts


def test_send_delay_is_the_time_until_due_and_never_negative():
    assert send_delay(T0 + timedelta(seconds=7.5), T0) == 7.5
    assert send_delay(T0, T0) == 0.0
    assert send_delay(T0 - timedelta(seconds=30), T0) == 0.0  # overdue: at once


@pytest.mark.parametrize("ahead", [TICK, 0.0])
def test_polls_keep_their_interval_within_the_jitter(ahead):
    starts = simulate(300, ahead, minutes=10)
    gaps = [b - a for times in starts.values() for a, b in itertools.pairwise(times)]
    within = all(EVERY <= g <= EVERY * (1 + JITTER_FRACTION) + 1e-6 for g in gaps)
    # looking ahead, every gap is the interval chosen; at the tick (ahead 0), as before
    # this fix, each 30-33 s interval waits for the 40 s tick
    assert within is (ahead == TICK)
    if ahead == 0.0:
        assert Counter(round(g) for g in gaps).most_common(1)[0][0] == 40


@pytest.mark.parametrize("ahead", [TICK, 0.0])
def test_polls_spread_evenly_over_the_ticks_once_the_jitter_has_drifted_them_apart(ahead):
    n = 300
    starts = simulate(n, ahead, minutes=40)
    late = [t for times in starts.values() for t in times if 30 * 60 <= t < 40 * 60]
    per_tick = Counter(int(t // TICK) for t in late)
    counts = [per_tick.get(k, 0) for k in range(180, 240)]
    mean = sum(counts) / len(counts)
    even = max(counts) <= 1.35 * mean and min(counts) >= 0.65 * mean
    # at the tick (before this fix) every source keeps the same 40 s beat: all in one tick
    assert even is (ahead == TICK), counts
