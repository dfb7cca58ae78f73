"""The operator's actions and views on the outbox (the `newswatch deliveries` and
`newswatch endpoints` commands)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from worker.alerts.display import neutralise
from worker.core.redact import redact_text
from worker.core.states import BatchState, DeliveryState
from worker.store import deliveries as store
from worker.store.db import Store

STATES = tuple(s.value for s in DeliveryState)  # every delivery state, for status
RETRYABLE = (DeliveryState.DEAD, DeliveryState.FAILED)


@dataclass(frozen=True)
class RetryResult:
    kind: str  # delivery | batch
    id: str
    previous_state: str


def retry(db: Store, row_id: str, now: datetime) -> RetryResult | None:
    """Put a dead or failed delivery (or digest batch) back to be sent now.

    A delivery that was held in a digest goes out on its own. None when there is
    nothing with that id in a retryable state.
    """
    long_ago = now - timedelta(days=1)  # so the next sweep enqueues it at once
    with db.session() as session:
        d = store.find_delivery(session, row_id)
        if d is not None:
            if d.state not in RETRYABLE:
                return None
            previous = d.state
            d.state, d.attempts, d.next_attempt_at = DeliveryState.PENDING, 0, now
            d.claimed_until, d.enqueued_at, d.batch_id = None, long_ago, None
            return RetryResult("delivery", d.id, previous)
        b = store.get_batch(session, row_id)
        if b is None or b.state not in (BatchState.DEAD, BatchState.FAILED):
            return None
        previous = b.state
        b.state, b.attempts, b.next_attempt_at, b.claimed_until = BatchState.FAILED, 0, now, None
        store.rebatch_given_up(session, b.id)
        return RetryResult("batch", b.id, previous)


def list_deliveries(
    db: Store, *, states: Iterable[str] = (), limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first, with the article title and the last error, for `newswatch deliveries`."""
    with db.session() as session:
        rows = store.recent_deliveries(session, tuple(states), limit)
        return [
            {
                "id": d.id,
                "state": d.state,
                "kind": d.kind,
                "channel": d.channel,
                "watchlist": watchlist or d.watchlist,
                "route": d.route,
                "batch": d.batch_id,
                "attempts": d.attempts,
                "created_at": d.created_at,
                "next_attempt_at": d.next_attempt_at if d.state == DeliveryState.FAILED else None,
                "sent_at": d.sent_at,
                # scrubbed here too: rows written before URLs were redacted
                "last_error": redact_text(d.last_error) if d.last_error else None,
                # no bidi override may reorder the operator's terminal either
                "title": neutralise(title or (d.notice or {}).get("title") or "") or None,
                "url": url,
            }
            for d, watchlist, title, url in rows
        ]


def enable_endpoint(db: Store, url: str) -> bool:
    """Switch a disabled webhook URL on again; False when it was not disabled."""
    with db.session() as session:
        return store.enable_endpoint(session, url)


def disabled_endpoints(db: Store) -> list[dict[str, Any]]:
    with db.session() as session:
        return [
            {"channel": r.channel, "url": r.url, "reason": r.reason, "disabled_at": r.disabled_at}
            for r in store.disabled_endpoints(session)
        ]
