"""The outbox: deliveries, digest batches and operational notices.

Rows first, messages second. `plan_deliveries` runs inside the rules step's
transaction and decides, per channel, with the pure policy in
`worker.alerts.policy`, whether a match is sent now (a `pending` delivery, whose
id the task enqueues after the commit) or held in a digest batch (a `batched`
delivery joined to the channel's batch due at the digest time). `deliver`
sends one pending delivery; `send_due_digests` (beat, every tick) claims due
batches and sends each as one message, recording the batch and every delivery
in it in one transaction. Notices are deliveries too, keyed by incident so that
each incident notifies once.

Nothing here keeps state in memory: a killed worker leaves rows with an
expired lease, which the sweep (deliveries) or the next tick (batches) takes
back.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from worker.alerts.channels import (
    Rendering,
    SendOutcome,
    alert_rendering,
    digest_rendering,
    failure_outcome,
    notice_rendering,
    render_check,
    send_rendering,
)
from worker.alerts.digest import Notice
from worker.alerts.display import neutralise
from worker.alerts.policy import (
    THROTTLE_WINDOW,
    Policy,
    Relevance,
    parse_quiet_hours,
    parse_relevance,
    parse_schedule,
    route,
)
from worker.alerts.render import Alert
from worker.bootstrap import Runtime
from worker.config import AlertPolicySpec, ChannelSpec, Config
from worker.core.backoff import backoff as _backoff
from worker.core.model import Hit, WatchlistMatch
from worker.core.redact import redact_text
from worker.store import models as m
from worker.store.db import Store, claim
from worker.store.items import article_from_row

log = logging.getLogger(__name__)

DIGEST_LIMIT = 20  # batches claimed per tick; the next tick takes the rest
STATES = ("pending", "batched", "failed", "sent", "dead")  # every delivery state, for status


# --- policy resolution -------------------------------------------------------------


def resolve_policy(channel: ChannelSpec, override: AlertPolicySpec | None) -> Policy:
    """The channel's policy with the watchlist's `alerts:` settings on top."""

    def pick(name: str) -> Any:
        value = getattr(override, name, None) if override is not None else None
        return value if value is not None else getattr(channel, name)

    digest, quiet, relevance = pick("digest"), pick("quiet_hours"), pick("min_relevance")
    return Policy(
        digest=parse_schedule(digest) if digest else None,
        throttle=pick("throttle"),
        quiet_hours=parse_quiet_hours(quiet) if quiet else None,
        min_relevance=parse_relevance(relevance) if relevance else Relevance(),
        story_updates=bool(pick("story_updates")),
        timezone=channel.timezone,
    )


# --- planning: rows written with the match ---------------------------------------


def plan_deliveries(
    rt: Runtime,
    session: Session,
    config: Config,
    match_row: m.Match,
    wm: WatchlistMatch,
    *,
    update_of_story: bool,
    now: datetime,
) -> list[str]:
    """Write this match's delivery rows, one per notified channel that wants it.

    `update_of_story`: the story already alerted this watchlist; only channels
    with `story_updates` get an (update) delivery. Returns the ids to send now.
    """
    spec = next((w for w in config.watchlists if w.name == wm.watchlist), None)
    if spec is None:
        return []
    channels = {c.name: c for c in config.channels}
    now_ids: list[str] = []
    for name in sorted(spec.notify):  # one lock order for every rules worker
        channel = channels.get(name)
        if channel is None:
            continue
        policy = resolve_policy(channel, spec.alerts)
        if update_of_story and not policy.story_updates:
            continue
        if not policy.min_relevance.passes(wm.hits):
            log.info("match %s: below min_relevance of channel %s", match_row.id, name)
            continue
        recent = 0
        if policy.throttle is not None and policy.digest is None:
            recent = _recent_immediate(rt, session, name, wm.watchlist, now)
        decision = route(policy, now, recent)
        delivery = m.Delivery(
            id=str(uuid.uuid4()), match_id=match_row.id, channel=name, watchlist=wm.watchlist,
            kind="update" if update_of_story else "alert", route=decision.reason,
            state="pending", attempts=0, next_attempt_at=now, enqueued_at=now, created_at=now,
        )  # fmt: skip
        if decision.due_at is not None:
            batch_id = _join_batch(rt, session, name, decision.due_at, now)
            if batch_id is not None:
                delivery.state, delivery.batch_id = "batched", batch_id
            else:  # that digest already left: this one goes out on its own
                delivery.route = "immediate"
        session.add(delivery)
        if delivery.state == "pending":
            now_ids.append(delivery.id)
    session.flush()
    return now_ids


def _recent_immediate(
    rt: Runtime, session: Session, channel: str, watchlist: str, now: datetime
) -> int:
    if rt.store.is_postgres:
        # Serialize the count-then-insert per (channel, watchlist) so that two rules
        # workers cannot both see N-1 and both send (SQLite is serialized already).
        key = zlib.crc32(f"{channel}\0{watchlist}".encode()) - 2**31
        session.execute(text("SELECT pg_advisory_xact_lock(7432002, :k)"), {"k": key})
    return (
        session.scalar(
            select(func.count())
            .select_from(m.Delivery)
            .where(
                m.Delivery.channel == channel,
                m.Delivery.watchlist == watchlist,
                m.Delivery.route == "immediate",
                m.Delivery.created_at > now - THROTTLE_WINDOW,
            )
        )
        or 0
    )


def _join_batch(
    rt: Runtime, session: Session, channel: str, due_at: datetime, now: datetime
) -> str | None:
    """The id of the open batch of `channel` due at `due_at`, created if needed.

    The batch row is read `FOR SHARE` with `state = 'open'`: joiners never block
    each other (no deadlocks between rules workers), but a sender's claim (`FOR
    UPDATE SKIP LOCKED` + update) and a join exclude each other, so a delivery
    is either in the batch before the claim or sees it closed. SQLite serializes
    writers, which gives the same. None when the batch exists but has been
    claimed already (its time has come).
    """
    where = (m.DigestBatch.channel == channel, m.DigestBatch.due_at == due_at)
    for _ in range(2):
        joined = session.scalar(
            select(m.DigestBatch.id)
            .where(*where, m.DigestBatch.state == "open")
            .with_for_update(read=True)
        )
        if joined is not None:
            return joined
        created = session.execute(
            rt.store.insert_ignore(m.DigestBatch)
            .values(
                id=str(uuid.uuid4()), channel=channel, due_at=due_at, state="open", size=0,
                attempts=0, next_attempt_at=due_at, created_at=now,
            )
            .returning(m.DigestBatch.id)
        ).scalar()  # fmt: skip
        if created is not None:
            return created
        # a concurrent joiner created it (look again), or it is closed already
        if session.scalar(select(m.DigestBatch.state).where(*where)) != "open":
            return None
    return None


# --- sending one delivery ---------------------------------------------------------


def deliver(rt: Runtime, delivery_id: str, follow_ups: list[str] | None = None) -> bool:
    """Send one pending delivery if it is due and unclaimed; record the attempt.

    True when sent. The claim (which counts the attempt) commits first, so an
    attempt counts however it ends. Whatever goes wrong while loading, rendering
    or sending (any exception type) is recorded on this delivery's row and in an
    attempt row, and after the attempt limit the delivery is dead with a notice.
    Notices raised on the way are added to `follow_ups` for the caller to enqueue.
    """
    now = rt.now()
    with rt.store.session() as session:
        if not claim(
            session, m.Delivery, delivery_id, now, rt.settings.lease_seconds,
            m.Delivery.state.in_(("pending", "failed")), m.Delivery.next_attempt_at <= now,
        ):  # fmt: skip
            return False
        attempts = session.scalar(select(m.Delivery.attempts).where(m.Delivery.id == delivery_id))
    if (attempts or 0) > rt.settings.delivery_attempts:
        # earlier attempts never got as far as recording (the worker died in them)
        outcome = SendOutcome(
            False, error=f"gave up after {attempts - 1} attempt(s): the last never finished "
            "(the worker died or was killed while sending)", permanent=True, stage="deliver",
        )  # fmt: skip
    else:
        try:
            outcome = _attempt(rt, delivery_id)
        except Exception as exc:  # the delivery boundary: nothing escapes one delivery
            outcome = failure_outcome("deliver", exc)
    finished = rt.now()
    with rt.store.session() as session:
        d = session.get(m.Delivery, delivery_id)
        assert d is not None
        _record_outcome(rt, session, d, outcome, finished, follow_ups)
    return outcome.ok


def _attempt(rt: Runtime, delivery_id: str) -> SendOutcome:
    """Load and send one claimed delivery; a failure comes back as an outcome."""
    try:
        with rt.store.session() as session:
            d = session.get(m.Delivery, delivery_id)
            assert d is not None
            channel_name = d.channel
            if d.kind == "notice":
                rendering = notice_rendering(_notice(d))
            else:
                rendering = alert_rendering(_load_alert(session, d), update=d.kind == "update")
    except Exception as exc:  # a row that cannot be read back as an alert (corrupt, missing)
        return failure_outcome("load", exc)
    return _send(rt, channel_name, rendering)


def _record_outcome(
    rt: Runtime,
    session: Session,
    d: m.Delivery,
    outcome: SendOutcome,
    at: datetime,
    follow_ups: list[str] | None,
) -> None:
    """Write one attempt's outcome on the delivery: sent, failed (retry later) or dead."""
    _record_attempt(session, d, outcome, at)
    d.claimed_until = None
    if outcome.ok:
        d.state, d.sent_at, d.last_error = "sent", at, None
        return
    d.last_error = outcome.error
    _count_failure("delivery", outcome)
    if outcome.permanent or d.attempts >= rt.settings.delivery_attempts:
        d.state = "dead"
        log.error("delivery %s to %s is dead: %s", d.id, d.channel, outcome.error)
        if d.kind != "notice":  # a dead notice about a dead notice would never end
            _collect(follow_ups, _dead_notice(rt, session, d, at, stage=outcome.stage))
    else:
        d.state = "failed"
        d.next_attempt_at = at + _retry_delay(rt, d.attempts, outcome)
        log.warning(
            "delivery %s to %s failed (attempt %d), retry at %s: %s",
            d.id, d.channel, d.attempts, d.next_attempt_at.isoformat(), outcome.error,
        )  # fmt: skip


def _count_failure(unit: str, outcome: SendOutcome) -> None:
    from worker.service import observability

    kind = outcome.error_class or (f"http_{outcome.status}" if outcome.status else "refused")
    observability.count_unit_failure(unit, outcome.stage or "send", kind)


def _send(rt: Runtime, channel_name: str, rendering: Rendering) -> SendOutcome:
    """Send unless the channel's webhook URL was switched off by a 410; switch it off on one."""
    url = _webhook_url(rt, channel_name)
    if url is not None:
        with rt.store.session() as session:
            off = session.get(m.DisabledEndpoint, url)
            if off is not None:
                return SendOutcome(
                    False,
                    error=f"endpoint disabled since {off.disabled_at:%Y-%m-%d %H:%M} UTC "
                    f"({off.reason}); change the URL or run `newswatch endpoints enable "
                    f"{channel_name}`",
                    permanent=True,
                )
    outcome = send_rendering(rt, channel_name, rendering)
    if outcome.disable and url is not None:
        with rt.store.session() as session:
            session.execute(
                rt.store.insert_ignore(m.DisabledEndpoint).values(
                    url=url, channel=channel_name, reason=outcome.error or "410 Gone",
                    disabled_at=rt.now(),
                )
            )  # fmt: skip
        log.error("channel %s: webhook endpoint disabled (410 Gone)", channel_name)
    return outcome


