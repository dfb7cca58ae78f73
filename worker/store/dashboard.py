"""Read models of the web dashboard (worker/web/): every query its pages run.

Each function only reads, takes the session of the page's one transaction, and returns
plain rows (dataclasses), so the web layer holds no SQL. Bounded by a `limit` where a
table grows with history; each walks an index (named at the function).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from worker.core.states import DeliveryKind, DeliveryState, MatchState
from worker.store import models as m

CONFIG_REJECTED = "config_rejected:"  # notice_key prefix (worker/alerts/notices.py)


@dataclass(frozen=True)
class ChannelState:
    channel: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class AlertRow:
    match_id: int
    watchlist: str
    state: str  # alerted | duplicate
    created_at: datetime
    title: str
    url: str
    published_at: datetime | None
    source: str
    snippet: str
    highlights: list[tuple[int, int]]
    article_id: int
    story_id: int | None
    deliveries: list[ChannelState] = field(default_factory=list)


def alerts(
    session: Session,
    *,
    watchlist: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AlertRow]:
    """The latest matches, newest first (ix_match_created_at; ix_match_watchlist_created
    when filtered by watchlist; ix_article_source_id for a quiet source), each with its
    deliveries per channel (uq_delivery_match_id_channel)."""
    M, A, S = m.Match, m.Article, m.Source
    q = (
        select(M, A.title, A.canonical_url, A.published_at, S.name)
        .join(A, A.id == M.article_id)
        .join(S, S.id == A.source_id)
        .order_by(M.created_at.desc(), M.id.desc())
        .limit(limit)
    )
    if watchlist:
        q = q.where(M.watchlist == watchlist)
    if source:
        # by the source's id, not its name: the planner then knows from the statistics of
        # article.source_id whether the source is busy (walk the newest matches) or quiet
        # (its articles by ix_article_source_id, then their matches)
        source_id = session.scalar(select(S.id).where(S.name == source))
        if source_id is None:
            return []
        q = q.where(A.source_id == source_id)
    if since is not None:
        q = q.where(M.created_at >= since)
    rows = [
        AlertRow(
            match_id=match.id,
            watchlist=match.watchlist,
            state=match.state,
            created_at=match.created_at,
            title=title,
            url=url,
            published_at=published,
            source=source_name,
            snippet=match.snippet or "",
            highlights=[(int(a), int(b)) for a, b in match.highlights or ()],
            article_id=match.article_id,
            story_id=match.story_id,
        )
        for match, title, url, published, source_name in session.execute(q)
    ]
    by_match = _channel_states(session, [r.match_id for r in rows])
    for row in rows:
        row.deliveries.extend(by_match.get(row.match_id, ()))
    return rows


def _channel_states(session: Session, match_ids: list[int]) -> dict[int, list[ChannelState]]:
    if not match_ids:
        return {}
    D = m.Delivery
    q = (
        select(D.match_id, D.channel, D.state, D.attempts, D.next_attempt_at, D.last_error)
        .where(D.match_id.in_(match_ids))
        .order_by(D.match_id, D.channel)
    )
    out: dict[int, list[ChannelState]] = defaultdict(list)
    for match_id, channel, state, attempts, next_at, error in session.execute(q):
        assert match_id is not None  # in_(match_ids): the notices' rows have none
        waiting = state in (DeliveryState.PENDING, DeliveryState.FAILED)
        out[match_id].append(
            ChannelState(channel, state, attempts, next_at if waiting else None, error)
        )
    return out


def watchlist_names(session: Session) -> list[str]:
    """Every watchlist that has matched (the alerts filter's choices): a skip scan of
    ix_match_watchlist_created, one probe per watchlist (the next name after the last),
    rather than a DISTINCT over every match ever made."""
    M = m.Match
    names = select(func.min(M.watchlist).label("name")).cte("names", recursive=True)
    after = select(func.min(M.watchlist)).where(M.watchlist > names.c.name).scalar_subquery()
    names = names.union_all(select(after).where(names.c.name.is_not(None)))
    return list(session.scalars(select(names.c.name).where(names.c.name.is_not(None))))


def source_names(session: Session) -> list[str]:
    return list(session.scalars(select(m.Source.name).order_by(m.Source.name)))


@dataclass(frozen=True)
class SourceRow:
    id: int
    name: str
    kind: str
    url: str
    every_seconds: int
    enabled: bool
    disabled_reason: str | None
    last_fetch_at: datetime | None
    last_success_at: datetime | None
    next_fetch_at: datetime | None
    last_error: str | None
    last_error_kind: str | None
    consecutive_failures: int
    items_seen: int


def sources(session: Session) -> list[SourceRow]:
    """Every source with its health (one row per configured source: a small table); its
    gap records and items per day: worker/store/panels.py."""
    S = m.Source
    return [
        SourceRow(
            id=s.id,
            name=s.name,
            kind=s.kind,
            url=s.url,
            every_seconds=s.every_seconds,
            enabled=s.enabled,
            disabled_reason=s.disabled_reason,
            last_fetch_at=s.last_fetch_at,
            last_success_at=s.last_success_at,
            next_fetch_at=s.next_fetch_at if s.enabled else None,
            last_error=s.last_error,
            last_error_kind=s.last_error_kind,
            consecutive_failures=s.consecutive_failures or 0,
            items_seen=s.items_seen or 0,
        )
        for s in session.scalars(select(S).order_by(S.name))
    ]


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    channel: str
    state: str
    kind: str
    watchlist: str | None
    what: str  # the article's title, or the notice's
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_error: str | None


WAITING = (DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.DEAD)


def deliveries(session: Session, *, limit: int = 200) -> dict[str, list[DeliveryRow]]:
    """Pending, failed (with the next attempt) and dead (with the reason), newest first,
    per state (ix_delivery_state_next)."""
    return {str(state): _deliveries_in(session, state, limit) for state in WAITING}


def _deliveries_in(session: Session, state: DeliveryState, limit: int) -> list[DeliveryRow]:
    D, M, A = m.Delivery, m.Match, m.Article
    q = (
        select(D, A.title)
        .outerjoin(M, M.id == D.match_id)
        .outerjoin(A, A.id == M.article_id)
        .where(D.state == state)
        .order_by(D.next_attempt_at.desc(), D.id)
        .limit(limit)
    )
    out = []
    for d, title in session.execute(q):
        what = title if title is not None else (d.notice or {}).get("title", "")
        out.append(
            DeliveryRow(
                id=d.id,
                channel=d.channel,
                state=d.state,
                kind=d.kind,
                watchlist=d.watchlist,
                what=what or "",
                attempts=d.attempts,
                created_at=d.created_at,
                next_attempt_at=d.next_attempt_at if state != DeliveryState.DEAD else None,
                last_error=d.last_error,
            )
        )
    return out


@dataclass(frozen=True)
class ConfigSeen:
    version: str
    first_match_at: datetime
    last_match_at: datetime
    matches: int


@dataclass(frozen=True)
class RejectedEdit:
    at: datetime
    title: str
    text: str


def config_versions(session: Session, since: datetime, *, limit: int = 5) -> list[ConfigSeen]:
    """The config versions the matches since `since` were made under, latest first
    (ix_match_created_at: bounded by time, not a walk of every match ever made)."""
    M = m.Match
    q = (
        select(M.config_version, func.min(M.created_at), func.max(M.created_at), func.count())
        .where(M.created_at >= since)
        .group_by(M.config_version)
        .order_by(func.max(M.created_at).desc())
        .limit(limit)
    )
    return [ConfigSeen(v, first, last, n) for v, first, last, n in session.execute(q)]


def last_rejected_edit(session: Session) -> RejectedEdit | None:
    """The newest "config rejected" notice (one row per channel: the first is enough)."""
    D = m.Delivery
    q = (
        select(D.created_at, D.notice)
        .where(D.kind == DeliveryKind.NOTICE, D.notice_key.startswith(CONFIG_REJECTED))
        .order_by(D.created_at.desc())
        .limit(1)
    )
    row = session.execute(q).first()
    if row is None:
        return None
    at, notice = row
    notice = notice or {}
    return RejectedEdit(at, notice.get("title", ""), notice.get("text", ""))


def mentions_per_day(session: Session, watchlist: str, since: datetime) -> list[tuple[str, int]]:
    """(YYYY-MM-DD, matches) per day of one watchlist since `since`
    (ix_match_watchlist_created)."""
    M = m.Match
    day = func.date(M.created_at)
    q = (
        select(day, func.count())
        .where(M.watchlist == watchlist, M.created_at >= since)
        .group_by(day)
        .order_by(day)
    )
    return [(str(d), n) for d, n in session.execute(q)]


@dataclass(frozen=True)
class WatchlistSeen:
    name: str
    matches: int
    alerted: int
    last_match_at: datetime


def watchlists_since(session: Session, since: datetime) -> list[WatchlistSeen]:
    """Each watchlist that matched since `since`: matches, of which alerted (the rest
    were further copies of a story), and its latest (ix_match_created_at)."""
    M = m.Match
    alerted = func.sum(case((M.state == MatchState.ALERTED, 1), else_=0))
    q = (
        select(M.watchlist, func.count(), alerted, func.max(M.created_at))
        .where(M.created_at >= since)
        .group_by(M.watchlist)
        .order_by(M.watchlist)
    )
    return [WatchlistSeen(w, n, int(a or 0), last) for w, n, a, last in session.execute(q)]
