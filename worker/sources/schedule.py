"""When to poll a source next: pure arithmetic, no clock, no I/O.

Three inputs decide the interval after a successful fetch:

- the source's `every` (the operator's wish, and the floor: never poll more often),
- the server's own hint of how long the answer stays fresh: the feed's `<ttl>`,
  `Cache-Control: max-age` (minus `Age`) or `Expires` (against `Date`),
- the source's longest interval (`max_every`, default 4 x every): the ceiling, so a
  feed that says "cache me for a day" is still looked at within the bound.

Then a deterministic per-source jitter (by default 0-10 % of the interval, from
the source's name) is added, so that sources with the same interval spread out
over time instead of all falling due on the same beat tick: each has a slightly
different period, so even sources first polled together drift apart.

When: beat looks for due sources every dispatch tick (1 s) and sends them at once, in
batches (`batches`); nothing is held in the broker with an ETA. A poll that starts within
a tick of its due time counts as started then (`scheduled_start`), so successive due
times are exactly the jittered interval apart and sources with different jitter drift
out of step. The tolerance: a poll starts within one dispatch tick plus the queue's
latency (the broker and a free worker thread) of its due time, and its due time is
`every x (1 + jitter)` after the previous one; two polls of a source are therefore
between `every` - 1 tick and `every x (1 + jitter)` + 1 tick apart.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from worker.core.httpdate import delay_seconds, parse_http_date, seconds_until

JITTER_FRACTION = 0.1  # the default; NEWSWATCH_SCHEDULE_JITTER
# a year: any longer freshness is the same hint (poll_interval bounds it much further)
_HINT_CAP = 366 * 86400.0

_MAX_AGE_RE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.I)
_NO_HINT_RE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.I)


def jitter_fraction(name: str) -> float:
    """A stable number in [0, 1) for a source name (the same in every process)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def with_jitter(name: str, seconds: float, jitter: float = JITTER_FRACTION) -> float:
    return seconds * (1 + jitter * jitter_fraction(name))


def without_jitter(name: str, seconds: float, jitter: float = JITTER_FRACTION) -> float:
    return seconds / (1 + jitter * jitter_fraction(name))


def previous_base(name: str, seconds: float, jitter: float = JITTER_FRACTION) -> float:
    """The interval chosen after the last poll (jitter removed), from its real start to
    the next due time. The next due time counts from the due time when the poll started
    within a second of it (`scheduled_start`), so `seconds` is short of the jittered
    interval by under a second; the intervals chosen are whole seconds (`every`, the
    ceiling, and the hints: `<ttl>` minutes, `max-age`, HTTP dates), so rounding up
    recovers it exactly instead of losing up to a second a poll."""
    return float(math.ceil(without_jitter(name, seconds, jitter) - 1e-6))


def freshness_hint(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the server says its answer stays fresh, from the response headers.

    `max-age` wins over `Expires` (RFC 9111 5.3); `no-cache`/`no-store` give no hint
    (they are about caches revalidating, which our conditional GET already does).
    """
    cache_control = headers.get("cache-control") or ""
    if _NO_HINT_RE.search(cache_control):
        return None
    m = _MAX_AGE_RE.search(cache_control)
    if m:
        max_age = delay_seconds(m.group(1), _HINT_CAP) or 0.0
        age = delay_seconds(headers.get("age"), _HINT_CAP) or 0.0
        return max(max_age - age, 0.0)
    date = parse_http_date(headers.get("date")) or now
    return seconds_until(headers.get("expires"), date, _HINT_CAP)


def poll_interval(
    every: float,
    longest: float,
    *hints: float | None,
    name: str = "",
    jitter: float = JITTER_FRACTION,
) -> float:
    """Seconds until the next poll: the largest hint, within [every, longest], jittered.

    The jitter never takes the interval below `every`; it may take it up to
    `jitter` past `longest`.
    """
    wanted = max([every, *(h for h in hints if h is not None)])
    return with_jitter(name, min(wanted, max(longest, every)), jitter)


def send_delay(due: datetime, now: datetime) -> float:
    """Seconds to hold a poll claimed at `now` so that it starts when it is due: 0 when
    it is due already (or overdue), never more than the dispatch looked ahead."""
    return max((due - now) / timedelta(seconds=1), 0.0)


def batches(
    plan: Sequence[tuple[int, float]], size: int, span: float
) -> list[tuple[list[int], float]]:
    """Group a dispatch plan (source id, seconds until due; soonest first) into fetch
    batches: at most `size` sources whose due times lie within `span` seconds of each
    other. A batch is held until its last source is due, so none is polled early and
    none more than `span` late."""
    out: list[tuple[list[int], float]] = []
    first = 0.0
    for source_id, delay in sorted(plan, key=lambda p: p[1]):
        if out and len(out[-1][0]) < size and delay - first <= span:
            out[-1][0].append(source_id)
            out[-1] = (out[-1][0], delay)
        else:
            out.append(([source_id], delay))
            first = delay
    return out


def scheduled_start(due: datetime | None, started: datetime, tick: float) -> datetime:
    """The time a poll counts as started, for its next due time: its due time when it
    started less than `tick` (at most 1 s) after it (the dispatch's rounding, not lateness
    of the source), else when it really started (a late poll: after downtime, a backlog).
    The row keeps the real start as its last fetch: `previous_base` allows for the gap."""
    if due is not None and timedelta(0) <= started - due < timedelta(seconds=min(tick, 1.0)):
        return due
    return started
