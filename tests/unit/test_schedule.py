"""The polling arithmetic: hints from headers, bounds, deterministic jitter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from requests.structures import CaseInsensitiveDict

from worker.sources.schedule import freshness_hint, jitter_fraction, poll_interval, with_jitter

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Cache-Control": "max-age=600"}, 600),
        ({"Cache-Control": "public, max-age=600, must-revalidate", "Age": "100"}, 500),
        ({"Cache-Control": "max-age=60", "Age": "600"}, 0),
        ({"Cache-Control": 'max-age="120"'}, 120),
        ({"Cache-Control": "s-maxage=600"}, None),  # for shared caches, not us
        ({"Cache-Control": "no-cache, max-age=600"}, None),
        ({"Cache-Control": "no-store"}, None),
        ({"Expires": "Thu, 01 Jan 2026 12:30:00 GMT"}, 1800),  # against our clock
        (
            {"Expires": "Thu, 01 Jan 2026 13:00:00 GMT", "Date": "Thu, 01 Jan 2026 12:50:00 GMT"},
            600,
        ),
        ({"Expires": "0"}, None),
        ({"Expires": "Thu, 01 Jan 2026 11:00:00 GMT"}, 0),
        ({"Cache-Control": "max-age=60", "Expires": "Thu, 01 Jan 2026 13:00:00 GMT"}, 60),
    ],
)
def test_freshness_hint(headers, expected):
    assert freshness_hint(CaseInsensitiveDict(headers), NOW) == expected


def test_poll_interval_bounds():
    assert poll_interval(300, 1200, jitter=0) == 300
    assert poll_interval(300, 1200, None, 10, jitter=0) == 300  # never more often than every
    assert poll_interval(300, 1200, 600, 900, jitter=0) == 900  # the longest hint
    assert poll_interval(300, 1200, 86400, jitter=0) == 1200  # never less often than longest
    assert poll_interval(300, 100, 86400, jitter=0) == 300  # a bad bound still gives every


def test_jitter_is_deterministic_bounded_and_spread():
    assert jitter_fraction("a") == jitter_fraction("a")
    fractions = [jitter_fraction(f"source-{i}") for i in range(1000)]
    assert all(0 <= f < 1 for f in fractions)
    # spread over the range, not clumped: each tenth gets a fair share
    for tenth in range(10):
        share = sum(tenth / 10 <= f < (tenth + 1) / 10 for f in fractions)
        assert 60 < share < 140
    assert all(300 <= with_jitter(f"s{i}", 300) < 330 for i in range(100))
    assert poll_interval(300, 1200, name="x") == with_jitter("x", 300)
