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

import email.utils
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
import jinja2.sandbox

from worker.alerts.display import neutralise, neutralise_spans, percent_encode_format
from worker.config import ChannelSpec
from worker.core.model import Article, Hit, WatchlistMatch

PAYLOAD_TYPE = "newswatch.match"
PAYLOAD_VERSION = 1

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

SUBJECT_MAX = 200  # long subjects are folded by the policy, but mail clients cut them anyway
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


def _atom(text: str, fallback_len: int = 32) -> str:
    """A token safe as the left part of a Message-ID or a List-Id label."""
    if re.fullmatch(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*", text):
        return text
    # Deterministic, so ids stay stable even when the input needs replacing.
    return hashlib.sha256(text.encode()).hexdigest()[:fallback_len]


def _list_label(name: str) -> str:
    """'Iraq militias' -> 'iraq-militias' for a List-Id (RFC 2919 wants a dot-atom)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return label or _atom(name, 16)


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
    # Snippets are for reading in one glance: newlines become spaces.
    return tuple(Segment(_WS_RE.sub(" ", s.text), s.hit) for s in out)


def _as_utc(moment: datetime) -> datetime:
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
    utc = _as_utc(moment)
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
    return _as_utc(moment).isoformat().replace("+00:00", "Z")


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
        a, **texts, url=link(a.url) or "", image_url=link(a.image_url),
        authors=tuple(neutralise(x) for x in a.authors), tags=tuple(neutralise(x) for x in a.tags),
        source=neutralise(a.source), language=neutralise(a.language) if a.language else a.language,
    )  # fmt: skip
    match = replace(
        m, watchlist=neutralise(m.watchlist), hits=tuple(hits), snippet=snippet,
        highlights=highlights, names=tuple(neutralise(x) for x in m.names),
    )  # fmt: skip
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


# --- email ---------------------------------------------------------------------


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    # Built on first use rather than at import (no import-time side effects).
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        # *.html.j2 is escaped, *.txt.j2 is not: plain text must not show "&amp;".
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=32)
def _subject_template(source: str) -> jinja2.Template:
    # Operators write subject templates in config; the sandbox keeps them to data access.
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(source)


def _group(stories: Sequence[Story]) -> list[tuple[str, list[Story]]]:
    """Digest order: watchlists by name; stories as given (the caller's ranking)."""
    groups: dict[str, list[Story]] = {}
    for s in stories:
        groups.setdefault(s.watchlist, []).append(s)
    return sorted(groups.items())


def _merge_same_story(alerts: Sequence[Alert]) -> list[Alert]:
    """One entry per (watchlist, article) even if the caller passes repeats."""
    seen: dict[tuple[str, str], Alert] = {}
    for alert in alerts:
        key = (alert.watchlist, alert.article.content_hash or alert.article.url)
        if key in seen:
            first = seen[key]
            extra = tuple(o for o in alert.other_sources if o not in first.other_sources)
            seen[key] = Alert(
                first.delivery_id,
                first.watchlist,
                first.article,
                first.match,
                first.other_sources + extra,
            )
        else:
            seen[key] = alert
    return list(seen.values())


def message_id(delivery_ids: Sequence[str]) -> str:
    """`<{id}@newswatch>` for one alert; a digest's id is a hash of its sorted ids."""
    if len(delivery_ids) == 1:
        return f"<{_atom(delivery_ids[0])}@newswatch>"
    digest = hashlib.sha256("\n".join(sorted(delivery_ids)).encode()).hexdigest()[:32]
    return f"<digest-{digest}@newswatch>"


def email_subject(
    alerts: Sequence[Alert], stories: Sequence[Story], subject_template: str | None = None
) -> str:
    watchlists = sorted({a.watchlist for a in alerts})
    if subject_template:
        subject = _subject_template(subject_template).render(
            count=len(alerts),
            watchlists=watchlists,
            watchlist=watchlists[0],
            title=stories[0].title,
            source=stories[0].source,
            names=stories[0].names,
        )
    elif len(alerts) == 1:
        subject = f"[{alerts[0].watchlist}] {stories[0].title}"
    else:
        subject = f"[newswatch] {len(alerts)} alerts: {', '.join(watchlists)}"
    return truncate(one_line(subject), SUBJECT_MAX)


def render_email(
    alerts: Sequence[Alert],
    channel: ChannelSpec,
    sender: str,
    *,
    subject_template: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """A multipart/alternative (text + HTML) email for one alert or a digest of several.

    `now` sets the Date header; without it the SMTP adapter stamps one at send time.
    """
    if not alerts:
        raise ValueError("render_email needs at least one alert")
    # Every delivery in the email is named in its ids, merged repeats included.
    ids = sorted({a.delivery_id for a in alerts})
    alerts = _merge_same_story([displayable(a) for a in alerts])
    stories = [story(a, channel.timezone) for a in alerts]
    context: dict[str, Any] = {
        "groups": _group(stories),
        "count": len(stories),
        "digest": len(stories) > 1,
        "channel": channel.name,
        "timezone": channel.timezone,
        "text_highlight": _text_highlight,
    }
    env = _templates()
    text = env.get_template("email.txt.j2").render(context).lstrip("\n")
    html = env.get_template("email.html.j2").render(context)

    watchlists = sorted({a.watchlist for a in alerts})
    msg = EmailMessage()  # policy.default: refuses CR/LF in header values, encodes non-ASCII
    msg["Subject"] = email_subject(alerts, stories, subject_template)
    msg["From"] = sender
    msg["To"] = ", ".join(channel.email)
    msg["Message-ID"] = message_id(ids)
    list_name = watchlists[0] if len(watchlists) == 1 else channel.name
    msg["List-Id"] = f"<{_list_label(list_name)}.newswatch>"
    msg["X-Newswatch-Delivery"] = " ".join(ids)
    msg["X-Newswatch-Watchlist"] = ", ".join(_list_label(w) for w in watchlists)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to alerts
    if now is not None:
        msg["Date"] = email.utils.format_datetime(_as_utc(now))
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def _text_highlight(segments: Sequence[Segment]) -> str:
    return "".join(f"**{s.text}**" if s.hit else s.text for s in segments)


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
            "hits": [
                {
                    "field": h.field,
                    "start": h.start,
                    "end": h.end,
                    "text": h.text,
                    "term": h.term,
                    "entity": h.entity,
                }
                for h in m.hits
            ],
        },
        "other_sources": [{"source": name, "url": url} for name, url in alert.other_sources],
    }


# --- chat formats ------------------------------------------------------------------

# Documented platform limits (see docs/alerts.md for the sources).
SLACK_TEXT_MAX = 3000  # section block text, and the top-level fallback we send
SLACK_HEADER_MAX = 150  # header block plain_text
SLACK_FIELD_MAX = 2000  # each section field
SLACK_CONTEXT_MAX = 10  # elements in a context block
SLACK_BUTTON_TEXT_MAX = 75
SLACK_URL_MAX = 3000
DISCORD_CONTENT_MAX = 2000
DISCORD_TITLE_MAX = 256
DISCORD_DESCRIPTION_MAX = 4096
DISCORD_FIELD_NAME_MAX = 256
DISCORD_FIELD_VALUE_MAX = 1024
DISCORD_FOOTER_MAX = 2048
DISCORD_AUTHOR_MAX = 256
DISCORD_EMBED_TOTAL_MAX = 6000  # all text in all embeds of one message
TEAMS_PAYLOAD_MAX = 28 * 1024  # bytes; Teams rejects larger incoming-webhook messages
TEAMS_TEXT_MAX = 2000  # our own cap per TextBlock: keeps the card well under 28 KB

ChatFormat = Literal["slack", "teams", "discord"]


def _fit(raw: str, room: int, escape: Callable[[str], str]) -> str:
    """The longest prefix of `raw` whose escaped form is at most `room` characters."""
    lo, hi = 0, min(len(raw), max(room, 0))
    while lo < hi:  # escaping only grows text, so fitting is monotone: bisect
        mid = (lo + hi + 1) // 2
        if len(escape(raw[:mid])) <= room:
            lo = mid
        else:
            hi = mid - 1
    return raw[:lo]


def _marked(
    segments: Sequence[Segment],
    limit: int,
    escape: Callable[[str], str],
    mark: tuple[str, str],
) -> str:
    """Segments -> highlighted markup of at most `limit` characters.

    Escaping happens per segment before measuring, so a cut never splits an
    escape sequence or leaves a highlight unclosed.
    """
    marks = len(mark[0]) + len(mark[1])
    pieces = [(escape(s.text), s) for s in segments]
    if sum(len(p) + (marks if s.hit else 0) for p, s in pieces) <= limit:
        return "".join(f"{mark[0]}{p}{mark[1]}" if s.hit else p for p, s in pieces)
    ellipsis = "…"
    budget = limit - len(ellipsis)
    out: list[str] = []
    for piece, seg in pieces:
        extra = marks if seg.hit else 0
        if len(piece) + extra > budget:
            piece = escape(_fit(seg.text, budget - extra, escape))
            if piece:
                out.append(f"{mark[0]}{piece}{mark[1]}" if seg.hit else piece)
            break
        out.append(f"{mark[0]}{piece}{mark[1]}" if seg.hit else piece)
        budget -= len(piece) + extra
    return "".join(out) + ellipsis


def _join_fitting(items: Sequence[str], sep: str, limit: int) -> str:
    """Join whole items (links) while they fit; never cut one in half."""
    out = ""
    for i, item in enumerate(items):
        candidate = item if not out else out + sep + item
        more = i < len(items) - 1
        if len(candidate) + (len(sep) + 1 if more else 0) > limit:
            return (out + sep + "…") if out else truncate(item, limit)
        out = candidate
    return out


def slack_escape(text: str) -> str:
    # Slack's only required escapes; they also stop <!channel> and <@U123> injection.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Markdown that could change how article text renders; mentions are handled by
# `allowed_mentions`, and links need "[", so escaping these is enough.
_DISCORD_MD_RE = re.compile(r"([\\*_~`|<>\[\]#])")


def discord_escape(text: str) -> str:
    """Backslash-escape markdown so article text renders literally in Discord."""
    return _DISCORD_MD_RE.sub(r"\\\1", text)


def _teams_escape(text: str) -> str:
    # Adaptive Card TextBlocks render a markdown subset; neutralise the emphasis and
    # link characters that article text might carry (there is no backslash escape).
    # U+2217 ASTERISK OPERATOR and fullwidth brackets look the same but are not markup.
    return text.replace("*", "\u2217").replace("[", "\uff3b").replace("]", "\uff3d")


def _slack_date(published: datetime | None) -> str:
    if published is None:
        return "unknown"
    ts = int(_as_utc(published).timestamp())
    fallback = iso_time(published)
    # Slack renders this in each reader's own time zone.
    return f"<!date^{ts}^{{date_short_pretty}} {{time}}|{fallback}>"


def _slack_payload(alert: Alert) -> dict[str, Any]:
    s = story(alert)
    fields = [
        f"*Watchlist*\n{slack_escape(s.watchlist)}",
        f"*Matched*\n{slack_escape(', '.join(s.names))}",
        f"*Source*\n{slack_escape(s.source or '-')}",
        f"*Published*\n{_slack_date(alert.article.published)}",
    ]
    if s.authors:
        fields.append(f"*By*\n{slack_escape(', '.join(s.authors))}")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(s.title, SLACK_HEADER_MAX),
                "emoji": False,
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _marked(s.segments, SLACK_TEXT_MAX, slack_escape, ("*", "*")) or NO_EXCERPT,
            },
        },
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": truncate(f, SLACK_FIELD_MAX)} for f in fields],
        },
    ]
    others = [(n, u) for n, u in s.other_sources if u and len(u) < SLACK_URL_MAX - 100]
    if others:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": truncate(f"Also: <{u}|{slack_escape(n or u)}>", SLACK_TEXT_MAX),
                    }
                    for n, u in others[:SLACK_CONTEXT_MAX]
                ],
            }
        )
    if s.url and len(s.url) <= SLACK_URL_MAX:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open article"},
                        "url": s.url,
                        "action_id": "open_article",
                    }
                ],
            }
        )
    # `text` is the notification / fallback line; blocks are what the channel shows.
    fallback = slack_escape(f"[{s.watchlist}] {s.title}")
    return {
        "text": truncate(fallback, SLACK_TEXT_MAX),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _discord_payload(alert: Alert) -> dict[str, Any]:
    s = story(alert)
    fields = [
        {"name": "Watchlist", "value": discord_escape(s.watchlist), "inline": True},
        {"name": "Matched", "value": discord_escape(", ".join(s.names)) or "-", "inline": True},
        {"name": "Source", "value": discord_escape(s.source) or "-", "inline": True},
    ]
    others = [f"[{discord_escape(n or 'link')}]({u})" for n, u in s.other_sources if u]
    if others:
        value = _join_fitting(others, ", ", DISCORD_FIELD_VALUE_MAX)
        fields.append({"name": "Also reported by", "value": value, "inline": False})
    for f in fields:
        f["value"] = truncate(f["value"], DISCORD_FIELD_VALUE_MAX)
    embed: dict[str, Any] = {
        "title": truncate(s.title, DISCORD_TITLE_MAX),
        "description": _marked(s.segments, DISCORD_DESCRIPTION_MAX, discord_escape, ("**", "**"))
        or NO_EXCERPT,
        "fields": fields,
        "footer": {"text": truncate(f"newswatch · {s.delivery_id}", DISCORD_FOOTER_MAX)},
        "color": 0xD9480F,
    }
    if s.url:
        embed["url"] = s.url
    if s.authors:
        embed["author"] = {"name": truncate(", ".join(s.authors), DISCORD_AUTHOR_MAX)}
    if alert.article.published is not None:
        embed["timestamp"] = iso_time(alert.article.published)  # Discord localises it
    _fit_discord_embed(embed)
    return {
        "content": truncate(discord_escape(f"[{s.watchlist}] {s.title}"), DISCORD_CONTENT_MAX),
        "embeds": [embed],
        # Article text must never ping anyone (@everyone, role or user mentions).
        "allowed_mentions": {"parse": []},
    }


def discord_embed_chars(embed: dict[str, Any]) -> int:
    """Characters Discord counts toward its 6000 per-message embed limit."""
    n = len(embed.get("title", "")) + len(embed.get("description", ""))
    n += len(embed.get("footer", {}).get("text", "")) + len(embed.get("author", {}).get("name", ""))
    n += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    return n


def _fit_discord_embed(embed: dict[str, Any]) -> None:
    over = discord_embed_chars(embed) - DISCORD_EMBED_TOTAL_MAX
    if over > 0:  # the snippet is the longest part; shorten it first
        desc = embed["description"]
        embed["description"] = truncate(desc, max(1, len(desc) - over))


def _teams_payload(alert: Alert) -> dict[str, Any]:
    s = story(alert)
    published = iso_time(alert.article.published)
    facts = [
        {"title": "Watchlist", "value": _teams_escape(s.watchlist)},
        {"title": "Matched", "value": _teams_escape(", ".join(s.names)) or "-"},
        {"title": "Source", "value": _teams_escape(s.source) or "-"},
    ]
    if s.authors:
        facts.append({"title": "By", "value": _teams_escape(", ".join(s.authors))})
    for f in facts:
        f["value"] = truncate(f["value"], TEAMS_TEXT_MAX)
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": truncate(_teams_escape(s.title), TEAMS_TEXT_MAX),
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": _marked(s.segments, TEAMS_TEXT_MAX, _teams_escape, ("**", "**")) or NO_EXCERPT,
            "wrap": True,
        },
        {"type": "FactSet", "facts": facts},
    ]
    if published:
        # DATE()/TIME() are TextBlock functions that render in the reader's time zone.
        body.append(
            {
                "type": "TextBlock",
                "text": f"Published {{{{DATE({published}, SHORT)}}}} {{{{TIME({published})}}}}",
                "wrap": True,
                "isSubtle": True,
            }
        )
    links = [f"[{_teams_escape(n or 'link')}]({u})" for n, u in s.other_sources if u]
    if links:
        body.append(
            {
                "type": "TextBlock",
                "text": "Also reported by: "
                + _join_fitting(links, ", ", TEAMS_TEXT_MAX - len("Also reported by: ")),
                "wrap": True,
                "isSubtle": True,
            }
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if s.url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open article", "url": s.url}]
    # The "message with attachments" envelope is what both classic incoming
    # webhooks and Power Automate "post to a channel when a webhook request is
    # received" workflows accept.
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


_CHAT_RENDERERS: dict[str, Callable[[Alert], dict[str, Any]]] = {
    "slack": _slack_payload,
    "teams": _teams_payload,
    "discord": _discord_payload,
}


def chat_payload(alert: Alert, fmt: ChatFormat) -> dict[str, Any]:
    """The JSON body for a Slack, Microsoft Teams or Discord incoming webhook."""
    try:
        render = _CHAT_RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown chat format {fmt!r} (slack, teams, discord)") from None
    return render(displayable(alert))
