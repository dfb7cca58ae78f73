"""Alert emails: one alert or a digest of several as multipart/alternative (text + HTML),
with a subject from the channel's template. Pure, like worker/alerts/render.py."""

from __future__ import annotations

import email.utils
import hashlib
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from worker.alerts.render import (
    Alert,
    Segment,
    Story,
    as_utc,
    atom,
    displayable,
    list_label,
    one_line,
    story,
    truncate,
)
from worker.core.channels import ChannelInfo

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

SUBJECT_MAX = 200  # long subjects are folded by the policy, but mail clients cut them anyway


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
        return f"<{atom(delivery_ids[0])}@newswatch>"
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
    channel: ChannelInfo,
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
    msg["List-Id"] = f"<{list_label(list_name)}.newswatch>"
    msg["X-Newswatch-Delivery"] = " ".join(ids)
    msg["X-Newswatch-Watchlist"] = ", ".join(list_label(w) for w in watchlists)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to alerts
    if now is not None:
        msg["Date"] = email.utils.format_datetime(as_utc(now))
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def _text_highlight(segments: Sequence[Segment]) -> str:
    return "".join(f"**{s.text}**" if s.hit else s.text for s in segments)
