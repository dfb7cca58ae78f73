"""Read models of the dashboard's detail panels: a story's other sources, what a
watchlist's matches share with other watchlists, the latest stored articles (for near
misses), and per source its gap records and items per day.

Like worker/store/dashboard.py: only reads, takes the page's session, returns plain rows,
and each query is bounded by a limit or a time window on an index (named at the
function).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from worker.core.model import Article
from worker.store import models as m
from worker.store.items import article_from_row

COPIES_PER_STORY = 6  # articles read per story: the page shows the other sources of a few


@dataclass(frozen=True)
class Copy:
    """Another article of the same story: its source, title and link."""

    story: int
    article_id: int
    source: str
    title: str
    url: str
    created_at: datetime


def story_copies(session: Session, stories: Iterable[int]) -> dict[int, list[Copy]]:
    """Up to COPIES_PER_STORY articles of each story (a story's key is its first
    article's id: that article, and those whose story_id names it), oldest first
    (ix_article_story_id and the primary key; the row_number bounds a big story)."""
    keys = sorted(set(stories))
    if not keys:
        return {}
    A, S = m.Article, m.Source
    story = func.coalesce(A.story_id, A.id).label("story")
    ranked = (
        select(
            story,
            A.id,
            S.name,
            A.title,
            A.canonical_url,
            A.created_at,
            func.row_number().over(partition_by=story, order_by=A.id).label("n"),
        )
        .join(S, S.id == A.source_id)
        .where(or_(A.story_id.in_(keys), A.id.in_(keys)))
        .subquery()
    )
    q = select(ranked).where(ranked.c.n <= COPIES_PER_STORY).order_by(ranked.c.story, ranked.c.id)
    out: dict[int, list[Copy]] = defaultdict(list)
    for key, article_id, source, title, url, created, _n in session.execute(q):
        out[key].append(Copy(key, article_id, source, title, url, created))
    return out


@dataclass(frozen=True)
class Together:
    """What a watchlist's latest matches share with the other watchlists' matches."""

    considered: int  # the watchlist's matches looked at (its latest, at most `limit`)
    watchlists: list[tuple[str, int]]  # other watchlists matching the same articles
    names: list[tuple[str, int]]  # the names those other matches found, most frequent first


def matched_together(session: Session, watchlist: str, *, limit: int = 500) -> Together:
    """Over the watchlist's latest `limit` matches (ix_match_watchlist_created): the
    other watchlists that matched the same articles, and the names they found
    (ix_match_article_id), most frequent first, ten of each."""
    M = m.Match
    latest = (
        select(M.article_id)
        .where(M.watchlist == watchlist)
        .order_by(M.created_at.desc())
        .limit(limit)
        .subquery()
    )
    considered = session.scalar(select(func.count()).select_from(latest)) or 0
    others = select(M.watchlist, M.names).where(
        M.article_id.in_(select(latest.c.article_id)), M.watchlist != watchlist
    )
    lists: Counter[str] = Counter()
    names: Counter[str] = Counter()
    for other, found in session.execute(others):
        lists[other] += 1
        names.update({str(n) for n in found or ()})  # once per match, not per mention
    return Together(considered, lists.most_common(10), names.most_common(10))


@dataclass(frozen=True)
class Recent:
    article_id: int
    created_at: datetime
    article: Article


def latest_articles(session: Session, *, limit: int) -> list[Recent]:
    """The newest `limit` stored articles whose text is kept (ix_article_created_at), as
    the matcher reads them."""
    A, S = m.Article, m.Source
    q = (
        select(A, S.name)
        .join(S, S.id == A.source_id)
        .where(A.body != "")
        .order_by(A.created_at.desc(), A.id.desc())
        .limit(limit)
    )
    return [
        Recent(row.id, row.created_at, article_from_row(row, name))
        for row, name in session.execute(q)
    ]


@dataclass(frozen=True)
class Gaps:
    """A source's gap records: how many, and when the newest was found."""

    count: int
    newest_at: datetime


def gaps_by_source(session: Session) -> dict[int, Gaps]:
    """source id -> its gap records (ix_source_gap_source_detected, from the index
    alone); what each gap was is in `status.recent_gaps`, newest first."""
    G = m.SourceGap
    q = select(G.source_id, func.count(), func.max(G.detected_at)).group_by(G.source_id)
    return {source_id: Gaps(n, newest) for source_id, n, newest in session.execute(q)}


def items_per_day(session: Session, since: datetime) -> dict[int, dict[str, int]]:
    """source id -> {YYYY-MM-DD: entries first seen that day} since `since`
    (ix_item_created_source: read from the index alone)."""
    I = m.Item  # noqa: E741
    day = func.date(I.created_at)
    q = (
        select(I.source_id, day, func.count())
        .where(I.created_at >= since)
        .group_by(I.source_id, day)
    )
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for source_id, d, n in session.execute(q):
        out[source_id][str(d)] = n
    return out
