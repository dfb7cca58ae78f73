"""Matches and the claim each story's first match takes; the deliveries the sweep retries.

Both inserts lean on a unique constraint, so a redelivered rules task writes nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from worker.core.model import WatchlistMatch
from worker.core.states import DeliveryState, MatchState
from worker.store import models as m
from worker.store.db import add_unless_duplicate, unclaimed


def insert_match(
    session: Session, article: m.Article, wm: WatchlistMatch, version: str, now: datetime
) -> m.Match | None:
    """The match of one watchlist on one article; None when that pair is stored already."""
    row = m.Match(
        watchlist=wm.watchlist,
        article_id=article.id,
        story_id=article.story_id,
        config_version=version,
        hits=[h.to_json() for h in wm.hits],
        names=list(wm.names),
        snippet=wm.snippet,
        highlights=[list(h) for h in wm.highlights],
        state=MatchState.ALERTED,
        created_at=now,
    )
    return add_unless_duplicate(session, row)


def claim_story(session: Session, watchlist: str, story_id: int, match_id: int) -> bool:
    """Claim the (watchlist, story) pair for this match; False when another match has it."""
    row = m.StoryAlert(watchlist=watchlist, story_id=story_id, match_id=match_id)
    return add_unless_duplicate(session, row) is not None


def due_deliveries(session: Session, stale: datetime, now: datetime, limit: int) -> list[str]:
    """Deliveries nobody holds that are pending with a message older than `stale` (maybe
    lost) or failed with a retry due that was not enqueued yet."""
    return list(
        session.scalars(
            select(m.Delivery.id)
            .where(
                unclaimed(m.Delivery, now),
                or_(
                    and_(
                        m.Delivery.state == DeliveryState.PENDING,
                        m.Delivery.enqueued_at < stale,
                    ),
                    and_(
                        m.Delivery.state == DeliveryState.FAILED,
                        m.Delivery.next_attempt_at <= now,
                        m.Delivery.enqueued_at < m.Delivery.next_attempt_at,
                    ),
                ),
            )
            .limit(limit)
        )
    )
