"""Feed bytes -> entries, and listing pages -> article links. No I/O.

feedparser reads RSS 0.9x/1.0/2.0 and Atom from bytes we fetched ourselves;
JSON Feed (which feedparser does not read) is parsed here. Bad input never
raises anything but FeedError, and a feed that is only partly broken still
yields what could be read, with the problem as a warning. One entry that cannot
be converted (whatever the exception) is returned as refused, with the reason;
the others are unaffected.

Markup is stripped only from fields that are HTML (feedparser says so per field:
`title_detail.type`, `summary_detail.type`, `content[].type`; JSON Feed's
`content_html`), with lxml, so that "5 < 6 and 7 > 3" in a plain-text title
keeps its words and the text of <script>/<style> never becomes article text.
Dates are validated (`clean.bounded_date`): out of range or unreadable is None.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import xml.sax
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import lxml.etree
import lxml.html
from dateutil import parser as dateparser

from worker.core.clean import (
    MAX_CONTENT_HTML,
    bounded_date,
    bounded_url,
    clean_text,
)
from worker.core.encoding import feed_as_utf8
from worker.core.errors import TransientError
from worker.core.model import FeedEntry, ParsedFeed, RefusedEntry
from worker.core.patterns import PatternError, compile_pattern

# Feed HTML is never rendered, only reduced to text by html_to_text, which drops code
# elements with a real parser. feedparser's sanitizer would remove tags it does not
# know but keep their text (a <template>'s content would leak into the summary).
feedparser.SANITIZE_HTML = False
feedparser.RESOLVE_RELATIVE_URIS = True

MAX_ENTRIES = 1000  # a feed is a recent window, not an archive
MAX_KEY = 1000  # item.entry_key; a longer id is replaced by its hash, never cut

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})


class FeedError(TransientError):
    """The bytes are not a feed we can read at all. Transient: the next poll may well
    get the feed again (a server that answered with an error page, a feed mid-rewrite)."""

    kind = "not_a_feed"


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
    entries, refused = _convert_all(parsed.entries[:MAX_ENTRIES], _entry, base_url)
    warning = str(parsed.get("bozo_exception")) if parsed.get("bozo") else None
    return ParsedFeed(
        title=_field_text(parsed.feed, "title"),
        entries=entries,
        ttl_seconds=_ttl(parsed.feed),
        warning=warning,
        refused=refused,
    )


def _convert_all(
    raws: list[Any], convert: Callable[[Any, str], FeedEntry], base: str
) -> tuple[tuple[FeedEntry, ...], tuple[RefusedEntry, ...]]:
    """Each raw entry converted on its own: one that raises anything is refused with
    the reason, and never costs the others."""
    entries: list[FeedEntry] = []
    refused: list[RefusedEntry] = []
    for raw in raws:
        try:
            entries.append(convert(raw, base))
        except Exception as exc:  # any surprise in one entry stays in that entry
            refused.append(_refused(raw, base, f"{type(exc).__name__}: {exc}"))
    return tuple(entries), tuple(refused)


def _refused(raw: Any, base: str, reason: str) -> RefusedEntry:
    """What can safely be said about an entry that could not be converted."""
    try:
        get = raw.get if isinstance(raw, Mapping) else (lambda _key: None)
        link = get("link") or get("url")
        url = _abs(link, base)
        ident = next(
            (v for v in (get("id"), get("guid"), url) if isinstance(v, str | int) and v), None
        )
        key = _key(str(ident)) if ident is not None else _hash_key(repr(raw)[:100_000])
    except Exception:  # the entry is beyond reading; its shape still identifies it
        url, key = None, _hash_key(type(raw).__name__)
    return RefusedEntry(entry_key=key, url=url, reason=clean_text(reason)[:2000])


def _entry(e: dict[str, Any], base_url: str) -> FeedEntry:  # a FeedParserDict
    link = _abs(e.get("link"), base_url)
    title = _field_text(e, "title")
    summary = _field_text(e, "summary")
    content_html = None
    for c in e.get("content") or ():
        if isinstance(c, Mapping) and isinstance(c.get("value"), str) and c["value"].strip():
            content_html = c["value"] if _is_html(c.get("type")) else _paragraphs_html(c["value"])
            break
    authors = tuple(
        a["name"] for a in e.get("authors") or () if isinstance(a, Mapping) and a.get("name")
    ) or ((e["author"],) if isinstance(e.get("author"), str) else ())
    key = e.get("id") or e.get("guid") or link or _hash_key(title, summary)
    return FeedEntry(
        entry_key=_key(str(key)),
        url=link,
        title=title,
        summary=summary,
        content_html=content_html,
        authors=tuple(plain_text(a) for a in authors if isinstance(a, str)),
        # dict.get: FeedParserDict.get maps a missing key to another one, with a warning
        published=_struct_time(dict.get(e, "published_parsed"))
        or _struct_time(dict.get(e, "updated_parsed")),
        updated=_struct_time(dict.get(e, "updated_parsed")),
        tags=tuple(
            plain_text(t["term"])
            for t in e.get("tags") or ()
            if isinstance(t, Mapping) and isinstance(t.get("term"), str)
        ),
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
    items = doc.get("items")
    # an item that is not an object is refused with the reason, not skipped unseen
    raws = items if isinstance(items, list) else []
    entries, refused = _convert_all(raws[:MAX_ENTRIES], _json_entry, str(base))
    return ParsedFeed(title=_plain(doc.get("title")), entries=entries, refused=refused)


def _json_entry(item: Any, base: str) -> FeedEntry:
    # JSON Feed: title, summary and content_text are plain text; content_html is HTML.
    if not isinstance(item, dict):
        raise TypeError(f"a JSON Feed item is an object, not {type(item).__name__}")
    link = _abs(item.get("url") or item.get("external_url"), base)
    title = _plain(item.get("title"))
    content_html = item.get("content_html") if isinstance(item.get("content_html"), str) else None
    content_text = item.get("content_text") if isinstance(item.get("content_text"), str) else ""
    summary = _plain(item.get("summary")) or _plain(content_text)
    listed = item.get("authors")
    authors: list[Any] = (
        listed
        if isinstance(listed, list)
        else [item["author"]]
        if isinstance(item.get("author"), dict)
        else []
    )
    tags: list[Any] = item["tags"] if isinstance(item.get("tags"), list) else []
    key = item.get("id") or link or _hash_key(title, summary)
    return FeedEntry(
        entry_key=_key(str(key)),
        url=link,
        title=title,
        summary=summary,
        content_html=content_html or (_paragraphs_html(content_text) if content_text else None),
        authors=tuple(
            plain_text(a["name"])
            for a in authors
            if isinstance(a, dict) and isinstance(a.get("name"), str)
        ),
        published=_iso(item.get("date_published")),
        updated=_iso(item.get("date_modified")),
        tags=tuple(plain_text(t) for t in tags if isinstance(t, str)),
    )


def _ttl(feed: Mapping[str, Any]) -> int | None:
    ttl = feed.get("ttl")
    try:
        return int(ttl) * 60 if ttl else None
    except (TypeError, ValueError):
        return None


def _struct_time(value: Any) -> datetime | None:
    """feedparser's UTC struct_time (its year can be 0 or 10000) as a bounded datetime."""
    if not value:
        return None
    try:
        # tzinfo by keyword after *args: mypy cannot tell the args stop at 6
        return bounded_date(datetime(*tuple(value)[:6]).replace(tzinfo=UTC))
    except (TypeError, ValueError, OverflowError):
        return None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = dateparser.isoparse(value.strip())
    except (ValueError, OverflowError, TypeError):
        return None
    return bounded_date(dt)


