"""The config schema mapped into the alerts stage's own types (worker/core/channels.py,
worker/core/alert_policy.py), so that the pure alerts code never sees a pydantic spec."""

from __future__ import annotations

from typing import Any

from worker.config import AlertPolicySpec, ChannelSpec
from worker.core.alert_policy import (
    Policy,
    Relevance,
    parse_quiet_hours,
    parse_relevance,
    parse_schedule,
)
from worker.core.channels import ChannelInfo


def channel_info(channel: ChannelSpec) -> ChannelInfo:
    return ChannelInfo(name=channel.name, timezone=channel.timezone, email=tuple(channel.email))


def resolve_policy(channel: ChannelSpec, override: AlertPolicySpec | None) -> Policy:
    """The channel's policy with the watchlist's `alerts:` settings on top."""

    def pick(name: str) -> Any:
        value = getattr(override, name, None) if override is not None else None
        return value if value is not None else getattr(channel, name)

    digest, quiet, relevance = pick("digest"), pick("quiet_hours"), pick("min_relevance")
    return Policy(
        digest=parse_schedule(digest) if digest else None,
        throttle=pick("throttle"),
        quiet_hours=parse_quiet_hours(quiet) if quiet else None,
        min_relevance=parse_relevance(relevance) if relevance else Relevance(),
        story_updates=bool(pick("story_updates")),
        timezone=channel.timezone,
    )
