"""Sending one delivery: claim it, load and render it, send it through its channel,
record the attempt (sent, failed and retried later, or dead with a notice).

The claim commits before the send, so an attempt counts however it ends; a killed
worker leaves an expired lease that the sweep takes back. The claim and the outcome
are durable commits (Store.durable_session), the worker's others need not be.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from worker.alerts import channels
from worker.alerts.notices import dead_delivery_notice, notice_of
from worker.alerts.outcome import SendOutcome, failure_outcome, gave_up
from worker.alerts.render import Alert
from worker.alerts.rendering import Rendering, alert_rendering, notice_rendering
from worker.core.backoff import backoff as _backoff
from worker.core.model import Hit, WatchlistMatch
from worker.core.states import DeliveryKind, DeliveryState
from worker.store import deliveries as store
from worker.store import models as m
from worker.store.items import article_from_row
from worker.tracking import metrics
from worker.tracking.notices import collect

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)


def deliver(rt: Runtime, delivery_id: str, follow_ups: list[str] | None = None) -> bool:
    """Send one pending delivery if it is due and unclaimed; record the attempt.

    True when sent. Whatever goes wrong while loading, rendering or sending (any
    exception type) is recorded on this delivery's row and in an attempt row, and
    after the attempt limit the delivery is dead with a notice. Notices raised on
    the way are added to `follow_ups` for the caller to enqueue.
    """
    now = rt.now()
    # the claim and the outcome wait for the database's flush: what the send rests on is
    # durable before it leaves, and a sent alert stays recorded as sent
    with rt.store.durable_session() as session:
        attempts = store.claim_delivery(session, delivery_id, now, rt.settings.lease_seconds)
    if attempts is None:
        return False
    if attempts > rt.settings.delivery_attempts:
        outcome = gave_up(attempts, "deliver")
    else:
        try:
            outcome = _attempt(rt, delivery_id)
        except Exception as exc:  # the delivery boundary: nothing escapes one delivery
            outcome = failure_outcome("deliver", exc)
    finished = rt.now()
    with rt.store.durable_session() as session:
        d = store.get_delivery(session, delivery_id)
        record_outcome(rt, session, d, outcome, finished, follow_ups)
    return outcome.ok


def _attempt(rt: Runtime, delivery_id: str) -> SendOutcome:
    """Load and send one claimed delivery; a failure comes back as an outcome."""
    try:
        with rt.store.session() as session:
            d = store.get_delivery(session, delivery_id)
            channel_name = d.channel
            if d.kind == DeliveryKind.NOTICE:
                rendering = notice_rendering(notice_of(d))
            else:
                update = d.kind == DeliveryKind.UPDATE
                rendering = alert_rendering(load_alert(session, d), update=update)
    except Exception as exc:  # a row that cannot be read back as an alert (corrupt, missing)
        return failure_outcome("load", exc)
    return send(rt, channel_name, rendering)


def load_alert(session: Session, d: m.Delivery) -> Alert:
    rows = store.alert_rows(session, d)
    match = rows.match
    wm = WatchlistMatch(
        watchlist=match.watchlist,
        hits=tuple(Hit(**h) for h in match.hits or ()),
        snippet=match.snippet or "",
        highlights=tuple(tuple(h) for h in match.highlights or ()),
        names=tuple(match.names or ()),
    )
    article = article_from_row(rows.article, rows.source_name)
    return Alert(d.id, match.watchlist, article, wm, rows.siblings)


def send(rt: Runtime, channel_name: str, rendering: Rendering) -> SendOutcome:
    """Send through the channel unless its webhook URL was switched off by a 410; switch
    it off on one."""
    channel = channels.lookup(rt, channel_name)
    if channel is None:
        return channels.not_configured(channel_name)
    url = channel.endpoint
    if url is not None:
        with rt.store.session() as session:
            off = store.disabled_endpoint(session, url)
            if off is not None:
                return SendOutcome(
                    False,
                    error=f"endpoint disabled since {off.disabled_at:%Y-%m-%d %H:%M} UTC "
                    f"({off.reason}); change the URL or run `newswatch endpoints enable "
                    f"{channel_name}`",
                    permanent=True,
                )
    outcome = channel.send(rt, rendering)
    if outcome.disable and url is not None:
        with rt.store.session() as session:
            reason = outcome.error or "410 Gone"
            store.disable_endpoint(session, url, channel_name, reason, rt.now())
        log.error("channel %s: webhook endpoint disabled (410 Gone)", channel_name)
    return outcome


def record_outcome(
    rt: Runtime,
    session: Session,
    d: m.Delivery,
    outcome: SendOutcome,
    at: datetime,
    follow_ups: list[str] | None,
) -> None:
    """Write one attempt's outcome on the delivery: sent, failed (retry later) or dead."""
    store.record_attempt(session, d.id, at, outcome.ok, outcome.status, outcome.error)
    d.claimed_until = None
    if outcome.ok:
        d.state, d.sent_at, d.last_error = DeliveryState.SENT, at, None
        return
    d.last_error = outcome.error
    count_failure("delivery", outcome)
    if outcome.permanent or d.attempts >= rt.settings.delivery_attempts:
        d.state = DeliveryState.DEAD
        log.error("delivery %s to %s is dead: %s", d.id, d.channel, outcome.error)
        if d.kind != DeliveryKind.NOTICE:  # a dead notice about a dead notice would never end
            collect(follow_ups, dead_delivery_notice(rt, session, d, at, outcome.stage))
    else:
        d.state = DeliveryState.FAILED
        d.next_attempt_at = at + retry_delay(rt, d.attempts, outcome)
        log.warning(
            "delivery %s to %s failed (attempt %d), retry at %s: %s",
            d.id,
            d.channel,
            d.attempts,
            d.next_attempt_at.isoformat(),
            outcome.error,
        )


def count_failure(unit: str, outcome: SendOutcome) -> None:
    kind = outcome.error_class or (f"http_{outcome.status}" if outcome.status else "refused")
    metrics.count_unit_failure(unit, outcome.stage or "send", kind)


def retry_delay(rt: Runtime, attempts: int, outcome: SendOutcome) -> timedelta:
    delay = _backoff(rt.settings.retry_base_seconds, attempts)
    if outcome.retry_after:
        delay = max(delay, timedelta(seconds=outcome.retry_after))
    return delay
