"""Plain data passed between the pure core and the rest of newswatch.

Everything here is immutable-ish data with no behaviour that does I/O, so the
core modules (feeds, extract, urls, rules, render) can agree on shapes without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FeedEntry:
    """One entry of a feed, as the feed states it (before any page fetch)."""

    entry_key: str  # the feed's id: guid/id, else link, else a hash of title+summary
    url: str | None
    title: str
    summary: str  # plain text
    content_html: str | None  # full content when the feed carries it
    authors: tuple[str, ...] = ()
    published: datetime | None = None  # timezone-aware UTC
    updated: datetime | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    entries: tuple[FeedEntry, ...]
    ttl_seconds: int | None = None  # <ttl>, sy:updatePeriod, ...
    warning: str | None = None  # feedparser's bozo_exception, if it still read entries
    refused: tuple[RefusedEntry, ...] = ()  # entries that could not be converted


@dataclass(frozen=True)
class RefusedEntry:
    """An entry that could not be read: kept (as a `refused` item) so it is never lost
    without a trace."""

    entry_key: str
    url: str | None
    reason: str


@dataclass(frozen=True)
class PageContent:
    """What an HTML page says about itself once the furniture is gone."""

    body: str  # article text only, paragraphs separated by blank lines
    title: str = ""
    authors: tuple[str, ...] = ()
    published: datetime | None = None  # timezone-aware UTC
    modified: datetime | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    section: str | None = None
    canonical_url: str | None = None
    image_url: str | None = None
    lead: str = ""  # standfirst / description, if distinct from the body


@dataclass(frozen=True)
class Article:
    """A normalized article: what rules look at and alerts talk about."""

    url: str  # canonical
    title: str
    body: str
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    modified: datetime | None = None
    lead: str = ""
    tags: tuple[str, ...] = ()
    language: str | None = None
    image_url: str | None = None
    source: str = ""  # source name from the config
    content_hash: str = ""


@dataclass(frozen=True)
class MatchDocument:
    """The fields a watchlist may look at. Never page furniture."""

    title: str
    body: str
    lead: str = ""
    authors: tuple[str, ...] = ()
    source: str = ""
    tags: tuple[str, ...] = ()

    @classmethod
    def from_article(cls, article: Article) -> MatchDocument:
        return cls(
            title=article.title,
            body=article.body,
            lead=article.lead,
            authors=article.authors,
            source=article.source,
            tags=article.tags,
        )


@dataclass(frozen=True)
class Hit:
    """One occurrence of a watched term, with offsets into the original field text."""

    field: str  # title | lead | body | author | source | tag
    start: int
    end: int
    text: str  # the text as written in the article
    term: str  # the term or alias as configured
    entity: str | None = None  # entity name when the term is one of its aliases

    def to_json(self) -> dict[str, Any]:
        """As stored on a match and sent in a webhook payload."""
        return {
            "field": self.field,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "term": self.term,
            "entity": self.entity,
        }


@dataclass(frozen=True)
class WatchlistMatch:
    watchlist: str
    hits: tuple[Hit, ...]
    snippet: str = ""  # plain text around the best hit
    # (start, end) of highlighted spans inside `snippet`, for text/HTML renderers
    highlights: tuple[tuple[int, int], ...] = ()
    names: tuple[str, ...] = field(default=())  # distinct entity names / terms matched
