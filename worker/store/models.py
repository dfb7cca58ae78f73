"""SQLAlchemy 2.x models: the source of truth for every stage of the pipeline.

Uniqueness that matters for "never twice" is enforced here by constraints,
not by checks in Python. Every stage row carries the fields the sweep needs
to recover lost work: a state, an `enqueued_at`, a `claimed_until` lease and
an `attempts` count.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from worker.core.states import (
    BatchState,
    DeliveryKind,
    DeliveryRoute,
    DeliveryState,
    ItemOutcome,
    ItemState,
    MatchState,
    RulesState,
    SourceKind,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, PostgreSQL gets the same."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


def one_of(column: str, states: type[StrEnum]) -> CheckConstraint:
    """CHECK (column IN (the enum's values)), named ck_<table>_<column>: the database
    refuses any other value (NULL passes, as SQL's IN gives it no verdict)."""
    values = ", ".join(f"'{s.value}'" for s in states)
    return CheckConstraint(f"{column} IN ({values})", name=column)


class Source(Base):
    __tablename__ = "source"
    __table_args__ = (
        one_of("kind", SourceKind),
        # dispatch claims the sources due, oldest first, every tick: without it, a scan
        Index("ix_source_next_fetch_at", "next_fetch_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # SourceKind
    url: Mapped[str] = mapped_column(Text)
    every_seconds: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_fetch_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_kind: Mapped[str | None] = mapped_column(String(40))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    permanent_failures: Mapped[int] = mapped_column(Integer, default=0)  # 404/410 in a row
    disabled_reason: Mapped[str | None] = mapped_column(
        Text
    )  # set when newswatch stopped polling it
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    items_seen: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The window the feed showed on its last successful poll, to tell a gap by
    # (worker/sources/gaps.py): entries, newest entry date, hashed links and digests.
    # None until a first poll of this URL (a changed URL clears it).
    window_size: Mapped[int | None] = mapped_column(Integer)
    window_newest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_tokens: Mapped[list | None] = mapped_column(JSON)


class SourceGap(Base):
    """A poll that found the feed had moved past everything seen: entries may have been
    missed between `last_seen_at` and `oldest_visible_at` (worker/sources/gaps.py)."""

    __tablename__ = "source_gap"
    __table_args__ = (
        Index("ix_source_gap_source_detected", "source_id", "detected_at"),
        Index("ix_source_gap_detected_at", "detected_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id"))
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    basis: Mapped[str] = mapped_column(String(10))  # dates | window
    visible: Mapped[int] = mapped_column(Integer)  # entries the feed showed, all new
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    oldest_visible_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(Text)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its notice raised


class WatchdogState(Base):
    """One row per watchdog condition (`opened_at`: when its current incident began, None
    while it holds not) and one for the heartbeat (`checked_at`: the last ping)."""

    __tablename__ = "watchdog_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Item(Base):
    """One feed entry or listed link, exactly once per source."""

    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("source_id", "entry_key"),
        Index("ix_item_state_enqueued", "state", "enqueued_at"),
        Index("ix_item_article_id", "article_id"),  # the rules outcome goes to every item
        Index("ix_item_outcome", "outcome"),
        Index("ix_item_created_at", "created_at"),  # retention: seen entries by age
        # the dashboard's items per day of each source, read from the index alone
        Index("ix_item_created_source", "created_at", "source_id"),
        one_of("state", ItemState),
        one_of("outcome", ItemOutcome),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id"))
    entry_key: Mapped[str] = mapped_column(String(1000))
    url: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON)  # what the feed said, for the parser
    # pending -> parsed | duplicate | failed (quarantined after max attempts) | refused
    state: Mapped[str] = mapped_column(String(12), default=ItemState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # what the last error was: a fetch error kind, `extraction`, `time_limit`, `internal`
    error_kind: Mapped[str | None] = mapped_column(String(40))
    article_id: Mapped[int | None] = mapped_column(ForeignKey("article.id"))
    # The drop ledger (worker/tracking/ledger.py): what became of the item, and why. None while
    # it is still on its way (pending, or parsed and waiting for the rules).
    outcome: Mapped[str | None] = mapped_column(String(20))
    outcome_detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Article(Base):
    __tablename__ = "article"
    __table_args__ = (
        Index("ix_article_rules_state", "rules_state", "enqueued_at"),
        Index("ix_article_source_id", "source_id"),  # the dashboard's alerts of one source
        # retention: only the articles whose text is still kept, by age (a partial index,
        # so that the stubs of months of cleared articles are never walked again)
        Index(
            "ix_article_text_kept",
            "created_at",
            sqlite_where=text("body <> ''"),
            postgresql_where=text("body <> ''"),
        ),
        one_of("rules_state", RulesState),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id"))
    canonical_url: Mapped[str] = mapped_column(String(2000), unique=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    lead: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list] = mapped_column(JSON, default=list)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    language: Mapped[str | None] = mapped_column(String(20))
    image_url: Mapped[str | None] = mapped_column(Text)
    fingerprint: Mapped[int | None] = mapped_column(BigInteger)
    story_id: Mapped[int | None] = mapped_column(
        Integer, index=True
    )  # id of the story's first article
    # pending -> done | failed (quarantined after max attempts)
    rules_state: Mapped[str] = mapped_column(String(12), default=RulesState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(40))  # `internal`, `time_limit`
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class FingerprintBand(Base):
    """LSH band keys of article fingerprints: near-duplicate candidates without a scan."""

    __tablename__ = "fingerprint_band"
    __table_args__ = (
        Index("ix_fingerprint_band_article_id", "article_id"),  # pruned by article
        # the story lookup reads band-sharing fingerprints from this index alone
        Index("ix_fingerprint_band_lookup", "band_key", "article_id", "fingerprint"),
    )

    band_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("article.id"), primary_key=True)
    # the article's, copied so that the lookup need not read the article row
    fingerprint: Mapped[int | None] = mapped_column(BigInteger)


class Match(Base):
    __tablename__ = "match"
    __table_args__ = (
        UniqueConstraint("watchlist", "article_id"),
        Index("ix_match_article_id", "article_id"),  # an article's matches (why, pruning)
        Index("ix_match_watchlist_created", "watchlist", "created_at"),  # the dashboard
        one_of("state", MatchState),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watchlist: Mapped[str] = mapped_column(String(200))
    article_id: Mapped[int] = mapped_column(ForeignKey("article.id"))
    story_id: Mapped[int | None] = mapped_column(Integer)
    config_version: Mapped[str] = mapped_column(String(64))
    hits: Mapped[list] = mapped_column(JSON)
    names: Mapped[list] = mapped_column(JSON, default=list)
    snippet: Mapped[str] = mapped_column(Text, default="")
    highlights: Mapped[list] = mapped_column(JSON, default=list)
    # alerted: deliveries were made; duplicate: the story had already alerted this watchlist
    state: Mapped[str] = mapped_column(String(12), default=MatchState.ALERTED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class StoryAlert(Base):
    """One row per (watchlist, story) that has alerted: the constraint that makes it once."""

    __tablename__ = "story_alert"
    __table_args__ = (Index("ix_story_alert_match_id", "match_id"),)  # pruned with its match

    watchlist: Mapped[str] = mapped_column(String(200), primary_key=True)
    story_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    match_id: Mapped[int] = mapped_column(ForeignKey("match.id"))


class Delivery(Base):
    """The outbox: one row per (match, channel), written with the match; or one per
    (notice incident, channel) for operational notices."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("match_id", "channel"),
        UniqueConstraint("notice_key", "channel"),  # once per incident
        Index("ix_delivery_state_next", "state", "next_attempt_at"),
        Index("ix_delivery_throttle", "channel", "watchlist", "created_at"),
        Index("ix_delivery_created_at", "created_at"),  # retention
        one_of("state", DeliveryState),
        one_of("kind", DeliveryKind),
        one_of("route", DeliveryRoute),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid: the idempotency key
    match_id: Mapped[int | None] = mapped_column(ForeignKey("match.id"))  # None for notices
    channel: Mapped[str] = mapped_column(String(200))
    # pending -> sent | failed (retry at next_attempt_at) -> ... -> dead;
    # batched: held in a digest batch, which sends it (and then marks it sent or dead)
    state: Mapped[str] = mapped_column(String(12), default=DeliveryState.PENDING)
    kind: Mapped[str] = mapped_column(String(12), default=DeliveryKind.ALERT)
    watchlist: Mapped[str | None] = mapped_column(String(200))  # for the throttle count
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("digest_batch.id"), index=True)
    route: Mapped[str] = mapped_column(String(12), default=DeliveryRoute.IMMEDIATE)
    notice_key: Mapped[str | None] = mapped_column(String(300))
    notice: Mapped[dict | None] = mapped_column(JSON)  # {"event", "title", "text"} for notices
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempt"
    __table_args__ = (Index("ix_delivery_attempt_at", "at"),)  # retention

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("delivery.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class DigestBatch(Base):
    """Deliveries held for one digest of one channel, due at one moment.

    Open until a sender claims it at `due_at`: held deliveries join it only while
    `state = 'open'` (read under a shared row lock, see `outbox._join_batch`), so
    once claimed (`sending`) nothing joins it any more.
    Its id is the digest's idempotency key (webhook-id) and, through the set of
    its deliveries, the email Message-ID.
    """

    __tablename__ = "digest_batch"
    __table_args__ = (
        UniqueConstraint("channel", "due_at"),
        Index("ix_digest_batch_state_next", "state", "next_attempt_at"),
        one_of("state", BatchState),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    channel: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # open -> sending (claimed) -> sent | failed (retry at next_attempt_at) -> ... -> dead
    state: Mapped[str] = mapped_column(String(12), default=BatchState.OPEN)
    size: Mapped[int] = mapped_column(Integer, default=0)  # deliveries sent in it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DisabledEndpoint(Base):
    """A webhook URL that answered 410 Gone: nothing more is sent to it until re-enabled
    (`newswatch endpoints enable CHANNEL`) or the channel's URL changes."""

    __tablename__ = "disabled_endpoint"

    url: Mapped[str] = mapped_column(String(2000), primary_key=True)
    channel: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    disabled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
