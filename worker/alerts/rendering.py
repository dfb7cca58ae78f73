"""How one message looks on each kind of channel. Pure: only the shape needed by the
channel it goes to is built, when the channel asks for it.

A message is an alert, a story update, a digest or an operational notice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from worker.alerts.chat import chat_payload
from worker.alerts.digest import (
    Notice,
    digest_chat,
    digest_email,
    digest_payload,
    notice_chat,
    notice_email,
    notice_payload,
    update_chat,
    update_email,
    update_payload,
)
from worker.alerts.mail import render_email
from worker.alerts.render import Alert, webhook_payload
from worker.core.channels import ChannelInfo


@dataclass(frozen=True)
class Rendering:
    """How one message looks on each kind of channel; only the one needed is built."""

    id: str  # idempotency key: webhook-id (the email builder sets its own Message-ID)
    email: Callable[[ChannelInfo, str], EmailMessage]  # (channel, sender) -> message
    payload: Callable[[], dict[str, Any]]  # the standard webhook / file payload
    chat: Callable[[str], dict[str, Any]]  # format -> slack/teams/discord body


def alert_rendering(alert: Alert, *, update: bool = False) -> Rendering:
    if update:
        return Rendering(
            alert.delivery_id,
            lambda ch, sender: update_email(alert, ch, sender),
            lambda: update_payload(alert),
            lambda fmt: update_chat(alert, fmt),
        )
    return Rendering(
        alert.delivery_id,
        lambda ch, sender: render_email([alert], ch, sender),
        lambda: webhook_payload(alert),
        lambda fmt: chat_payload(alert, fmt),  # type: ignore[arg-type]
    )


def digest_rendering(batch_id: str, channel_name: str, alerts: Sequence[Alert]) -> Rendering:
    return Rendering(
        batch_id,
        lambda ch, sender: digest_email(batch_id, alerts, ch, sender),
        lambda: digest_payload(batch_id, channel_name, alerts),
        lambda fmt: digest_chat(alerts, fmt),
    )


def notice_rendering(notice: Notice) -> Rendering:
    return Rendering(
        notice.id,
        lambda ch, sender: notice_email(notice, ch, sender),
        lambda: notice_payload(notice),
        lambda fmt: notice_chat(notice, fmt),
    )
