"""Retention's rows: pruning in small batches, SQLite's free pages, the storage report.

worker/service/retention.py says when a row's time is over (the config's
`retention:`); the queries that find and remove such rows are here. Each step removes
at most `batch` rows in one transaction, children before their parents, and checks
again in the DELETE itself that nothing refers to a row meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    String,
    and_,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from worker.core.retention import item_seen_record
from worker.core.states import BatchState, DeliveryState, ItemState, RulesState
from worker.store import models as m
from worker.store.db import Store

log = logging.getLogger(__name__)

# an item's work is over (failed: quarantined, kept for a person to look at)
DONE_ITEM = (ItemState.PARSED, ItemState.DUPLICATE, ItemState.REFUSED)
# pending, failed, batched rows (and sending batches) are in flight
DONE_DELIVERY = (DeliveryState.SENT, DeliveryState.DEAD)
DONE_BATCH = (BatchState.SENT, BatchState.DEAD)

Step = Callable[[Session, int], int]


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these go (text: cleared); `story_active`: a story with an article
    since then is still growing, and the alerts that guard it stay."""

    now: datetime
    article_text: datetime
    attempts: datetime
    deliveries: datetime
    entries: datetime
    story_active: datetime


def steps(cut: Cutoffs) -> list[tuple[str, Step]]:
    """Every kind of row, in an order that keeps every foreign key: children first."""
    return [
        ("attempts", lambda s, n: _attempts(s, n, cut.attempts)),
        ("deliveries", lambda s, n: _deliveries(s, n, cut.deliveries)),
        ("digest_batches", lambda s, n: _digest_batches(s, n, cut.deliveries)),
        ("source_gaps", lambda s, n: _source_gaps(s, n, cut.deliveries)),
        ("matches", lambda s, n: _matches(s, n, cut.entries, cut.story_active)),
        ("article_text", lambda s, n: _article_text(s, n, cut.article_text, cut.now)),
        ("items", lambda s, n: _items(s, n, cut.entries)),
        ("articles", lambda s, n: _articles(s, n, cut.entries)),
    ]


def run_batches(store: Store, kind: str, step: Step, batch: int, max_batches: int) -> int:
    """Run `step` in transactions of up to `batch` rows until it removes fewer, or
    `max_batches` ran. Returns the rows it removed."""
    total = 0
    for _ in range(max_batches):
        try:
            with store.session() as session:
                n = step(session, batch)
        except DBAPIError as exc:  # e.g. a row referred to by a concurrent insert: next run
            log.warning("retention: %s: batch skipped until the next run: %s", kind, exc)
            break
        total += n
        if n < batch:
            break
    return total


def _ids(session: Session, query: Any) -> list[Any]:
    return list(session.scalars(query))


def _attempts(session: Session, n: int, cut: datetime) -> int:
    A, D = m.DeliveryAttempt, m.Delivery
    ids = _ids(
        session,
        select(A.id)
        .where(A.at < cut, A.delivery_id.in_(select(D.id).where(D.state.in_(DONE_DELIVERY))))
        .order_by(A.at)
        .limit(n),
    )
    if ids:
        session.execute(delete(A).where(A.id.in_(ids)))
    return len(ids)


def _deliveries(session: Session, n: int, cut: datetime) -> int:
    """Sent or dead alerts and notices (a digest's only once the digest itself is over)."""
    D, B = m.Delivery, m.DigestBatch
    done = and_(
        D.created_at < cut,
        D.state.in_(DONE_DELIVERY),
        D.batch_id.is_(None) | D.batch_id.in_(select(B.id).where(B.state.in_(DONE_BATCH))),
    )
    ids = _ids(session, select(D.id).where(done).order_by(D.created_at).limit(n))
    if not ids:
        return 0
    session.execute(delete(m.DeliveryAttempt).where(m.DeliveryAttempt.delivery_id.in_(ids)))
    return _deleted(session.execute(delete(D).where(D.id.in_(ids), done)), ids)


def _digest_batches(session: Session, n: int, cut: datetime) -> int:
    B, D = m.DigestBatch, m.Delivery
    done = and_(B.created_at < cut, B.state.in_(DONE_BATCH), ~exists().where(D.batch_id == B.id))
    ids = _ids(session, select(B.id).where(done).order_by(B.created_at).limit(n))
    if not ids:
        return 0
    return _deleted(session.execute(delete(B).where(B.id.in_(ids), done)), ids)


def _source_gaps(session: Session, n: int, cut: datetime) -> int:
    """Recorded feed gaps, with the notices: once no notice delivery of the gap is left
    (its key names the gap's id, which SQLite may give a new gap once the row is gone;
    and past `deliveries`, at least a day, the watchdog no longer raises it)."""
    G, D = m.SourceGap, m.Delivery
    notice = D.notice_key == literal("source_gap:") + cast(G.id, String)
    done = and_(G.detected_at < cut, ~exists().where(notice))
    ids = _ids(session, select(G.id).where(done).order_by(G.detected_at).limit(n))
    if not ids:
        return 0
    return _deleted(session.execute(delete(G).where(G.id.in_(ids), done)), ids)


