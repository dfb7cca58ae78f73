"""Read-only views for the CLI: one input through parse + rules, the status report, and
what became of one item (`newswatch why`)."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select

from worker.articles.extract import ExtractionError, extract_page
from worker.articles.normalize import build_article, entry_data
from worker.config.reload import ActiveConfig
from worker.core.model import Article, MatchDocument
from worker.service import ledger
from worker.sources.feeds import FeedError, parse_feed
from worker.store import models as m
from worker.store.db import Store


def _read_input(active: ActiveConfig, source: str) -> tuple[bytes, str | None, str]:
    """(body, content type, URL) from a path, an http(s) URL or stdin."""
    if source == "-":
        return sys.stdin.buffer.read(), None, "stdin:"
    if source.startswith(("http://", "https://")):
        from worker.sources.http import Fetcher

        fetcher = Fetcher(active.loaded.config.fetch, respect_robots=True)
        try:
            result = fetcher.get(source)
        finally:
            fetcher.close()
        return result.body, result.headers.get("content-type"), result.url
    path = Path(source)
    return path.read_bytes(), None, path.absolute().as_uri()


def _looks_like_feed(body: bytes, content_type: str | None) -> bool:
    head = body[:2048].lstrip().lower()
    if content_type and any(t in content_type.lower() for t in ("rss", "atom", "feed+json")):
        return True
    if head.startswith(b"{"):
        return b"jsonfeed.org" in body[:4096]
    return any(tag in head for tag in (b"<rss", b"<feed", b"<rdf:rdf")) or (
        head.startswith(b"<?xml") and b"<html" not in head
    )


def articles_from_input(body: bytes, content_type: str | None, url: str) -> list[Article]:
    if _looks_like_feed(body, content_type):
        feed = parse_feed(body, content_type, url if url.startswith("http") else "")
        return [build_article(entry_data(e), "cli") for e in feed.entries]
    page = extract_page(body, url, content_type)
    return [build_article({"url": url, "entry_key": url}, "cli", page, url)]


def match_input(active: ActiveConfig, source: str, *, explain: bool = False) -> dict[str, Any]:
    try:
        body, content_type, url = _read_input(active, source)
        articles = articles_from_input(body, content_type, url)
    except (OSError, FeedError, ExtractionError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    out = []
    for article in articles:
        doc = MatchDocument.from_article(article)
        entry: dict[str, Any] = {
            "article": asdict(article),
            "matches": [asdict(wm) for wm in active.matcher.match(doc)],
        }
        if explain:
            entry["explain"] = [asdict(e) for e in active.matcher.explain(doc)]
        out.append(entry)
    return {"config_version": active.version, "articles": out}


def status_report(store: Store) -> dict[str, Any]:
    with store.session() as session:
        sources = [
            {
                "name": s.name,
                "kind": s.kind,
                "url": s.url,
                "enabled": s.enabled,
                "last_fetch_at": s.last_fetch_at,
                "last_success_at": s.last_success_at,
                "last_error": s.last_error,
                "last_error_kind": s.last_error_kind,
                "consecutive_failures": s.consecutive_failures,
                "items_seen": s.items_seen,
                "next_fetch_at": s.next_fetch_at,
            }
            for s in session.scalars(select(m.Source).order_by(m.Source.name))
        ]

        def counts(column: Any) -> dict[str, int]:
            return {k: v for k, v in session.execute(select(column, func.count()).group_by(column))}

        # the drop ledger: every outcome shows, zero or not ("0 quarantined" is an answer)
        outcomes = dict.fromkeys((*ledger.OUTCOMES, ledger.PENDING), 0) | counts(
            ledger.outcome_of()
        )
        from worker.service import watchdog
        from worker.sources import gap_log as gaps

        return {
            "sources": sources,
            # feeds that moved past everything seen (worker/sources/gaps.py), newest first
            "gaps": gaps.recent(session, limit=10),
            # open incidents, the heartbeat's last word, the oldest waiting work
            "watchdog": watchdog.status(session, datetime.now(UTC)),
            "outcomes": outcomes,
            "items": counts(m.Item.state),
            "articles": counts(m.Article.rules_state),
            "matches": counts(m.Match.state),
            "deliveries": counts(m.Delivery.state),
        }


# --- newswatch why --------------------------------------------------------------------

MAX_ITEMS_SHOWN = 20


def why_report(store: Store, key: str) -> dict[str, Any]:
    """What happened to one item (by id) or to every item of one URL, and why: source,
    states and outcome, article, story (with the near-duplicate evidence), matches per
    watchlist and deliveries per channel."""
    from worker.core.urls import canonical_url

    with store.session() as session:
        if key.isdigit():
            item_ids = [int(key)]
        else:
            urls = {key}
            with contextlib.suppress(ValueError):  # else only the exact text is searched
                urls.add(canonical_url(key))
            # item.url and entry_key are not indexed (a long URL would not fit a B-tree
            # entry): this scans the items, which is fine for one question by a person
            item_ids = list(
                session.scalars(
                    select(m.Item.id)
                    .where(
                        or_(
                            m.Item.url.in_(urls),
                            m.Item.entry_key.in_(urls),
                            m.Item.article_id.in_(
                                select(m.Article.id).where(m.Article.canonical_url.in_(urls))
                            ),
                        )
                    )
                    .order_by(m.Item.id)
                    .limit(MAX_ITEMS_SHOWN)
                )
            )
        items = [_item_story(session, i) for i in item_ids]
        return {"query": key, "items": [i for i in items if i is not None]}


def _item_story(session: Any, item_id: int) -> dict[str, Any] | None:
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
        "outcome": item.outcome or _derived_outcome(item),
        "outcome_detail": item.outcome_detail or _derived_detail(item),
        "created_at": item.created_at,
        "retry_after": item.claimed_until if item.state == "pending" else None,
        "article": None,
        "story": None,
        "matches": [],
    }
    article = session.get(m.Article, item.article_id) if item.article_id else None
    if article is None:
        return out
    out["article"] = {
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
        "role": "copy of" if item.state == "duplicate" else "parsed into",
    }
    out["story"] = _story(session, article)
    out["matches"] = [_match(session, row) for row in _matches(session, article.id)]
    return out


def _derived_outcome(item: m.Item) -> str:
    """The outcome for a row no step wrote one on (see ledger.outcome_of)."""
    return {"refused": "refused", "failed": "quarantined", "duplicate": "duplicate"}.get(
        item.state, ledger.PENDING
    )


def _derived_detail(item: m.Item) -> str | None:
    if item.state in ("refused", "failed"):
        return item.error
    if item.state == "pending":
        return f"waiting to be parsed (attempt {item.attempts} so far)"
    if item.state == "parsed":
        return "parsed; waiting for the watchlist rules"
    return None


def _story(session: Any, article: m.Article) -> dict[str, Any]:
    story_id = article.story_id or article.id
    members = session.execute(
        select(m.Article.id, m.Article.canonical_url)
        .where(m.Article.story_id == story_id)
        .order_by(m.Article.id)
        .limit(MAX_ITEMS_SHOWN)
    ).all()
    out: dict[str, Any] = {
        "id": story_id,
        "first_article": story_id,
        "articles": [{"id": i, "url": u} for i, u in members],
        "near_duplicate": None,
    }
    if story_id != article.id:
        out["near_duplicate"] = near_duplicate_evidence(session, article)
    return out


def near_duplicate_evidence(session: Any, article: m.Article) -> dict[str, Any] | None:
    """Why `article` was put in an earlier story: the closest earlier article of that story
    and the verified comparison (fingerprint distance, shared 4-shingles, titles)."""
    from worker.articles.parsing import story_evidence

    found = story_evidence(session, article.id)
    if found is None:
        return None
    other_id, evidence = found
    return {"article_id": other_id, **asdict(evidence), "summary": str(evidence)}


def _matches(session: Any, article_id: int) -> list[m.Match]:
    return list(
        session.scalars(
            select(m.Match).where(m.Match.article_id == article_id).order_by(m.Match.watchlist)
        )
    )


def _match(session: Any, row: m.Match) -> dict[str, Any]:
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
    if row.state == "duplicate":  # the evidence: which match of the story alerted first
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
    out["deliveries"] = [
        {
            "id": d.id,
            "channel": d.channel,
            "kind": d.kind,
            "route": d.route,
            "state": d.state,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "sent_at": d.sent_at,
            "batch_id": d.batch_id,
        }
        for d in session.scalars(
            select(m.Delivery).where(m.Delivery.match_id == row.id).order_by(m.Delivery.channel)
        )
    ]
    return out
