"""Read models: what `newswatch status`, `why`, `rules test` and the metrics show.

Every query here only reads. Each takes the session of the caller's unit of work, so a
report is read in one transaction. The one PostgreSQL/SQLite difference (seconds
between two timestamps) is `_seconds`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from worker.core.states import (
    DeliveryKind,
    DeliveryRoute,
    DeliveryState,
    ItemOutcome,
    ItemState,
    MatchState,
    RulesState,
)
from worker.store import models as m

PENDING = "pending"  # the outcome shown for items still on their way (none recorded yet)
HEARTBEAT = "heartbeat"  # the heartbeat's watchdog_state row; the others are conditions

# the outcome an item's state already says, for rows no step wrote one on
DERIVED_OUTCOME: dict[str, ItemOutcome] = {
    ItemState.REFUSED: ItemOutcome.REFUSED,
    ItemState.FAILED: ItemOutcome.QUARANTINED,
    ItemState.DUPLICATE: ItemOutcome.DUPLICATE,
}


def outcome_of() -> Any:
    """SQL for an item's outcome, with what its state already says for rows whose
    outcome another step did not write (refused entries, rows still on their way)."""
    return case(
        (m.Item.outcome.is_not(None), m.Item.outcome),
        *((m.Item.state == state, outcome.value) for state, outcome in DERIVED_OUTCOME.items()),
        else_=PENDING,
    )


# --- counts ------------------------------------------------------------------------------


def counts(session: Session, column: Any) -> dict[str, int]:
    """Rows per value of `column` (a state column, or `outcome_of()`)."""
    return {k: v for k, v in session.execute(select(column, func.count()).group_by(column))}


STATE_COLUMNS = {
    "items": m.Item.state,
    "articles": m.Article.rules_state,
    "matches": m.Match.state,
    "deliveries": m.Delivery.state,
}


def state_counts(session: Session) -> dict[str, dict[str, int]]:
    """Items, articles, matches and deliveries by state."""
    return {name: counts(session, column) for name, column in STATE_COLUMNS.items()}


def outcome_counts(session: Session) -> dict[str, int]:
    """Items by outcome (the drop ledger), every outcome shown, zero or not."""
    zero = dict.fromkeys((*ItemOutcome, PENDING), 0)
    return {str(k): v for k, v in zero.items()} | counts(session, outcome_of())


def delivery_counts(session: Session) -> list[tuple[str, str, int]]:
    """(state, kind, count) of the deliveries."""
    D = m.Delivery
    rows = session.execute(select(D.state, D.kind, func.count()).group_by(D.state, D.kind))
    return [(state, kind, n) for state, kind, n in rows]


def source_health(session: Session) -> dict[str, int]:
    """Sources enabled, disabled (by config, or by newswatch after permanent errors),
    and failing (enabled, with failures in a row)."""
    rows = session.execute(
        select(m.Source.enabled, m.Source.disabled_reason, m.Source.consecutive_failures)
    ).all()
    out = {"enabled": 0, "disabled": 0, "auto_disabled": 0, "failing": 0}
    for enabled, reason, failures in rows:
        out["enabled" if enabled else "auto_disabled" if reason else "disabled"] += 1
        out["failing"] += bool(enabled and failures)
    return out


def gap_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(m.SourceGap)) or 0


# --- the publish-to-alert lag --------------------------------------------------------------


def _seconds(session: Session, later: Any, earlier: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _alert_lags(session: Session) -> Any:
    """Per immediate alert sent: seconds from publication (or first sight, when the date
    is missing or in the future) and from first sight to the send."""
    A, D = m.Article, m.Delivery
    published = case(
        ((A.published_at.is_(None)) | (A.published_at > A.created_at), A.created_at),
        else_=A.published_at,
    )
    return (
        select(
            _seconds(session, D.sent_at, published).label("publish"),
            _seconds(session, D.sent_at, A.created_at).label("seen"),
        )
        .join(m.Match, m.Match.id == D.match_id)
        .join(A, A.id == m.Match.article_id)
        .where(
            D.state == DeliveryState.SENT,
            D.kind == DeliveryKind.ALERT,
            D.route == DeliveryRoute.IMMEDIATE,
            D.sent_at.is_not(None),
        )
        .subquery()
    )


def lag_buckets(
    session: Session, bounds: Sequence[float]
) -> dict[str, tuple[int, float, list[int]]]:
    """For `publish` and `seen`: (count, sum of seconds, count at or below each finite
    bound), over every immediate alert ever sent, counted by the database."""
    lags = _alert_lags(session)
    out = {}
    for name in ("publish", "seen"):
        col = lags.c[name]
        row = session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(col), literal_column("0")),
                *(func.coalesce(func.sum(case((col <= b, 1), else_=0)), 0) for b in bounds),
            ).select_from(lags)
        ).one()
        total, total_sum, *below = row
        out[name] = (int(total), float(total_sum or 0), [int(n) for n in below])
    return out


# --- waiting work and the watchdog's rows ----------------------------------------------------


def _earliest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def oldest_waiting(session: Session, now: datetime) -> dict[str, datetime | None]:
    """Since when the oldest work of each kind has waited. Not by `enqueued_at`, which the
    sweep refreshes on every re-enqueue: an item waits from when it was stored; an article
    from when its newest version's item was stored; a delivery from when it was made
    (pending) or when its retry fell due (failed). Digest-held deliveries wait by design."""
    I, A, D = m.Item, m.Article, m.Delivery  # noqa: E741
    newest_version = (
        select(func.max(I.created_at)).where(I.article_id == A.id).correlate(A).scalar_subquery()
    )
    return {
        "item": session.scalar(select(func.min(I.created_at)).where(I.state == ItemState.PENDING)),
        "article": session.scalar(
            select(func.min(func.coalesce(newest_version, A.created_at))).where(
                A.rules_state == RulesState.PENDING
            )
        ),
        "delivery": _earliest(
            session.scalar(select(func.min(D.created_at)).where(D.state == DeliveryState.PENDING)),
            session.scalar(
                select(func.min(D.next_attempt_at)).where(
                    D.state == DeliveryState.FAILED, D.next_attempt_at <= now
                )
            ),
        ),
    }


def watchdog_rows(session: Session) -> tuple[list[m.WatchdogState], m.WatchdogState | None]:
    """The conditions' rows (by name) and the heartbeat's row (None before a first ping)."""
    rows = {r.name: r for r in session.scalars(select(m.WatchdogState))}
    heartbeat = rows.pop(HEARTBEAT, None)
    return [rows[name] for name in sorted(rows)], heartbeat


def recent_gaps(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The newest feed gaps first."""
    G = m.SourceGap
    query = (
        select(G, m.Source.name)
        .join(m.Source, m.Source.id == G.source_id)
        .order_by(G.detected_at.desc(), G.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": g.id,
            "source": name,
            "detected_at": g.detected_at,
            "basis": g.basis,
            "visible": g.visible,
            "last_seen_at": g.last_seen_at,
            "oldest_visible_at": g.oldest_visible_at,
            "previous_poll_at": g.previous_poll_at,
            "detail": g.detail,
            "notified_at": g.notified_at,
        }
        for g, name in session.execute(query).all()
    ]


