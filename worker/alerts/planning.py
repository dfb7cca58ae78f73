"""Planning: the delivery rows written with a match, in the rules step's transaction.

Per notified channel, the pure policy (worker/core/alert_policy.py) decides whether the
match is sent now (a `pending` delivery, whose id the caller enqueues after the
commit) or held in a digest batch (a `batched` delivery joined to the channel's batch
due at the digest time).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from worker.config import Config
from worker.config.to_alerts import resolve_policy
from worker.core.alert_policy import THROTTLE_WINDOW, route
from worker.core.model import WatchlistMatch
from worker.core.states import DeliveryKind, DeliveryRoute, DeliveryState
from worker.store import deliveries as store
from worker.store import models as m

log = logging.getLogger(__name__)


def plan_deliveries(
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
    kind = DeliveryKind.UPDATE if update_of_story else DeliveryKind.ALERT
    planned: list[m.Delivery] = []
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
            recent = store.recent_immediate(session, name, wm.watchlist, now - THROTTLE_WINDOW)
        decision = route(policy, now, recent)
        delivery = store.new_delivery(
            match_id=match_row.id,
            channel=name,
            watchlist=wm.watchlist,
            kind=kind,
            route=decision.reason,
            now=now,
        )
        if decision.due_at is not None:
            batch_id = store.join_batch(session, name, decision.due_at, now)
            if batch_id is not None:
                delivery.state, delivery.batch_id = DeliveryState.BATCHED, batch_id
            else:  # that digest already left: this one goes out on its own
                delivery.route = DeliveryRoute.IMMEDIATE
        planned.append(delivery)
    store.add_planned(session, planned)
    return [d.id for d in planned if d.state == DeliveryState.PENDING]
