"""Feed entry + (optionally) its extracted page -> one `Article`. Pure.

What the feed says and what the page says are merged, preferring the more
specific: the page's body and dates, the feed's title (editors write feed
titles without the site-name suffix), the union of tags.

What is stored as an article is cleaned and bounded here (`worker.core.clean`); what
is stored on an item, by worker/sources/entries.py.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from worker.articles.extract import ExtractionError
from worker.core import urls
from worker.core.clean import (
    MAX_AUTHOR,
    MAX_AUTHORS,
    MAX_BODY,
    MAX_LANGUAGE,
    MAX_SUMMARY,
    MAX_TAG,
    MAX_TAGS,
    MAX_TITLE,
    MAX_URL,
    bounded,
    bounded_date,
    bounded_list,
    bounded_url,
    cap,
    clean_text,
)
from worker.core.model import Article, PageContent
from worker.sources.feeds import html_to_text


def build_article(
    data: dict[str, Any], source: str, page: PageContent | None = None, page_url: str | None = None
) -> Article:
    """Raises ExtractionError (a ValueError) when there is nothing to read (no title and
    no text): the entry's content, which no retry changes."""
    url = bounded_url(data.get("url"))
    summary = clean_text(data.get("summary")).strip()
    feed_title = bounded(data.get("title"), MAX_TITLE)
    feed_authors = bounded_list(data.get("authors") or (), MAX_AUTHOR, MAX_AUTHORS)
    feed_tags = bounded_list(data.get("tags") or (), MAX_TAG, MAX_TAGS)
    if page is not None:
        body = clean_text(page.body)
        title = feed_title or bounded(page.title, MAX_TITLE)
        authors = bounded_list(page.authors, MAX_AUTHOR, MAX_AUTHORS) or feed_authors
        published = bounded_date(page.published) or _dt(data.get("published"))
        modified = bounded_date(page.modified) or _dt(data.get("updated"))
        lead = clean_text(page.lead) or (summary if summary and summary not in body else "")
        tags = bounded_list([*page.tags, *feed_tags], MAX_TAG, MAX_TAGS)
        canonical = urls.canonical_url(
            page_url or url or "", bounded_url(page.canonical_url) or None
        )
        language = clean_text(page.language).strip() or None
        image = bounded_url(page.image_url)
    else:
        feed_body = html_to_text(data["content_html"]) if data.get("content_html") else ""
        body = feed_body if len(feed_body) >= len(summary) else summary
        title = feed_title
        authors = feed_authors
        published, modified = _dt(data.get("published")), _dt(data.get("updated"))
        lead = summary if summary and body != summary and summary not in body else ""
        tags = feed_tags
        identity = data.get("identity") or data["entry_key"]
        canonical = urls.canonical_url(url) if url else f"urn:newswatch:{identity}"
        language = image = None
    body = cap(body.strip(), MAX_BODY)
    if not (title or body):
        raise ExtractionError("entry has neither a title nor any text")
    if len(canonical) > MAX_URL:  # normalizing can lengthen a URL; the column cannot
        canonical = "urn:newswatch:sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    return Article(
        url=canonical,
        title=title,
        body=body,
        authors=authors,
        published=published,
        modified=modified,
        lead=cap(lead.strip(), MAX_SUMMARY),
        tags=tags,
        language=language if language and len(language) <= MAX_LANGUAGE else None,
        image_url=image,
        source=source,
        content_hash=urls.content_hash(title, body),
    )


def _dt(value: Any) -> datetime | None:
    """A stored ISO date back as a datetime; anything unreadable or out of range is None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return bounded_date(datetime.fromisoformat(value))
    except ValueError:
        return None
