"""The sweep: recover the work whose message was lost.

Every step writes its state before the next step's message is sent, so a lost message
leaves its row pending: the sweep finds such rows (pending, unclaimed, not enqueued
recently) and the deliveries whose retry is due, and hands their ids back to enqueue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from worker.bootstrap import Runtime
from worker.store import items, matches
from worker.store import models as m
from worker.store.db import mark_enqueued

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    items: list[int] = field(default_factory=list)
    articles: list[int] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items or self.articles or self.deliveries)


def sweep(rt: Runtime, limit: int = 5000) -> SweepResult:
    """Find rows whose message was lost and deliveries whose retry is due; mark them
    enqueued now and return their ids."""
    now = rt.now()
    stale = now - timedelta(seconds=rt.settings.requeue_after_seconds)
    with rt.store.session() as session:
        out = SweepResult(
            items=items.stale_items(session, stale, now, limit),
            articles=items.stale_articles(session, stale, now, limit),
            deliveries=matches.due_deliveries(session, stale, now, limit),
        )
        mark_enqueued(session, m.Item, out.items, now)
        mark_enqueued(session, m.Article, out.articles, now)
        mark_enqueued(session, m.Delivery, out.deliveries, now)
    if out:
        log.info(
            "sweep: re-enqueued %d item(s), %d article(s), %d delivery(ies)",
            len(out.items),
            len(out.articles),
            len(out.deliveries),
        )
    return out
