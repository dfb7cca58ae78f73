"""The use cases: dispatch, fetch, parse, rules, deliver, sweep.

Each step loads its row by id, claims it with a lease, does its work with no
database transaction open during network I/O, writes its result and state,
and returns the ids of the next step's rows. The Celery tasks enqueue those
ids only after the commit, so a lost message is never lost work: the sweep
finds the row still pending and enqueues it again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.alerts.notices import raise_notice
from worker.alerts.planning import plan_deliveries
from worker.articles import stories as dedupe
from worker.articles.extract import extract_page
from worker.articles.normalize import build_article, feed_items, link_data
from worker.bootstrap import Runtime
from worker.config import SourceSpec
from worker.core import httpdate
from worker.core.clean import clean_text
from worker.core.httpdate import FETCH_RETRY_AFTER_CAP
from worker.core.model import Article, Hit, MatchDocument, WatchlistMatch
from worker.core.redact import redact_text
from worker.core.retention import item_identification
from worker.service import diskspace, ledger
from worker.sources import gap_log as gaps
from worker.sources import schedule
from worker.sources.feeds import FeedError, page_links, parse_feed
from worker.store import models as m
from worker.store.db import claim

if TYPE_CHECKING:
    from worker.config.reload import ActiveConfig

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=6)
NEAR_DUP_WINDOW = timedelta(days=3)


def _backoff(base_seconds: float, failures: int, cap: timedelta = MAX_BACKOFF) -> timedelta:
    """Exponential with full jitter on the upper half: spreads retries of many rows."""
    seconds = min(base_seconds * (2 ** max(failures - 1, 0)), cap.total_seconds())
    return timedelta(seconds=seconds * random.uniform(0.5, 1.0))


# --- dispatch ----------------------------------------------------------------


def sync_sources(session: Session, sources: Iterable[SourceSpec], now: datetime) -> None:
    """Make the source table follow the config: new sources added, changed ones updated,
    removed ones disabled (their history is kept).

    A source newswatch disabled itself (`disabled_reason`, after permanent errors) stays
    disabled until its URL changes: editing other options must not revive a dead feed.
    """
    specs = {s.name: s for s in sources}
    existing = {s.name: s for s in session.scalars(select(m.Source))}
    for name, spec in specs.items():
        row = existing.get(name)
        if row is None:
            session.add(
                m.Source(
                    name=name,
                    kind=spec.kind,
                    url=spec.url,
                    every_seconds=spec.every,
                    enabled=spec.enabled,
                    next_fetch_at=now,
                )
            )
            continue
        if row.url != spec.url or row.kind != spec.kind:
            row.etag = row.last_modified = None  # a new URL has nothing to be conditional on
            # nor a window to tell a gap by (worker/sources/gaps.py): its first poll is a first
            row.window_size = row.window_newest_at = row.window_tokens = None
            row.next_fetch_at = now
            row.disabled_reason, row.permanent_failures = None, 0  # and a clean record
        if spec.every < row.every_seconds and row.next_fetch_at > now + timedelta(
            seconds=spec.every
        ):
            row.next_fetch_at = now + timedelta(seconds=spec.every)
        row.url, row.kind, row.every_seconds, row.enabled = (
            spec.url,
            spec.kind,
            spec.every,
            spec.enabled and row.disabled_reason is None,
        )
    for name, row in existing.items():
        if name not in specs and row.enabled:
            row.enabled = False


def disabled_sources(session: Session) -> list[m.Source]:
    """Sources newswatch stopped polling itself (after permanent errors)."""
    return list(
        session.scalars(
            select(m.Source).where(m.Source.disabled_reason.is_not(None)).order_by(m.Source.name)
        )
    )


def enable_source(session: Session, name: str, spec: SourceSpec | None, now: datetime) -> bool:
    """Poll a source newswatch disabled itself again, from now, with a clean record.

    False when no source of that name was disabled by newswatch. The config still
    decides: a source it no longer lists, or lists with `enabled: false`, stays off.
    """
    row = session.scalar(select(m.Source).where(m.Source.name == name))
    if row is None or row.disabled_reason is None:
        return False
    row.disabled_reason, row.permanent_failures, row.consecutive_failures = None, 0, 0
    row.enabled = spec is not None and spec.enabled
    row.next_fetch_at = now
    return True


def dispatch_due(rt: Runtime, limit: int = 1000) -> list[int]:
    """Claim the sources whose time has come. A conditional update per source, so a
    second beat (or a restarted one) can never dispatch the same fetch twice."""
    now = rt.now()
    active = rt.config.current()
    with rt.store.session() as session:
        if rt.synced_version != active.version:
            sync_sources(session, active.loaded.config.sources, now)
    rt.synced_version = active.version
    with rt.store.session() as session:
        due = session.scalars(
            select(m.Source.id)
            .where(
                m.Source.enabled.is_(True),
                m.Source.next_fetch_at <= now,
                or_(m.Source.claimed_until.is_(None), m.Source.claimed_until < now),
            )
            .order_by(m.Source.next_fetch_at)
            .limit(limit)
        ).all()
    claimed = []
    for source_id in due:
        with rt.store.session() as session:
            result = session.execute(
                update(m.Source)
                .where(
                    m.Source.id == source_id,
                    m.Source.next_fetch_at <= now,
                    or_(m.Source.claimed_until.is_(None), m.Source.claimed_until < now),
                )
                .values(claimed_until=now + timedelta(seconds=rt.settings.lease_seconds))
            )
            if result.rowcount == 1:
                claimed.append(source_id)
    return claimed


# --- fetch -------------------------------------------------------------------


def fetch_source(rt: Runtime, source_id: int, notices: list[str] | None = None) -> list[int]:
    """Poll one source; store every new entry as an item. Returns the new item ids.

    Ids of operational notices raised on the way (source disabled) are appended to
    `notices` for the caller to enqueue after the commit. Whatever the poll raises, the
    source fails alone: the error is recorded on its row and the claim released.
    """
    started = rt.now()
    try:
        return _poll_source(rt, source_id, started, notices)
    except Exception as exc:  # a bug or an input nobody foresaw (FetchError is handled inside)
        if diskspace.is_disk_full(exc):  # not the source's failure: poll again later
            _wait_for_disk(rt, m.Source, source_id, "source", exc, attempts=False)
            return []
        _record_internal_fetch_failure(rt, source_id, exc, started, notices)
        return []


def _record_internal_fetch_failure(
    rt: Runtime, source_id: int, exc: Exception, started: datetime, notices: list[str] | None
) -> None:
    log.error("source %s: internal error while polling", source_id, exc_info=exc)
    with rt.store.session() as session:
        src = session.get(m.Source, source_id)
        if src is None or src.claimed_until is None:
            return  # the poll had already recorded its result and released the claim
        name, every, failures = src.name, src.every_seconds, src.consecutive_failures
    spec = rt.config.current().loaded.config.source(name)
    err = ledger.InternalError(exc)
    _record_fetch_failure(rt, source_id, name, spec, err, started, every, failures, notices)


def _poll_source(
    rt: Runtime, source_id: int, started: datetime, notices: list[str] | None
) -> list[int]:
    from worker.sources.fetch_errors import FetchError

    with rt.store.session() as session:
        src = session.get(m.Source, source_id)
        if src is None or src.claimed_until is None or not src.enabled:
            return []  # already done by another delivery of this message, or not dispatched
        kind, url, etag, last_modified = src.kind, src.url, src.etag, src.last_modified
        every, failures, name = src.every_seconds, src.consecutive_failures, src.name
        previous = _previous_interval(src, rt.settings.schedule_jitter)
        window = gaps.previous_window(src)
    spec = rt.config.current().loaded.config.source(name)
    ids = {"source_id": source_id}
    hints: list[float | None] = []
    new_keys: set[str] = set()
    entries: list[dict[str, Any]] = []
    try:
        result = rt.fetcher().get(
            url,
            etag=etag,
            last_modified=last_modified,
            expect="feed" if kind == "feed" else "html",
            respect_robots=spec.respect_robots if spec else True,
        )
        hints.append(schedule.freshness_hint(result.headers, started))
        if result.not_modified:
            entries = []
            if hints[0] is None:  # a 304 carries no <ttl>: the feed's last word still holds
                hints.append(previous)
        elif kind == "feed":
            feed = parse_feed(result.body, result.headers.get("content-type"), result.url)
            if feed.warning:
                log.info("source %s: feed read with a warning: %s", name, feed.warning, extra=ids)
            hints.append(feed.ttl_seconds)
            entries = feed_items(feed)  # one entry that cannot be read is a refused item
        else:
            html = rt.decode_html(result.body, result.headers.get("content-type"))
            follow = spec.follow if spec else None
            entries = [link_data(u) for u in page_links(html, result.url, follow)]
        new_ids = _insert_items(rt, source_id, entries, started, new_keys)
    except (FetchError, FeedError) as exc:
        _record_fetch_failure(rt, source_id, name, spec, exc, started, every, failures, notices)
        return []
    longest = spec.longest_interval if spec else 4 * every
    interval = schedule.poll_interval(
        every, longest, *hints, name=name, jitter=rt.settings.schedule_jitter
    )
    with rt.store.session() as session:
        values: dict[str, Any] = dict(
            claimed_until=None,
            last_fetch_at=started,
            last_success_at=started,
            last_error=None,
            last_error_kind=None,
            consecutive_failures=0,
            permanent_failures=0,
            items_seen=m.Source.items_seen + len(new_ids),
            next_fetch_at=started + timedelta(seconds=interval),
        )
        if not result.not_modified:
            values.update(etag=result.etag, last_modified=result.last_modified)
        if kind == "feed":  # a feed that moved past everything seen: a gap
            values.update(
                _observe_window(session, source_id, name, window, entries, new_keys, started)
            )
        session.execute(update(m.Source).where(m.Source.id == source_id).values(**values))
    _count_fetch("not_modified" if result.not_modified else "ok")
    log.info(
        "source %s: %d new item(s)%s, next poll in %.0fs",
        name,
        len(new_ids),
        " (304)" if result.not_modified else "",
        interval,
        extra={**ids, "new_items": len(new_ids), "outcome": "ok"},
    )
    return new_ids


def _previous_interval(src: m.Source, jitter: float) -> float | None:
    """The interval chosen after the last fetch, if that fetch succeeded (jitter removed)."""
    if src.last_fetch_at is None or src.last_success_at != src.last_fetch_at:
        return None
    seconds = (src.next_fetch_at - src.last_fetch_at).total_seconds()
    return schedule.without_jitter(src.name, seconds, jitter) if seconds > 0 else None


def _record_fetch_failure(
    rt: Runtime,
    source_id: int,
    name: str,
    spec: SourceSpec | None,
    exc: Exception,
    started: datetime,
    every: int,
    failures: int,
    notices: list[str] | None,
) -> None:
    """Back off (exponentially, up to MAX_BACKOFF, never sooner than Retry-After or
    `every`); count permanent errors and disable the source after `disable_after`."""
    # the real cause (refused, dns, tls, timeout, http_503, robots_disallow...), as
    # FetchError.outcome names it; a FeedError is a body that is not a feed
    kind_name = str(getattr(exc, "outcome", None) or getattr(exc, "kind", None) or "not_a_feed")
    # bounded again here: a huge Retry-After must never overflow next_fetch_at
    retry_after = httpdate.bounded(getattr(exc, "retry_after", None), FETCH_RETRY_AFTER_CAP)
    permanent = bool(getattr(exc, "permanent", False))
    delay = max(_backoff(every, failures + 1), timedelta(seconds=every))
    if retry_after:
        delay = max(delay, timedelta(seconds=retry_after))
    ids = {"source_id": source_id, "outcome": kind_name}
    with rt.store.session() as session:
        row = session.get(m.Source, source_id, with_for_update=True)
        assert row is not None
        # a feed URL may carry a token (private feeds): messages show scheme and host only
        error = redact_text(clean_text(str(exc)), [row.url])[:2000]
        row.claimed_until = None
        row.last_fetch_at = started
        row.last_error, row.last_error_kind = error, kind_name
        row.consecutive_failures = (row.consecutive_failures or 0) + 1
        row.next_fetch_at = started + delay
        if permanent:  # transient errors in between neither add to nor clear the count
            row.permanent_failures = (row.permanent_failures or 0) + 1
        limit = spec.disable_after if spec else 5
        if permanent and row.permanent_failures >= limit:
            row.enabled = False
            row.disabled_reason = (
                f"disabled at {started.isoformat()} after {row.permanent_failures} permanent "
                f"error(s) in a row; last: {error[:500]}"
            )
            notice = notify_source_disabled(rt, session, row, started)
            if notice is not None and notices is not None:
                notices.append(notice)
    _count_fetch(kind_name)
    log.warning("source %s: fetch failed (%s): %s", name, kind_name, error, extra=ids)


def notify_source_disabled(
    rt: Runtime, session: Session, row: m.Source, now: datetime
) -> str | None:
    """Say loudly that newswatch stopped polling a source: an ERROR log line always, and
    an operational notice when a `notices:` channel is configured. Returns the notice's
    delivery id (to enqueue after the commit), once per disabling."""
    log.error(
        "source %s DISABLED: %s. Fix the URL in the config (a changed URL re-enables it).",
        row.name,
        row.disabled_reason,
        extra={"source_id": row.id, "event": "source_disabled"},
    )
    return raise_notice(
        rt,
        session,
        f"source_disabled:{row.name}:{now.isoformat()}",
        "source_disabled",
        f"source {row.name} disabled",
        f"newswatch stopped polling source {row.name} ({row.url}): {row.disabled_reason}.\n"
        "Fix the URL in the config file; a changed URL re-enables the source.",
        now,
    )


def _count_fetch(outcome: str) -> None:
    from worker.service import observability

    observability.count_fetch(outcome)


def _observe_window(
    session: Session,
    source_id: int,
    name: str,
    window: Any,
    entries: list[dict[str, Any]],
    new_keys: set[str],
    now: datetime,
) -> dict[str, Any]:
    """The gap check (sources/gap_log.py), failing alone: a bug in it never fails the poll."""
    try:
        with session.begin_nested():
            return gaps.observe(session, source_id, name, window, entries, new_keys, now)
    except Exception as exc:
        log.error("source %s: gap check failed", name, exc_info=exc, extra={"source_id": source_id})
        _count_failure("gap_check", ledger.error_kind(exc))
        return {}


def _insert_items(
    rt: Runtime,
    source_id: int,
    entries: list[dict],
    now: datetime,
    new_keys: set[str] | None = None,
) -> list[int]:
    """Insert entries not seen before; the (source_id, entry_key) constraint decides.
    Entries the feed reader refused are kept as `refused` items (with the reason) and
    not returned: there is nothing to parse. The keys inserted go into `new_keys`."""
    if not entries:
        return []
    insert = rt.store.insert_ignore
    new_ids: list[int] = []
    with rt.store.session() as session:
        for data in entries:
            refused = data.get("refused")
            row_id = session.execute(
                insert(m.Item)
                .values(
                    source_id=source_id,
                    entry_key=data["entry_key"],
                    url=data.get("url"),
                    data=data,
                    state="refused" if refused else "pending",
                    error=refused,
                    outcome="refused" if refused else None,
                    outcome_detail=refused,
                    attempts=0,
                    enqueued_at=now,
                    created_at=now,
                )
                .returning(m.Item.id)
            ).scalar()
            if row_id is not None and not refused:
                new_ids.append(row_id)
                if new_keys is not None:
                    new_keys.add(data["entry_key"])
            elif row_id is not None:
                log.warning("item %s refused: %s", row_id, refused, extra={"source_id": source_id})
    return new_ids


# --- parse -------------------------------------------------------------------


def parse_item(rt: Runtime, item_id: int, notices: list[str] | None = None) -> int | None:
    """Turn one item into an article (or find it is a copy of one). Returns the new
    article's id when rules should run on it.

    Whatever an attempt raises, the item fails alone: the error and its kind go on its
    row, it is retried with backoff, and after `max_attempts` (or at once, for an error
    that cannot go away) it is quarantined; the ids of notices raised are appended to
    `notices`."""
    now = rt.now()
    with rt.store.session() as session:
        if not claim(
            session, m.Item, item_id, now, rt.settings.lease_seconds, m.Item.state == "pending"
        ):
            return None
        item = session.get(m.Item, item_id)
        assert item is not None
        if item.attempts > rt.settings.max_attempts:
            # no error recorded: no attempt came back at all (worker killed, hard time limit)
            last = item.error or "no attempt finished (worker killed or over its time limit)"
            item.error = f"quarantined after {item.attempts - 1} attempts: {last}"[:2000]
            _collect(notices, ledger.quarantine_item(rt, session, item, item.error, now))
            return None
        src = session.get(m.Source, item.source_id)
        assert src is not None
        data, source_name, source_kind = dict(item.data), src.name, src.kind
    spec = rt.config.current().loaded.config.source(source_name)
    full_text = source_kind == "page" or bool(spec and spec.full_text)
    robots = spec.respect_robots if spec else True
    try:
        article = _build_article(rt, data, source_name, full_text, robots)
        return _store_article(rt, item_id, article)
    except Exception as exc:  # any class: a bug (`internal`) fails this item alone too
        if ledger.error_kind(exc) == "time_limit":
            raise  # the task records it and keeps the lease (docs/operations.md)
        if diskspace.is_disk_full(exc):
            _wait_for_disk(rt, m.Item, item_id, "item", exc, m.Item.state == "pending")
            return None
        _item_failed(rt, item_id, data.get("url"), exc, notices)
        return None


def _item_failed(
    rt: Runtime, item_id: int, url: str | None, exc: Exception, notices: list[str] | None
) -> None:
    """Record a failed attempt on the item; back off, or quarantine it when the error
    cannot go away (an extraction error, a permanent fetch error) or attempts are spent."""
    kind = ledger.error_kind(exc)
    permanent = kind == "extraction" or bool(getattr(exc, "permanent", False))
    now = rt.now()
    with rt.store.session() as session:
        item = session.get(m.Item, item_id)
        if item is None or item.state != "pending":
            return
        item.error, item.error_kind = ledger.describe(exc), kind
        if permanent or item.attempts >= rt.settings.max_attempts:
            why = "permanent error" if permanent else f"after {item.attempts} attempts"
            reason = f"{why}: {item.error}"
            # an input error that cannot go away is the feed's content, not an incident
            notice = ledger.quarantine_item(rt, session, item, reason, now, notify=not permanent)
            _collect(notices, notice)
        else:  # try again after a backoff; the sweep picks it up
            item.claimed_until = now + _backoff(60, item.attempts)
    _count_failure("item", kind)
    extra = {"item_id": item_id, "error_kind": kind}
    if kind == "internal":  # a bug: the traceback is what a developer needs
        log.error("item %s (%s): internal error", item_id, url, exc_info=exc, extra=extra)
    else:
        log.warning("item %s (%s): %s", item_id, url, exc, extra=extra)


def _wait_for_disk(
    rt: Runtime,
    model: Any,
    row_id: int,
    unit: str,
    exc: Exception,
    *where: Any,
    attempts: bool = True,
) -> None:
    """A full disk is an outage, not this row's fault: the row stays pending, the attempt
    its claim counted is given back (a long outage never quarantines anything), and the
    sweep tries it again after `requeue_after`. Should this write fail too, the error
    goes up to the task (worker/tasks.py) and the lease runs out as for a killed task."""
    now = rt.now()
    values: dict[str, Any] = {
        "claimed_until": now + timedelta(seconds=rt.settings.requeue_after_seconds)
    }
    if attempts:
        values["attempts"] = case((model.attempts > 0, model.attempts - 1), else_=0)
    with rt.store.session() as session:
        session.execute(update(model).where(model.id == row_id, *where).values(**values))
    _count_failure(unit, "disk_full")
    log.warning("%s %s: disk full, tried again later (no attempt spent): %s", unit, row_id, exc)


def _collect(out: list[str] | None, notice_id: str | None) -> None:
    if out is not None and notice_id is not None:
        out.append(notice_id)


def _count_failure(unit: str, kind: str) -> None:
    from worker.service import observability

    observability.count_failure(unit, kind)


def record_item_error(rt: Runtime, item_id: int, error: str) -> None:
    """Note why an attempt gave up (e.g. its soft time limit) on a still-pending item.
    The lease stays: the sweep retries it after, and the claim counts the attempt."""
    with rt.store.session() as session:
        session.execute(
            update(m.Item)
            .where(m.Item.id == item_id, m.Item.state == "pending")
            .values(error=error[:2000], error_kind="time_limit")
        )
    log.warning("item %s: %s", item_id, error, extra={"item_id": item_id})


def _build_article(
    rt: Runtime, data: dict, source_name: str, full_text: bool, respect_robots: bool = True
) -> Article:
    url = data.get("url")
    if not (full_text and url):
        return build_article(data, source_name)
    result = rt.fetcher().get(url, expect="html", respect_robots=respect_robots)
    page = extract_page(result.body, result.url, result.headers.get("content-type"))
    return build_article(data, source_name, page, result.url)


def _store_article(rt: Runtime, item_id: int, article: Article) -> int | None:
    now = rt.now()
    fp = dedupe.fingerprint(f"{article.title}\n{article.body}") if article.body else None
    with rt.store.session() as session:
        item = session.get(m.Item, item_id)
        assert item is not None
        item.data = item_identification(item.data)  # its article keeps the text, once
        updated = _update_changed_article(session, item, article, fp, now)
        if updated is not None:
            return updated or None
        existing = session.scalar(
            select(m.Article.id).where(
                or_(
                    m.Article.canonical_url == article.url,
                    m.Article.content_hash == article.content_hash,
                )
            )
        )
        if existing is None:
            row = m.Article(
                source_id=item.source_id,
                canonical_url=article.url,
                content_hash=article.content_hash,
                title=article.title,
                body=article.body,
                lead=article.lead,
                authors=list(article.authors),
                tags=list(article.tags),
                published_at=article.published,
                modified_at=article.modified,
                language=article.language,
                image_url=article.image_url,
                fingerprint=fp,
                rules_state="pending",
                enqueued_at=now,
                created_at=now,
            )
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError:  # a concurrent copy won the race: the constraint decides
                existing = session.scalar(
                    select(m.Article.id).where(
                        or_(
                            m.Article.canonical_url == article.url,
                            m.Article.content_hash == article.content_hash,
                        )
                    )
                )
        if existing is not None:
            item.state, item.article_id, item.claimed_until = "duplicate", existing, None
            item.outcome = "duplicate"
            item.outcome_detail = ledger.duplicate_detail(
                session, existing, article.url, article.content_hash
            )
            return None
        row.story_id = (
            _find_story(session, row.id, fp, article.title, article.body, now)
            if fp is not None
            else row.id
        )
        if fp is not None:
            for key in dedupe.band_keys(fp):
                session.add(m.FingerprintBand(band_key=key, article_id=row.id))
        item.state, item.article_id, item.claimed_until, item.error = "parsed", row.id, None, None
        item.error_kind = None  # the outcome follows when the rules have run
        return row.id


def _update_changed_article(
    session: Session, item: m.Item, article: Article, fp: int | None, now: datetime
) -> int | None:
    """A new version of an entry whose article (same canonical URL) now reads differently:
    the article takes the new text and goes back to the rules, so a watchlist that matches
    only the new text alerts; the (watchlist, article) constraint keeps the others from
    alerting twice. Only a version of the same entry (same source, same identity) updates;
    the same URL from another entry or source stays a duplicate. Returns the article id
    to run rules on, 0 when the item is settled otherwise (an older version, or text
    another article already has), None when this is not an update."""
    identity = (item.data or {}).get("identity")
    if not identity:
        return None  # a listed link, or an item stored before versions existed
    row = session.scalar(
        select(m.Article).where(m.Article.canonical_url == article.url).with_for_update()
    )
    if row is None or row.content_hash == article.content_hash:
        return None
    earlier_version = session.scalar(
        select(m.Item.id)
        .where(
            m.Item.source_id == item.source_id,
            m.Item.article_id == row.id,
            m.Item.id != item.id,
            m.Item.entry_key.startswith(f"{identity} #", autoescape=True),
        )
        .limit(1)
    )
    if earlier_version is None:  # the same URL from another entry or source: a copy
        return None
    newer = session.scalar(
        select(m.Item.id)
        .where(m.Item.article_id == row.id, m.Item.state == "parsed", m.Item.id > item.id)
        .limit(1)
    )
    other = session.scalar(
        select(m.Article.id).where(m.Article.content_hash == article.content_hash)
    )
    if newer is not None or other is not None:  # a later version already won, or a copy
        item.state, item.article_id, item.claimed_until = "duplicate", other or row.id, None
        item.outcome = "duplicate"
        item.outcome_detail = ledger.duplicate_detail(
            session, other or row.id, article.url, article.content_hash
        )
        return 0
    row.title, row.body, row.lead = article.title, article.body, article.lead
    row.authors, row.tags = list(article.authors), list(article.tags)
    row.content_hash, row.fingerprint = article.content_hash, fp
    row.published_at = row.published_at or article.published
    row.modified_at = article.modified or row.modified_at
    row.language, row.image_url = article.language or row.language, article.image_url
    row.rules_state, row.enqueued_at, row.claimed_until, row.error = "pending", now, None, None
    session.execute(delete(m.FingerprintBand).where(m.FingerprintBand.article_id == row.id))
    if fp is not None:
        for key in dedupe.band_keys(fp):
            session.add(m.FingerprintBand(band_key=key, article_id=row.id))
    item.state, item.article_id, item.claimed_until, item.error = "parsed", row.id, None, None
    log.info("article %s changed (item %s): rules run again", row.id, item.id)
    return row.id


def _find_story(
    session: Session, article_id: int, fp: int, title: str, body: str, now: datetime
) -> int:
    """The story of the closest earlier article verified as the same story, or a new story
    (this article's id). Close fingerprints only nominate: a merge hides this article's
    alerts, so `dedupe.compare` reads both texts (of the few close candidates) first."""
    keys = dedupe.band_keys(fp)
    candidates = session.execute(
        select(m.Article.id, m.Article.fingerprint, m.Article.story_id)
        .join(m.FingerprintBand, m.FingerprintBand.article_id == m.Article.id)
        .where(
            m.FingerprintBand.band_key.in_(keys),
            m.Article.id != article_id,
            m.Article.created_at >= now - NEAR_DUP_WINDOW,
        )
        # newest first: a copy of a story comes soon after it; bounded, since about one
        # unrelated article in fifteen shares a band key
        .order_by(m.Article.id.desc())
        .limit(2000)
    ).all()
    close = sorted(
        (dedupe.distance(fp, cand_fp), cand_id, story_id)
        for cand_id, cand_fp, story_id in dict.fromkeys(candidates)
        if cand_fp is not None and dedupe.candidate(fp, cand_fp)
    )
    for _bits, cand_id, story_id in close:
        cand = session.execute(
            select(m.Article.title, m.Article.body, m.Article.fingerprint).where(
                m.Article.id == cand_id
            )
        ).one()
        evidence = dedupe.compare(title, body, cand.title, cand.body, fp, cand.fingerprint)
        if evidence.same_story:
            log.info("article %s joins story of article %s: %s", article_id, cand_id, evidence)
            return story_id or cand_id
    return article_id


def story_evidence(session: Session, article_id: int) -> tuple[int, dedupe.Evidence] | None:
    """For an article filed under an earlier article's story: the earlier article of that
    story closest to it and the evidence of the decision (for "why" output); None when the
    article started its own story."""
    row = session.get(m.Article, article_id)
    if row is None or row.story_id in (None, row.id):
        return None
    best: tuple[int, dedupe.Evidence] | None = None
    for other in session.scalars(
        select(m.Article)
        .where(m.Article.story_id == row.story_id, m.Article.id < row.id)
        .order_by(m.Article.id)
    ):
        ev = dedupe.compare(
            row.title, row.body, other.title, other.body, row.fingerprint, other.fingerprint
        )
        if best is None or (ev.same_story, ev.shingle_overlap) > (
            best[1].same_story,
            best[1].shingle_overlap,
        ):
            best = (other.id, ev)
    return best


# --- rules -------------------------------------------------------------------


def article_from_row(row: m.Article, source_name: str) -> Article:
    return Article(
        url=row.canonical_url,
        title=row.title,
        body=row.body,
        authors=tuple(row.authors or ()),
        published=row.published_at,
        modified=row.modified_at,
        lead=row.lead or "",
        tags=tuple(row.tags or ()),
        language=row.language,
        image_url=row.image_url,
        source=source_name,
        content_hash=row.content_hash,
    )


def apply_rules(rt: Runtime, article_id: int) -> list[str]:
    """Match one article against the current watchlists; write matches, their
    deliveries and the items' outcome in one transaction. Returns the delivery ids
    to send (and of notices raised).

    Whatever an attempt raises, the article fails alone: the error goes on its row, it
    is retried with backoff and, after `max_attempts`, quarantined (`rules_state`
    failed) with a notice."""
    now = rt.now()
    active = rt.config.current()
    with rt.store.session() as session:
        if not claim(
            session,
            m.Article,
            article_id,
            now,
            rt.settings.lease_seconds,
            m.Article.rules_state == "pending",
        ):
            return []
        row = session.get(m.Article, article_id)
        assert row is not None
        if row.attempts > rt.settings.max_attempts:
            # no error recorded: no attempt came back at all (worker killed, hard time limit)
            last = row.error or "no attempt finished (worker killed or over its time limit)"
            row.error = f"quarantined after {row.attempts - 1} attempts: {last}"[:2000]
            notice = ledger.quarantine_article(rt, session, row, row.error, now)
            return [notice] if notice else []
        source_name = (
            session.scalar(select(m.Source.name).where(m.Source.id == row.source_id)) or ""
        )
    try:
        return _apply_rules(rt, article_id, article_from_row(row, source_name), active, now)
    except Exception as exc:  # any class: a bug (`internal`) fails this article alone too
        if diskspace.is_disk_full(exc):
            _wait_for_disk(
                rt, m.Article, article_id, "article", exc, m.Article.rules_state == "pending"
            )
            return []
        return _rules_failed(rt, article_id, exc)


def _apply_rules(
    rt: Runtime, article_id: int, article: Article, active: ActiveConfig, now: datetime
) -> list[str]:
    config = active.loaded.config
    result = active.matcher.match_outcome(MatchDocument.from_article(article))
    matches = result.matches
    delivery_ids: list[str] = []
    with rt.store.session() as session:
        row = session.get(m.Article, article_id)
        assert row is not None
        for wm in matches:
            match_row = _insert_match(session, row, wm, active.version, now)
            if match_row is None:
                continue  # this watchlist already matched this article (a redelivered task)
            first = _first_in_story(session, wm.watchlist, row.story_id or row.id, match_row.id)
            if not first:
                match_row.state = "duplicate"
            # the outbox decides per channel: now, into a digest, or (for a repeat
            # of the story) an update only where the channel asks for one
            delivery_ids += plan_deliveries(
                session, config, match_row, wm, update_of_story=not first, now=now
            )
        if row.content_hash == article.content_hash:  # else a new version came meanwhile
            row.rules_state, row.claimed_until, row.error, row.error_kind = "done", None, None, None
            ledger.record_rules_outcome(
                session,
                row,
                [wm.watchlist for wm in matches],
                result.rejected,
                len(config.watchlists),
                active.version,
            )
    if matches:
        log.info("article %s matched %s", article_id, ", ".join(w.watchlist for w in matches))
    return delivery_ids


def _rules_failed(rt: Runtime, article_id: int, exc: Exception) -> list[str]:
    """Record a failed rules attempt on the article; back off, or quarantine it."""
    kind = ledger.error_kind(exc)
    now = rt.now()
    notices: list[str] = []
    with rt.store.session() as session:
        row = session.get(m.Article, article_id)
        if row is None or row.rules_state != "pending":
            return []
        row.error, row.error_kind = ledger.describe(exc), kind
        if row.attempts >= rt.settings.max_attempts:
            reason = f"after {row.attempts} attempts: {row.error}"
            _collect(notices, ledger.quarantine_article(rt, session, row, reason, now))
        else:  # try again after a backoff; the sweep picks it up
            row.claimed_until = now + _backoff(60, row.attempts)
    _count_failure("article", kind)
    log.error(
        "article %s: rules failed (%s)",
        article_id,
        kind,
        exc_info=exc,
        extra={"article_id": article_id, "error_kind": kind},
    )
    return notices


def hits_to_json(hits: Iterable[Hit]) -> list[dict[str, Any]]:
    return [
        {
            "field": h.field,
            "start": h.start,
            "end": h.end,
            "text": h.text,
            "term": h.term,
            "entity": h.entity,
        }
        for h in hits
    ]


def _insert_match(
    session: Session, article: m.Article, wm: WatchlistMatch, version: str, now: datetime
) -> m.Match | None:
    row = m.Match(
        watchlist=wm.watchlist,
        article_id=article.id,
        story_id=article.story_id,
        config_version=version,
        hits=hits_to_json(wm.hits),
        names=list(wm.names),
        snippet=wm.snippet,
        highlights=[list(h) for h in wm.highlights],
        state="alerted",
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def _first_in_story(session: Session, watchlist: str, story_id: int, match_id: int) -> bool:
    """Claim the (watchlist, story) pair; only the first copy of a story alerts."""
    try:
        with session.begin_nested():
            session.add(m.StoryAlert(watchlist=watchlist, story_id=story_id, match_id=match_id))
            session.flush()
    except IntegrityError:
        return False
    return True


# --- sweep -------------------------------------------------------------------


@dataclass
class SweepResult:
    items: list[int] = field(default_factory=list)
    articles: list[int] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items or self.articles or self.deliveries)


def sweep(rt: Runtime, limit: int = 5000) -> SweepResult:
    """Find rows whose message was lost (pending, unclaimed, not enqueued recently) and
    deliveries whose retry is due; mark them enqueued now and return their ids."""
    now = rt.now()
    stale = now - timedelta(seconds=rt.settings.requeue_after_seconds)
    out = SweepResult()
    free = lambda model: or_(model.claimed_until.is_(None), model.claimed_until < now)  # noqa: E731
    with rt.store.session() as session:
        out.items = list(
            session.scalars(
                select(m.Item.id)
                .where(m.Item.state == "pending", m.Item.enqueued_at < stale, free(m.Item))
                .limit(limit)
            )
        )
        out.articles = list(
            session.scalars(
                select(m.Article.id)
                .where(
                    m.Article.rules_state == "pending",
                    m.Article.enqueued_at < stale,
                    free(m.Article),
                )
                .limit(limit)
            )
        )
        out.deliveries = list(
            session.scalars(
                select(m.Delivery.id)
                .where(
                    free(m.Delivery),
                    or_(
                        and_(m.Delivery.state == "pending", m.Delivery.enqueued_at < stale),
                        and_(
                            m.Delivery.state == "failed",
                            m.Delivery.next_attempt_at <= now,
                            m.Delivery.enqueued_at < m.Delivery.next_attempt_at,
                        ),
                    ),
                )
                .limit(limit)
            )
        )
        for model, ids in (
            (m.Item, out.items),
            (m.Article, out.articles),
            (m.Delivery, out.deliveries),
        ):
            if ids:
                session.execute(
                    update(model)
                    .where(model.id.in_(ids))
                    .values(enqueued_at=now)
                    .execution_options(synchronize_session=False)
                )
    if out:
        log.info(
            "sweep: re-enqueued %d item(s), %d article(s), %d delivery(ies)",
            len(out.items),
            len(out.articles),
            len(out.deliveries),
        )
    return out
