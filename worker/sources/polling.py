"""The fetch stage's use cases: keep the source table in step with the config, dispatch
the polls that are due, poll one source and record what came of it.

No database transaction is open during the network I/O of a poll; the new items' ids
are returned for the caller to enqueue after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from worker.config import SourceSpec
from worker.core import httpdate
from worker.core.backoff import backoff
from worker.core.clean import clean_text
from worker.core.errors import NewswatchError
from worker.core.httpdate import FETCH_RETRY_AFTER_CAP
from worker.core.redact import redact_text
from worker.core.states import SourceKind
from worker.http.errors import FetchError
from worker.http.fetcher import FetchResult
from worker.sources import disabling, schedule, unchanged
from worker.sources import gap_log as gaps
from worker.sources.entries import feed_items, link_data
from worker.sources.feeds import FeedError, page_links, parse_feed
from worker.store import items, sources
from worker.store import models as m
from worker.tracking import diskfull, ledger, metrics
from worker.tracking.failures import wait_for_disk

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)

# the errors a poll may meet on purpose; anything else is a bug, recorded as `internal`
POLL_ERRORS = (NewswatchError,)  # FetchError and FeedError among them


# --- the source table ------------------------------------------------------------------


def sync_sources(session: Session, specs: Iterable[SourceSpec], now: datetime) -> None:
    """Make the source table follow the config (sources.follow): new sources added,
    changed ones updated, removed ones disabled (their history is kept)."""
    sources.follow(
        session,
        (sources.Wanted(s.name, s.kind, s.url, s.every, s.enabled) for s in specs),
        now,
    )


def disabled_sources(session: Session) -> list[m.Source]:
    """Sources newswatch stopped polling itself (after permanent errors)."""
    return sources.disabled(session)


def enable_source(session: Session, name: str, spec: SourceSpec | None, now: datetime) -> bool:
    """Poll a source newswatch disabled itself again, from now, with a clean record.

    False when no source of that name was disabled by newswatch. The config still
    decides: a source it no longer lists, or lists with `enabled: false`, stays off.
    """
    row = sources.named(session, name)
    if row is None or row.disabled_reason is None:
        return False
    row.disabled_reason, row.permanent_failures, row.consecutive_failures = None, 0, 0
    row.enabled = spec is not None and spec.enabled
    row.next_fetch_at = now
    return True


def dispatch_due(rt: Runtime, limit: int = 1000) -> list[int]:
    """Claim the sources whose time has come; their ids (see `dispatch_plan`)."""
    return [source_id for source_id, _ in dispatch_plan(rt, limit)]


def dispatch_plan(rt: Runtime, limit: int = 1000, ahead: float = 0.0) -> list[tuple[int, float]]:
    """Claim the sources due within `ahead` seconds: (id, seconds until it is due).

    Beat calls this every dispatch tick (1 s) with `ahead` 0 and sends what it claims at
    once (tasks.dispatch_due): a 10 s tick used to stretch `every: 30s` to 40 s. The claim
    is one statement for the whole batch, and its lease runs from the latest due time it
    covers, so a second beat (or a restarted one) can never dispatch the same fetch twice."""
    now = rt.now()
    active = rt.config.current()
    with rt.store.session() as session:
        if rt.synced_version != active.version:
            sync_sources(session, active.loaded.config.sources, now)
    rt.synced_version = active.version
    due_by = now + timedelta(seconds=ahead)
    until = due_by + timedelta(seconds=rt.settings.lease_seconds)
    with rt.store.session() as session:
        claimed = sources.claim_due(session, now, due_by, until, limit)
    return [(source_id, schedule.send_delay(due, now)) for source_id, due in claimed]


# --- one poll --------------------------------------------------------------------------


@dataclass(frozen=True)
class _SourceRef:
    """What recording a poll's failure needs of its source."""

    id: int
    name: str
    every: int
    failures: int


@dataclass(frozen=True)
class Claimed:
    """A claimed source as read before the poll (no transaction open during the I/O)."""

    ref: _SourceRef
    kind: str
    url: str
    etag: str | None
    last_modified: str | None
    previous: float | None  # the interval chosen after the last poll, if it succeeded
    window: Any
    due: datetime | None = None  # when this poll was due


@dataclass
class _Poll:
    result: FetchResult
    entries: list[dict[str, Any]] = field(default_factory=list)
    hints: list[float | None] = field(default_factory=list)
    body: unchanged.Seen | None = None  # a feed body read, to remember once stored


