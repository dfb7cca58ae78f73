"""Dry run on history: replay stored articles against a (changed) config.

`newswatch rules test --since 7d [--config FILE]` reads the articles stored
within the window, matches each against the given config's watchlists, and
compares with the `match` rows that the running config wrote: what would
alert, what would be added and what would no longer match. Read-only: it
writes no row and sends nothing.

As in the service, only the first article of a story alerts a watchlist (a
`story_alert` claim); a later copy of the same story matches but is a duplicate,
counted apart from "would alert". The first is the article that claimed the story
before the window, if one did (its stored `story_alert`, under the running config),
else the first that would match within the window replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from worker.core.model import MatchDocument
from worker.matching.matcher import Matcher
from worker.store import status
from worker.store.db import Store
from worker.store.items import article_from_row

BATCH = 500  # articles read per query: bounded memory on a long history


@dataclass(frozen=True)
class ReplayedArticle:
    article_id: int
    title: str
    url: str
    would: tuple[str, ...]  # watchlists that would match now
    did: tuple[str, ...]  # watchlists with a match row
    snippets: dict[str, str] = field(default_factory=dict)  # watchlist -> snippet (would)
    # watchlist -> the earlier article of the same story that would alert it instead
    duplicate_of: dict[str, int] = field(default_factory=dict)

    @property
    def alerts(self) -> tuple[str, ...]:
        """The watchlists this article would really alert (first of its story)."""
        return tuple(w for w in self.would if w not in self.duplicate_of)

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(w for w in self.would if w not in self.did)

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(w for w in self.did if w not in self.would)


@dataclass
class ReplayReport:
    since: datetime
    config_version: str
    articles_seen: int = 0
    articles: list[ReplayedArticle] = field(default_factory=list)  # those with any match

    @property
    def added(self) -> int:
        return sum(len(a.added) for a in self.articles)

    @property
    def removed(self) -> int:
        return sum(len(a.removed) for a in self.articles)

    @property
    def would_alert(self) -> int:
        return sum(len(a.alerts) for a in self.articles)

    @property
    def duplicates(self) -> int:
        return sum(len(a.duplicate_of) for a in self.articles)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "config_version": self.config_version,
            "articles_seen": self.articles_seen,
            "would_alert": self.would_alert,
            "story_duplicates": self.duplicates,
            "added": self.added,
            "removed": self.removed,
            "articles": [
                {
                    "id": a.article_id,
                    "title": a.title,
                    "url": a.url,
                    "would": list(a.would),
                    "alerts": list(a.alerts),
                    "duplicate_of": a.duplicate_of,
                    "did": list(a.did),
                    "added": list(a.added),
                    "removed": list(a.removed),
                    "snippets": a.snippets,
                }
                for a in self.articles
            ],
        }

    def to_text(self) -> str:
        lines = [
            f"replayed {self.articles_seen} article(s) since {self.since:%Y-%m-%d %H:%M} UTC "
            f"against config {self.config_version}: "
            f"{self.would_alert} would alert, {self.duplicates} same-story duplicate(s), "
            f"{self.added} added, {self.removed} removed"
        ]
        for a in self.articles:
            lines.append(f"  #{a.article_id} {a.title}  <{a.url}>")
            for w in a.would:
                mark = "+" if w in a.added else " "
                if w in a.duplicate_of:
                    note = f"(no alert: same story as #{a.duplicate_of[w]})"
                    lines.append(f"    {mark} {w}: {note} {a.snippets.get(w, '')}")
                else:
                    lines.append(f"    {mark} {w}: {a.snippets.get(w, '')}")
            for w in a.removed:
                lines.append(f"    - {w}")
        return "\n".join(lines)


def replay(store: Store, matcher: Matcher, since: datetime) -> ReplayReport:
    """Match every article created at or after `since`; compare with its match rows."""
    report = ReplayReport(since=since, config_version=matcher.version)
    first_of_story: dict[tuple[str, int], int] = {}  # (watchlist, story) -> article id
    last_id = 0
    while True:
        with store.session() as session:
            rows, did = status.articles_since(session, since, last_id, BATCH)
            if not rows:
                break
            ids = [row.id for row, _ in rows]
            stories = {row.story_id or row.id for row, _ in rows}
            for key, first in status.alerts_before(session, stories, since).items():
                first_of_story.setdefault(key, first)
            articles = [
                (row.id, row.story_id, article_from_row(row, source or "")) for row, source in rows
            ]
        for article_id, story_id, article in articles:
            report.articles_seen += 1
            matches = matcher.match(MatchDocument.from_article(article))
            would = tuple(wm.watchlist for wm in matches)
            before = tuple(dict.fromkeys(did.get(article_id, ())))
            if would or before:
                report.articles.append(
                    ReplayedArticle(
                        article_id,
                        article.title,
                        article.url,
                        would,
                        before,
                        {wm.watchlist: wm.snippet for wm in matches},
                        _duplicates(first_of_story, would, story_id or article_id, article_id),
                    )
                )
        last_id = ids[-1]
    return report


def _duplicates(
    first_of_story: dict[tuple[str, int], int], would: tuple[str, ...], story: int, article: int
) -> dict[str, int]:
    """The watchlists an earlier article of `story` claimed (the rest are claimed now)."""
    out = {}
    for w in would:
        first = first_of_story.setdefault((w, story), article)
        if first != article:
            out[w] = first
    return out


def parse_since(value: str, now: datetime) -> datetime:
    """'7d', '12h', '30m' (as in the config's intervals) -> the moment that long before now."""
    from worker.config import parse_interval

    return now - timedelta(seconds=parse_interval(value))
