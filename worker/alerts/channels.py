"""Send one rendered message through its channel: email, webhook (standard or chat) or file.

A message is an alert, a story update, a digest or an operational notice; a
`Rendering` says how it looks on each kind of channel.

Every outcome comes back as data (`SendOutcome`): the pipeline records the
attempt and decides about retries; nothing here touches the database. That
holds for exceptions too: whatever a renderer or a sender raises becomes a
failed outcome that names the stage (`render`, `send`) and the exception class,
with every URL in its text cut to scheme and host (`worker.core.redact`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from worker.alerts.render import Alert, chat_payload, render_email, webhook_payload
from worker.config import ChannelSpec, Config
from worker.core.redact import redact_text

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    permanent: bool = False  # retrying cannot help (bad address, 410 Gone, channel removed)
    retry_after: float | None = None
    disable: bool = False  # the receiver asked us to stop (410 Gone): switch the endpoint off
    stage: str | None = None  # where a failure happened: load | render | send | ...
    error_class: str | None = None  # the exception class, when an exception was the failure


def failure_outcome(stage: str, exc: BaseException, url: str | None = None) -> SendOutcome:
    """An exception that escaped a stage of one delivery, as a failed outcome.

    The traceback is logged (URLs scrubbed; `url`, the channel's, also in pieces)
    because an unexpected exception is a bug to fix; the outcome carries the
    one-line reason the delivery row records.
    """
    name = type(exc).__name__
    reason = redact_text(f"{stage}: {name}: {exc}", [url])
    trace = redact_text("".join(traceback.format_exception(exc)), [url])
    log.error("%s\n%s", reason, trace.rstrip())
    return SendOutcome(False, error=reason, stage=stage, error_class=name)


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
    """Render for the channel's kind, then send; never raises."""
    config = rt.config.current().loaded.config
    channel = next((c for c in config.channels if c.name == channel_name), None)
    if channel is None:
        return SendOutcome(
            False, error=f"channel {channel_name!r} is no longer configured", permanent=True
        )
    try:  # rendering first, on its own: a message that cannot be built is not a send failure
        send = render_check(rt, config, channel, rendering)
    except Exception as exc:
        return failure_outcome("render", exc, channel.webhook)
    try:
        outcome = send()
    except Exception as exc:
        return failure_outcome("send", exc, channel.webhook)
    if outcome.error:  # adapters' errors may quote the URL (a webhook's path is its secret)
        outcome = replace(outcome, error=redact_text(outcome.error, [channel.webhook]))
    return outcome


def render_check(
    rt: Runtime, config: Config, channel: ChannelSpec, rendering: Rendering
) -> Callable[[], SendOutcome]:
    """Build the message for `channel` now (raising whatever rendering raises); the
    returned function sends it."""
    if channel.kind == "email":
        return _email(config, channel, rendering)
    if channel.kind == "webhook":
        return _webhook(rt, channel, rendering)
    return _file(channel, rendering, rt.settings.data_dir)


def _email(config: Config, channel: ChannelSpec, rendering: Rendering) -> Callable[[], SendOutcome]:
    from worker.alerts.email import MailError, SmtpSender

    smtp = channel.smtp or config.smtp
    message = rendering.email(channel, smtp.sender)

    def send() -> SendOutcome:
        try:
            with SmtpSender(smtp).session() as session:
                session.send(message)
        except MailError as exc:
            return SendOutcome(
                False, status=exc.code, error=f"{exc.kind}: {exc}", permanent=exc.permanent,
                stage="send",
            )  # fmt: skip
        return SendOutcome(True)

    return send


def _webhook(rt: Runtime, channel: ChannelSpec, rendering: Rendering) -> Callable[[], SendOutcome]:
    from worker.alerts.webhook import build_request, deliver_webhook, post_via_fetcher

    assert channel.webhook is not None
    url = channel.webhook
    if channel.format == "standard":
        payload = rendering.payload()
        secret = channel.secret.get_secret_value() if channel.secret else None
    else:  # chat services verify nothing; their payload shapes are their own
        payload = rendering.chat(channel.format)
        secret = None
    body, headers = build_request(payload, rendering.id, secret, int(rt.now().timestamp()))

    def send() -> SendOutcome:
        # deliver_webhook turns transport errors (FetchError) into an outcome too
        outcome = deliver_webhook(
            post_via_fetcher(rt.fetcher()), url, body, headers, now=rt.now().timestamp()
        )
        return SendOutcome(
            outcome.ok, status=outcome.status, error=outcome.error or None,
            permanent=outcome.permanent or outcome.disable, retry_after=outcome.retry_after,
            disable=outcome.disable, stage=None if outcome.ok else "send",
        )  # fmt: skip

    return send


def _file(channel: ChannelSpec, rendering: Rendering, data_dir: Path) -> Callable[[], SendOutcome]:
    """One JSON line per alert; the delivery id inside lets a reader drop a rare resend.
    A relative path is taken from the data folder, never from the worker's current folder
    (which differs between `run` from a checkout, a systemd unit and a container)."""
    assert channel.file is not None
    path = data_dir / Path(channel.file).expanduser()
    line = json.dumps(rendering.payload(), ensure_ascii=False, sort_keys=True) + "\n"

    def send() -> SendOutcome:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)  # whole lines even with several worker processes
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            return SendOutcome(False, error=f"cannot write {path}: {exc.strerror}", stage="send")
        return SendOutcome(True)

    return send
