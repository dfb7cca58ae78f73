"""HTTP dates and delays from response headers (RFC 9110), bounded, never raising.

One parser for every header that carries an HTTP-date or a number of seconds
(`Retry-After`, `Expires`, `Date`, `Cache-Control: max-age`), used by the
fetcher, the webhook sender and the poll schedule alike, so that they cannot
drift apart again. Whatever a server sends (negative numbers, 300000000000,
a thousand digits, year 0 or 9999, an offset of -14:00 at the end of year 9999,
garbage), the answer is a number within the caller's cap, or None: never an
exception, never a delay that overflows a datetime.

Caps (seconds):

- `FETCH_RETRY_AFTER_CAP`, 1 day: a server cannot park a source for longer with
  Retry-After; the source's own backoff (up to 6 hours) still applies.
- `DELIVERY_RETRY_AFTER_CAP`, 1 day: a webhook receiver cannot park a delivery
  for longer; its attempt limit still applies.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

FETCH_RETRY_AFTER_CAP = 24 * 3600.0
DELIVERY_RETRY_AFTER_CAP = 24 * 3600.0

# delay-seconds is 1*DIGIT; a decimal fraction is tolerated. ASCII digits only:
# str.isdigit() also accepts "²" and "٣", which float() then refuses.
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# 15 digits is 30 million years: anything longer is over every cap (and int() refuses
# strings of more than 4300 digits).
_MAX_DIGITS = 15
_MAX_DATE_CHARS = 100  # an HTTP-date is 29 characters
_YEAR = re.compile(r"(?<![\d:])\d{3,}(?![\d:])")  # the only run of 3+ digits not in a time


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime form) as an aware UTC datetime.

    None when it is not one, or names a moment that is not a datetime (year 0,
    or past the end of year 9999 once in UTC). A date without a zone is GMT.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_DATE_CHARS:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    year = _YEAR.search(value)
    if year and int(year.group()) != parsed.year:
        return None  # "0000" is read as 2000 (a two-digit year); a written year must hold
    if parsed.tzinfo is None:  # "-0000" or no zone: RFC 9110 dates are GMT
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def bounded(seconds: object, cap: float) -> float | None:
    """A number of seconds within [0, cap]; None when it is not a number (NaN included)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if isinstance(seconds, float) and math.isnan(seconds):
        return None
    if seconds >= cap:  # compared before float(): float() of a huge int overflows
        return float(cap)
    return max(float(seconds), 0.0)


def delay_seconds(value: str | None, cap: float) -> float | None:
    """delay-seconds ("120") within [0, cap]; None when the value is not a number."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _SECONDS.fullmatch(text):
        return None
    if len(text.split(".", 1)[0]) > _MAX_DIGITS:
        return float(cap)
    return bounded(float(text), cap)


def retry_after(value: str | None, now: datetime, cap: float) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or an HTTP-date),
    within [0, cap]; None when absent or unreadable (the normal backoff applies).
    A date in the past means now (0); `now` must be aware."""
    seconds = delay_seconds(value, cap)
    if seconds is not None:
        return seconds
    when = parse_http_date(value)
    if when is None:
        return None
    return bounded((when - now).total_seconds(), cap)


def seconds_until(value: str | None, since: datetime, cap: float) -> float | None:
    """Seconds from `since` to the HTTP-date `value` (e.g. Expires against Date),
    within [0, cap]; None when `value` is not a date."""
    when = parse_http_date(value)
    if when is None:
        return None
    return bounded((when - since).total_seconds(), cap)
