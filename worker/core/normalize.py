"""Feed entry + (optionally) its extracted page -> one `Article`. Pure.

What the feed says and what the page says are merged, preferring the more
specific: the page's body and dates, the feed's title (editors write feed
titles without the site-name suffix), the union of tags.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.core import urls
from worker.core.feeds import html_to_text
from worker.core.model import Article, FeedEntry, PageContent


def entry_data(e: FeedEntry) -> dict[str, Any]:
    """A feed entry as JSON-able data, as stored on the item row."""
    return {
        "entry_key": e.entry_key,
        "url": e.url,
        "title": e.title,
        "summary": e.summary,
        "content_html": e.content_html,
        "authors": list(e.authors),
        "published": e.published.isoformat() if e.published else None,
        "updated": e.updated.isoformat() if e.updated else None,
        "tags": list(e.tags),
    }


def build_article(
    data: dict[str, Any], source: str, page: PageContent | None = None, page_url: str | None = None
) -> Article:
    """Raises ValueError when there is nothing to read (no title and no text)."""
    url = data.get("url")
    summary = data.get("summary") or ""
    if page is not None:
        body = page.body
        title = data.get("title") or page.title
        authors = tuple(page.authors) or tuple(data.get("authors") or ())
        published = page.published or _dt(data.get("published"))
        modified = page.modified or _dt(data.get("updated"))
        lead = page.lead or (summary if summary and summary not in body else "")
        tags = tuple(dict.fromkeys([*page.tags, *(data.get("tags") or ())]))
        canonical = urls.canonical_url(page_url or url or "", page.canonical_url)
        language, image = page.language, page.image_url
    else:
        feed_body = html_to_text(data["content_html"]) if data.get("content_html") else ""
        body = feed_body if len(feed_body) >= len(summary) else summary
        title = data.get("title") or ""
        authors = tuple(data.get("authors") or ())
        published, modified = _dt(data.get("published")), _dt(data.get("updated"))
        lead = summary if summary and body != summary and summary not in body else ""
        tags = tuple(data.get("tags") or ())
        canonical = urls.canonical_url(url) if url else f"urn:newswatch:{data['entry_key']}"
        language = image = None
    if not (title.strip() or body.strip()):
        raise ValueError("entry has neither a title nor any text")
    return Article(
        url=canonical,
        title=title.strip(),
        body=body.strip(),
        authors=authors,
        published=published,
        modified=modified,
        lead=lead.strip(),
        tags=tags,
        language=language,
        image_url=image,
        source=source,
        content_hash=urls.content_hash(title, body),
    )


def _dt(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