# per process: feed bodies already read (sources/unchanged.py)
READ_BODIES = unchanged.BodyMemo()


@dataclass(frozen=True)
class _Failure:
    """A failed poll, as recorded: `kind` is the real cause (refused, dns, tls, timeout,
    http_503, robots_disallow, not_a_feed, internal...)."""

    kind: str
    permanent: bool
    retry_after: float | None
    message: str


def fetch_source(rt: Runtime, source_id: int, notices: list[str] | None = None) -> list[int]:
    """Poll one source; store every new entry as an item. Returns the new item ids.

    Ids of operational notices raised on the way (source disabled) are appended to
    `notices` for the caller to enqueue after the commit. Whatever the poll raises, the
    source fails alone: the error is recorded on its row and the claim released.
    """
    started = rt.now()
    try:
        return _poll_source(rt, source_id, started, notices)
    except Exception as exc:  # a bug or an input nobody foresaw (POLL_ERRORS are handled inside)
        fail_alone(rt, source_id, exc, started, notices)
        return []


def fail_alone(
    rt: Runtime, source_id: int, exc: Exception, started: datetime, notices: list[str] | None
) -> None:
    """Record an unforeseen error of one poll on its own row (a full disk defers it)."""
    if diskfull.is_disk_full(exc):  # not the source's failure: poll again later
        wait_for_disk(rt, "source", source_id, exc, sources.defer_source)
        return
    _record_internal_fetch_failure(rt, source_id, exc, started, notices)


def _record_internal_fetch_failure(
    rt: Runtime, source_id: int, exc: Exception, started: datetime, notices: list[str] | None
) -> None:
    log.error("source %s: internal error while polling", source_id, exc_info=exc)
    with rt.store.session() as session:
        src = sources.get(session, source_id)
        if src is None or src.claimed_until is None:
            return  # the poll had already recorded its result and released the claim
        ref = _SourceRef(source_id, src.name, src.every_seconds, src.consecutive_failures)
    spec = rt.config.current().loaded.config.source(ref.name)
    record_fetch_failure(rt, ref, spec, failure_of(exc), started, notices)


def _poll_source(
    rt: Runtime, source_id: int, started: datetime, notices: list[str] | None
) -> list[int]:
    claimed = claimed_sources(rt, [source_id])
    if not claimed:
        return []  # already done by another delivery of this message, or not dispatched
    src = claimed[0]
    spec = rt.config.current().loaded.config.source(src.ref.name)
    try:
        result = fetch(rt, src, spec)
    except POLL_ERRORS as exc:
        record_fetch_failure(rt, src.ref, spec, failure_of(exc), started, notices)
        return []
    return record_fetched(rt, src, spec, result, started, notices)


def record_fetched(
    rt: Runtime,
    src: Claimed,
    spec: SourceSpec | None,
    result: FetchResult,
    started: datetime,
    notices: list[str] | None,
) -> list[int]:
    """Read what one fetch brought (a feed or a page), store its new entries as items and
    record the poll on the source's row, in one transaction. Returns the new item ids."""
    try:
        poll = _read_entries(rt, src, spec, result, started)
    except POLL_ERRORS as exc:
        record_fetch_failure(rt, src.ref, spec, failure_of(exc), started, notices)
        return []
    new_ids = _record_success(rt, src, spec, poll, started)
    if poll.body is not None:  # its entries are stored: the same body needs no reading
        READ_BODIES.remember((rt.settings.database_url, src.ref.id), poll.body)
    return new_ids


def claimed_sources(rt: Runtime, source_ids: list[int]) -> list[Claimed]:
    """The sources among `source_ids` still claimed and enabled, read in one query (the
    others were done by another delivery of their message, or never dispatched)."""
    jitter = rt.settings.schedule_jitter
    with rt.store.session() as session:
        return [
            Claimed(
                _SourceRef(src.id, src.name, src.every_seconds, src.consecutive_failures),
                src.kind,
                src.url,
                src.etag,
                src.last_modified,
                _previous_interval(src, jitter),
                gaps.previous_window(src),
                src.next_fetch_at,
            )
            for src in sources.claimed(session, source_ids)
        ]


def fetch(rt: Runtime, src: Claimed, spec: SourceSpec | None) -> FetchResult:
    """The HTTP exchange of one poll (no database): thread-safe, a batch runs many at once."""
    return rt.fetcher().get(
        src.url,
        etag=src.etag,
        last_modified=src.last_modified,
        expect="feed" if src.kind == SourceKind.FEED else "html",
        respect_robots=spec.respect_robots if spec else True,
    )


