"""The source table: the poll schedule, its claims and each poll's result."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.store import models as m
from worker.store.db import defer, on_postgres, unclaimed


def by_name(session: Session) -> dict[str, m.Source]:
    return {s.name: s for s in session.scalars(select(m.Source))}


def named(session: Session, name: str) -> m.Source | None:
    return session.scalar(select(m.Source).where(m.Source.name == name))


def get(session: Session, source_id: int, *, for_update: bool = False) -> m.Source | None:
    return session.get(m.Source, source_id, with_for_update=for_update)


def claimed(session: Session, source_ids: list[int]) -> list[m.Source]:
    """The sources among `source_ids` that are enabled and still claimed, in one query."""
    return list(
        session.scalars(
            select(m.Source).where(
                m.Source.id.in_(source_ids),
                m.Source.enabled.is_(True),
                m.Source.claimed_until.is_not(None),
            )
        )
    )


def name_of(session: Session, source_id: int) -> str | None:
    return session.scalar(select(m.Source.name).where(m.Source.id == source_id))


def add(
    session: Session, name: str, kind: str, url: str, every: int, enabled: bool, now: datetime
) -> None:
    session.add(
        m.Source(
            name=name, kind=kind, url=url, every_seconds=every, enabled=enabled, next_fetch_at=now
        )
    )


def disabled(session: Session) -> list[m.Source]:
    """Sources newswatch stopped polling itself, by name."""
    return list(
        session.scalars(
            select(m.Source).where(m.Source.disabled_reason.is_not(None)).order_by(m.Source.name)
        )
    )


def due_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Enabled sources whose next poll has come and that nobody holds, soonest first."""
    return list(
        session.scalars(
            select(m.Source.id)
            .where(
                m.Source.enabled.is_(True), m.Source.next_fetch_at <= now, unclaimed(m.Source, now)
            )
            .order_by(m.Source.next_fetch_at)
            .limit(limit)
        )
    )


def claim_due(
    session: Session, now: datetime, due_by: datetime, until: datetime, limit: int
) -> list[tuple[int, datetime]]:
    """Lease the enabled sources due by `due_by` that nobody holds (at most `limit`,
    soonest first): one UPDATE ... RETURNING, so a batch costs one statement.

    The conditions are repeated on the UPDATE itself: a row another dispatcher claimed
    between the inner SELECT and the UPDATE fails them and is left to its claimer
    (PostgreSQL re-checks an updated row's WHERE; SQLite runs one writer at a time), so
    of two dispatchers only one claims a source's poll. On PostgreSQL the inner SELECT
    skips rows another claim holds locked instead of waiting for them."""
    due = (m.Source.enabled.is_(True), m.Source.next_fetch_at <= due_by, unclaimed(m.Source, now))
    pick = select(m.Source.id).where(*due).order_by(m.Source.next_fetch_at).limit(limit)
    if on_postgres(session):
        pick = pick.with_for_update(skip_locked=True)
    rows = session.execute(
        update(m.Source)
        .where(m.Source.id.in_(pick.scalar_subquery()), *due)
        .values(claimed_until=until)
        .returning(m.Source.id, m.Source.next_fetch_at)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(((row[0], row[1]) for row in rows), key=lambda r: r[1])


def record_poll(session: Session, source_id: int, new_items: int, **values: Any) -> None:
    """A successful poll: the claim released, the failure counts cleared, `values` set."""
    session.execute(
        update(m.Source)
        .where(m.Source.id == source_id)
        .values(
            claimed_until=None,
            last_error=None,
            last_error_kind=None,
            consecutive_failures=0,
            permanent_failures=0,
            items_seen=m.Source.items_seen + new_items,
            **values,
        )
    )


def record_not_modified(session: Session, polls: list[tuple[int, dict[str, Any]]]) -> None:
    """Many successful polls that found nothing new (304s), in one executemany: each row's
    claim released, its failure counts cleared and its `values` set (the same columns
    for every row: last_fetch_at, last_success_at, next_fetch_at)."""
    if not polls:
        return
    cleared = dict(
        claimed_until=None,
        last_error=None,
        last_error_kind=None,
        consecutive_failures=0,
        permanent_failures=0,
    )
    session.execute(
        update(m.Source).execution_options(synchronize_session=False),
        [{"id": source_id, **cleared, **values} for source_id, values in polls],
    )


def defer_source(session: Session, source_id: int, until: datetime) -> None:
    """Hold the source's claim until `until` (a full disk: not the source's failure)."""
    defer(session, m.Source, source_id, until, give_back_attempt=False)
