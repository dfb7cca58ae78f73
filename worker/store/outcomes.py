"""The drop ledger's rows: what the rules step reads and writes to record an item's
outcome (worker/tracking/ledger.py decides which one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from worker.core.states import ItemState
from worker.store import models as m

MAX_DETAIL = 2000


def match_states(session: Session, article_id: int, watchlists: Sequence[str]) -> list[Any]:
    """(watchlist, state) of the article's match rows for `watchlists`, by watchlist."""
    if not watchlists:
        return []
    M = m.Match  # by (watchlist, article_id): the unique constraint's index
    return list(
        session.execute(
            select(M.watchlist, M.state)
            .where(M.watchlist.in_(watchlists), M.article_id == article_id)
            .order_by(M.watchlist)
        ).all()
    )


def first_alerts(session: Session, story_id: int, watchlists: Sequence[str]) -> list[Any]:
    """(watchlist, article id, match id) of the match that alerted the story first, for
    each of `watchlists` it alerted."""
    SA, M = m.StoryAlert, m.Match
    return list(
        session.execute(
            select(SA.watchlist, M.article_id, M.id)
            .join(M, M.id == SA.match_id)
            .where(SA.story_id == story_id, SA.watchlist.in_(watchlists))
        ).all()
    )


_ITEM = cast("Table", m.Item.__table__)
# built once: the rules step writes it for every article (outcome columns bound at execution)
_SET_OUTCOME = update(_ITEM).where(
    _ITEM.c.article_id == bindparam("b_article_id"), _ITEM.c.state == ItemState.PARSED
)


def set_article_outcome(session: Session, article_id: int, outcome: str, detail: str) -> None:
    """The article's outcome on the items parsed into it (its duplicates keep theirs)."""
    params = {"b_article_id": article_id, "outcome": outcome, "outcome_detail": detail[:MAX_DETAIL]}
    session.execute(_SET_OUTCOME, params)


def article_identity(session: Session, article_id: int | None) -> tuple[str, str] | None:
    """(canonical URL, content hash) of an article; None if there is none."""
    A = m.Article
    row = session.execute(
        select(A.canonical_url, A.content_hash).where(A.id == article_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def source_name(session: Session, source_id: int) -> str | None:
    return session.scalar(select(m.Source.name).where(m.Source.id == source_id))