def _webhook_url(rt: Runtime, channel_name: str) -> str | None:
    config = rt.config.current().loaded.config
    channel = next((c for c in config.channels if c.name == channel_name), None)
    return channel.webhook if channel is not None else None


def enable_endpoint(store: Store, url: str) -> bool:
    """Switch a disabled webhook URL on again; False when it was not disabled."""
    with store.session() as session:
        row = session.get(m.DisabledEndpoint, url)
        if row is None:
            return False
        session.delete(row)
        return True


def disabled_endpoints(store: Store) -> list[dict[str, Any]]:
    with store.session() as session:
        return [
            {"channel": r.channel, "url": r.url, "reason": r.reason, "disabled_at": r.disabled_at}
            for r in session.scalars(
                select(m.DisabledEndpoint).order_by(m.DisabledEndpoint.channel)
            )
        ]


def _retry_delay(rt: Runtime, attempts: int, outcome: SendOutcome) -> timedelta:
    delay = _backoff(rt.settings.retry_base_seconds, attempts)
    if outcome.retry_after:
        delay = max(delay, timedelta(seconds=outcome.retry_after))
    return delay


def _record_attempt(session: Session, d: m.Delivery, outcome: SendOutcome, at: datetime) -> None:
    session.add(
        m.DeliveryAttempt(
            delivery_id=d.id, at=at, ok=outcome.ok, status=outcome.status, error=outcome.error
        )
    )