SOURCE_FIELDS = (
    "name",
    "kind",
    "url",
    "enabled",
    "last_fetch_at",
    "last_success_at",
    "last_error",
    "last_error_kind",
    "consecutive_failures",
    "items_seen",
    "next_fetch_at",
    "disabled_reason",
)


def sources(session: Session) -> list[dict[str, Any]]:
    """Every source's schedule and health, by name."""
    rows = session.scalars(select(m.Source).order_by(m.Source.name))
    return [{f: getattr(s, f) for f in SOURCE_FIELDS} for s in rows]


# --- newswatch why -------------------------------------------------------------------------

MAX_ITEMS_SHOWN = 20
Evidence = Callable[[Session, m.Article], dict[str, Any] | None]


def item_ids_for(session: Session, urls: set[str], limit: int = MAX_ITEMS_SHOWN) -> list[int]:
    """Items whose URL or entry key is one of `urls`, or parsed into an article at one."""
    I = m.Item  # noqa: E741
    # item.url and entry_key are not indexed (a long URL would not fit a B-tree entry):
    # this scans the items, which is fine for one question by a person
    in_article = I.article_id.in_(select(m.Article.id).where(m.Article.canonical_url.in_(urls)))
    query = select(I.id).where(or_(I.url.in_(urls), I.entry_key.in_(urls), in_article))
    return list(session.scalars(query.order_by(I.id).limit(limit)))


