"""Alert policy decisions with a controlled clock: schedules, quiet hours, throttle, relevance."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from worker.core.alert_policy import (
    Policy,
    PolicyError,
    QuietHours,
    Relevance,
    Route,
    parse_quiet_hours,
    parse_relevance,
    parse_schedule,
    route,
)
from worker.core.model import Hit

BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- schedules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("hourly", utc(2026, 1, 1, 12, 0), utc(2026, 1, 1, 13, 0)),  # strictly after
        ("hourly", utc(2026, 1, 1, 12, 59, 59), utc(2026, 1, 1, 13, 0)),
        ("hourly :15", utc(2026, 1, 1, 12, 20), utc(2026, 1, 1, 13, 15)),
        ("daily", utc(2026, 1, 1, 12, 0), utc(2026, 1, 2, 0, 0)),
        # Berlin is UTC+1 in winter, UTC+2 in summer
        ("daily 08:00 Europe/Berlin", utc(2026, 1, 1, 6, 0), utc(2026, 1, 1, 7, 0)),
        ("daily 08:00 Europe/Berlin", utc(2026, 1, 1, 7, 0), utc(2026, 1, 2, 7, 0)),
        ("daily 08:00 Europe/Berlin", utc(2026, 7, 1, 5, 0), utc(2026, 7, 1, 6, 0)),
        # across the spring-forward night the wall clock still says 08:00
        ("daily 08:00 Europe/Berlin", utc(2026, 3, 28, 8, 0), utc(2026, 3, 29, 6, 0)),
        # cron with a zone: weekdays at 08:00 and 17:00; 2026-01-02 is a Friday
        ("0 8,17 * * 1-5 Europe/Berlin", utc(2026, 1, 2, 16, 30), utc(2026, 1, 5, 7, 0)),
        ("*/30 * * * *", utc(2026, 1, 1, 12, 10), utc(2026, 1, 1, 12, 30)),
    ],
)
def test_schedule_next_run(text: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(text).next_after(after) == expected


def test_schedule_without_zone_uses_the_channel_zone() -> None:
    s = parse_schedule("daily 08:00")
    assert s.next_after(utc(2026, 1, 1, 0, 0), default_zone=BERLIN) == utc(2026, 1, 1, 7, 0)
    assert s.next_after(utc(2026, 1, 1, 0, 0)) == utc(2026, 1, 1, 8, 0)


@pytest.mark.parametrize(
    "text", ["", "weekly", "daily 25:00", "daily 08:00 Mars/Base", "1 2 3", "hourly :75",
             "0 8 * * * Nowhere/Land"],
)  # fmt: skip
def test_bad_schedules_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_schedule(text)


# --- quiet hours ---------------------------------------------------------------------


def test_quiet_hours_across_midnight_in_the_zone() -> None:
    q = parse_quiet_hours("22:00-07:00 Europe/Berlin")
    assert q == QuietHours(time(22), time(7), BERLIN)
    assert q.end_if_quiet(utc(2026, 1, 1, 20, 59)) is None  # 21:59 in Berlin
    assert q.end_if_quiet(utc(2026, 1, 1, 21, 0)) == utc(2026, 1, 2, 6, 0)  # 22:00 -> 07:00
    assert q.end_if_quiet(utc(2026, 1, 2, 3, 0)) == utc(2026, 1, 2, 6, 0)  # 04:00 -> 07:00
    assert q.end_if_quiet(utc(2026, 1, 2, 6, 0)) is None  # 07:00: over


def test_quiet_hours_within_a_day_and_default_zone() -> None:
    q = parse_quiet_hours("12:00-14:00")
    assert q.end_if_quiet(utc(2026, 1, 1, 13, 0)) == utc(2026, 1, 1, 14, 0)
    assert q.end_if_quiet(utc(2026, 1, 1, 11, 0), default_zone=BERLIN) == utc(2026, 1, 1, 13, 0)
    assert q.end_if_quiet(utc(2026, 1, 1, 14, 0)) is None


@pytest.mark.parametrize("text", ["22-07", "22:00 to 07:00", "25:00-07:00", "22:00-07:00 X/Y"])
def test_bad_quiet_hours(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_quiet_hours(text)


# --- relevance -----------------------------------------------------------------------


def hit(field: str) -> Hit:
    return Hit(field=field, start=0, end=3, text="PMF", term="PMF", entity="PMF")


@pytest.mark.parametrize(
    ("spec", "hits", "passes"),
    [
        ("any", [hit("body")], True),
        ("any", [hit("author")], True),  # no requirement at all
        ("1", [hit("author")], False),
        ("title", [hit("body"), hit("body")], False),
        ("title", [hit("title")], True),
        ("2", [hit("body")], False),
        ("2", [hit("body"), hit("lead")], True),
        ("title_or_2", [hit("title")], True),
        ("title_or_2", [hit("body")], False),
        ("title_or_2", [hit("body"), hit("body")], True),
        # author/source/tag hits are not mentions in the article text
        ("title_or_2", [hit("body"), hit("tag"), hit("author")], False),
    ],
)
def test_min_relevance(spec: str, hits: list[Hit], passes: bool) -> None:
    assert parse_relevance(spec).passes(hits) is passes


def test_bad_relevance() -> None:
    for spec in ("title_or", "0", "some", "title_or_0"):
        with pytest.raises(PolicyError):
            parse_relevance(spec)
    assert parse_relevance(3) == Relevance(title=False, mentions=3)


# --- routing -------------------------------------------------------------------------


def test_immediate_by_default() -> None:
    assert route(Policy(), utc(2026, 1, 1, 12, 0), recent_immediate=1000) == Route("immediate")


def test_digest_waits_for_the_schedule() -> None:
    p = Policy(digest=parse_schedule("hourly"))
    assert route(p, utc(2026, 1, 1, 12, 1), 0) == Route("digest", utc(2026, 1, 1, 13, 0), "digest")


def test_throttle_sends_n_per_hour_then_holds_for_the_next_top_of_the_hour() -> None:
    p = Policy(throttle=3)
    now = utc(2026, 1, 1, 12, 20)
    assert [route(p, now, n).mode for n in range(5)] == ["immediate"] * 3 + ["digest"] * 2
    assert route(p, now, 3) == Route("digest", utc(2026, 1, 1, 13, 0), "throttle")


def test_quiet_hours_hold_immediate_alerts_until_they_end() -> None:
    p = Policy(quiet_hours=parse_quiet_hours("22:00-07:00"), timezone=BERLIN)
    night = utc(2026, 1, 1, 22, 30)  # 23:30 in Berlin
    assert route(p, night, 0) == Route("digest", utc(2026, 1, 2, 6, 0), "quiet")
    assert route(p, utc(2026, 1, 2, 9, 0), 0) == Route("immediate")


def test_digest_and_throttle_overflow_never_go_out_in_quiet_hours() -> None:
    p = Policy(digest=parse_schedule("hourly"), quiet_hours=parse_quiet_hours("22:00-07:00 UTC"))
    assert route(p, utc(2026, 1, 1, 21, 10), 0).due_at == utc(2026, 1, 2, 7, 0)
    assert route(p, utc(2026, 1, 1, 20, 10), 0).due_at == utc(2026, 1, 1, 21, 0)
    t = Policy(throttle=1, quiet_hours=parse_quiet_hours("22:00-07:00 UTC"))
    assert route(t, utc(2026, 1, 1, 21, 30), 5) == Route(
        "digest", utc(2026, 1, 2, 7, 0), "throttle"
    )
