"""The watchdog's rows: its conditions' queries, incidents, the heartbeat slot, feed gaps.

worker/service/watchdog.py judges and notifies; what it asks of the database and
writes to it is here. Incidents and the heartbeat live in `watchdog_state` (one row
per condition, one for the heartbeat); gaps in `source_gap`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session

from worker.core.states import DeliveryKind, DeliveryState
from worker.store import models as m
from worker.store.db import Store, rows_changed
from worker.store.status import HEARTBEAT

# --- what the conditions read ----------------------------------------------------------------


def newest_success(session: Session) -> datetime | None:
    """When an enabled source was last fetched successfully."""
    enabled = m.Source.enabled.is_(True)
    return session.scalar(select(func.max(m.Source.last_success_at)).where(enabled))


def enabled_schedules(session: Session) -> list[Any]:
    """(name, last_success_at, last_fetch_at, next_fetch_at, created_at, every_seconds) of
    every enabled source."""
    S = m.Source
    return list(
        session.execute(
            select(
                S.name,
                S.last_success_at,
                S.last_fetch_at,
                S.next_fetch_at,
                S.created_at,
                S.every_seconds,
            ).where(S.enabled.is_(True))
        ).all()
    )


def any_source_fetched(session: Session) -> bool:
    S = m.Source
    fetched = exists().where(S.enabled.is_(True), S.last_success_at.is_not(None))
    return bool(session.scalar(select(fetched)))


# alerts meant to go out on their own (not held for a digest)
_ALERTS = (
    m.Delivery.kind.in_((DeliveryKind.ALERT, DeliveryKind.UPDATE)),
    m.Delivery.batch_id.is_(None),
)


def matched_since(session: Session, since: datetime) -> bool:
    return bool(session.scalar(select(exists().where(m.Match.created_at > since))))


def unsent_alerts(session: Session, made_after: datetime, made_until: datetime) -> int:
    """Alerts made in (made_after, made_until] and not sent (failed or dead alike)."""
    D = m.Delivery
    return (
        session.scalar(
            select(func.count()).where(
                *_ALERTS,
                D.state != DeliveryState.SENT,
                D.created_at > made_after,
                D.created_at <= made_until,
            )
        )
        or 0
    )


def alert_sent_since(session: Session, since: datetime) -> bool:
    return bool(session.scalar(select(exists().where(*_ALERTS, m.Delivery.sent_at > since))))


def recent_alert_errors(session: Session, since: datetime, limit: int = 3) -> list[Any]:
    """(channel, last_error) of the newest alerts made since `since` that have an error."""
    D = m.Delivery
    return list(
        session.execute(
            select(D.channel, D.last_error)
            .where(*_ALERTS, D.created_at > since, D.last_error.is_not(None))
            .order_by(D.created_at.desc())
            .limit(limit)
        ).all()
    )


# --- incidents -------------------------------------------------------------------------------


def close_incident(session: Session, condition: str) -> datetime | None:
    """Close the condition's open incident; returns when it had opened (None: none open)."""
    row = session.get(m.WatchdogState, condition)
    if row is None or row.opened_at is None:
        return None
    opened, row.opened_at, row.detail = row.opened_at, None, None
    return opened


def open_incident(
    store: Store, session: Session, condition: str, now: datetime, detail: str
) -> tuple[datetime, bool]:
    """Hold the condition's incident open (opened now unless it already is), under a row
    lock; returns (when it opened, whether it opened now)."""
    session.execute(store.insert_ignore(m.WatchdogState).values(name=condition))
    row = session.get(m.WatchdogState, condition, with_for_update=True, populate_existing=True)
    assert row is not None
    opened_now = row.opened_at is None
    if opened_now:
        row.opened_at = now
    row.detail = detail
    assert row.opened_at is not None
    return row.opened_at, opened_now


# --- the heartbeat ---------------------------------------------------------------------------


def heartbeat_due(store: Store, now: datetime, every: timedelta) -> bool:
    """Claim the heartbeat's slot for a ping now: True for the one process whose
    conditional update took it, when the last ping is at least `every` old."""
    W = m.WatchdogState
    with store.session() as session:
        row = session.get(W, HEARTBEAT)
        if row is not None and row.opened_at is not None and row.opened_at > now - every:
            return False  # the usual tick: a read, no write
        session.execute(store.insert_ignore(W).values(name=HEARTBEAT))
        claimed = rows_changed(
            session,
            update(W)
            .where(W.name == HEARTBEAT, or_(W.opened_at.is_(None), W.opened_at <= now - every))
            .values(opened_at=now),  # the slot: when this ping was taken
        )
    return claimed == 1


def note_heartbeat(store: Store, detail: str, pinged: datetime | None = None) -> None:
    """The heartbeat's last word, and (when `pinged`) when a ping last went through."""
    values: dict[str, Any] = {"detail": detail}
    if pinged is not None:
        values["checked_at"] = pinged
    W = m.WatchdogState
    with store.session() as session:
        session.execute(store.insert_ignore(W).values(name=HEARTBEAT))
        session.execute(update(W).where(W.name == HEARTBEAT).values(**values))


# --- feed gaps -------------------------------------------------------------------------------


def record_gap(session: Session, source_id: int, detected_at: datetime, **fields: Any) -> None:
    """A `source_gap` row: `fields` are basis, visible, detail and the three dates."""
    session.add(m.SourceGap(source_id=source_id, detected_at=detected_at, **fields))


def gaps_to_notify(session: Session, since: datetime, limit: int = 100) -> list[Any]:
    """(gap, source name, source every_seconds) of the gaps detected since `since` that
    no notice has been raised for yet, oldest first; set `gap.notified_at` when raised."""
    G = m.SourceGap
    return list(
        session.execute(
            select(G, m.Source.name, m.Source.every_seconds)
            .join(m.Source, m.Source.id == G.source_id)
            .where(G.notified_at.is_(None), G.detected_at >= since)
            .order_by(G.id)
            .limit(limit)
        ).all()
    )
