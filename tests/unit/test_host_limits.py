"""The arithmetic of a request's turn (pure; the Lua script in shared_limits mirrors it)."""

from __future__ import annotations

import pytest

from worker.http.host_limits import next_turn


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
