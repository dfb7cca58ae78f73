"""Feed bytes -> entries, and listing pages -> article links. No I/O.

feedparser reads RSS 0.9x/1.0/2.0 and Atom from bytes we fetched ourselves;
JSON Feed (which feedparser does not read) is parsed here. Bad input never
raises anything but FeedError, and a feed that is only partly broken still
yields what could be read, with the problem as a warning.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import re
import xml.sax
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
from dateutil import parser as dateparser

from worker.core.encoding import feed_as_utf8
from worker.core.model import FeedEntry, ParsedFeed

# Feeds are data, not documents: never let feedparser sanitize into our text or
# resolve entities beyond the XML defaults.
feedparser.SANITIZE_HTML = True
feedparser.RESOLVE_RELATIVE_URIS = True

MAX_ENTRIES = 1000  # a feed is a recent window, not an archive


class FeedError(ValueError):
    """The bytes are not a feed we can read at all."""


def parse_feed(body: bytes, content_type: str | None = None, base_url: str = "") -> ParsedFeed:
    stripped = body.lstrip()
    if not stripped:
        raise FeedError("empty response body")
    if stripped[:1] in (b"{", b"[") or (content_type and "json" in content_type.lower()):
        return _parse_json_feed(body)
    # decoded here with the web's reading of charset labels (feedparser's garbles some)
    body, content_type = feed_as_utf8(body, content_type)
    headers = {"content-location": base_url} if base_url else {}
    if content_type:
        headers["content-type"] = content_type
    try:
        parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    except Exception as exc:  # feedparser promises not to raise; a bug there must not kill us
        raise FeedError(f"feed parser failed: {exc}") from exc
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise FeedError(f"not a feed: {problem}" if problem else "not an RSS, Atom or JSON feed")
    if not parsed.entries and isinstance(parsed.get("bozo_exception"), xml.sax.SAXException):
        # broken XML with nothing readable in it: a source error to show, not an empty feed
        raise FeedError(f"malformed XML, no entries: {parsed.get('bozo_exception')}")
    entries = tuple(_entry(e, base_url) for e in parsed.entries[:MAX_ENTRIES])
    warning = str(parsed.get("bozo_exception")) if parsed.get("bozo") else None
    return ParsedFeed(
        title=_text(parsed.feed.get("title")),
        entries=entries,
        ttl_seconds=_ttl(parsed.feed),
        warning=warning,
    )


def _entry(e: Mapping[str, Any], base_url: str) -> FeedEntry:
    link = _abs(e.get("link"), base_url)
    title = _text(e.get("title"))
    summary_html = e.get("summary") or ""
    content_html = None
    for c in e.get("content") or ():
        if c.get("value"):
            content_html = c["value"]
            break
    authors = tuple(
        a["name"].strip()
        for a in e.get("authors") or ()
        if isinstance(a, Mapping) and a.get("name")
    ) or ((e["author"].strip(),) if e.get("author") else ())
    key = e.get("id") or e.get("guid") or link or _hash_key(title, summary_html)
    return FeedEntry(
        entry_key=str(key)[:1000],
        url=link,
        title=title,
        summary=html_to_text(summary_html),
        content_html=content_html,
        authors=authors,
        # dict.get: FeedParserDict.get maps a missing key to another one, with a warning
        published=_struct_time(dict.get(e, "published_parsed"))
        or _struct_time(dict.get(e, "updated_parsed")),
        updated=_struct_time(dict.get(e, "updated_parsed")),
        tags=tuple(t["term"] for t in e.get("tags") or () if t.get("term")),
    )


def _parse_json_feed(body: bytes) -> ParsedFeed:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FeedError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        raise FeedError("JSON without a jsonfeed.org version")
    base = doc.get("home_page_url") or doc.get("feed_url") or ""
    entries = []
    for item in doc.get("items") or []:
        if not isinstance(item, dict):
            continue
        link = _abs(item.get("url") or item.get("external_url"), base)
        title = _text(item.get("title"))
        content_html = (
            item.get("content_html") if isinstance(item.get("content_html"), str) else None
        )
        summary = item.get("summary") or item.get("content_text") or ""
        authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
        key = item.get("id") or link or _hash_key(title, str(summary))
        entries.append(
            FeedEntry(
                entry_key=str(key)[:1000],
                url=link,
                title=title,
                summary=_text(summary) if isinstance(summary, str) else "",
                content_html=content_html
                or (_paragraphs_html(item["content_text"]) if item.get("content_text") else None),
                authors=tuple(
                    a["name"]
                    for a in authors
                    if isinstance(a, dict) and isinstance(a.get("name"), str)
                ),
                published=_iso(item.get("date_published")),
                updated=_iso(item.get("date_modified")),
                tags=tuple(t for t in item.get("tags") or () if isinstance(t, str)),
            )
        )
        if len(entries) >= MAX_ENTRIES:
            break
    return ParsedFeed(title=_text(doc.get("title")), entries=tuple(entries))


def _ttl(feed: Mapping[str, Any]) -> int | None:
    ttl = feed.get("ttl")
    try:
        return int(ttl) * 60 if ttl else None
    except (TypeError, ValueError):
        return None


def _struct_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = dateparser.isoparse(value)
    except (ValueError, OverflowError):
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _abs(url: Any, base: str) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return None
    full = urljoin(base, url.strip()) if base else url.strip()
    return full if urlsplit(full).scheme in ("http", "https") else None


def _hash_key(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()


def _text(value: Any) -> str:
    return html_to_text(value) if isinstance(value, str) else ""


_BLOCK_TAGS = re.compile(
    r"(?i)<\s*(?:/?(?:p|div|h[1-6]|li|ul|ol|blockquote|tr|section|article)\b[^>]*|br\s*/?)>"
)
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n+")


def html_to_text(fragment: str) -> str:
    """A feed's HTML snippet as plain text, paragraphs kept. Tolerates any garbage."""
    import html

    if "<" not in fragment and "&" not in fragment:
        return _SPACES.sub(" ", fragment).strip()
    text = _BLOCK_TAGS.sub("\n\n", fragment)
    text = html.unescape(_TAG.sub("", text))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _paragraphs_html(text: str) -> str:
    import html

    return "".join(f"<p>{html.escape(p.strip())}</p>" for p in str(text).split("\n\n") if p.strip())


def page_links(html_text: str, base_url: str, follow: str | None, limit: int = 500) -> list[str]:
    """Article links on a listing page: absolute http(s) URLs matching `follow`, in page order."""
    from lxml import html as lxml_html

    try:
        doc = lxml_html.document_fromstring(html_text)
    except Exception:  # lxml raises several types on garbage; a listing with none has no links
        return []
    pattern = re.compile(follow) if follow else None
    base_host = urlsplit(base_url).hostname
    seen: dict[str, None] = {}
    for a in doc.iter("a"):
        href = a.get("href")
        url = _abs(href, base_url) if href else None
        if not url:
            continue
        url = url.split("#", 1)[0]
        if pattern is None and urlsplit(url).hostname != base_host:
            continue  # without a pattern, only same-site links
        if pattern is not None and not pattern.search(url):
            continue
        if url.rstrip("/") == base_url.rstrip("/"):
            continue
        seen.setdefault(url, None)
        if len(seen) >= limit:
            break
    return list(seen)
