"""Send one rendered alert through its channel: email, webhook (standard or chat) or file.

Every outcome comes back as data (`SendOutcome`): the pipeline records the
attempt and decides about retries; nothing here touches the database.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from worker.config import ChannelSpec, Config
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


def send_delivery(rt: Runtime, channel_name: str, alert: Alert) -> SendOutcome:
    config = rt.config.current().loaded.config
    channel = next((c for c in config.channels if c.name == channel_name), None)
    if channel is None:
        return SendOutcome(
            False, error=f"channel {channel_name!r} is no longer configured", permanent=True
        )
    if channel.kind == "email":
        return _send_email(config, channel, alert)
    if channel.kind == "webhook":
        return _send_webhook(rt, channel, alert)
    return _append_file(channel, alert)


def _send_email(config: Config, channel: ChannelSpec, alert: Alert) -> SendOutcome:
    from worker.adapters.mail import MailError, SmtpSender

    smtp = channel.smtp or config.smtp
    message = render_email([alert], channel, smtp.sender)
    try:
        with SmtpSender(smtp).session() as session:
            session.send(message)
    except MailError as exc:
        return SendOutcome(
            False, status=exc.code, error=f"{exc.kind}: {exc}", permanent=exc.permanent
        )
    return SendOutcome(True)


def _send_webhook(rt: Runtime, channel: ChannelSpec, alert: Alert) -> SendOutcome:
    from worker.adapters.webhook import build_request, deliver_webhook

    assert channel.webhook is not None
    if channel.format == "standard":
        payload = webhook_payload(alert)
        secret = channel.secret.get_secret_value() if channel.secret else None
    else:  # chat services verify nothing; their payload shapes are their own
        payload = chat_payload(alert, channel.format)
        secret = None
    body, headers = build_request(payload, alert.delivery_id, secret, int(rt.now().timestamp()))

    def post(url: str, data: bytes, hdrs: dict) -> tuple[int, dict]:
        result = rt.fetcher().post_json(url, data, hdrs)
        return result.status, dict(result.headers)

    # deliver_webhook turns transport errors (FetchError) into an outcome too
    outcome = deliver_webhook(post, channel.webhook, body, headers, now=rt.now().timestamp())
    return SendOutcome(
        outcome.ok,
        status=outcome.status,
        error=outcome.error or None,
        permanent=outcome.permanent or outcome.disable,
        retry_after=outcome.retry_after,
    )


def _append_file(channel: ChannelSpec, alert: Alert) -> SendOutcome:
    """One JSON line per alert; the delivery id inside lets a reader drop a rare resend."""
    assert channel.file is not None
    path = Path(channel.file)
    line = json.dumps(webhook_payload(alert), ensure_ascii=False, sort_keys=True) + "\n"
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
