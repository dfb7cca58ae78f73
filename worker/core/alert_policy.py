"""Alert policies: when and how a match reaches a channel. Pure: `now` comes in.

A channel (optionally overridden per watchlist) says:

- `digest`: send alerts immediately (no digest) or collect them into a digest on
  a schedule: `hourly`, `daily`, `daily 08:00`, `daily 08:00 Europe/Berlin`, or a
  five-field cron expression with an optional zone (`0 8,17 * * 1-5 Europe/Berlin`);
- `throttle`: at most N immediate alerts per watchlist per rolling hour; the rest
  wait for the next top of the hour and go out together as one digest;
- `quiet_hours`: `22:00-07:00 Europe/Berlin`; immediate alerts in that window are
  held and sent as one digest when it ends;
- `min_relevance`: `any`, `title` (a watched name in the title), `N` (at least N
  mentions) or `title_or_N` (either);
- `story_updates`: a later source of an already-alerted story sends an "update"
  alert instead of nothing.

Every decision here is a function of its arguments, so it is tested with a
controlled clock and no database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.core.model import Hit
from worker.core.states import DeliveryRoute

# fields whose hits count as "mentions" in the article (not author/source/tags)
TEXT_FIELDS = frozenset({"title", "lead", "body"})
THROTTLE_WINDOW = timedelta(hours=1)


class PolicyError(ValueError):
    """A policy string that cannot be understood; the message says how to write it."""


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError(f"unknown time zone {name!r}") from None


def _is_zone(token: str) -> bool:
    # cron fields never contain a letter followed by "/" + letter, zone names do ("Europe/Berlin")
    return token == "UTC" or bool(re.fullmatch(r"[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+", token))


# --- schedules -------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A digest schedule: a cron expression evaluated in a time zone."""

    cron: str
    zone: str | None = None  # None: the channel's time zone
    text: str = ""  # as written, for messages

    def next_after(self, after: datetime, default_zone: str = "UTC") -> datetime:
        """The first run strictly after `after` (aware), as aware UTC."""
        from croniter import croniter

        zone = _zone(self.zone or default_zone)
        local = after.astimezone(zone)
        # croniter works on aware datetimes and handles DST gaps/overlaps in the zone
        nxt = croniter(self.cron, local).get_next(datetime)
        return nxt.astimezone(UTC)


_DAILY_RE = re.compile(r"^daily(?:\s+(\d{1,2}):(\d{2}))?(?:\s+(\S+))?$")
_HOURLY_RE = re.compile(r"^hourly(?:\s+:?(\d{1,2}))?$")  # `hourly` or `hourly :15`


def parse_schedule(text: str) -> Schedule:
    """`hourly`, `hourly :15`, `daily`, `daily 08:00 [Zone]`, or `<cron> [Zone]`."""
    raw = " ".join(str(text).split())
    if not raw:
        raise PolicyError("empty schedule")
    if m := _HOURLY_RE.match(raw):
        minute = int(m.group(1) or 0)
        if minute > 59:
            raise PolicyError(f"{text!r}: minute must be 0-59")
        return Schedule(f"{minute} * * * *", None, raw)
    if m := _DAILY_RE.match(raw):
        hour, minute, zone = int(m.group(1) or 0), int(m.group(2) or 0), m.group(3)
        if m.group(1) is None and zone is None and raw != "daily":
            raise PolicyError(f"{text!r}: write e.g. 'daily 08:00 Europe/Berlin'")
        if hour > 23 or minute > 59:
            raise PolicyError(f"{text!r}: not a time of day")
        if zone is not None:
            _zone(zone)
        return Schedule(f"{minute} {hour} * * *", zone, raw)
    parts = raw.split(" ")
    zone = parts.pop() if len(parts) > 1 and _is_zone(parts[-1]) else None
    if zone is not None:
        _zone(zone)
    cron = " ".join(parts)
    from croniter import croniter

    if len(parts) != 5 or not croniter.is_valid(cron):
        raise PolicyError(
            f"{text!r} is not a schedule; write 'hourly', 'daily 08:00 Europe/Berlin' "
            "or a five-field cron expression such as '0 8 * * 1-5 Europe/Berlin'"
        )
    return Schedule(cron, zone, raw)