def _abs(url: Any, base: str) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return None
    url = clean_text(url).strip()
    try:
        full = urljoin(base, url) if base else url
        scheme = urlsplit(full).scheme
    except ValueError:  # e.g. "http://[::1" : not a URL we can use
        return None
    return bounded_url(full) if scheme in ("http", "https") else None


def _hash_key(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()


def _key(value: str) -> str:
    """A feed's id as an item key: cleaned, and hashed rather than cut when too long
    (two long ids sharing a prefix must stay two keys)."""
    key = clean_text(value).strip()
    return key if len(key) <= MAX_KEY else _hash_key(key)


def _is_html(content_type: Any) -> bool:
    return isinstance(content_type, str) and content_type.strip().lower() in _HTML_TYPES


def _field_text(obj: Mapping[str, Any], name: str) -> str:
    """A feedparser text field as plain text: markup stripped only if the field is HTML."""
    value = obj.get(name)
    if not isinstance(value, str):
        return ""
    detail = obj.get(f"{name}_detail")
    kind = detail.get("type") if isinstance(detail, Mapping) else "text/html"
    return html_to_text(value) if _is_html(kind) else plain_text(value)


def _plain(value: Any) -> str:
    return plain_text(value) if isinstance(value, str) else ""


_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n+")
# Text inside these is code or markup for a machine, never article text.
_DROP_TAGS = ("script", "style", "template", "noscript")
_BLOCK_TAGS = frozenset(
    {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd"}
    | {"blockquote", "pre", "table", "tr", "section", "article", "header", "footer", "aside"}
    | {"figure", "figcaption", "br", "hr"}
)


def plain_text(text: str) -> str:
    """Plain text tidied: control characters gone, spaces collapsed, paragraphs kept.
    `<`, `>` and `&` are characters here, not markup."""
    text = clean_text(text[:MAX_CONTENT_HTML])
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(fragment: str) -> str:
    """A feed's HTML snippet as plain text, paragraphs kept, entities decoded once.
    Parsed by lxml; tolerates any garbage."""
    fragment = clean_text(fragment[:MAX_CONTENT_HTML])  # lxml refuses control characters
    if "<" not in fragment and "&" not in fragment:
        return plain_text(fragment)
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div", parser=parser)
    except (lxml.etree.LxmlError, ValueError):
        return _strip_markup(fragment)
    if any(e.level_name == "FATAL" for e in parser.error_log):
        # libxml2 stopped early (e.g. nesting over its depth limit) and dropped the rest:
        # a hostile fragment must not hide its text that way
        return _strip_markup(fragment)
    for el in list(root.iter(*_DROP_TAGS)):
        el.drop_tree()  # drops the element and its text; the text after it stays
    for el in root.iter(*_BLOCK_TAGS):
        el.tail = "\n\n" + (el.tail or "")
        if el.tag != "br":
            el.text = "\n\n" + (el.text or "")
    return plain_text(root.text_content())


# A start or end tag, a comment/doctype or a processing instruction. `[^<>]*` keeps the
# scan linear; "5 < 6" is not a tag (a tag name starts right after the "<").
_TAG = re.compile(r"<(/?)([A-Za-z][\w:.-]*)[^<>]*>|<[!?][^<>]*>")


def _strip_markup(fragment: str) -> str:
    """The fallback when the parser gives up: drop tags and the content of code
    elements with a linear scan, keep every other character."""
    out: list[str] = []
    lower = fragment.lower()
    pos = 0
    while (m := _TAG.search(fragment, pos)) is not None:
        out.append(html.unescape(fragment[pos : m.start()]))
        name = (m.group(2) or "").lower()
        pos = m.end()
        if name in _BLOCK_TAGS:
            out.append("\n\n")
        if name in _DROP_TAGS and not m.group(1):
            close = lower.find(f"</{name}", pos)
            end = fragment.find(">", close) if close >= 0 else -1
            pos = end + 1 if end >= 0 else len(fragment)
    out.append(html.unescape(fragment[pos:]))
    return plain_text("".join(out))


def _paragraphs_html(text: str) -> str:
    return "".join(f"<p>{html.escape(p.strip())}</p>" for p in str(text).split("\n\n") if p.strip())


# A listing page is hostile input: bound what one page can make us do (docs/config.md).
MAX_LINK_CHARS = 2000  # longer hrefs are skipped: no article URL is that long
MAX_PAGE_ANCHORS = 5000  # anchors examined per page; the rest of the page is ignored


def page_links(html_text: str, base_url: str, follow: str | None, limit: int = 500) -> list[str]:
    """Article links on a listing page: absolute http(s) URLs matching `follow`, in page order.

    `follow` runs with RE2 (worker.core.patterns), in time linear in the link, so a
    hostile link cannot stall the worker; a pattern RE2 refuses raises FeedError.
    """
    from lxml import html as lxml_html

    try:
        pattern = compile_pattern(follow) if follow else None
    except PatternError as exc:  # check-config refuses it first; a source error, not a crash
        raise FeedError(f"'follow' pattern refused: {exc}") from None
    try:
        doc = lxml_html.document_fromstring(html_text)
    except Exception:  # lxml raises several types on garbage; a listing with none has no links
        return []
    base_host = urlsplit(base_url).hostname
    seen: dict[str, None] = {}
    for n, a in enumerate(doc.iter("a")):
        if n >= MAX_PAGE_ANCHORS:
            break
        href = a.get("href")
        if not href or len(href) > MAX_LINK_CHARS:
            continue
        url = _abs(href, base_url)
        if not url or len(url) > MAX_LINK_CHARS:
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