def _matches(session: Session, n: int, cut: datetime, story_active: datetime) -> int:
    """Matches with no delivery left; one whose story alert still guards a story that
    is growing (an article in it within the near-duplicate window) stays."""
    M, SA, A = m.Match, m.StoryAlert, m.Article
    guarding = (
        exists()
        .where(SA.match_id == M.id)
        .where(exists().where(A.story_id == SA.story_id, A.created_at >= story_active))
    )
    done = and_(M.created_at < cut, ~exists().where(m.Delivery.match_id == M.id), ~guarding)
    ids = _ids(session, select(M.id).where(done).order_by(M.created_at).limit(n))
    if not ids:
        return 0
    session.execute(delete(SA).where(SA.match_id.in_(ids)))
    return _deleted(session.execute(delete(M).where(M.id.in_(ids), done)), ids)


def _article_text(session: Session, n: int, cut: datetime, now: datetime) -> int:
    """Body, lead, authors, tags and image cleared (title, link, hash and dates stay:
    enough for dedupe, the ledger and the alerts already sent), fingerprint bands
    removed, and the article's items cut to their seen record (core.retention). Not
    while an alert of the article is still to be sent: it is rendered from the article."""
    A, M, D, I = m.Article, m.Match, m.Delivery, m.Item  # noqa: E741
    in_flight = exists().where(
        M.article_id == A.id, D.match_id == M.id, D.state.not_in(DONE_DELIVERY)
    )
    # `body <> ''` is the partial index's own condition (ix_article_text_kept)
    done = and_(A.body != "", A.created_at < cut, A.rules_state == RulesState.DONE, ~in_flight)
    ids = _ids(session, select(A.id).where(done).order_by(A.created_at).limit(n))
    if not ids:
        return 0
    session.execute(delete(m.FingerprintBand).where(m.FingerprintBand.article_id.in_(ids)))
    cleared = _rewrite(session, A, and_(A.id.in_(ids), done), lambda row: ARTICLE_CLEARED)
    if cleared:
        pruned_on = f"{now:%Y-%m-%d}"
        _rewrite(
            session,
            I,
            and_(I.article_id.in_(cleared), I.state.in_(DONE_ITEM)),
            lambda row: {"data": item_seen_record(row["data"], pruned_on)},
        )
    return len(cleared)


ARTICLE_CLEARED: dict[str, Any] = {
    "body": "",
    "lead": "",
    "authors": [],
    "tags": [],
    "image_url": None,
}


def _rewrite(
    session: Session, model: Any, where: Any, values: Callable[[Any], dict[str, Any]]
) -> list[Any]:
    """Set `values(row)` on the rows `where` selects; returns their ids.

    On SQLite a row shrunk in place leaves its page part-empty for as long as the row
    lives (a page is only rebalanced when a row is deleted from it or it overflows),
    which for a seen record is `entries`, a year. So there each row is deleted and
    inserted again with the same id, in this one transaction: the deletes merge the
    part-empty pages, and the short rows go back packed. Foreign keys into the table
    (items and matches into an article) are checked at the commit, when the row is back
    (`defer_foreign_keys` lasts until the transaction ends). On PostgreSQL an UPDATE
    writes a new row version anyway, and autovacuum makes the old one's space reusable."""
    table = model.__table__
    # FOR UPDATE: on PostgreSQL the rows stay as read until the commit (SQLite's BEGIN
    # IMMEDIATE already holds the write lock; the clause is left out there)
    query = select(table).where(where).order_by(table.c.id).with_for_update()
    rows = session.execute(query).mappings().all()
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    if session.get_bind().dialect.name != "sqlite":
        session.execute(update(model), [{"id": row["id"], **values(row)} for row in rows])
        return ids
    session.execute(text("PRAGMA defer_foreign_keys = ON"))
    session.execute(delete(table).where(table.c.id.in_(ids)))
    session.execute(insert(table), [dict(row) | values(row) for row in rows])
    return ids


def _items(session: Session, n: int, cut: datetime) -> int:
    I = m.Item  # noqa: E741
    done = and_(I.created_at < cut, I.state.in_(DONE_ITEM))
    ids = _ids(session, select(I.id).where(done).order_by(I.created_at).limit(n))
    if not ids:
        return 0
    return _deleted(session.execute(delete(I).where(I.id.in_(ids), done)), ids)


def _articles(session: Session, n: int, cut: datetime) -> int:
    """Article stubs no item and no match refers to any more."""
    A = m.Article
    done = and_(
        A.created_at < cut,
        A.rules_state == RulesState.DONE,
        ~exists().where(m.Item.article_id == A.id),
        ~exists().where(m.Match.article_id == A.id),
    )
    ids = _ids(session, select(A.id).where(done).order_by(A.created_at).limit(n))
    if not ids:
        return 0
    session.execute(delete(m.FingerprintBand).where(m.FingerprintBand.article_id.in_(ids)))
    return _deleted(session.execute(delete(A).where(A.id.in_(ids), done)), ids)


