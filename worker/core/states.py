"""The states a unit of work moves through, one enum per table column.

StrEnum members compare equal to their string values, so rows read back from the
database (plain strings) compare with them directly. Migration 0007 turns each enum
into a CHECK constraint, so no other value can be written.
"""

from __future__ import annotations

from enum import StrEnum


class ItemState(StrEnum):
    """item.state: pending -> parsed | duplicate | failed (quarantined) | refused."""

    PENDING = "pending"
    PARSED = "parsed"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    REFUSED = "refused"


class ItemOutcome(StrEnum):
    """item.outcome: what became of an item (the drop ledger); NULL while on its way."""

    MATCHED = "matched"
    STORY_DUPLICATE = "story_duplicate"
    EXCLUDED = "excluded"
    NO_MATCH = "no_match"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    QUARANTINED = "quarantined"


class RulesState(StrEnum):
    """article.rules_state: pending -> done | failed (quarantined)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class MatchState(StrEnum):
    """match.state: alerted, or duplicate when the story had already alerted."""

    ALERTED = "alerted"
    DUPLICATE = "duplicate"


class DeliveryState(StrEnum):
    """delivery.state: pending -> sent | failed (retried) -> ... -> dead; batched while
    held in a digest batch."""

    PENDING = "pending"
    BATCHED = "batched"
    FAILED = "failed"
    SENT = "sent"
    DEAD = "dead"


class DeliveryKind(StrEnum):
    ALERT = "alert"
    UPDATE = "update"
    NOTICE = "notice"


class BatchState(StrEnum):
    """digest_batch.state: open -> sending -> sent | failed (retried) -> ... -> dead."""

    OPEN = "open"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"


class SourceKind(StrEnum):
    FEED = "feed"
    PAGE = "page"


class DeliveryRoute(StrEnum):
    """delivery.route: how the policy routed it."""

    IMMEDIATE = "immediate"
    DIGEST = "digest"
    THROTTLE = "throttle"
    QUIET = "quiet"
