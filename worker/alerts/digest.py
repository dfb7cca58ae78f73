"""Rendering for what the outbox sends besides single alerts: digests, story
updates and operational notices. Pure, like `render.py`, whose pieces it reuses.

- A digest email is `render.render_email` with several alerts (grouped by
  watchlist, then story) and a Message-ID taken from the batch id.
- A digest webhook is one `newswatch.digest` payload carrying the single-alert
  payloads; a digest chat post is one message listing the stories per watchlist.
- An update is a normal alert whose payload says `"kind": "update"`.
- A notice is a short plain message (`newswatch.notice`).
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from worker.alerts.chat import (
    DISCORD_CONTENT_MAX,
    DISCORD_DESCRIPTION_MAX,
    DISCORD_EMBED_TOTAL_MAX,
    SLACK_TEXT_MAX,
    TEAMS_TEXT_MAX,
    chat_payload,
    discord_escape,
    slack_escape,
    teams_escape,
    teams_message,
)
from worker.alerts.display import neutralise
from worker.alerts.mail import render_email
from worker.alerts.render import (
    PAYLOAD_VERSION,
    Alert,
    displayable,
    iso_time,
    one_line,
    story,
    truncate,
    webhook_payload,
)
from worker.core.channels import ChannelInfo

DIGEST_TYPE = "newswatch.digest"
NOTICE_TYPE = "newswatch.notice"
UPDATE_SUBJECT = "[{{ watchlist }}] Update: {{ title }} ({{ source }})"
SLACK_BLOCKS_MAX = 50  # Slack refuses messages with more blocks
DISCORD_EMBEDS_MAX = 10
TEAMS_DIGEST_TEXT_TOTAL = 16000  # characters of story lines in one Teams digest card


# --- updates ---------------------------------------------------------------------


def update_email(alert: Alert, channel: ChannelInfo, sender: str) -> EmailMessage:
    """The new source of an already-alerted story, marked as an update."""
    return render_email([alert], channel, sender, subject_template=UPDATE_SUBJECT)


def update_payload(alert: Alert) -> dict[str, Any]:
    # an optional key inside version 1 (receivers ignore keys they do not know)
    return {**webhook_payload(alert), "kind": "update"}


def update_chat(alert: Alert, fmt: str) -> dict[str, Any]:
    payload = chat_payload(alert, fmt)  # type: ignore[arg-type]
    if fmt == "slack":
        payload["text"] = truncate("Update: " + payload["text"], SLACK_TEXT_MAX)
    elif fmt == "discord":
        payload["content"] = truncate("Update: " + payload["content"], DISCORD_CONTENT_MAX)
    else:  # teams: a first TextBlock saying what this is
        payload["attachments"][0]["content"]["body"].insert(
            0, {"type": "TextBlock", "text": "Update: another source", "isSubtle": True}
        )
    return payload


# --- digests ---------------------------------------------------------------------


def digest_message_id(batch_id: str) -> str:
    return f"<digest-{batch_id}@newswatch>"


def digest_email(
    batch_id: str, alerts: Sequence[Alert], channel: ChannelInfo, sender: str
) -> EmailMessage:
    msg = render_email(alerts, channel, sender)
    # Stable for the batch whatever its size: a resend after a crash has the same id.
    msg.replace_header("Message-ID", digest_message_id(batch_id))
    msg["X-Newswatch-Digest"] = batch_id
    return msg


def digest_payload(batch_id: str, channel: str, alerts: Sequence[Alert]) -> dict[str, Any]:
    return {
        "type": DIGEST_TYPE,
        "version": PAYLOAD_VERSION,
        "id": batch_id,
        "channel": channel,
        "count": len(alerts),
        "alerts": [webhook_payload(a) for a in alerts],
    }


def _by_watchlist(alerts: Sequence[Alert]) -> list[tuple[str, list[Alert]]]:
    groups: dict[str, list[Alert]] = {}
    for a in alerts:
        groups.setdefault(a.watchlist, []).append(a)
    return sorted(groups.items())


def _lines(alerts: Sequence[Alert], link: Any, escape: Any, limit: int, sep: str = "\n") -> str:
    """One line per story, whole lines only, then "… and N more"."""
    out: list[str] = []
    used = 0
    for i, a in enumerate(alerts):
        s = story(a)
        title = escape(truncate(s.title, 200))
        head = link(title, s.url) if s.url else title
        line = f"• {head} — {escape(', '.join(s.names))} ({escape(s.source or '-')})"
        if s.other_sources:
            line += escape(f" +{len(s.other_sources)} more source(s)")
        more = f"… and {len(alerts) - i} more"
        if used + len(line) + len(sep) + len(more) > limit:
            out.append(more)
            break
        out.append(line)
        used += len(line) + len(sep)
    return sep.join(out)


def digest_chat(alerts: Sequence[Alert], fmt: str) -> dict[str, Any]:
    """One chat message listing the batch's stories, grouped by watchlist."""
    groups = _by_watchlist([displayable(a) for a in alerts])
    title = f"newswatch digest: {len(alerts)} alert(s)"
    if fmt == "slack":
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": False}}
        ]
        for name, items in groups[: (SLACK_BLOCKS_MAX - 1) // 2]:
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*{slack_escape(name)}* ({len(items)})"},
                }
            )
            text = _lines(items, lambda t, u: f"<{u}|{t}>", slack_escape, SLACK_TEXT_MAX - 10)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        return {"text": title, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}
    if fmt == "discord":
        shown = groups[:DISCORD_EMBEDS_MAX]
        # all embeds of one message share Discord's 6000-character total
        room = min(DISCORD_DESCRIPTION_MAX, (DISCORD_EMBED_TOTAL_MAX - 400) // max(len(shown), 1))
        embeds = [
            {
                "title": truncate(discord_escape(name), 32),
                "description": _lines(items, lambda t, u: f"[{t}]({u})", discord_escape, room),
            }
            for name, items in shown
        ]
        return {"content": title, "embeds": embeds, "allowed_mentions": {"parse": []}}
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "size": "Medium", "weight": "Bolder", "wrap": True}
    ]
    # the whole card stays well under Teams' 28 KB whatever the number of watchlists
    room = min(TEAMS_TEXT_MAX, TEAMS_DIGEST_TEXT_TOTAL // max(len(groups), 1))
    for name, items in groups:
        body.append(
            {
                "type": "TextBlock",
                "text": truncate(f"{teams_escape(name)} ({len(items)})", 200),
                "weight": "Bolder",
            }
        )
        text = _lines(items, lambda t, u: f"[{t}]({u})", teams_escape, room, "\n\n")
        body.append({"type": "TextBlock", "text": text, "wrap": True})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return teams_message(card)


# --- notices ---------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """An operational notice: what happened (`event`), a one-line title and a text."""

    id: str  # the delivery id: Message-ID / webhook-id
    event: str  # source_failing | delivery_dead | config_rejected
    title: str
    text: str
    at: datetime


def _displayable(n: Notice) -> Notice:
    # notice texts quote source names and server answers: no invisible format characters
    return Notice(n.id, n.event, neutralise(n.title), neutralise(n.text), n.at)


def notice_email(n: Notice, channel: ChannelInfo, sender: str) -> EmailMessage:
    n = _displayable(n)
    msg = EmailMessage()
    msg["Subject"] = truncate(one_line(f"[newswatch] {n.title}"), 200)
    msg["From"] = sender
    msg["To"] = ", ".join(channel.email)
    msg["Message-ID"] = f"<notice-{n.id}@newswatch>"
    msg["Date"] = email.utils.format_datetime(n.at)
    msg["X-Newswatch-Notice"] = n.event
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(f"{n.title}\n\n{n.text}\n\n-- \nnewswatch operational notice ({n.event})\n")
    return msg


def notice_payload(n: Notice) -> dict[str, Any]:
    n = _displayable(n)
    return {
        "type": NOTICE_TYPE,
        "version": PAYLOAD_VERSION,
        "id": n.id,
        "event": n.event,
        "title": n.title,
        "text": n.text,
        "at": iso_time(n.at),
    }


def notice_chat(n: Notice, fmt: str) -> dict[str, Any]:
    n = _displayable(n)
    if fmt == "slack":
        text = truncate(slack_escape(f"newswatch: {n.title}\n{n.text}"), SLACK_TEXT_MAX)
        section = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        return {"text": truncate(slack_escape(n.title), SLACK_TEXT_MAX), "blocks": [section]}
    if fmt == "discord":
        embed = {
            "title": truncate(discord_escape(n.title), 256),
            "description": truncate(discord_escape(n.text), DISCORD_DESCRIPTION_MAX) or "-",
        }
        content = truncate(discord_escape(f"newswatch: {n.title}"), DISCORD_CONTENT_MAX)
        return {"content": content, "embeds": [embed], "allowed_mentions": {"parse": []}}
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": truncate(teams_escape(n.title), TEAMS_TEXT_MAX),
                "weight": "Bolder",
                "wrap": True,
            },
            {
                "type": "TextBlock",
                "text": truncate(teams_escape(n.text), TEAMS_TEXT_MAX),
                "wrap": True,
            },
        ],
    }
    return teams_message(card)