def _read_entries(
    rt: Runtime, src: Claimed, spec: SourceSpec | None, result: FetchResult, started: datetime
) -> _Poll:
    poll = _Poll(result, hints=[schedule.freshness_hint(result.headers, started)])
    if result.not_modified:
        if poll.hints[0] is None:  # a 304 carries no <ttl>: the feed's last word still holds
            poll.hints.append(src.previous)
    elif src.kind == SourceKind.FEED:
        body, memo_key = unchanged.digest(result.body), (rt.settings.database_url, src.ref.id)
        same = READ_BODIES.same(memo_key, result.url, body)
        if same is not None:  # no entries: like a 304, it says nothing new about the window
            poll.hints.append(same.ttl_seconds)
            return poll
        READ_BODIES.forget(memo_key)  # until this body's entries are stored
        feed = parse_feed(result.body, result.headers.get("content-type"), result.url)
        poll.body = unchanged.Seen(result.url, body, feed.ttl_seconds)
        if feed.warning:
            log.info(
                "source %s: feed read with a warning: %s",
                src.ref.name,
                feed.warning,
                extra={"source_id": src.ref.id},
            )
        poll.hints.append(feed.ttl_seconds)
        poll.entries = feed_items(feed)  # one entry that cannot be read is a refused item
    else:
        html = rt.decode_html(result.body, result.headers.get("content-type"))
        follow = spec.follow if spec else None
        poll.entries = [link_data(u) for u in page_links(html, result.url, follow)]
    return poll


def _record_success(
    rt: Runtime, src: Claimed, spec: SourceSpec | None, poll: _Poll, started: datetime
) -> list[int]:
    """The poll's new items and its record on the source, written together; the new
    item ids. A bug in working out the record still stores the items (then raises: the
    poll fails on its source's row, and the sweep sends the items on)."""
    new_keys: set[str] = set()
    try:
        values, interval = success_values(rt, src, spec, poll, started)
    except Exception:
        with rt.store.session() as session:
            _insert_items(rt, session, src.ref.id, poll.entries, started, new_keys)
        raise
    with rt.store.session() as session:
        new_ids = _insert_items(rt, session, src.ref.id, poll.entries, started, new_keys)
        if src.kind == SourceKind.FEED:  # a feed that moved past everything seen: a gap
            values.update(
                _observe_window(session, src.ref, src.window, poll.entries, new_keys, started)
            )
        sources.record_poll(session, src.ref.id, len(new_ids), **values)
    count_success(src.ref, len(new_ids), poll.result.not_modified, interval)
    return new_ids


def not_modified_values(
    rt: Runtime, src: Claimed, spec: SourceSpec | None, result: FetchResult, started: datetime
) -> tuple[dict[str, Any], float]:
    """A 304's columns for its source's row, and the interval chosen (see `success_values`)."""
    poll = _read_entries(rt, src, spec, result, started)  # no body: only the hints
    return success_values(rt, src, spec, poll, started)


def success_values(
    rt: Runtime, src: Claimed, spec: SourceSpec | None, poll: _Poll, started: datetime
) -> tuple[dict[str, Any], float]:
    """The columns a successful poll sets, and the interval to the next one."""
    ref = src.ref
    longest = spec.longest_interval if spec else 4 * ref.every
    interval = schedule.poll_interval(
        ref.every, longest, *poll.hints, name=ref.name, jitter=rt.settings.schedule_jitter
    )
    # counted from when the poll was due, if it started within a dispatch tick of that:
    # due times then keep the exact (jittered) interval instead of being rounded up to a
    # tick each time, which would give every source one of a few periods and keep them
    # polling in step (schedule.scheduled_start)
    at = schedule.scheduled_start(src.due, started, rt.settings.dispatch_seconds)
    values: dict[str, Any] = dict(
        last_fetch_at=started,
        last_success_at=started,
        next_fetch_at=at + timedelta(seconds=interval),
    )
    if not poll.result.not_modified:
        values.update(etag=poll.result.etag, last_modified=poll.result.last_modified)
    return values, interval


def count_success(ref: _SourceRef, new_items: int, not_modified: bool, interval: float) -> None:
    metrics.count_fetch("not_modified" if not_modified else "ok")
    # routine, once per poll: DEBUG (the metrics count them; failures log at WARNING)
    log.debug(
        "source %s: %d new item(s)%s, next poll in %.0fs",
        ref.name,
        new_items,
        " (304)" if not_modified else "",
        interval,
        extra={"source_id": ref.id, "new_items": new_items, "outcome": "ok"},
    )


