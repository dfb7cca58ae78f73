"""The alerts stage's own input types: what the pure renderers and the policy need to
know about a channel. The config schema maps into them (worker/config/to_alerts.py),
so nothing pure here depends on the schema."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelInfo:
    """A channel as a message is addressed and dated for it."""

    name: str
    timezone: str = "UTC"
    email: tuple[str, ...] = ()  # recipients, for an email channel
