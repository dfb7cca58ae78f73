"""Read-only views for the CLI: one input through parse + rules, and the status report."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from worker.adapters import models as m
from worker.adapters.store import Store
from worker.core.extract import ExtractionError, extract_page
from worker.core.feeds import FeedError, parse_feed
from worker.core.model import Article, MatchDocument
from worker.core.normalize import build_article, entry_data
from worker.live_config import ActiveConfig


def _read_input(active: ActiveConfig, source: str) -> tuple[bytes, str | None, str]:
    """(body, content type, URL) from a path, an http(s) URL or stdin."""
    if source == "-":
        return sys.stdin.buffer.read(), None, "stdin:"
    if source.startswith(("http://", "https://")):
        from worker.adapters.http import Fetcher

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

        return {
            "sources": sources,
            "items": counts(m.Item.state),
            "articles": counts(m.Article.rules_state),
            "matches": counts(m.Match.state),
            "deliveries": counts(m.Delivery.state),
        }