def _previous_interval(src: m.Source, jitter: float) -> float | None:
    """The interval chosen after the last fetch, if that fetch succeeded (jitter removed)."""
    if src.last_fetch_at is None or src.last_success_at != src.last_fetch_at:
        return None
    seconds = (src.next_fetch_at - src.last_fetch_at).total_seconds()
    return schedule.previous_base(src.name, seconds, jitter) if seconds > 0 else None


def failure_of(exc: Exception) -> _Failure:
    if isinstance(exc, FetchError):
        return _Failure(exc.outcome, exc.permanent, exc.retry_after, str(exc))
    if isinstance(exc, FeedError):
        # a body that is not a feed (an error page, a login wall) may be gone next poll:
        # it backs off but never counts towards disabling the source
        return _Failure("not_a_feed", False, None, str(exc))
    if isinstance(exc, NewswatchError):
        return _Failure(exc.kind, exc.permanent, exc.retry_after, str(exc))
    return _Failure(ledger.error_kind(exc), False, None, ledger.describe(exc))


def record_fetch_failure(
    rt: Runtime,
    ref: _SourceRef,
    spec: SourceSpec | None,
    failure: _Failure,
    started: datetime,
    notices: list[str] | None,
) -> None:
    """Back off (exponentially, up to MAX_BACKOFF, never sooner than Retry-After or
    `every`); count permanent errors and disable the source after `disable_after`."""
    # bounded again here: a huge Retry-After must never overflow next_fetch_at
    retry_after = httpdate.bounded(failure.retry_after, FETCH_RETRY_AFTER_CAP)
    delay = max(backoff(ref.every, ref.failures + 1), timedelta(seconds=ref.every))
    if retry_after:
        delay = max(delay, timedelta(seconds=retry_after))
    with rt.store.session() as session:
        row = sources.get(session, ref.id, for_update=True)
        assert row is not None
        # a feed URL may carry a token (private feeds): messages show scheme and host only
        error = redact_text(clean_text(failure.message), [row.url])[:2000]
        row.claimed_until = None
        row.last_fetch_at = started
        row.last_error, row.last_error_kind = error, failure.kind
        row.consecutive_failures = (row.consecutive_failures or 0) + 1
        row.next_fetch_at = started + delay
        if failure.permanent:  # transient errors in between neither add to nor clear the count
            row.permanent_failures = (row.permanent_failures or 0) + 1
            limit = spec.disable_after if spec else 5
            if row.permanent_failures >= limit:
                disabling.disable(rt, session, row, error, started, notices)
    metrics.count_fetch(failure.kind)
    log.warning(
        "source %s: fetch failed (%s): %s",
        ref.name,
        failure.kind,
        error,
        extra={"source_id": ref.id, "outcome": failure.kind},
    )


def _observe_window(
    session: Session,
    ref: _SourceRef,
    window: Any,
    entries: list[dict[str, Any]],
    new_keys: set[str],
    now: datetime,
) -> dict[str, Any]:
    """The gap check (sources/gap_log.py), failing alone: a bug in it never fails the poll."""
    try:
        with session.begin_nested():
            return gaps.observe(session, ref.id, ref.name, window, entries, new_keys, now)
    except Exception as exc:
        log.error(
            "source %s: gap check failed", ref.name, exc_info=exc, extra={"source_id": ref.id}
        )
        metrics.count_failure("gap_check", ledger.error_kind(exc))
        return {}


def _insert_items(
    rt: Runtime,
    session: Session,
    source_id: int,
    entries: list[dict[str, Any]],
    now: datetime,
    new_keys: set[str],
) -> list[int]:
    """Insert entries not seen before; the (source_id, entry_key) constraint decides.
    Entries the feed reader refused are kept as `refused` items (with the reason) and
    not returned: there is nothing to parse. The keys inserted go into `new_keys`."""
    if not entries:
        return []
    new_ids: list[int] = []
    known = items.known_keys(session, source_id, (d["entry_key"] for d in entries))
    for data in entries:
        if data["entry_key"] in known:
            continue  # seen on an earlier poll: most of a changed feed's entries
        refused = data.get("refused")
        row_id = items.insert_item(session, source_id, data, now)
        if row_id is not None and not refused:
            new_ids.append(row_id)
            new_keys.add(data["entry_key"])
        elif row_id is not None:
            log.warning("item %s refused: %s", row_id, refused, extra={"source_id": source_id})
    return new_ids