# --- quiet hours -----------------------------------------------------------------


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time
    zone: str | None = None  # None: the channel's time zone

    def end_if_quiet(self, now: datetime, default_zone: str = "UTC") -> datetime | None:
        """When the quiet period containing `now` ends (aware UTC), or None if not quiet."""
        zone = _zone(self.zone or default_zone)
        local = now.astimezone(zone)
        t = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None  # an empty window
        if self.start < self.end:  # same day, e.g. 12:00-14:00
            quiet = self.start <= t < self.end
            end_day = local.date()
        else:  # across midnight, e.g. 22:00-07:00
            quiet = t >= self.start or t < self.end
            end_day = local.date() + timedelta(days=1) if t >= self.start else local.date()
        if not quiet:
            return None
        # wall-clock end in the zone; fold=0 picks the first of a repeated hour
        end_local = datetime.combine(end_day, self.end, tzinfo=zone)
        return end_local.astimezone(UTC)


_QUIET_RE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?$")


def parse_quiet_hours(text: str) -> QuietHours:
    m = _QUIET_RE.match(" ".join(str(text).split()))
    if not m:
        raise PolicyError(f"{text!r}: write quiet hours as '22:00-07:00 Europe/Berlin'")
    h1, m1, h2, m2 = (int(g) for g in m.groups()[:4])
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise PolicyError(f"{text!r}: not a time of day")
    zone = m.group(5)
    if zone is not None:
        _zone(zone)
    return QuietHours(time(h1, m1), time(h2, m2), zone)


# --- relevance -------------------------------------------------------------------


@dataclass(frozen=True)
class Relevance:
    """A match passes if a watched name is in the title (when `title`) or it has at
    least `mentions` hits in the article text. Neither set (`any`): every match
    passes, including one found only in an author or tag field."""

    title: bool = False
    mentions: int | None = None  # None: no count required

    def passes(self, hits: Iterable[Hit]) -> bool:
        if not self.title and self.mentions is None:
            return True
        hits = [h for h in hits if h.field in TEXT_FIELDS]
        if self.title and any(h.field == "title" for h in hits):
            return True
        return self.mentions is not None and len(hits) >= self.mentions


_RELEVANCE_RE = re.compile(r"^(?:(any)|(title)|(\d+)|title_or_(\d+))$")


def parse_relevance(text: str | int) -> Relevance:
    """`any` | `title` | `N` | `title_or_N`."""
    m = _RELEVANCE_RE.match(str(text).strip().lower())
    if not m:
        raise PolicyError(f"{text!r}: write 'any', 'title', a number of mentions, or 'title_or_2'")
    if m.group(1):
        return Relevance()
    if m.group(2):
        return Relevance(title=True, mentions=None)
    n = int(m.group(3) or m.group(4))
    if n < 1:
        raise PolicyError(f"{text!r}: at least one mention")
    return Relevance(title=m.group(4) is not None, mentions=n)


# --- the policy and the routing decision -------------------------------------------------


@dataclass(frozen=True)
class Policy:
    digest: Schedule | None = None  # None: immediate
    throttle: int | None = None  # max immediate alerts per watchlist per hour
    quiet_hours: QuietHours | None = None
    min_relevance: Relevance = Relevance()
    story_updates: bool = False
    timezone: str = "UTC"  # the channel's zone: default for schedules and quiet hours


OVERFLOW = Schedule("0 * * * *", "UTC", "hourly")  # where throttled alerts wait


@dataclass(frozen=True)
class Route:
    """Send now (`due_at` None) or hold in the digest batch due at `due_at`."""

    mode: Literal["immediate", "digest"]
    due_at: datetime | None = None
    reason: DeliveryRoute = DeliveryRoute.IMMEDIATE


def route(policy: Policy, now: datetime, recent_immediate: int) -> Route:
    """Where one new alert goes.

    `recent_immediate` is how many immediate alerts this (channel, watchlist) had
    in the last `THROTTLE_WINDOW`, not counting this one.
    """
    tz = policy.timezone
    if policy.digest is not None:
        due = policy.digest.next_after(now, tz)
        return Route("digest", hold_past_quiet(policy, due), DeliveryRoute.DIGEST)
    if policy.quiet_hours is not None:
        end = policy.quiet_hours.end_if_quiet(now, tz)
        if end is not None:
            return Route("digest", end, DeliveryRoute.QUIET)
    if policy.throttle is not None and recent_immediate >= policy.throttle:
        due = OVERFLOW.next_after(now)
        return Route("digest", hold_past_quiet(policy, due), DeliveryRoute.THROTTLE)
    return Route("immediate")


def hold_past_quiet(policy: Policy, due: datetime) -> datetime:
    """A digest never goes out inside quiet hours: it waits for their end."""
    if policy.quiet_hours is None:
        return due
    end = policy.quiet_hours.end_if_quiet(due, policy.timezone)
    return due if end is None else end