def _derived_detail(item: m.Item) -> str | None:
    if item.state in (ItemState.REFUSED, ItemState.FAILED):
        return item.error
    if item.state == ItemState.PENDING:
        return f"waiting to be parsed (attempt {item.attempts} so far)"
    if item.state == ItemState.PARSED:
        return "parsed; waiting for the watchlist rules"
    return None


def item_story(session: Session, item_id: int, evidence: Evidence) -> dict[str, Any] | None:
    """One item: source, states and outcome, article, story (with `evidence` for a near
    duplicate), matches per watchlist and deliveries per channel."""
    item = session.get(m.Item, item_id)
    if item is None:
        return None
    src = session.get(m.Source, item.source_id)
    out: dict[str, Any] = {
        "id": item.id,
        "source": src.name if src else None,
        "source_url": src.url if src else None,
        "entry_key": item.entry_key,
        "url": item.url,
        "state": item.state,
        "attempts": item.attempts,
        "error": item.error,
        "error_kind": item.error_kind,
        "outcome": item.outcome or str(DERIVED_OUTCOME.get(item.state, PENDING)),
        "outcome_detail": item.outcome_detail or _derived_detail(item),
        "created_at": item.created_at,
        "retry_after": item.claimed_until if item.state == ItemState.PENDING else None,
        "article": None,
        "story": None,
        "matches": [],
    }
    article = session.get(m.Article, item.article_id) if item.article_id else None
    if article is None:
        return out
    out["article"] = _article(session, article, item)
    out["story"] = _story(session, article, evidence)
    rows = session.scalars(
        select(m.Match).where(m.Match.article_id == article.id).order_by(m.Match.watchlist)
    )
    out["matches"] = [_match(session, row) for row in rows]
    return out


def _article(session: Session, article: m.Article, item: m.Item) -> dict[str, Any]:
    return {
        "id": article.id,
        "canonical_url": article.canonical_url,
        "title": article.title,
        "source": session.scalar(select(m.Source.name).where(m.Source.id == article.source_id)),
        "published_at": article.published_at,
        "rules_state": article.rules_state,
        "attempts": article.attempts,
        "error": article.error,
        "error_kind": article.error_kind,
        "created_at": article.created_at,
        # the day retention cleared its text (stamped on the item's seen record)
        "text_pruned": (item.data or {}).get("text_pruned"),
        # a duplicate item shows the article it is a copy of
        "role": "copy of" if item.state == ItemState.DUPLICATE else "parsed into",
    }


def _story(session: Session, article: m.Article, evidence: Evidence) -> dict[str, Any]:
    story_id = article.story_id or article.id
    members = session.execute(
        select(m.Article.id, m.Article.canonical_url)
        .where(m.Article.story_id == story_id)
        .order_by(m.Article.id)
        .limit(MAX_ITEMS_SHOWN)
    ).all()
    return {
        "id": story_id,
        "first_article": story_id,
        "articles": [{"id": i, "url": u} for i, u in members],
        "near_duplicate": evidence(session, article) if story_id != article.id else None,
    }


