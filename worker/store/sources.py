"""The source table: the poll schedule, its claims and each poll's result."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from worker.store import models as m
from worker.store.db import defer, insert_ignore, on_postgres, unclaimed

SYNC_BATCH = 1000  # rows per INSERT or UPDATE statement of `follow`


@dataclass(frozen=True, slots=True)
class Wanted:
    """A source as the config lists it: what the source table follows."""

    name: str
    kind: str
    url: str
    every: int
    enabled: bool


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


_NAME_OF = select(m.Source.name).where(m.Source.id == bindparam("b_id"))


def name_of(session: Session, source_id: int) -> str | None:
    return session.scalar(_NAME_OF, {"b_id": source_id})


def add(
    session: Session, name: str, kind: str, url: str, every: int, enabled: bool, now: datetime
) -> None:
    session.add(
        m.Source(
            name=name, kind=kind, url=url, every_seconds=every, enabled=enabled, next_fetch_at=now
        )
    )


def follow(session: Session, wanted: Iterable[Wanted], now: datetime) -> dict[str, int]:
    """Make the source table follow the config: new sources added, changed ones updated,
    removed ones disabled (their history is kept). How many rows were added, updated and
    disabled.

    The rows are read as plain columns, once, and written in statements of SYNC_BATCH
    rows; a row the config does not change is not written (a config of 100,000 sources
    was 100,000 ORM objects and as many UPDATEs when it was read again). A name another
    process added meanwhile is left to that process (ON CONFLICT DO NOTHING).

    A source newswatch disabled itself (`disabled_reason`, after permanent errors) stays
    disabled until its URL changes: editing other options must not revive a dead feed.
    """
    S = m.Source
    existing = {
        row.name: row
        for row in session.execute(
            select(
                S.id,
                S.name,
                S.kind,
                S.url,
                S.every_seconds,
                S.enabled,
                S.next_fetch_at,
                S.disabled_reason,
            )
        )
    }
    added, moved, changed, names = _plan(existing, wanted, now)
    gone = [
        {"id": row.id, "enabled": False}
        for name, row in existing.items()
        if name not in names and row.enabled
    ]
    new = insert_ignore(S, postgres=on_postgres(session))
    for i in range(0, len(added), SYNC_BATCH):
        session.execute(new, added[i : i + SYNC_BATCH])
    for rows in (moved, changed, gone):
        for i in range(0, len(rows), SYNC_BATCH):
            session.execute(
                update(S).execution_options(synchronize_session=False), rows[i : i + SYNC_BATCH]
            )
    return {"added": len(added), "updated": len(moved) + len(changed), "disabled": len(gone)}


def _plan(
    existing: dict[str, Any], wanted: Iterable[Wanted], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """(rows to add, rows with a new URL, other rows changed, every name wanted)."""
    names: set[str] = set()
    added: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []  # a new URL or kind: its record starts again
    changed: list[dict[str, Any]] = []
    for spec in wanted:
        names.add(spec.name)
        row = existing.get(spec.name)
        if row is None:
            added.append(
                dict(
                    name=spec.name,
                    kind=spec.kind,
                    url=spec.url,
                    every_seconds=spec.every,
                    enabled=spec.enabled,
                    next_fetch_at=now,
                    consecutive_failures=0,
                    permanent_failures=0,
                    items_seen=0,
                    created_at=now,
                )
            )
            continue
        next_fetch_at, disabled_reason = row.next_fetch_at, row.disabled_reason
        new_url = row.url != spec.url or row.kind != spec.kind
        if new_url:
            next_fetch_at, disabled_reason = now, None
        sooner = now + timedelta(seconds=spec.every)
        if spec.every < row.every_seconds and next_fetch_at > sooner:
            next_fetch_at = sooner
        values = dict(
            id=row.id,
            url=spec.url,
            kind=spec.kind,
            every_seconds=spec.every,
            enabled=spec.enabled and disabled_reason is None,
            next_fetch_at=next_fetch_at,
        )
        if new_url:
            # nothing to be conditional on, nor a window to tell a gap by
            # (worker/sources/gaps.py): its first poll is a first, with a clean record
            values.update(
                etag=None,
                last_modified=None,
                window_size=None,
                window_newest_at=None,
                window_tokens=None,
                disabled_reason=None,
                permanent_failures=0,
            )
            moved.append(values)
        elif (
            values["every_seconds"] != row.every_seconds
            or values["enabled"] != row.enabled
            or next_fetch_at != row.next_fetch_at
        ):
            changed.append(values)
    return added, moved, changed, names


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


# built once: a changed poll's UPDATE costs its execution, not its construction (an
# ORM-enabled UPDATE built per call was ~0.6 of its ~0.75 CPU-ms on SQLite). The columns
# of `values` are bound at execution (SET col = :col for each key given).
_SOURCE = cast("Table", m.Source.__table__)
_RECORD_POLL = (
    update(_SOURCE)
    .where(_SOURCE.c.id == bindparam("b_source_id"))
    .values(
        claimed_until=None,
        last_error=None,
        last_error_kind=None,
        consecutive_failures=0,
        permanent_failures=0,
        items_seen=_SOURCE.c.items_seen + bindparam("b_new_items"),
    )
)


def record_poll(session: Session, source_id: int, new_items: int, **values: Any) -> None:
    """A successful poll: the claim released, the failure counts cleared, `values` set
    (columns of the source table)."""
    session.execute(_RECORD_POLL, {"b_source_id": source_id, "b_new_items": new_items, **values})


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
