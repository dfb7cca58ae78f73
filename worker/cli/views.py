"""Read-only views for the CLI: one input through parse + rules, the status report, and
what became of one item (`newswatch why`)."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from worker.articles.extract import ExtractionError, extract_page
from worker.articles.normalize import build_article
from worker.articles.parsing import story_evidence
from worker.bootstrap.config_in_force import ActiveConfig
from worker.core.errors import NewswatchError
from worker.core.model import Article, MatchDocument
from worker.core.urls import canonical_url
from worker.service import watchdog
from worker.sources.entries import entry_data
from worker.sources.feeds import FeedError, parse_feed
from worker.store import models as m
from worker.store import status
from worker.store.db import Store


class InputProblem(Exception):
    """What `match` could not read or fetch: one line for the user, exit 1."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_input(active: ActiveConfig, source: str) -> tuple[bytes, str | None, str]:
    """(body, content type, URL) from a path, an http(s) URL or stdin."""
    if source == "-":
        return sys.stdin.buffer.read(), None, "stdin:"
    if source.startswith(("http://", "https://")):
        from worker.config.to_sources import fetch_options
        from worker.http.fetcher import Fetcher

        fetcher = Fetcher(fetch_options(active.loaded.config.fetch), respect_robots=True)
        try:
            result = fetcher.get(source)
        finally:
            fetcher.close()
        return result.body, result.headers.get("content-type"), result.url
    path = Path(source)
    try:
        return path.read_bytes(), None, path.absolute().as_uri()
    except FileNotFoundError:
        raise InputProblem(f"{source}: no such file") from None
    except OSError as exc:
        raise InputProblem(f"{source}: {exc.strerror or one_line(exc)}") from None


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


def match_input(
    active: ActiveConfig,
    source: str,
    *,
    explain: bool = False,
    watchlists: list[str] | None = None,
) -> dict[str, Any]:
    """One input through parse + rules; raises InputProblem (one line) when it cannot be
    read. (The URL of a configured source goes the service's way: worker/cli/preview.py.)"""
    try:
        body, content_type, url = _read_input(active, source)
        articles = articles_from_input(body, content_type, url)
    except (NewswatchError, FeedError, ExtractionError, ValueError) as exc:
        raise InputProblem(f"{source}: {one_line(exc)}") from None
    out = [match_article(active, a, explain, watchlists) for a in articles]
    return {"config_version": active.version, "articles": out}


def match_article(
    active: ActiveConfig, article: Article, explain: bool, watchlists: list[str] | None
) -> dict[str, Any]:
    """One article's matches (and, asked, why each watchlist did or did not match)."""
    doc = MatchDocument.from_article(article)
    entry: dict[str, Any] = {
        "article": asdict(article),
        "matches": [asdict(wm) for wm in active.matcher.match(doc)],
    }
    if explain or watchlists:
        entry["explain"] = [asdict(e) for e in active.matcher.explain(doc, watchlists)]
    return entry


def status_report(store: Store) -> dict[str, Any]:
    with store.session() as session:
        return {
            "sources": status.sources(session),
            # feeds that moved past everything seen (worker/sources/gaps.py), newest first
            "gaps": status.recent_gaps(session, limit=10),
            # open incidents, the heartbeat's last word, the oldest waiting work
            "watchdog": watchdog.status(session, datetime.now(UTC)),
            # the drop ledger: every outcome shows, zero or not ("0 quarantined" is an answer)
            "outcomes": status.outcome_counts(session),
            **status.state_counts(session),
        }


# --- newswatch why --------------------------------------------------------------------


def why_report(store: Store, key: str) -> dict[str, Any]:
    """What happened to one item (by id) or to every item of one URL, and why: source,
    states and outcome, article, story (with the near-duplicate evidence), matches per
    watchlist and deliveries per channel."""
    with store.session() as session:
        if key.isdigit():
            item_ids = [int(key)]
        else:
            urls = {key}
            with contextlib.suppress(ValueError):  # else only the exact text is searched
                urls.add(canonical_url(key))
            item_ids = status.item_ids_for(session, urls)
        items = [status.item_story(session, i, near_duplicate_evidence) for i in item_ids]
        return {"query": key, "items": [i for i in items if i is not None]}


def near_duplicate_evidence(session: Session, article: m.Article) -> dict[str, Any] | None:
    """Why `article` was put in an earlier story: the closest earlier article of that story
    and the verified comparison (fingerprint distance, shared 4-shingles, titles)."""
    found = story_evidence(session, article.id)
    if found is None:
        return None
    other_id, evidence = found
    return {"article_id": other_id, **asdict(evidence), "summary": str(evidence)}