DELIVERY_FIELDS = (
    "id",
    "channel",
    "kind",
    "route",
    "state",
    "attempts",
    "last_error",
    "sent_at",
    "batch_id",
)


def _match(session: Session, row: m.Match) -> dict[str, Any]:
    out: dict[str, Any] = {
        "watchlist": row.watchlist,
        "state": row.state,
        "names": row.names,
        "snippet": row.snippet,
        "config_version": row.config_version,
        "created_at": row.created_at,
        "first_alert": None,
        "deliveries": [],
    }
    if row.state == MatchState.DUPLICATE:  # the evidence: which match of the story alerted
        first = session.execute(
            select(m.Match.id, m.Match.article_id)
            .join(m.StoryAlert, m.StoryAlert.match_id == m.Match.id)
            .where(
                m.StoryAlert.watchlist == row.watchlist,
                m.StoryAlert.story_id == (row.story_id or row.article_id),
            )
        ).first()
        if first is not None:
            out["first_alert"] = {"match_id": first[0], "article_id": first[1]}
    deliveries = session.scalars(
        select(m.Delivery).where(m.Delivery.match_id == row.id).order_by(m.Delivery.channel)
    )
    out["deliveries"] = [{f: getattr(d, f) for f in DELIVERY_FIELDS} for d in deliveries]
    return out


# --- rules test (the dry run) ----------------------------------------------------------------


def articles_since(
    session: Session, since: datetime, after_id: int, limit: int
) -> tuple[list[tuple[m.Article, str]], dict[int, list[str]]]:
    """Up to `limit` articles created at or after `since` with an id above `after_id`, by
    id, with their source's name; and per article the watchlists of its match rows."""
    rows = session.execute(
        select(m.Article, m.Source.name)
        .join(m.Source, m.Source.id == m.Article.source_id)
        .where(m.Article.created_at >= since, m.Article.id > after_id)
        .order_by(m.Article.id)
        .limit(limit)
    ).all()
    did: dict[int, list[str]] = defaultdict(list)
    if rows:
        ids = [row.id for row, _ in rows]
        for article_id, watchlist in session.execute(
            select(m.Match.article_id, m.Match.watchlist)
            .where(m.Match.article_id.in_(ids))
            .order_by(m.Match.id)
        ):
            did[article_id].append(watchlist)
    return [(row, name) for row, name in rows], did


def alerts_before(
    session: Session, stories: set[int], since: datetime
) -> dict[tuple[str, int], int]:
    """Per (watchlist, story) among `stories`, the article whose match claimed the story
    (its alert) when that article was stored before `since`: a copy inside a replay window
    of a story that alerted before it is a duplicate, not a new alert."""
    if not stories:
        return {}
    SA, M, A = m.StoryAlert, m.Match, m.Article
    rows = session.execute(
        select(SA.watchlist, SA.story_id, M.article_id)
        .join(M, M.id == SA.match_id)
        .join(A, A.id == M.article_id)
        .where(SA.story_id.in_(stories), A.created_at < since)
    )
    return {(w, story): article for w, story, article in rows}


def source_state(s: dict[str, Any], configured: dict[str, bool] | None) -> tuple[str, str]:
    """(state, what a person reads) of one source row: ok, error, disabled_after_errors
    (by newswatch, with its reason), removed_from_config, disabled_in_config.
    `configured`: name -> enabled of the sources the config lists (None: unknown). One
    copy for `newswatch status` and the dashboard's Sources page."""
    if s["disabled_reason"]:
        return "disabled_after_errors", f"DISABLED after errors: {s['disabled_reason']}"
    if not s["enabled"]:
        if configured is None:
            return "disabled", "disabled (by the config, or removed from it)"
        if s["name"] not in configured:
            return "removed_from_config", "disabled: removed from config"
        return "disabled_in_config", "disabled in config (enabled: false)"
    if s["last_error"]:
        return "error", f"ERROR ({s['last_error_kind']}): {s['last_error']}"
    return "ok", "ok"
