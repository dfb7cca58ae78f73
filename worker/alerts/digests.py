"""Digests: claim the batches whose time has come and send each as one message,
recording the batch and every delivery in it in one transaction.

A batch fails alone: an alert in it that cannot be loaded or rendered is taken out
(its own delivery records why and is retried on its own), and anything else that
goes wrong is recorded on the batch row and ends, after the last attempt, in `dead`
with a notice. A killed sender leaves an expired lease that the next tick takes back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from worker.alerts import channels
from worker.alerts.notices import dead_batch_notice
from worker.alerts.outcome import SendOutcome, failure_outcome, gave_up
from worker.alerts.render import Alert
from worker.alerts.rendering import alert_rendering, digest_rendering
from worker.alerts.sending import count_failure, load_alert, record_outcome, retry_delay, send
from worker.core.states import BatchState, DeliveryState
from worker.store import deliveries as store
from worker.store import models as m
from worker.tracking.notices import collect, step_failed

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)

DIGEST_LIMIT = 20  # batches claimed per tick; the next tick takes the rest


def claim_due_batches(rt: Runtime, limit: int = DIGEST_LIMIT) -> list[str]:
    """Take a lease on the batches whose time has come (or whose retry is due, or
    whose sender died); concurrent claimers take disjoint batches."""
    with rt.store.durable_session() as session:  # before the send (sending.deliver)
        return store.claim_due_batches(session, rt.now(), rt.settings.lease_seconds, limit)


def send_due_digests(rt: Runtime, follow_ups: list[str] | None = None) -> int:
    """Claim and send every due batch; returns how many were sent. Each batch fails alone."""
    try:
        batch_ids = claim_due_batches(rt)
    except Exception as exc:
        step_failed("digests", "claim", exc)
        return 0
    sent = 0
    for batch_id in batch_ids:
        try:
            sent += send_batch(rt, batch_id, follow_ups)
        except Exception as exc:  # could not even record the failure (database down?)
            step_failed("digests", f"batch {batch_id}", exc)
    return sent


def send_batch(rt: Runtime, batch_id: str, follow_ups: list[str] | None = None) -> bool:
    """Send one claimed batch as one message; mark it and its deliveries in one go."""
    try:
        prepared = _prepare(rt, batch_id, follow_ups)
        if isinstance(prepared, bool):
            return prepared
        channel, alerts, ids = prepared
        outcome = send(rt, channel, digest_rendering(batch_id, channel, alerts))
        return _record(rt, batch_id, ids, outcome, follow_ups)
    except Exception as exc:  # the batch boundary: record it on the batch, never raise
        _batch_failed(rt, batch_id, failure_outcome("digest", exc), follow_ups)
        return False


def _prepare(
    rt: Runtime, batch_id: str, follow_ups: list[str] | None
) -> tuple[str, list[Alert], list[str]] | bool:
    """(channel, alerts, delivery ids) to send; or, when there is nothing to send, the
    result: True (nothing was left in it) or False (not ours to send, or given up)."""
    with rt.store.session() as session:
        batch = store.get_batch(session, batch_id)
        if batch is None or batch.state != BatchState.SENDING:
            return False
        channel = batch.channel
        rows = store.batched_deliveries(session, batch_id)
        if batch.attempts > rt.settings.delivery_attempts:
            outcome = gave_up(batch.attempts, "digest")
            for d in rows:
                d.last_error = outcome.error
            _batch_outcome(rt, session, batch, outcome, rt.now(), follow_ups, rows)
            return False
        alerts, poisoned = _digest_alerts(rt, session, channel, rows)
        ids = [d.id for d in rows if d.id not in poisoned]
        batch.size = len(ids)
        now = rt.now()
        for d in rows:
            if d.id in poisoned:  # out of the batch: it fails alone and retries on its own
                d.attempts += 1
                d.batch_id = None
                record_outcome(rt, session, d, poisoned[d.id], now, follow_ups)
        if not alerts:  # every delivery was retried on its own meanwhile, or taken out
            batch.state, batch.claimed_until, batch.sent_at = BatchState.SENT, None, now
            return True
    return channel, alerts, ids


def _record(
    rt: Runtime,
    batch_id: str,
    ids: Sequence[str],
    outcome: SendOutcome,
    follow_ups: list[str] | None,
) -> bool:
    finished = rt.now()
    with rt.store.durable_session() as session:  # a sent digest stays recorded as sent
        batch = store.get_batch(session, batch_id)
        assert batch is not None
        included = store.still_batched(session, ids)
        for d in included:
            store.record_attempt(session, d.id, finished, outcome.ok, outcome.status, outcome.error)
            d.attempts += 1
        batch.claimed_until = None
        if outcome.ok:
            batch.state, batch.sent_at, batch.last_error = BatchState.SENT, finished, None
            for d in included:
                d.state, d.sent_at, d.last_error = DeliveryState.SENT, finished, None
            log.info("digest %s to %s: %d alert(s) sent", batch_id, batch.channel, len(ids))
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
    count_failure("digest", outcome)
    if outcome.permanent or batch.attempts >= rt.settings.delivery_attempts:
        batch.state = BatchState.DEAD
        for d in included:
            d.state = DeliveryState.DEAD
        log.error("digest %s to %s is dead: %s", batch.id, batch.channel, outcome.error)
        collect(follow_ups, dead_batch_notice(rt, session, batch, at))
    else:
        batch.state = BatchState.FAILED
        batch.next_attempt_at = at + retry_delay(rt, batch.attempts, outcome)
        log.warning(
            "digest %s to %s failed (attempt %d), retry at %s: %s",
            batch.id,
            batch.channel,
            batch.attempts,
            batch.next_attempt_at.isoformat(),
            outcome.error,
        )


def _batch_failed(
    rt: Runtime, batch_id: str, outcome: SendOutcome, follow_ups: list[str] | None
) -> None:
    """Record an exception that stopped a batch on its row (its claim counted the attempt)."""
    with rt.store.session() as session:
        batch = store.get_batch(session, batch_id)
        if batch is None or batch.state != BatchState.SENDING:
            return
        included = store.batched_deliveries(session, batch_id)
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
    target = channels.lookup(rt, channel)
    seen: set[tuple[str, int]] = set()
    alerts: list[Alert] = []
    poisoned: dict[str, SendOutcome] = {}
    for d in rows:
        try:
            with session.begin_nested():  # a database error here stays with this alert
                match = store.match_of(session, d)
                if match is None:
                    continue
                key = (match.watchlist, match.story_id or -match.article_id)
                if key in seen:
                    continue
                alert = load_alert(session, d)
        except Exception as exc:
            poisoned[d.id] = failure_outcome("load", exc)
            continue
        if target is not None:
            try:
                target.prepare(rt, alert_rendering(alert))
            except Exception as exc:
                poisoned[d.id] = failure_outcome("render", exc)
                continue
        seen.add(key)
        alerts.append(alert)
    return alerts, poisoned
