"""Chat payloads: an alert as a Slack, Microsoft Teams or Discord incoming-webhook body.

Pure, like worker/alerts/render.py. Article text is escaped per platform, every field
is cut to the platform's documented limit, and Discord mentions are switched off so a
title cannot ping `@everyone`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from worker.alerts.render import (
    NO_EXCERPT,
    Alert,
    Segment,
    Story,
    as_utc,
    displayable,
    iso_time,
    story,
    truncate,
)

# --- chat formats ------------------------------------------------------------------

# Documented platform limits (see docs/alerts.md for the sources).
SLACK_TEXT_MAX = 3000  # section block text, and the top-level fallback we send
SLACK_HEADER_MAX = 150  # header block plain_text
SLACK_FIELD_MAX = 2000  # each section field
SLACK_CONTEXT_MAX = 10  # elements in a context block
SLACK_URL_MAX = 3000
DISCORD_CONTENT_MAX = 2000
DISCORD_TITLE_MAX = 256
DISCORD_DESCRIPTION_MAX = 4096
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


def teams_escape(text: str) -> str:
    # Adaptive Card TextBlocks render a markdown subset; neutralise the emphasis and
    # link characters that article text might carry (there is no backslash escape).
    # U+2217 ASTERISK OPERATOR and fullwidth brackets look the same but are not markup.
    return text.replace("*", "\u2217").replace("[", "\uff3b").replace("]", "\uff3d")


def _slack_date(published: datetime | None) -> str:
    if published is None:
        return "unknown"
    ts = int(as_utc(published).timestamp())
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
    blocks += _slack_link_blocks(s)
    # `text` is the notification / fallback line; blocks are what the channel shows.
    fallback = slack_escape(f"[{s.watchlist}] {s.title}")
    return {
        "text": truncate(fallback, SLACK_TEXT_MAX),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _slack_link_blocks(s: Story) -> list[dict[str, Any]]:
    """The "also reported by" context and the "Open article" button, where there are links."""
    blocks: list[dict[str, Any]] = []
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
    return blocks


def _discord_payload(alert: Alert) -> dict[str, Any]:
    s = story(alert)
    fields: list[dict[str, Any]] = [
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
        {"title": "Watchlist", "value": teams_escape(s.watchlist)},
        {"title": "Matched", "value": teams_escape(", ".join(s.names)) or "-"},
        {"title": "Source", "value": teams_escape(s.source) or "-"},
    ]
    if s.authors:
        facts.append({"title": "By", "value": teams_escape(", ".join(s.authors))})
    for f in facts:
        f["value"] = truncate(f["value"], TEAMS_TEXT_MAX)
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": truncate(teams_escape(s.title), TEAMS_TEXT_MAX),
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": _marked(s.segments, TEAMS_TEXT_MAX, teams_escape, ("**", "**")) or NO_EXCERPT,
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
    links = [f"[{teams_escape(n or 'link')}]({u})" for n, u in s.other_sources if u]
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
    return _teams_message(body, s.url)


def _teams_message(body: list[dict[str, Any]], url: str | None) -> dict[str, Any]:
    """An Adaptive Card with `body` (and an "Open article" action) in its message envelope."""
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open article", "url": url}]
    return teams_message(card)


def teams_message(card: dict[str, Any]) -> dict[str, Any]:
    """A Teams message carrying one Adaptive Card: the "message with attachments"
    envelope both classic incoming webhooks and Power Automate workflows accept."""
    attachment = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": card,
    }
    return {"type": "message", "attachments": [attachment]}


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
