"""Alert rendering: a watchlist match -> an email, a webhook payload, a chat message.

Pure: no network, database, clock or environment. Everything a renderer needs
(the match, the article, the channel's time zone, the send time) comes in as
arguments, so the same input always renders the same bytes -- which is what
makes a resend after a crash recognisable as a duplicate by the receiver.

Article text is hostile input. It reaches three kinds of output, each with its
own escaping rule:

- email headers: collapsed to one line (a CR/LF in a title must never start a
  new header) and left to `email.policy.default` to encode;
- HTML: Jinja2 autoescaping, and only http(s) links become `href`s;
- chat markup (Slack mrkdwn, Discord markdown): escaped per platform, and
  Discord mentions are switched off so a title cannot ping `@everyone`.

Before any of that, every text field of the alert loses its invisible format
characters (bidi overrides, zero-width characters: `worker.alerts.display`), so no
output can show a reader something other than what the text says. Dates render
for every representable datetime in every zone: at the ends of the calendar
they are clamped, or shown in UTC, never an exception.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.alerts.display import neutralise, neutralise_spans, percent_encode_format
from worker.core.model import Article, Hit, WatchlistMatch

PAYLOAD_TYPE = "newswatch.match"
PAYLOAD_VERSION = 1

SNIPPET_FALLBACK_CHARS = 240  # context either side of a hit when the matcher gave no snippet
LEAD_MAX = 1000  # webhook payloads carry the lead, never the whole body
NO_EXCERPT = "(no excerpt)"  # chat platforms reject empty text fields


@dataclass(frozen=True)
class Alert:
    """One (match, channel) delivery to render."""

    delivery_id: str  # stable; the idempotency key (Message-ID, webhook-id)
    watchlist: str
    article: Article
    match: WatchlistMatch
    other_sources: tuple[tuple[str, str], ...] = ()  # (source name, url) of the same story


@dataclass(frozen=True)
class Segment:
    """A piece of snippet text; `hit` pieces are the watched terms to highlight."""

    text: str
    hit: bool


# --- small text helpers --------------------------------------------------------

_WS_RE = re.compile(r"\s+")
# C0/C1 controls other than whitespace: never useful in a header or a chat message
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """Collapse all whitespace (CR, LF, tabs, Unicode separators) to single spaces;
    no control or invisible format characters."""
    return _WS_RE.sub(" ", _CTRL_RE.sub("", neutralise(text))).strip()


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """Cut `text` to at most `limit` characters, marking the cut."""
    if len(text) <= limit:
        return text
    if limit <= len(ellipsis):
        return text[:limit]
    return text[: limit - len(ellipsis)].rstrip() + ellipsis


def safe_url(url: str | None) -> str | None:
    """Only http(s) URLs become links; anything else (javascript:, data:) is dropped."""
    if url and re.match(r"^https?://[^\s]+$", url.strip(), re.I):
        return percent_encode_format(url.strip())
    return None


def atom(text: str, fallback_len: int = 32) -> str:
    """A token safe as the left part of a Message-ID or a List-Id label."""
    if re.fullmatch(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*", text):
        return text
    # Deterministic, so ids stay stable even when the input needs replacing.
    return hashlib.sha256(text.encode()).hexdigest()[:fallback_len]


def list_label(name: str) -> str:
    """'Iraq militias' -> 'iraq-militias' for a List-Id (RFC 2919 wants a dot-atom)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return label or atom(name, 16)


# --- the pieces every format shares ------------------------------------------------


def matched_names(match: WatchlistMatch) -> tuple[str, ...]:
    """Entity names / terms that matched, in first-seen order."""
    if match.names:
        return match.names
    seen: dict[str, None] = {}
    for hit in match.hits:
        seen.setdefault(hit.entity or hit.term, None)
    return tuple(seen)


def _field_text(article: Article, field: str) -> str:
    return {"title": article.title, "lead": article.lead, "body": article.body}.get(field, "")


