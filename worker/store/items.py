"""Items, articles and their stories: every query the fetch, parse and sweep steps run
on them. Uniqueness is the constraints' job, so inserts here may find the row taken."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from worker.core.model import Article
from worker.core.states import ItemOutcome, ItemState, RulesState
from worker.store import models as m
from worker.store.db import (
    claim_row,
    claim_statement,
    defer,
    insert_ignore,
    on_postgres,
    rows_changed,
    unclaimed,
)
from worker.store.hamming import hamming

# the closest this many band-sharing fingerprints are verified (their texts read): unrelated
# articles within 16 bits are 1e-4 to 3e-3 of a window's, more for texts alike (a copy is
# usually far closer than they are; docs/extraction.md)
STORY_CANDIDATES = 50

# --- items -----------------------------------------------------------------------------


_ITEM = cast("Table", m.Item.__table__)
# built once (per dialect): their cost per poll is their execution, not their construction
_INSERT_ITEM = {
    postgres: insert_ignore(_ITEM, postgres=postgres).returning(_ITEM.c.id)
    for postgres in (False, True)
}
_KNOWN_KEYS = select(_ITEM.c.entry_key).where(
    _ITEM.c.source_id == bindparam("b_source_id"),
    _ITEM.c.entry_key.in_(bindparam("b_keys", expanding=True)),
)


def insert_item(
    session: Session, source_id: int, data: dict[str, Any], now: datetime
) -> int | None:
    """Insert one feed entry unless its (source, entry_key) is taken; its id, or None.
    An entry the feed reader refused is stored settled as `refused`, with the reason."""
    refused = data.get("refused")
    row = {
        "source_id": source_id,
        "entry_key": data["entry_key"],
        "url": data.get("url"),
        "data": data,
        "state": ItemState.REFUSED if refused else ItemState.PENDING,
        "error": refused,
        "outcome": ItemOutcome.REFUSED if refused else None,
        "outcome_detail": refused,
        "attempts": 0,
        "enqueued_at": now,
        "created_at": now,
    }
    return session.execute(_INSERT_ITEM[on_postgres(session)], row).scalar()


def known_keys(session: Session, source_id: int, keys: Iterable[str]) -> set[str]:
    """Which of `keys` this source already has an item for: one query for a poll's
    entries instead of one refused insert each (the constraint still decides races)."""
    wanted = sorted(set(keys))
    known: set[str] = set()
    for start in range(0, len(wanted), 500):  # bounded IN lists
        chunk = wanted[start : start + 500]
        known.update(session.scalars(_KNOWN_KEYS, {"b_source_id": source_id, "b_keys": chunk}))
    return known


def get_item(session: Session, item_id: int) -> m.Item | None:
    return session.get(m.Item, item_id)


def get_source(session: Session, source_id: int) -> m.Source | None:
    return session.get(m.Source, source_id)


_CLAIM_ITEM = claim_statement(m.Item, m.Item.state == ItemState.PENDING)
_SOURCE_NAME_KIND = select(m.Source.name, m.Source.kind).where(m.Source.id == bindparam("b_id"))


def source_name_kind(session: Session, source_id: int) -> tuple[str, str] | None:
    """The name and kind of a source (what parsing an item needs of it)."""
    row = session.execute(_SOURCE_NAME_KIND, {"b_id": source_id}).one_or_none()
    return None if row is None else (row.name, row.kind)


def claim_item(
    session: Session, item_id: int, now: datetime, lease_seconds: float
) -> m.Item | None:
    """Lease a pending item (counts the attempt) and read it, in one statement; None
    when done or held elsewhere."""
    return cast("m.Item | None", claim_row(session, _CLAIM_ITEM, item_id, now, lease_seconds))


def note_item_error(session: Session, item_id: int, error: str, kind: str) -> None:
    """Write why an attempt gave up on a still-pending item; its lease stays."""
    session.execute(
        update(m.Item)
        .where(m.Item.id == item_id, m.Item.state == ItemState.PENDING)
        .values(error=error, error_kind=kind)
    )


def defer_item(session: Session, item_id: int, until: datetime) -> None:
    """Hold a pending item until `until`, giving back the attempt its claim counted."""
    defer(session, m.Item, item_id, until, m.Item.state == ItemState.PENDING)


def earlier_version(session: Session, item: m.Item, article_id: int, identity: str) -> int | None:
    """Another item of the same source and entry identity that made `article_id`."""
    return session.scalar(
        select(m.Item.id)
        .where(
            m.Item.source_id == item.source_id,
            m.Item.article_id == article_id,
            m.Item.id != item.id,
            m.Item.entry_key.startswith(f"{identity} #", autoescape=True),
        )
        .limit(1)
    )


def newer_parsed(session: Session, article_id: int, item_id: int) -> int | None:
    """A later item already parsed into `article_id` (a later version won)."""
    return session.scalar(
        select(m.Item.id)
        .where(
            m.Item.article_id == article_id,
            m.Item.state == ItemState.PARSED,
            m.Item.id > item_id,
        )
        .limit(1)
    )


# --- articles --------------------------------------------------------------------------


def get_article(session: Session, article_id: int) -> m.Article | None:
    return session.get(m.Article, article_id)


_CLAIM_ARTICLE = claim_statement(m.Article, m.Article.rules_state == RulesState.PENDING)


def claim_article(
    session: Session, article_id: int, now: datetime, lease_seconds: float
) -> m.Article | None:
    """Lease an article whose rules are pending (counts the attempt) and read it, in one
    statement; None when done or held elsewhere."""
    return cast(
        "m.Article | None", claim_row(session, _CLAIM_ARTICLE, article_id, now, lease_seconds)
    )


_RULES_DONE = (
    update(m.Article)
    .where(m.Article.id == bindparam("b_article_id"), m.Article.content_hash == bindparam("b_hash"))
    .values(rules_state=RulesState.DONE, claimed_until=None, error=None, error_kind=None)
    .execution_options(synchronize_session=False)
)


def finish_rules(session: Session, article_id: int, content_hash: str) -> bool:
    """The article's rules done and its lease let go, unless a new version of its text
    came meanwhile (then its rules run again on that): whether it was finished."""
    params = {"b_article_id": article_id, "b_hash": content_hash}
    return rows_changed(session, _RULES_DONE, params) == 1


def note_article_error(session: Session, article_id: int, error: str, kind: str) -> None:
    """Write why an attempt gave up on an article whose rules are pending; its lease stays."""
    session.execute(
        update(m.Article)
        .where(m.Article.id == article_id, m.Article.rules_state == RulesState.PENDING)
        .values(error=error, error_kind=kind)
    )


def defer_article(session: Session, article_id: int, until: datetime) -> None:
    """Hold an article with pending rules until `until`, giving back the attempt."""
    defer(session, m.Article, article_id, until, m.Article.rules_state == RulesState.PENDING)


# built once: every new item's parse runs them
_COPY_OF = select(m.Article.id).where(
    or_(
        m.Article.canonical_url == bindparam("b_url"), m.Article.content_hash == bindparam("b_hash")
    )
)
_AT_URL_FOR_UPDATE = (
    select(m.Article).where(m.Article.canonical_url == bindparam("b_url")).with_for_update()
)


def copy_of(session: Session, url: str, content_hash: str) -> int | None:
    """The article already stored under this canonical URL or this text, if any."""
    return session.scalar(_COPY_OF, {"b_url": url, "b_hash": content_hash})


def with_text(session: Session, content_hash: str) -> int | None:
    return session.scalar(select(m.Article.id).where(m.Article.content_hash == content_hash))


def at_url_for_update(session: Session, url: str) -> m.Article | None:
    return session.scalar(_AT_URL_FOR_UPDATE, {"b_url": url})


_ARTICLE = cast("Table", m.Article.__table__)
_BAND = cast("Table", m.FingerprintBand.__table__)
# built once (per dialect): a new article is one INSERT, not an ORM flush in a savepoint
_INSERT_ARTICLE = {
    postgres: insert_ignore(_ARTICLE, postgres=postgres).returning(_ARTICLE.c.id)
    for postgres in (False, True)
}
_SET_STORY = (
    update(_ARTICLE).where(_ARTICLE.c.id == bindparam("b_id")).values(story_id=bindparam("b_story"))
)
_INSERT_BAND = insert(_BAND)


def add_article(
    session: Session, source_id: int, article: Article, fp: int | None, now: datetime
) -> int | None:
    """Insert a new article with its rules pending; its id, or None when a concurrent
    copy took its URL or text first (the constraints decide: ON CONFLICT DO NOTHING)."""
    row = {
        "source_id": source_id,
        "canonical_url": article.url,
        "content_hash": article.content_hash,
        "title": article.title,
        "body": article.body,
        "lead": article.lead,
        "authors": list(article.authors),
        "tags": list(article.tags),
        "published_at": article.published,
        "modified_at": article.modified,
        "language": article.language,
        "image_url": article.image_url,
        "fingerprint": fp,
        "rules_state": RulesState.PENDING,
        "attempts": 0,
        "enqueued_at": now,
        "created_at": now,
    }
    return session.execute(_INSERT_ARTICLE[on_postgres(session)], row).scalar()


def set_story(session: Session, article_id: int, story_id: int) -> None:
    session.execute(_SET_STORY, {"b_id": article_id, "b_story": story_id})


def add_bands(session: Session, article_id: int, fp: int, keys: Iterable[str]) -> None:
    rows = [{"band_key": key, "article_id": article_id, "fingerprint": fp} for key in keys]
    if rows:
        session.execute(_INSERT_BAND, rows)


def drop_bands(session: Session, article_id: int) -> None:
    session.execute(delete(m.FingerprintBand).where(m.FingerprintBand.article_id == article_id))


def article_from_row(row: m.Article, source_name: str) -> Article:
    return Article(
        url=row.canonical_url,
        title=row.title,
        body=row.body,
        authors=tuple(row.authors or ()),
        published=row.published_at,
        modified=row.modified_at,
        lead=row.lead or "",
        tags=tuple(row.tags or ()),
        language=row.language,
        image_url=row.image_url,
        source=source_name,
        content_hash=row.content_hash,
    )


# --- stories ---------------------------------------------------------------------------


class StoryQueries:
    """The queries story lookup needs (worker/articles/stories.py), on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def candidates(
        self, keys: Iterable[str], article_id: int, since: datetime, fp: int, max_bits: int
    ) -> list[tuple[int, int | None, int | None]]:
        """(id, fingerprint, story_id) of the articles since `since` that share a band key
        and whose fingerprint is at most `max_bits` from `fp`: closest first, then oldest,
        at most STORY_CANDIDATES. The band index holds the fingerprints, so only the close
        few rows leave it; it is read from the window's first article on (ids grow with
        time), not over every article retention still keeps."""
        first = self.session.scalar(
            select(m.Article.id)
            .where(m.Article.created_at >= since)
            .order_by(m.Article.created_at)
            .limit(1)
        )
        if first is None:
            return []
        B, A = m.FingerprintBand, m.Article
        bits = hamming(B.fingerprint, fp).label("bits")
        # limited before the join: PostgreSQL cannot estimate the distance filter, and
        # guessing thousands of rows it scanned the whole article table to hash-join them
        close = (
            select(B.article_id, bits)
            .where(
                B.band_key.in_(list(keys)),
                B.article_id >= first,
                B.article_id != article_id,
                bits <= max_bits,
            )
            .distinct()
            .order_by(bits, B.article_id)
            .limit(STORY_CANDIDATES)
            .subquery()
        )
        rows = self.session.execute(
            select(A.id, A.fingerprint, A.story_id)
            .join(close, close.c.article_id == A.id)
            .order_by(close.c.bits, A.id)
        ).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def texts(self, ids: Iterable[int]) -> dict[int, tuple[str, str, int | None]]:
        """{id: (title, body, fingerprint)} of these articles, in one query."""
        rows = self.session.execute(
            select(m.Article.id, m.Article.title, m.Article.body, m.Article.fingerprint).where(
                m.Article.id.in_(list(ids))
            )
        )
        return {row.id: (row.title, row.body, row.fingerprint) for row in rows}

    def article(self, article_id: int) -> m.Article | None:
        return self.session.get(m.Article, article_id)

    def earlier_in_story(self, story_id: int, before_id: int) -> list[m.Article]:
        return list(
            self.session.scalars(
                select(m.Article)
                .where(m.Article.story_id == story_id, m.Article.id < before_id)
                .order_by(m.Article.id)
            )
        )


# --- sweep -----------------------------------------------------------------------------


def stale_items(session: Session, stale: datetime, now: datetime, limit: int) -> list[int]:
    """Pending items nobody holds whose message is older than `stale` (maybe lost)."""
    return _stale(session, m.Item, m.Item.state == ItemState.PENDING, stale, now, limit)


def stale_articles(session: Session, stale: datetime, now: datetime, limit: int) -> list[int]:
    """Articles with pending rules nobody holds whose message is older than `stale`."""
    pending = m.Article.rules_state == RulesState.PENDING
    return _stale(session, m.Article, pending, stale, now, limit)


def _stale(
    session: Session, model: Any, pending: Any, stale: datetime, now: datetime, limit: int
) -> list[int]:
    query = select(model.id).where(pending, model.enqueued_at < stale, unclaimed(model, now))
    return list(session.scalars(query.limit(limit)))
