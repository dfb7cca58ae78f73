"""One bounded parser for HTTP dates and Retry-After, whatever a server sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from requests.structures import CaseInsensitiveDict

from worker.alerts import webhook
from worker.core import httpdate
from worker.core.httpdate import (
    DELIVERY_RETRY_AFTER_CAP,
    FETCH_RETRY_AFTER_CAP,
    bounded,
    parse_http_date,
    retry_after,
)
from worker.http import fetcher
from worker.sources import schedule

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Thu, 01 Jan 2026 12:00:00 GMT", NOW),  # IMF-fixdate
        ("Thursday, 01-Jan-26 12:00:00 GMT", NOW),  # RFC 850
        ("Thu Jan  1 12:00:00 2026", NOW),  # asctime: no zone, GMT
        ("Thu, 01 Jan 2026 13:00:00 +0100", NOW),
        ("Thu, 01 Jan 2026 12:00:00 -0000", NOW),
        ("Fri, 31 Dec 9999 23:59:59 GMT", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("Fri, 31 Dec 9999 23:59:59 -1400", None),  # past the end of year 9999 in UTC
        ("Sat, 01 Jan 0000 00:00:00 GMT", None),  # year 0
        ("Mon, 01 Jan 99999 00:00:00 GMT", None),
        ("Thu, 32 Jan 2026 12:00:00 GMT", None),
        ("Thu, 01 Jan 2026 25:00:00 GMT", None),
        ("Thu, 01 Jan 2026 12:00:00 +9999", None),  # an offset of more than a day
        ("Thu, 01 Jan 2026 12:00:00 +1400", NOW - timedelta(hours=14)),
        ("Thu, 01 Jan 49 12:00:00 GMT", datetime(2049, 1, 1, 12, tzinfo=UTC)),
        ("0", None),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Thu, 01 Jan 2026 12:00:00 GMT" + " " * 1000, None),  # not a header value, refused
    ],
)
def test_parse_http_date(value: str | None, expected: datetime | None) -> None:
    assert parse_http_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("300000000000", DAY),  # the case from the issue
        ("9" * 5000, DAY),  # int() refuses strings of more than 4300 digits
        ("-5", None),
        ("+5", None),
        ("²", None),  # str.isdigit() says yes, float() says no
        ("١٢٠", None),  # Arabic-Indic digits: not delay-seconds
        ("1e9", None),
        ("inf", None),
        ("nan", None),
        ("Thu, 01 Jan 2026 12:01:30 GMT", 90.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("Fri, 31 Dec 9999 23:59:59 GMT", DAY),  # far future: the cap
        ("Fri, 31 Dec 9999 23:59:59 -1400", None),
        ("Mon, 01 Jan 0001 00:00:00 GMT", None),  # read as 2001 by email.utils: refused
        ("Mon, 01 Jan 1900 00:00:00 GMT", 0.0),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after(value, NOW, DAY) == expected
    # the fetcher and the webhook sender read it the same way, within their caps
    assert FETCH_RETRY_AFTER_CAP == DELIVERY_RETRY_AFTER_CAP == DAY
    assert fetcher.parse_retry_after(value, NOW) == expected
    assert webhook.parse_retry_after(value, NOW.timestamp()) == expected


def test_bounded() -> None:
    assert bounded(10**400, DAY) == DAY  # float(10**400) would overflow
    assert bounded(3e11, DAY) == DAY
    assert bounded(float("inf"), DAY) == DAY
    assert bounded(-5, DAY) == 0.0
    assert bounded(float("-inf"), DAY) == 0.0
    assert bounded(12, DAY) == 12.0
    for junk in (float("nan"), None, "120", True, object()):
        assert bounded(junk, DAY) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Cache-Control": "max-age=" + "9" * 5000}, 366 * DAY),  # int() would refuse it
        ({"Cache-Control": "max-age=600", "Age": "9" * 5000}, 0.0),
        ({"Cache-Control": "max-age=600", "Age": "junk"}, 600.0),
        ({"Expires": "Fri, 31 Dec 9999 23:59:59 GMT"}, 366 * DAY),
        ({"Expires": "Fri, 31 Dec 9999 23:59:59 -1400"}, None),
        (
            {"Expires": "Thu, 01 Jan 2026 12:30:00 GMT", "Date": "Sat, 01 Jan 0000 00:00:00 GMT"},
            1800,
        ),
        ({"Expires": "Thu, 01 Jan 2026 12:30:00 -0000"}, 1800),  # no zone: GMT, as RFC 9110
    ],
)
def test_freshness_hints_from_hostile_headers(headers: dict, expected: float | None) -> None:
    assert schedule.freshness_hint(CaseInsensitiveDict(headers), NOW) == expected


def test_seconds_until() -> None:
    assert httpdate.seconds_until("Thu, 01 Jan 2026 12:00:10 GMT", NOW, DAY) == 10
    assert httpdate.seconds_until("junk", NOW, DAY) is None
