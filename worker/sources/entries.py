"""Feed entries -> item data: what is stored on an item, cleaned and bounded
(`worker.core.clean`), and the item's key. Pure.

Item keys (docs/extraction.md, "Feed entries, versions and keys"): an entry is
identified by its feed id *and* its link, so that two entries sharing a GUID with
different links are two items; the key also carries a digest of the entry's
normalized content, so that a changed entry is a new item version while a repeat
(or one that changed only whitespace, case or a tracking parameter) is not.
"""

from __future__ import annotations

import hashlib
from typing import Any

from worker.core import urls
from worker.core.clean import (
    MAX_AUTHOR,
    MAX_AUTHORS,
    MAX_CONTENT_HTML,
    MAX_SUMMARY,
    MAX_TAG,
    MAX_TAGS,
    MAX_TITLE,
    bounded,
    bounded_date,
    bounded_list,
    bounded_url,
    cap,
    clean_text,
)
from worker.core.model import FeedEntry, ParsedFeed, RefusedEntry
from worker.sources.feeds import MAX_KEY, html_to_text

DIGEST_CHARS = 16  # 64 bits of sha256: collisions only matter among one entry's versions


def entry_data(e: FeedEntry) -> dict[str, Any]:
    """A feed entry as JSON-able data, as stored on the item row: every field cleaned
    and capped, and `entry_key` the versioned item key."""
    url = bounded_url(e.url)
    content_html = clean_text(e.content_html)[:MAX_CONTENT_HTML] or None
    published, updated = bounded_date(e.published), bounded_date(e.updated)
    data: dict[str, Any] = {
        "identity": entry_identity(clean_text(e.entry_key).strip(), url),
        "url": url,
        "title": bounded(e.title, MAX_TITLE),
        "summary": cap(clean_text(e.summary).strip(), MAX_SUMMARY),
        "content_html": content_html,
        "authors": list(bounded_list(e.authors, MAX_AUTHOR, MAX_AUTHORS)),
        "published": published.isoformat() if published else None,
        "updated": updated.isoformat() if updated else None,
        "tags": list(bounded_list(e.tags, MAX_TAG, MAX_TAGS)),
    }
    data["entry_key"] = _versioned_key(data["identity"], content_digest(data))
    return {"entry_key": data.pop("entry_key"), **data}


def feed_items(feed: ParsedFeed) -> list[dict[str, Any]]:
    """Every entry of a feed as item data, each on its own: an entry that cannot be
    converted becomes refused data (`refused` holds the reason), never an exception
    that costs the other entries."""
    out = []
    for e in feed.entries:
        try:
            out.append(entry_data(e))
        except Exception as exc:  # one entry's surprise stays in that entry
            reason = f"{type(exc).__name__}: {exc}"
            out.append(refused_data(RefusedEntry(e.entry_key, e.url, reason)))
    return out + [refused_data(r) for r in feed.refused]


def refused_data(r: RefusedEntry) -> dict[str, Any]:
    """What is stored for an entry that could not be read (item state `refused`)."""
    url = bounded_url(r.url)
    return {
        "entry_key": _short(f"refused {clean_text(r.entry_key).strip()} {url or ''}".strip()),
        "url": url,
        "refused": bounded(r.reason, 2000) or "refused",
    }


def link_data(url: str) -> dict[str, Any]:
    """A link found on a listing page, as stored on the item row."""
    clean = bounded_url(url)
    return {"entry_key": _short(clean_text(url).strip()), "url": clean}


def entry_identity(feed_key: str, url: str | None) -> str:
    """What makes an entry this entry: its feed id, plus its canonical link when the
    id is not the link itself (so one GUID reused for several links is several items,
    and a tracking parameter added to the link changes nothing)."""
    if not url:
        return _short(feed_key)
    link = urls.canonical_url(url)
    if feed_key in (url, link):
        return _short(link)
    return _short(f"{feed_key} {link}")


def content_digest(data: dict[str, Any]) -> str:
    """A digest of what a watchlist can see in an entry, normalized (NFKC, case-folded,
    whitespace collapsed, HTML reduced to its text): equal for cosmetic changes."""
    norm = urls.normalize_text
    parts = [
        norm(data.get("title") or ""),
        norm(data.get("summary") or ""),
        norm(html_to_text(data["content_html"]) if data.get("content_html") else ""),
        "\x1f".join(sorted(norm(a) for a in data.get("authors") or ())),
        "\x1f".join(sorted(norm(t) for t in data.get("tags") or ())),
    ]
    return hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def _short(key: str) -> str:
    """Keys over the column's room are replaced by their hash, never cut."""
    room = MAX_KEY - DIGEST_CHARS - 2
    if len(key) <= room:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _versioned_key(identity: str, digest: str) -> str:
    return f"{identity} #{digest}" if digest else identity