def _fallback_snippet(
    article: Article, hits: Iterable[Hit]
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """When the matcher gave no snippet, cut one around the first hit in a text field."""
    for hit in hits:
        text = _field_text(article, hit.field)
        if text and 0 <= hit.start < hit.end <= len(text):
            lo = max(0, hit.start - SNIPPET_FALLBACK_CHARS)
            hi = min(len(text), hit.end + SNIPPET_FALLBACK_CHARS)
            # every hit of the same field inside the window is highlighted too
            spans = tuple(
                (h.start - lo, h.end - lo)
                for h in hits
                if h.field == hit.field and lo <= h.start < h.end <= hi
            )
            prefix = "…" if lo else ""
            suffix = "…" if hi < len(text) else ""
            shift = len(prefix)
            return (
                prefix + text[lo:hi] + suffix,
                tuple((s + shift, e + shift) for s, e in spans),
            )
    text = article.lead or article.body or article.title
    return truncate(one_line(text), 2 * SNIPPET_FALLBACK_CHARS), ()


def snippet_segments(match: WatchlistMatch, article: Article) -> tuple[Segment, ...]:
    """The snippet split into plain and highlighted pieces.

    Highlight spans are clamped to the snippet and merged when they overlap, so a
    bad span from the matcher can shift a highlight but never break the output.
    """
    snippet, spans = match.snippet, match.highlights
    if not snippet:
        snippet, spans = _fallback_snippet(article, match.hits)
    # Snippets are for reading in one glance: newlines become spaces.
    return tuple(Segment(_WS_RE.sub(" ", s.text), s.hit) for s in split_highlights(snippet, spans))


# a stored span: a tuple from the matcher, a list once it has been through JSON
_Span = TypeVar("_Span", tuple[int, int], tuple[int, ...], list[int])


def split_highlights(snippet: str, spans: Iterable[_Span]) -> tuple[Segment, ...]:
    """`snippet` cut into plain and highlighted pieces by stored (start, end) spans, clamped
    to the snippet and merged where they overlap: a bad span never breaks the output."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        start, end = max(0, start), min(len(snippet), end)
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[Segment] = []
    pos = 0
    for start, end in merged:
        if start > pos:
            out.append(Segment(snippet[pos:start], False))
        out.append(Segment(snippet[start:end], True))
        pos = end
    if pos < len(snippet):
        out.append(Segment(snippet[pos:], False))
    return tuple(out)


def as_utc(moment: datetime) -> datetime:
    # Articles carry timezone-aware UTC; a naive value is taken to be UTC, not local time.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # e.g. 0001-01-01 00:00+14:00 is before datetime.min in UTC: the nearest instant
        return (datetime.max if moment.year > 5000 else datetime.min).replace(tzinfo=UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # the config validates zones; never fail here
        return ZoneInfo("UTC")


def format_time(moment: datetime | None, timezone: str) -> str:
    """'2024-05-01 16:03 CEST' in the channel's zone, or '' when unknown.

    A moment that the zone's offset would push past year 9999 (or before year 1)
    is shown in UTC instead: still the true time, and no OverflowError.
    """
    if moment is None:
        return ""
    utc = as_utc(moment)
    try:
        local = utc.astimezone(_zone(timezone))
    except OverflowError:
        local = utc
    # by hand, not strftime: glibc's %Y does not pad years before 1000
    return (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d} "
        f"{local.hour:02d}:{local.minute:02d} {local.tzname() or 'UTC'}"
    )


def iso_time(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a 'Z', for machine-readable payloads."""
    if moment is None:
        return None
    return as_utc(moment).isoformat().replace("+00:00", "Z")


_TEXT_FIELDS = ("title", "lead", "body")


def displayable(alert: Alert) -> Alert:
    """The alert with no invisible format characters in any text field (the one place
    that does it: every renderer starts here). Hit and highlight offsets move with the
    text they point into; links keep working, their format characters percent-encoded."""
    a, m = alert.article, alert.match
    texts: dict[str, str] = {}
    spans: dict[str, list[tuple[int, int]]] = {}
    for name in _TEXT_FIELDS:
        own = [(h.start, h.end) for h in m.hits if h.field == name]
        texts[name], moved = neutralise_spans(getattr(a, name), own)
        spans[name] = list(moved)
    hits = []
    for h in m.hits:
        start, end = spans[h.field].pop(0) if h.field in spans else (h.start, h.end)
        entity = neutralise(h.entity) if h.entity is not None else None
        text, term = neutralise(h.text), neutralise(h.term)
        hits.append(replace(h, start=start, end=end, text=text, term=term, entity=entity))
    snippet, highlights = neutralise_spans(m.snippet, m.highlights)
    link = lambda u: percent_encode_format(u) if u else u  # noqa: E731
    article = replace(
        a,
        title=texts["title"],
        lead=texts["lead"],
        body=texts["body"],
        url=link(a.url) or "",
        image_url=link(a.image_url),
        authors=tuple(neutralise(x) for x in a.authors),
        tags=tuple(neutralise(x) for x in a.tags),
        source=neutralise(a.source),
        language=neutralise(a.language) if a.language else a.language,
    )
    match = replace(
        m,
        watchlist=neutralise(m.watchlist),
        hits=tuple(hits),
        snippet=snippet,
        highlights=highlights,
        names=tuple(neutralise(x) for x in m.names),
    )
    others = tuple((neutralise(n), link(u) or "") for n, u in alert.other_sources)
    return Alert(alert.delivery_id, neutralise(alert.watchlist), article, match, others)


@dataclass(frozen=True)
class Story:
    """What every renderer shows for one alert, already cleaned for display."""

    delivery_id: str
    watchlist: str
    title: str
    url: str | None
    source: str
    authors: tuple[str, ...]
    published: str  # in the channel's time zone
    names: tuple[str, ...]
    segments: tuple[Segment, ...]
    other_sources: tuple[tuple[str, str | None], ...]


def story(alert: Alert, timezone: str = "UTC") -> Story:
    a = alert.article
    return Story(
        delivery_id=alert.delivery_id,
        watchlist=alert.watchlist,
        title=one_line(a.title) or "(untitled)",
        url=safe_url(a.url),
        source=one_line(a.source),
        authors=tuple(one_line(x) for x in a.authors if one_line(x)),
        published=format_time(a.published, timezone),
        names=tuple(one_line(n) for n in matched_names(alert.match)),
        segments=snippet_segments(alert.match, a),
        other_sources=tuple((one_line(name), safe_url(url)) for name, url in alert.other_sources),
    )


# --- webhook payload --------------------------------------------------------------


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """The versioned newswatch JSON payload (docs/webhook-payload.schema.json).

    Version 1. Adding optional keys is not a version change; renaming, removing or
    changing the meaning of one is.
    """
    alert = displayable(alert)
    a, m = alert.article, alert.match
    return {
        "type": PAYLOAD_TYPE,
        "version": PAYLOAD_VERSION,
        "id": alert.delivery_id,
        "watchlist": alert.watchlist,
        "article": {
            "url": a.url,
            "title": one_line(a.title),
            "source": a.source,
            "authors": list(a.authors),
            "published": iso_time(a.published),
            "modified": iso_time(a.modified),
            "language": a.language,
            "lead": truncate(a.lead, LEAD_MAX),
            "tags": list(a.tags),
            "image_url": a.image_url,
        },
        "match": {
            "names": list(matched_names(m)),
            "snippet": m.snippet,
            "highlights": [[s, e] for s, e in m.highlights],
            "hits": [h.to_json() for h in m.hits],
        },
        "other_sources": [{"source": name, "url": url} for name, url in alert.other_sources],
    }