def _collect(into: list[str] | None, item: str | None) -> None:
    if into is not None and item is not None:
        into.append(item)


def _load_alert(session: Session, d: m.Delivery) -> Alert:
    match = session.get(m.Match, d.match_id)
    assert match is not None
    art = session.get(m.Article, match.article_id)
    assert art is not None
    source_name = session.scalar(select(m.Source.name).where(m.Source.id == art.source_id)) or ""
    wm = WatchlistMatch(
        watchlist=match.watchlist,
        hits=tuple(Hit(**h) for h in match.hits or ()),
        snippet=match.snippet or "",
        highlights=tuple(tuple(h) for h in match.highlights or ()),  # type: ignore[misc]
        names=tuple(match.names or ()),
    )
    article = article_from_row(art, source_name)
    return Alert(d.id, match.watchlist, article, wm, _story_siblings(session, art))


def _story_siblings(session: Session, art: m.Article) -> tuple[tuple[str, str], ...]:
    """(source, url) of the story's other articles: listed as "also reported by"."""
    if art.story_id is None:
        return ()
    rows = session.execute(
        select(m.Source.name, m.Article.canonical_url)
        .join(m.Source, m.Source.id == m.Article.source_id)
        .where(m.Article.story_id == art.story_id, m.Article.id != art.id)
        .order_by(m.Article.id)
        .limit(20)
    ).all()
    return tuple((name, url) for name, url in rows)


