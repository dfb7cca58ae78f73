"""The store of the alerts aggregate: matches as alerts, deliveries, digest batches,
notices and disabled endpoints. Every query the alerts stage runs is a named
operation here; the PostgreSQL-only locking (advisory locks, `FOR SHARE`,
`SKIP LOCKED`) lives here too, next to the SQLite path that gives the same.

Operations take the caller's session (the unit of work) and return mapped rows or
plain values; the caller decides states and commits by leaving the session.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from worker.core.states import BatchState, DeliveryKind, DeliveryRoute, DeliveryState
from worker.store import models as m
from worker.store.db import claim, insert_ignore, on_postgres, rows_changed

# --- deliveries -----------------------------------------------------------------------


def new_delivery(
    *,
    match_id: int,
    channel: str,
    watchlist: str,
    kind: DeliveryKind,
    route: DeliveryRoute,
    now: datetime,
) -> m.Delivery:
    """A pending delivery row; the caller adds it to the session once it is planned."""
    return m.Delivery(
        id=str(uuid.uuid4()),
        match_id=match_id,
        channel=channel,
        watchlist=watchlist,
        kind=kind,
        route=route,
        state=DeliveryState.PENDING,
        attempts=0,
        next_attempt_at=now,
        enqueued_at=now,
        created_at=now,
    )


def add_planned(session: Session, deliveries: list[m.Delivery]) -> None:
    """Store the deliveries planned for one match, ids and all, in its transaction."""
    session.add_all(deliveries)
    session.flush()


def recent_immediate(session: Session, channel: str, watchlist: str, since: datetime) -> int:
    """How many deliveries of (channel, watchlist) went out on their own since `since`.

    On PostgreSQL the count-then-insert is serialized per (channel, watchlist) with a
    transaction-scoped advisory lock, so that two rules workers cannot both see N-1
    and both send (SQLite serializes writers already).
    """
    if on_postgres(session):
        key = zlib.crc32(f"{channel}\0{watchlist}".encode()) - 2**31
        session.execute(text("SELECT pg_advisory_xact_lock(7432002, :k)"), {"k": key})
    count = session.scalar(
        select(func.count())
        .select_from(m.Delivery)
        .where(
            m.Delivery.channel == channel,
            m.Delivery.watchlist == watchlist,
            m.Delivery.route == DeliveryRoute.IMMEDIATE,
            m.Delivery.created_at > since,
        )
    )
    return count or 0


def claim_delivery(session: Session, delivery_id: str, now: datetime, lease: float) -> int | None:
    """Lease a due pending or failed delivery (counting the attempt); its attempts so
    far, or None when it is not due or someone else holds it."""
    if not claim(
        session,
        m.Delivery,
        delivery_id,
        now,
        lease,
        m.Delivery.state.in_((DeliveryState.PENDING, DeliveryState.FAILED)),
        m.Delivery.next_attempt_at <= now,
    ):
        return None
    attempts = session.scalar(select(m.Delivery.attempts).where(m.Delivery.id == delivery_id))
    return attempts or 0


def find_delivery(session: Session, delivery_id: str) -> m.Delivery | None:
    return session.get(m.Delivery, delivery_id)


def get_delivery(session: Session, delivery_id: str) -> m.Delivery:
    row = session.get(m.Delivery, delivery_id)
    assert row is not None, delivery_id
    return row


def record_attempt(
    session: Session,
    delivery_id: str,
    at: datetime,
    ok: bool,
    status: int | None,
    error: str | None,
) -> None:
    session.add(
        m.DeliveryAttempt(delivery_id=delivery_id, at=at, ok=ok, status=status, error=error)
    )


# --- what an alert delivery carries ------------------------------------------------------


@dataclass(frozen=True)
class AlertRows:
    """The rows an alert is rendered from."""

    match: m.Match
    article: m.Article
    source_name: str
    siblings: tuple[tuple[str, str], ...]  # (source, url) of the story's other articles


def match_of(session: Session, delivery: m.Delivery) -> m.Match | None:
    return session.get(m.Match, delivery.match_id)


def alert_rows(session: Session, delivery: m.Delivery) -> AlertRows:
    match = session.get(m.Match, delivery.match_id)
    assert match is not None
    art = session.get(m.Article, match.article_id)
    assert art is not None
    source_name = session.scalar(select(m.Source.name).where(m.Source.id == art.source_id)) or ""
    return AlertRows(match, art, source_name, story_siblings(session, art))


def story_siblings(session: Session, art: m.Article) -> tuple[tuple[str, str], ...]:
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


# --- digest batches ---------------------------------------------------------------------


def join_batch(session: Session, channel: str, due_at: datetime, now: datetime) -> str | None:
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
            .where(*where, m.DigestBatch.state == BatchState.OPEN)
            .with_for_update(read=True)
        )
        if joined is not None:
            return joined
        created = session.execute(
            insert_ignore(m.DigestBatch, postgres=on_postgres(session))
            .values(
                id=str(uuid.uuid4()),
                channel=channel,
                due_at=due_at,
                state=BatchState.OPEN,
                size=0,
                attempts=0,
                next_attempt_at=due_at,
                created_at=now,
            )
            .returning(m.DigestBatch.id)
        ).scalar()
        if created is not None:
            return created
        # a concurrent joiner created it (look again), or it is closed already
        if session.scalar(select(m.DigestBatch.state).where(*where)) != BatchState.OPEN:
            return None
    return None


def claim_due_batches(session: Session, now: datetime, lease: float, limit: int) -> list[str]:
    """Lease the batches whose time has come (or whose retry is due, or whose sender
    died), counting the attempt. PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent
    claimers take disjoint batches without waiting; SQLite: a conditional update per
    batch (its writers are serialized anyway)."""
    due = (
        m.DigestBatch.state.in_((BatchState.OPEN, BatchState.SENDING, BatchState.FAILED)),
        m.DigestBatch.next_attempt_at <= now,
        or_(m.DigestBatch.claimed_until.is_(None), m.DigestBatch.claimed_until < now),
    )
    claim_values = dict(
        state=BatchState.SENDING,
        claimed_until=now + timedelta(seconds=lease),
        attempts=m.DigestBatch.attempts + 1,
    )
    query = select(m.DigestBatch.id).where(*due).order_by(m.DigestBatch.next_attempt_at)
    if on_postgres(session):
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
        changed = rows_changed(
            session,
            update(m.DigestBatch)
            .where(m.DigestBatch.id == batch_id, *due)
            .values(**claim_values)
            .execution_options(synchronize_session=False),
        )
        if changed == 1:
            claimed.append(batch_id)
    return claimed


def get_batch(session: Session, batch_id: str) -> m.DigestBatch | None:
    return session.get(m.DigestBatch, batch_id)


def batched_deliveries(session: Session, batch_id: str) -> Sequence[m.Delivery]:
    """The deliveries still held in the batch, oldest first."""
    return session.scalars(
        select(m.Delivery)
        .where(m.Delivery.batch_id == batch_id, m.Delivery.state == DeliveryState.BATCHED)
        .order_by(m.Delivery.created_at, m.Delivery.id)
    ).all()


def still_batched(session: Session, ids: Iterable[str]) -> Sequence[m.Delivery]:
    """Those of `ids` still held in a batch (not retried on their own meanwhile)."""
    return session.scalars(
        select(m.Delivery).where(
            m.Delivery.id.in_(list(ids)), m.Delivery.state == DeliveryState.BATCHED
        )
    ).all()


# --- notices -----------------------------------------------------------------------------


def insert_notice(
    session: Session, channel: str, key: str, notice: dict[str, str], now: datetime
) -> str | None:
    """A pending notice delivery, once per (key, channel): the unique constraint
    decides. Its id when new, else None."""
    return session.execute(
        insert_ignore(m.Delivery, postgres=on_postgres(session))
        .values(
            id=str(uuid.uuid4()),
            match_id=None,
            channel=channel,
            kind=DeliveryKind.NOTICE,
            route=DeliveryRoute.IMMEDIATE,
            notice_key=key[:300],
            notice=notice,
            state=DeliveryState.PENDING,
            attempts=0,
            next_attempt_at=now,
            enqueued_at=now,
            created_at=now,
        )
        .returning(m.Delivery.id)
    ).scalar()


def failing_sources(session: Session) -> Sequence[Any]:
    """(name, last_success_at, created_at, last_error, consecutive_failures) of every
    enabled source whose last fetch failed."""
    return session.execute(
        select(
            m.Source.name,
            m.Source.last_success_at,
            m.Source.created_at,
            m.Source.last_error,
            m.Source.consecutive_failures,
        ).where(m.Source.enabled.is_(True), m.Source.consecutive_failures > 0)
    ).all()


# --- disabled endpoints ----------------------------------------------------------------


def disabled_endpoint(session: Session, url: str) -> m.DisabledEndpoint | None:
    return session.get(m.DisabledEndpoint, url)


def disable_endpoint(session: Session, url: str, channel: str, reason: str, at: datetime) -> None:
    session.execute(
        insert_ignore(m.DisabledEndpoint, postgres=on_postgres(session)).values(
            url=url, channel=channel, reason=reason, disabled_at=at
        )
    )


def enable_endpoint(session: Session, url: str) -> bool:
    row = session.get(m.DisabledEndpoint, url)
    if row is None:
        return False
    session.delete(row)
    return True


def disabled_endpoints(session: Session) -> Sequence[m.DisabledEndpoint]:
    return session.scalars(select(m.DisabledEndpoint).order_by(m.DisabledEndpoint.channel)).all()


# --- operator actions --------------------------------------------------------------------


def rebatch_given_up(session: Session, batch_id: str) -> None:
    """Put the dead or failed deliveries of a batch back into it (for a retry)."""
    session.execute(
        update(m.Delivery)
        .where(
            m.Delivery.batch_id == batch_id,
            m.Delivery.state.in_((DeliveryState.DEAD, DeliveryState.FAILED)),
        )
        .values(state=DeliveryState.BATCHED)
        .execution_options(synchronize_session=False)
    )


def recent_deliveries(session: Session, states: Sequence[str], limit: int) -> Sequence[Any]:
    """(delivery, watchlist, title, url), newest first, of the given states (all if none)."""
    query = (
        select(m.Delivery, m.Match.watchlist, m.Article.title, m.Article.canonical_url)
        .outerjoin(m.Match, m.Match.id == m.Delivery.match_id)
        .outerjoin(m.Article, m.Article.id == m.Match.article_id)
        .order_by(m.Delivery.created_at.desc(), m.Delivery.id)
        .limit(limit)
    )
    if states:
        query = query.where(m.Delivery.state.in_(states))
    return session.execute(query).all()


def attempt_times(
    session: Session, ids: Sequence[str]
) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Per delivery id: (its last attempt, the time its next attempt falls due)."""
    A, D = m.DeliveryAttempt, m.Delivery
    last = dict(
        session.execute(
            select(A.delivery_id, func.max(A.at))
            .where(A.delivery_id.in_(list(ids)))
            .group_by(A.delivery_id)
        ).all()
    )
    due = session.execute(select(D.id, D.next_attempt_at).where(D.id.in_(list(ids)))).all()
    return {i: (last.get(i), at) for i, at in due}


def ids_starting(session: Session, prefix: str, limit: int = 10) -> list[str]:
    """Up to `limit` delivery and digest batch ids that start with `prefix`, sorted."""
    found: set[str] = set()
    for column in (m.Delivery.id, m.DigestBatch.id):
        query = select(column).where(column.startswith(prefix, autoescape=True))
        found.update(session.scalars(query.order_by(column).limit(limit)))
    return sorted(found)[:limit]