def _deleted(result: Any, ids: Sequence[Any]) -> int:
    """Rows the statement touched; a full batch when the driver cannot tell, so the loop
    goes on (at worst one more, empty, batch)."""
    count = getattr(result, "rowcount", -1)
    return count if count is not None and count >= 0 else len(ids)


# --- SQLite space -------------------------------------------------------------------------

RECLAIM_ABOVE = 0.25  # free pages beyond this share of the file are given back ...
KEEP_FREE = 0.10  # ... down to this share, kept for new rows to reuse
RECLAIM_STEP = 2048  # pages per transaction (8 MiB at 4 KiB pages): a short write lock


def reclaim_sqlite_space(store: Store) -> int:
    """On SQLite, pages freed by pruning are reused by new rows: the file stops growing
    but does not shrink. When a database made with `auto_vacuum=INCREMENTAL` (every new
    one, see db.py) has more than a quarter of its pages free (after
    a first prune of a long history, or a shorter retention), give the excess back to
    the file system, a few thousand pages per transaction. Never a full VACUUM: that
    would rewrite the whole file under an exclusive lock while workers run."""
    if store.is_postgres:
        return 0  # autovacuum makes dead rows' space reusable; the file size is its business
    returned = 0
    with _sqlite_pragmas(store) as pragma:
        if pragma("auto_vacuum") != 2:  # 2: incremental
            return 0
        while True:
            pages, free = pragma("page_count"), pragma("freelist_count")
            excess = free - int(pages * KEEP_FREE)
            if free <= pages * RECLAIM_ABOVE or excess <= 0:
                break
            step = min(excess, RECLAIM_STEP)
            pragma(f"incremental_vacuum({step})")  # its own short write transaction
            returned += step
    return returned


@contextlib.contextmanager
def _sqlite_pragmas(store: Store) -> Iterator[Callable[[str], Any]]:
    """PRAGMA statements on a pooled connection outside SQLAlchemy's transactions (the
    store's BEGIN IMMEDIATE would take the write lock just to read a page count)."""
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()

        def pragma(statement: str) -> Any:
            row = cur.execute(f"PRAGMA {statement}").fetchone()
            cur.fetchall()  # incremental_vacuum steps page by page until read to the end
            return row[0] if row else None

        yield pragma
        cur.close()
    finally:
        raw.close()


# --- what status shows ----------------------------------------------------------------------


def storage_report(store: Store) -> dict[str, Any]:
    """The database's size, and per kind of row how many there are and the oldest one."""
    report: dict[str, Any] = {"database": _database_size(store)}
    A = m.Article
    with store.session() as session:
        kinds: dict[str, tuple[Any, Any, Any]] = {
            # kind: (count, oldest, what "oldest" is)
            "items": (func.count(m.Item.id), func.min(m.Item.created_at), None),
            "articles": (func.count(A.id), func.min(A.created_at), None),
            "article_text": (func.count(A.id), func.min(A.created_at), A.body != ""),
            "matches": (func.count(m.Match.id), func.min(m.Match.created_at), None),
            "deliveries": (func.count(m.Delivery.id), func.min(m.Delivery.created_at), None),
            "digest_batches": (
                func.count(m.DigestBatch.id),
                func.min(m.DigestBatch.created_at),
                None,
            ),
            "attempts": (func.count(m.DeliveryAttempt.id), func.min(m.DeliveryAttempt.at), None),
        }
        rows: dict[str, dict[str, Any]] = {}
        for kind, (count, oldest, where) in kinds.items():
            query = select(count, oldest)
            if where is not None:
                query = query.where(where)
            n, first = session.execute(query).one()
            rows[kind] = {"rows": n, "oldest": first}
        # bands: the article with the lowest id that has any (ids grow with time)
        bands = session.execute(select(func.count(), func.min(m.FingerprintBand.article_id))).one()
        first_band = session.scalar(select(A.created_at).where(A.id == bands[1]))
        rows["fingerprint_bands"] = {"rows": bands[0], "oldest": first_band}
    report["rows"] = rows
    return report


def _database_size(store: Store) -> dict[str, Any]:
    if store.is_postgres:
        with store.engine.connect() as conn:
            size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
        return {"backend": "postgresql", "bytes": int(size or 0)}
    with _sqlite_pragmas(store) as pragma:
        page_size, pages = pragma("page_size"), pragma("page_count")
        free, auto_vacuum = pragma("freelist_count"), pragma("auto_vacuum")
    db_path = store.url.split("///", 1)[-1]
    wal = Path(db_path + "-wal")
    return {
        "backend": "sqlite",
        "bytes": pages * page_size,
        "free_bytes": free * page_size,  # reused by new rows before the file grows
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "auto_vacuum": {0: "none", 1: "full", 2: "incremental"}.get(auto_vacuum, auto_vacuum),
    }
