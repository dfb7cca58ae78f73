"""Feed gaps: did a feed's window move past everything newswatch had seen? Pure.

A feed shows its newest N entries. If more than N were published between two polls
(newswatch was down, the disk was full, the poll interval is too long for the feed),
the ones in between scrolled out unseen. newswatch cannot know what they were, but
it can tell that it may have missed some, and for what span of time: a **gap**.

The rule (docs/operations.md, "Feed gaps"), judged on each successful poll that got
entries (a 304 says nothing):

1. Only after an earlier poll of the same feed URL stored its window (`Window`): a
   first poll, or the first after the URL changed, is never a gap.
2. Only for a window of at least `MIN_WINDOW` entries: a feed that shows one or two
   entries turns over with every new post, which says nothing about missed ones.
3. Every visible entry is new (its key was never stored for this source).
4. None of them is the same article as one in the previous window, by canonical link
   or by content digest. This is what keeps a feed that rewrites its GUIDs on every
   poll (all keys new, same articles) from reporting a gap each time.
5. Dated feeds (every visible entry has a date): the oldest visible entry is newer
   than the newest entry of the previous window. An all-new window of old dates
   (rewritten ids and content) is no gap.
   Undated feeds: the window is full, at least as long as the previous one or
   `FULL_WINDOW` entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.core import urls
from worker.core.durations import human as _span

MIN_WINDOW = 3  # fewer visible entries are never judged (rule 2)
FULL_WINDOW = 20  # an undated window this long counts as full whatever it was before
MAX_TOKENS = 400  # two per entry: the first 200 entries of a window are remembered
TOKEN_CHARS = 10  # 40 bits: no chance collision among a few hundred tokens


@dataclass(frozen=True)
class Window:
    """What one successful poll of a feed showed, as stored on its source row."""

    size: int  # entries visible (refused ones left out)
    newest_at: datetime | None  # the newest entry date among them; None when undated
    tokens: frozenset[str]  # the entries' links and content digests, hashed
    polled_at: datetime | None = None  # the poll that showed it (the last success)


@dataclass(frozen=True)
class Visible:
    """One entry of the current poll, as the gap rule needs it."""

    new: bool  # its key was stored by this poll, not before
    date: datetime | None  # published, else updated
    tokens: frozenset[str]


@dataclass(frozen=True)
class Gap:
    basis: str  # "dates" | "window"
    visible: int
    last_seen_at: datetime | None  # newest entry date of the previous window
    oldest_visible_at: datetime | None
    previous_poll_at: datetime | None  # the previous successful poll
    detected_at: datetime

    def describe(self) -> str:
        """One line a person can read: what was seen, what is seen now, how long between."""
        parts = [f"all {self.visible} entries the feed shows are new"]
        if self.basis == "dates" and self.last_seen_at and self.oldest_visible_at:
            parts.append(
                f"the oldest ({_at(self.oldest_visible_at)}) is newer than the newest seen "
                f"before ({_at(self.last_seen_at)}): entries published in the "
                f"{_span(self.oldest_visible_at - self.last_seen_at)} between may be missed"
            )
        else:
            parts.append(
                "and none was in the previous window (the feed gives no dates): entries "
                "may have scrolled out unseen"
            )
        if self.previous_poll_at is not None:
            parts.append(
                f"last successful poll {_span(self.detected_at - self.previous_poll_at)} ago "
                f"({_at(self.previous_poll_at)})"
            )
        return "; ".join(parts)


def entry_tokens(data: Mapping[str, Any]) -> frozenset[str]:
    """The marks of one entry's article that survive a rewritten GUID: its canonical link
    and the content digest its item key carries (worker.articles.normalize)."""
    out = set()
    url = data.get("url")
    if isinstance(url, str) and url:
        try:
            out.add(_token("link", urls.canonical_url(url)))
        except ValueError:
            out.add(_token("link", url))
    key = data.get("entry_key")
    if isinstance(key, str) and " #" in key:
        out.add(_token("digest", key.rpartition(" #")[2]))
    return frozenset(out)


def visible_entries(entries: Iterable[Mapping[str, Any]], new_keys: set[str]) -> list[Visible]:
    """The readable entries of a poll (refused ones say nothing about the window)."""
    out = []
    for data in entries:
        if data.get("refused"):
            continue
        date = _date(data.get("published")) or _date(data.get("updated"))
        out.append(Visible(data.get("entry_key") in new_keys, date, entry_tokens(data)))
    return out


def window_of(visible: list[Visible], polled_at: datetime) -> Window:
    dates = [v.date for v in visible if v.date is not None]
    tokens: list[str] = []
    for v in visible:
        tokens.extend(sorted(v.tokens))
    return Window(
        len(visible), max(dates) if dates else None, frozenset(tokens[:MAX_TOKENS]), polled_at
    )


def judge(previous: Window | None, visible: list[Visible], now: datetime) -> Gap | None:
    """The gap this poll shows, if any (the rule in the module docstring)."""
    if previous is None or previous.size == 0:
        return None  # 1: nothing to compare with
    if len(visible) < MIN_WINDOW:
        return None  # 2
    if not all(v.new for v in visible):
        return None  # 3: the window still overlaps what was seen
    if any(v.tokens & previous.tokens for v in visible):
        return None  # 4: the same articles under new keys
    dates = [v.date for v in visible]
    if all(d is not None for d in dates) and previous.newest_at is not None:
        oldest = min(d for d in dates if d is not None)
        if oldest <= previous.newest_at:
            return None  # 5: the feed reaches back to what was seen
        return Gap("dates", len(visible), previous.newest_at, oldest, previous.polled_at, now)
    if len(visible) < min(previous.size, FULL_WINDOW):
        return None  # 5: undated, and not a full window
    oldest_dated = min((d for d in dates if d is not None), default=None)
    return Gap("window", len(visible), previous.newest_at, oldest_dated, previous.polled_at, now)


def _token(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()[:TOKEN_CHARS]


def _date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _at(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
