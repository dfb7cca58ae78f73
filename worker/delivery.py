"""Send one rendered message through its channel: email, webhook (standard or chat) or file.

A message is an alert, a story update, a digest or an operational notice; a
`Rendering` says how it looks on each kind of channel.

Every outcome comes back as data (`SendOutcome`): the pipeline records the
attempt and decides about retries; nothing here touches the database.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.config import ChannelSpec, Config
from worker.core.digest import (
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
from worker.core.render import Alert, chat_payload, render_email, webhook_payload

if TYPE_CHECKING:
    from worker.runtime import Runtime


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    permanent: bool = False  # retrying cannot help (bad address, 410 Gone, channel removed)
    retry_after: float | None = None
    disable: bool = False  # the receiver asked us to stop (410 Gone): switch the endpoint off


@dataclass(frozen=True)
class Rendering:
    """How one message looks on each kind of channel; only the one needed is built."""

    id: str  # idempotency key: webhook-id (the email builder sets its own Message-ID)
    email: Callable[[ChannelSpec, str], EmailMessage]  # (channel, sender) -> message
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


def send_rendering(rt: Runtime, channel_name: str, rendering: Rendering) -> SendOutcome:
    config = rt.config.current().loaded.config
    channel = next((c for c in config.channels if c.name == channel_name), None)
    if channel is None:
        return SendOutcome(
            False, error=f"channel {channel_name!r} is no longer configured", permanent=True
        )
    if channel.kind == "email":
        return _send_email(config, channel, rendering)
    if channel.kind == "webhook":
        return _send_webhook(rt, channel, rendering)
    return _append_file(channel, rendering, rt.settings.data_dir)


def _send_email(config: Config, channel: ChannelSpec, rendering: Rendering) -> SendOutcome:
    from worker.adapters.mail import MailError, SmtpSender

    smtp = channel.smtp or config.smtp
    message = rendering.email(channel, smtp.sender)
    try:
        with SmtpSender(smtp).session() as session:
            session.send(message)
    except MailError as exc:
        return SendOutcome(
            False, status=exc.code, error=f"{exc.kind}: {exc}", permanent=exc.permanent
        )
    return SendOutcome(True)


def _send_webhook(rt: Runtime, channel: ChannelSpec, rendering: Rendering) -> SendOutcome:
    from worker.adapters.webhook import build_request, deliver_webhook, post_via_fetcher

    assert channel.webhook is not None
    if channel.format == "standard":
        payload = rendering.payload()
        secret = channel.secret.get_secret_value() if channel.secret else None
    else:  # chat services verify nothing; their payload shapes are their own
        payload = rendering.chat(channel.format)
        secret = None
    body, headers = build_request(payload, rendering.id, secret, int(rt.now().timestamp()))

    # deliver_webhook turns transport errors (FetchError) into an outcome too
    outcome = deliver_webhook(
        post_via_fetcher(rt.fetcher()), channel.webhook, body, headers, now=rt.now().timestamp()
    )
    return SendOutcome(
        outcome.ok, status=outcome.status, error=outcome.error or None,
        permanent=outcome.permanent or outcome.disable, retry_after=outcome.retry_after,
        disable=outcome.disable,
    )  # fmt: skip


def _append_file(channel: ChannelSpec, rendering: Rendering, data_dir: Path) -> SendOutcome:
    """One JSON line per alert; the delivery id inside lets a reader drop a rare resend.
    A relative path is taken from the data folder, never from the worker's current folder
    (which differs between `run` from a checkout, a systemd unit and a container)."""
    assert channel.file is not None
    path = data_dir / Path(channel.file).expanduser()
    line = json.dumps(rendering.payload(), ensure_ascii=False, sort_keys=True) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # whole lines even with several worker processes
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return SendOutcome(False, error=f"cannot write {path}: {exc.strerror}")
    return SendOutcome(True)
