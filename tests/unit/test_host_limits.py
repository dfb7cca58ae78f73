"""The arithmetic of a request's turn and of its send's confirmation (pure; the Lua
scripts in shared_limits mirror it)."""

from __future__ import annotations

import pytest

from worker.http.host_limits import next_turn, send_wait


@pytest.mark.parametrize(
    ("now", "next_free", "remaining", "expected"),
    [
        (10.0, 0.0, 5.0, 10.0),  # a host never seen: now
        (10.0, 9.5, 5.0, 10.0),  # its turn is past: now
        (10.0, 12.0, 5.0, 12.0),  # wait for its turn
        (10.0, 15.0, 5.0, 15.0),  # exactly at the deadline: still taken
        (10.0, 15.5, 5.0, None),  # after the deadline: not taken
    ],
)
def test_next_turn(now: float, next_free: float, remaining: float, expected: float | None) -> None:
    assert next_turn(now, next_free, remaining) == expected


@pytest.mark.parametrize(
    ("now", "last_sent", "interval", "expected"),
    [
        (10.0, None, 0.2, 0.0),  # nothing sent to the host yet: send now
        (10.0, 9.0, 0.2, 0.0),  # the last send is long past: send now
        (10.0, 9.8, 0.2, 0.0),  # exactly one interval ago: send now
        (10.0, 9.9, 0.2, pytest.approx(0.1)),  # a late thread sent 0.1 s ago: wait the rest
        (10.0, 10.0, 1.0, 1.0),  # sent just now (a Crawl-delay of 1 s): a whole interval
    ],
)
def test_send_wait(now: float, last_sent: float | None, interval: float, expected: float) -> None:
    assert send_wait(now, last_sent, interval) == expected
