"""Channels: one class per kind (email, webhook, file), registered by kind.

A channel object is built from its config once per config version (`lookup`) and is
what a message is sent through: `prepare` builds the message for the channel's kind
(raising whatever rendering raises) and returns the send; `send` does both and never
raises. Slack, Teams and Discord are webhook flavours: the same POST, another body.

Every outcome comes back as data (`SendOutcome`); nothing here touches the database.
Whatever a renderer or a sender raises becomes a failed outcome that names the stage
(`render`, `send`), with every URL in its text cut to scheme and host.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from worker.alerts.email import MailError, SmtpSender
from worker.alerts.outcome import SendOutcome, failure_outcome
from worker.alerts.rendering import Rendering
from worker.alerts.webhook import build_request, deliver_webhook, post_via_fetcher
from worker.config import ChannelSpec, Config
from worker.config.to_alerts import channel_info
from worker.core.redact import redact_text

if TYPE_CHECKING:
    from worker.bootstrap import Runtime
    from worker.bootstrap.config_in_force import ActiveConfig

Send = Callable[[], SendOutcome]

CHANNELS: dict[str, type[Channel]] = {}  # kind -> class, filled by @register


def register(kind: str) -> Callable[[type[Channel]], type[Channel]]:
    def add(cls: type[Channel]) -> type[Channel]:
        cls.kind = kind
        CHANNELS[kind] = cls
        return cls

    return add


class Channel:
    kind: ClassVar[str]
    endpoint: str | None = None  # a URL a receiver can switch off (410 Gone)

    def __init__(self, spec: ChannelSpec, config: Config) -> None:
        self.name = spec.name
        self.info = channel_info(spec)

    def prepare(self, rt: Runtime, rendering: Rendering) -> Send:
        raise NotImplementedError

    def send(self, rt: Runtime, rendering: Rendering) -> SendOutcome:
        """Render for this channel's kind, then send; never raises."""
        try:  # rendering first, on its own: a message that cannot be built is not a send failure
            send = self.prepare(rt, rendering)
        except Exception as exc:
            return failure_outcome("render", exc, self.endpoint)
        try:
            outcome = send()
        except Exception as exc:
            return failure_outcome("send", exc, self.endpoint)
        if outcome.error:  # adapters' errors may quote the URL (a webhook's path is its secret)
            outcome = replace(outcome, error=redact_text(outcome.error, [self.endpoint]))
        return outcome


@register("email")
class EmailChannel(Channel):
    def __init__(self, spec: ChannelSpec, config: Config) -> None:
        super().__init__(spec, config)
        self.smtp = spec.smtp or config.smtp

    def prepare(self, rt: Runtime, rendering: Rendering) -> Send:
        message = rendering.email(self.info, self.smtp.sender)

        def send() -> SendOutcome:
            try:
                with SmtpSender(self.smtp).session() as session:
                    session.send(message)
            except MailError as exc:
                return SendOutcome.from_error(exc, status=exc.code)
            return SendOutcome.sent()

        return send


@register("webhook")
class WebhookChannel(Channel):
    def __init__(self, spec: ChannelSpec, config: Config) -> None:
        super().__init__(spec, config)
        assert spec.webhook is not None
        self.endpoint = spec.webhook
        self.format = spec.format
        # chat services verify nothing; only the standard payload is signed
        standard = spec.format == "standard"
        self.secret = spec.secret.get_secret_value() if spec.secret and standard else None

    def prepare(self, rt: Runtime, rendering: Rendering) -> Send:
        assert self.endpoint is not None
        url = self.endpoint
        # slack, teams, discord: their payload shapes are their own
        standard = self.format == "standard"
        payload = rendering.payload() if standard else rendering.chat(self.format)
        body, headers = build_request(payload, rendering.id, self.secret, int(rt.now().timestamp()))

        def send() -> SendOutcome:
            post = post_via_fetcher(rt.fetcher())
            return deliver_webhook(post, url, body, headers, now=rt.now().timestamp())

        return send


@register("file")
class FileChannel(Channel):
    """One JSON line per alert; the delivery id inside lets a reader drop a rare resend.
    A relative path is taken from the data folder, never from the worker's current folder
    (which differs between `run` from a checkout, a systemd unit and a container)."""

    def __init__(self, spec: ChannelSpec, config: Config) -> None:
        super().__init__(spec, config)
        assert spec.file is not None
        self.file = Path(spec.file).expanduser()

    def prepare(self, rt: Runtime, rendering: Rendering) -> Send:
        path = rt.settings.data_dir / self.file
        line = json.dumps(rendering.payload(), ensure_ascii=False, sort_keys=True) + "\n"

        def send() -> SendOutcome:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as fh:
                    fcntl.flock(fh, fcntl.LOCK_EX)  # whole lines even with several processes
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                return SendOutcome.failed(f"cannot write {path}: {exc.strerror}")
            return SendOutcome.sent()

        return send


def build(spec: ChannelSpec, config: Config) -> Channel:
    return CHANNELS[spec.kind](spec, config)


_built: tuple[ActiveConfig, dict[str, Channel]] | None = None
_lock = threading.Lock()


def lookup(rt: Runtime, name: str) -> Channel | None:
    """The channel `name` of the config in force, built once per config version;
    None when the config has no such channel (any more)."""
    global _built
    active = rt.config.current()
    cached = _built
    if cached is None or cached[0] is not active:
        config = active.loaded.config
        with _lock:
            cached = (active, {c.name: build(c, config) for c in config.channels})
            _built = cached
    return cached[1].get(name)


def not_configured(name: str) -> SendOutcome:
    return SendOutcome(False, error=f"channel {name!r} is no longer configured", permanent=True)