# --- digests ------------------------------------------------------------------------


def claim_due_batches(rt: Runtime, limit: int = DIGEST_LIMIT) -> list[str]:
    """Take a lease on the batches whose time has come (or whose retry is due, or
    whose sender died). PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent
    claimers take disjoint batches without waiting; SQLite: a conditional update
    per batch (its writers are serialized anyway)."""
    now = rt.now()
    lease_until = now + timedelta(seconds=rt.settings.lease_seconds)
    due = (
        m.DigestBatch.state.in_(("open", "sending", "failed")),
        m.DigestBatch.next_attempt_at <= now,
        or_(m.DigestBatch.claimed_until.is_(None), m.DigestBatch.claimed_until < now),
    )
    claim_values = dict(
        state="sending", claimed_until=lease_until, attempts=m.DigestBatch.attempts + 1
    )
    with rt.store.session() as session:
        query = select(m.DigestBatch.id).where(*due).order_by(m.DigestBatch.next_attempt_at)
        if rt.store.is_postgres:
            ids = list(session.scalars(query.limit(limit).with_for_update(skip_locked=True)))
            if ids:
                session.execute(
                    update(m.DigestBatch)
                    .where(m.DigestBatch.id.in_(ids))
                    .values(**claim_values)
                    .execution_options(synchronize_session=False)
                )
            return ids
        claimed = []
        for batch_id in session.scalars(query.limit(limit)).all():
            result = session.execute(
                update(m.DigestBatch)
                .where(m.DigestBatch.id == batch_id, *due)
                .values(**claim_values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                claimed.append(batch_id)
        return claimed


def send_batch(rt: Runtime, batch_id: str, follow_ups: list[str] | None = None) -> bool:
    """Send one claimed batch as one message; mark it and its deliveries in one go.

    Fails alone: an alert of the batch that cannot be loaded or rendered is taken
    out (its own delivery records why and is retried on its own), and anything
    else that goes wrong is recorded on the batch row, counts toward its attempt
    limit and ends, after the last attempt, in `dead` with a notice.
    """
    try:
        return _send_batch(rt, batch_id, follow_ups)
    except Exception as exc:  # the batch boundary: record it on the batch, never raise
        _batch_failed(rt, batch_id, failure_outcome("digest", exc), follow_ups)
        return False


def _send_batch(rt: Runtime, batch_id: str, follow_ups: list[str] | None) -> bool:
    with rt.store.session() as session:
        batch = session.get(m.DigestBatch, batch_id)
        if batch is None or batch.state != "sending":
            return False
        channel = batch.channel
        rows = session.scalars(
            select(m.Delivery)
            .where(m.Delivery.batch_id == batch_id, m.Delivery.state == "batched")
            .order_by(m.Delivery.created_at, m.Delivery.id)
        ).all()
        if batch.attempts > rt.settings.delivery_attempts:
            # earlier attempts never got as far as recording (the worker died in them)
            gave_up = SendOutcome(
                False, error=f"gave up after {batch.attempts - 1} attempt(s): the last never "
                "finished (the worker died or was killed while sending)", permanent=True,
                stage="digest",
            )  # fmt: skip
            for d in rows:
                d.last_error = gave_up.error
            _batch_outcome(rt, session, batch, gave_up, rt.now(), follow_ups, rows)
            return False
        alerts, poisoned = _digest_alerts(rt, session, channel, rows)
        ids = [d.id for d in rows if d.id not in poisoned]
        batch.size = len(ids)
        now = rt.now()
        for d in rows:
            if d.id in poisoned:  # out of the batch: it fails alone and retries on its own
                d.attempts += 1
                d.batch_id = None
                _record_outcome(rt, session, d, poisoned[d.id], now, follow_ups)
        if not alerts:  # every delivery was retried on its own meanwhile, or taken out
            batch.state, batch.claimed_until, batch.sent_at = "sent", None, now
            return True
    outcome = _send(rt, channel, digest_rendering(batch_id, channel, alerts))
    finished = rt.now()
    with rt.store.session() as session:
        batch = session.get(m.DigestBatch, batch_id)
        assert batch is not None
        included = session.scalars(
            select(m.Delivery).where(m.Delivery.id.in_(ids), m.Delivery.state == "batched")
        ).all()
        for d in included:
            _record_attempt(session, d, outcome, finished)
            d.attempts += 1
        batch.claimed_until = None
        if outcome.ok:
            batch.state, batch.sent_at, batch.last_error = "sent", finished, None
            for d in included:
                d.state, d.sent_at, d.last_error = "sent", finished, None
            log.info("digest %s to %s: %d alert(s) sent", batch_id, channel, len(ids))
            return True
        for d in included:
            d.last_error = outcome.error
        _batch_outcome(rt, session, batch, outcome, finished, follow_ups, included)
        return False


def _batch_outcome(
    rt: Runtime,
    session: Session,
    batch: m.DigestBatch,
    outcome: SendOutcome,
    at: datetime,
    follow_ups: list[str] | None,
    included: Iterable[m.Delivery] = (),
) -> None:
    """A failed attempt of a whole batch: retry it later, or dead after the limit."""
    batch.last_error, batch.claimed_until = outcome.error, None
    _count_failure("digest", outcome)
    if outcome.permanent or batch.attempts >= rt.settings.delivery_attempts:
        batch.state = "dead"
        for d in included:
            d.state = "dead"
        log.error("digest %s to %s is dead: %s", batch.id, batch.channel, outcome.error)
        _collect(follow_ups, _dead_notice(rt, session, None, at, batch=batch))
    else:
        batch.state = "failed"
        batch.next_attempt_at = at + _retry_delay(rt, batch.attempts, outcome)
        log.warning(
            "digest %s to %s failed (attempt %d), retry at %s: %s",
            batch.id, batch.channel, batch.attempts, batch.next_attempt_at.isoformat(),
            outcome.error,
        )  # fmt: skip


def _batch_failed(
    rt: Runtime, batch_id: str, outcome: SendOutcome, follow_ups: list[str] | None
) -> None:
    """Record an exception that stopped a batch on its row (its claim counted the attempt)."""
    with rt.store.session() as session:
        batch = session.get(m.DigestBatch, batch_id)
        if batch is None or batch.state != "sending":
            return
        included = session.scalars(
            select(m.Delivery).where(m.Delivery.batch_id == batch_id, m.Delivery.state == "batched")
        ).all()
        for d in included:
            d.last_error = outcome.error
        _batch_outcome(rt, session, batch, outcome, rt.now(), follow_ups, included)


def _digest_alerts(
    rt: Runtime, session: Session, channel: str, rows: Iterable[m.Delivery]
) -> tuple[list[Alert], dict[str, SendOutcome]]:
    """The batch's alerts, one per (watchlist, story): a second source of the same story
    in the same digest is not a second entry (its siblings are listed on the first).

    Each alert is loaded and rendered for the channel on its own first; one that
    fails is returned in the second value (delivery id -> failed outcome) instead of
    stopping the whole digest.
    """
    config = rt.config.current().loaded.config
    spec = next((c for c in config.channels if c.name == channel), None)
    seen: set[tuple[str, int]] = set()
    alerts: list[Alert] = []
    poisoned: dict[str, SendOutcome] = {}
    for d in rows:
        try:
            with session.begin_nested():  # a database error here stays with this alert
                match = session.get(m.Match, d.match_id)
                if match is None:
                    continue
                key = (match.watchlist, match.story_id or -match.article_id)
                if key in seen:
                    continue
                alert = _load_alert(session, d)
        except Exception as exc:
            poisoned[d.id] = failure_outcome("load", exc)
            continue
        if spec is not None:
            try:
                render_check(rt, config, spec, alert_rendering(alert))
            except Exception as exc:
                poisoned[d.id] = failure_outcome("render", exc)
                continue
        seen.add(key)
        alerts.append(alert)
    return alerts, poisoned


def send_due_digests(rt: Runtime, follow_ups: list[str] | None = None) -> int:
    """Claim and send every due batch; returns how many were sent. Each batch fails alone."""
    try:
        batch_ids = claim_due_batches(rt)
    except Exception as exc:
        _step_failed("digests", "claim", exc)
        return 0
    sent = 0
    for batch_id in batch_ids:
        try:
            sent += send_batch(rt, batch_id, follow_ups)
        except Exception as exc:  # could not even record the failure (database down?)
            _step_failed("digests", f"batch {batch_id}", exc)
    return sent


def _step_failed(step: str, what: str, exc: BaseException) -> None:
    """One step of a periodic tick failed: log it with the reason and count it; the
    tick goes on with the next step (and the next tick tries this one again)."""
    from worker.service import observability

    observability.count_unit_failure("tick", step, type(exc).__name__)
    reason = redact_text(f"{type(exc).__name__}: {exc}")
    log.error("outbox tick: %s (%s) failed, the other steps go on: %s", step, what, reason)


# --- notices ------------------------------------------------------------------------


def _notice(d: m.Delivery) -> Notice:
    data = d.notice or {}
    return Notice(
        id=d.id,
        event=data.get("event", "notice"),
        title=data.get("title", "newswatch notice"),
        text=data.get("text", ""),
        at=d.created_at,
    )


def raise_notice(
    rt: Runtime, session: Session, key: str, event: str, title: str, body: str, now: datetime
) -> str | None:
    """A notice delivery to the notices channel, once per `key` (the incident):
    the (notice_key, channel) constraint decides. Returns its id when new."""
    notices = rt.config.current().loaded.config.notices
    if notices is None:
        return None
    # notices quote errors and sources: no URL in them beyond its scheme and host
    title, body = redact_text(title), redact_text(body)
    row_id = session.execute(
        rt.store.insert_ignore(m.Delivery)
        .values(
            id=str(uuid.uuid4()), match_id=None, channel=notices.channel, kind="notice",
            route="immediate", notice_key=key[:300],
            notice={"event": event, "title": title[:500], "text": body[:4000]},
            state="pending", attempts=0, next_attempt_at=now, enqueued_at=now, created_at=now,
        )
        .returning(m.Delivery.id)
    ).scalar()  # fmt: skip
    if row_id is not None:
        log.warning("notice to %s: %s", notices.channel, title)
    return row_id


def _dead_notice(
    rt: Runtime,
    session: Session,
    d: m.Delivery | None,
    now: datetime,
    *,
    batch: m.DigestBatch | None = None,
    stage: str | None = None,
) -> str | None:
    notices = rt.config.current().loaded.config.notices
    if notices is None or not notices.delivery_dead:
        return None
    if batch is not None:
        return raise_notice(
            rt, session, f"delivery_dead:batch:{batch.id}", "delivery_dead",
            f"digest to {batch.channel} is dead",
            f"Digest {batch.id} ({batch.size} alert(s)) to channel {batch.channel} gave up after "
            f"{batch.attempts} attempt(s): {batch.last_error}\n"
            f"Retry it with: newswatch deliveries retry {batch.id}",
            now,
        )  # fmt: skip
    assert d is not None
    retry = f"Retry it with: newswatch deliveries retry {d.id}"
    if stage in ("load", "render") and d.match_id is not None:
        # The alert itself is broken, not the channel: one incident for the alert, however
        # many channels it was going to (each of its deliveries records the same reason).
        return raise_notice(
            rt, session, f"delivery_dead:match:{d.match_id}", "delivery_dead",
            f"an alert of {d.watchlist or 'a watchlist'} cannot be sent ({stage} failed)",
            f"Delivery {d.id} (match {d.match_id}) to channel {d.channel} gave up after "
            f"{d.attempts} attempt(s): {d.last_error}\nIts deliveries to other channels fail "
            f"the same way: `newswatch deliveries --dead` lists them.\n{retry}",
            now,
        )  # fmt: skip
    return raise_notice(
        rt, session, f"delivery_dead:{d.id}", "delivery_dead",
        f"delivery to {d.channel} is dead ({d.watchlist or d.kind})",
        f"Delivery {d.id} to channel {d.channel} gave up after {d.attempts} attempt(s): "
        f"{d.last_error}\n{retry}",
        now,
    )  # fmt: skip


def check_notices(rt: Runtime) -> list[str]:
    """Raise notices for incidents the database and the live config show now:
    sources failing for longer than `source_failing_after`, a refused config.

    Each kind of incident is checked on its own (its own transaction): one that
    fails is logged and counted, and the others are still checked.
    """
    active = rt.config.current()
    notices = active.loaded.config.notices
    if notices is None:
        return []
    out: list[str] = []
    for kind, check in (
        ("source_failing", _source_failing_notices),
        ("config_rejected", _config_rejected_notices),
        ("config_shrunk", _config_shrunk_notices),
    ):
        try:
            with rt.store.session() as session:
                out += check(rt, session, rt.now())
        except Exception as exc:
            _step_failed(f"notices:{kind}", "check", exc)
    return out


def _source_failing_notices(rt: Runtime, session: Session, now: datetime) -> list[str]:
    notices = rt.config.current().loaded.config.notices
    assert notices is not None
    after = timedelta(seconds=notices.source_failing_after)
    out: list[str] = []
    failing = session.execute(
        select(
            m.Source.name, m.Source.last_success_at, m.Source.created_at,
            m.Source.last_error, m.Source.consecutive_failures,
        ).where(m.Source.enabled.is_(True), m.Source.consecutive_failures > 0)
    ).all()  # fmt: skip
    for name, last_ok, created, error, failures in failing:
        since = last_ok or created
        if since is None or now - since < after:
            continue
        hours = (now - since).total_seconds() / 3600
        # the incident starts at the last success: a recovery and a new failure is a new one
        _collect(out, raise_notice(
            rt, session, f"source_failing:{name}:{since.isoformat()}", "source_failing",
            f"source {name} failing for {hours:.0f} h",
            f"Source {name} has not been fetched successfully since {since.isoformat()} "
            f"({failures} failure(s) in a row). Last error: {error}",
            now,
        ))  # fmt: skip
    return out


def _config_rejected_notices(rt: Runtime, session: Session, now: datetime) -> list[str]:
    active = rt.config.current()
    notices = active.loaded.config.notices
    error = rt.config.last_error
    if not error or notices is None or not notices.config_rejected:
        return []
    digest = hashlib.sha256(error.encode()).hexdigest()[:16]
    out: list[str] = []
    _collect(out, raise_notice(
        rt, session, f"config_rejected:{active.version}:{digest}", "config_rejected",
        "watchlist config rejected",
        f"A change to {rt.config.path} was refused; version {active.version} stays in "
        f"force.\n\n{error}",
        now,
    ))  # fmt: skip
    return out


def _config_shrunk_notices(rt: Runtime, session: Session, now: datetime) -> list[str]:
    notices = rt.config.current().loaded.config.notices
    if notices is None or not notices.config_shrunk:
        return []
    out: list[str] = []
    for version, removed in rt.config.shrinks:
        _collect(out, raise_notice(
            rt, session, f"config_shrunk:{version}", "config_shrunk",
            "config reload removed most sources or watchlists",
            f"Version {version} of {rt.config.path} is in force: {removed}. Monitoring of "
            "what was removed has stopped; restore the file if this was not meant.",
            now,
        ))  # fmt: skip
    return out


def tick(rt: Runtime) -> list[str]:
    """The periodic outbox step: due digests out, new notices in, the watchdog's checks
    and heartbeat (worker/service/watchdog.py). Returns the notice deliveries to enqueue. Every
    step fails alone (see `send_due_digests`, `check_notices`): a broken batch never
    keeps a notice from being raised."""
    notices: list[str] = []
    try:
        send_due_digests(rt, notices)
    except Exception as exc:  # send_due_digests guards each batch; this is the last net
        _step_failed("digests", "all", exc)
    try:
        notices += check_notices(rt)
    except Exception as exc:  # e.g. the live config could not be read
        _step_failed("notices", "all", exc)
    try:  # no fetch, stalled work or deliveries, feed gaps; the heartbeat
        from worker.service import watchdog

        notices += watchdog.tick(rt)
    except Exception as exc:
        _step_failed("watchdog", "all", exc)
    return notices


# --- operator actions (CLI) -----------------------------------------------------------


@dataclass(frozen=True)
class RetryResult:
    kind: str  # delivery | batch
    id: str
    previous_state: str


def retry(store: Store, row_id: str, now: datetime) -> RetryResult | None:
    """Put a dead or failed delivery (or digest batch) back to be sent now.

    A delivery that was held in a digest goes out on its own. None when there is
    nothing with that id in a retryable state.
    """
    long_ago = now - timedelta(days=1)  # so the next sweep enqueues it at once
    with store.session() as session:
        d = session.get(m.Delivery, row_id)
        if d is not None:
            if d.state not in ("dead", "failed"):
                return None
            previous = d.state
            d.state, d.attempts, d.next_attempt_at, d.claimed_until = "pending", 0, now, None
            d.enqueued_at, d.batch_id = long_ago, None
            return RetryResult("delivery", d.id, previous)
        b = session.get(m.DigestBatch, row_id)
        if b is None or b.state not in ("dead", "failed"):
            return None
        previous = b.state
        b.state, b.attempts, b.next_attempt_at, b.claimed_until = "failed", 0, now, None
        session.execute(
            update(m.Delivery)
            .where(m.Delivery.batch_id == b.id, m.Delivery.state.in_(("dead", "failed")))
            .values(state="batched")
            .execution_options(synchronize_session=False)
        )
        return RetryResult("batch", b.id, previous)


def list_deliveries(
    store: Store, *, states: Iterable[str] = (), limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first, with the article title and the last error, for `newswatch deliveries`."""
    with store.session() as session:
        query = (
            select(m.Delivery, m.Match.watchlist, m.Article.title, m.Article.canonical_url)
            .outerjoin(m.Match, m.Match.id == m.Delivery.match_id)
            .outerjoin(m.Article, m.Article.id == m.Match.article_id)
            .order_by(m.Delivery.created_at.desc(), m.Delivery.id)
            .limit(limit)
        )
        states = tuple(states)
        if states:
            query = query.where(m.Delivery.state.in_(states))
        out = []
        for d, watchlist, title, url in session.execute(query).all():
            out.append(
                {
                    "id": d.id, "state": d.state, "kind": d.kind, "channel": d.channel,
                    "watchlist": watchlist or d.watchlist, "route": d.route,
                    "batch": d.batch_id, "attempts": d.attempts, "created_at": d.created_at,
                    "next_attempt_at": d.next_attempt_at if d.state == "failed" else None,
                    "sent_at": d.sent_at,
                    # scrubbed here too: rows written before URLs were redacted
                    "last_error": redact_text(d.last_error) if d.last_error else None,
                    # no bidi override may reorder the operator's terminal either
                    "title": neutralise(title or (d.notice or {}).get("title") or "") or None,
                    "url": url,
                }
            )  # fmt: skip
        return out
