"""Retention: rows past their time are pruned in small batches, and the storage they use.

What is kept, and for how long, is the config's `retention:` section
(worker/config.py `RetentionSpec`, docs/operations.md "Retention"). Pruning runs
from beat (`newswatch.prune`) and follows three rules:

- Work in flight is never touched: only items parsed, duplicate or refused, articles
  whose rules are done, deliveries and digest batches sent or dead. Quarantined rows
  (item or article `failed`) stay for a person to look at.
- Foreign keys always hold: children go first (attempts, deliveries, story alerts,
  bands), and a parent goes only when nothing refers to it any more, checked again in
  the DELETE itself so a row referred to meanwhile stays.
- No long lock: at most `batch` rows per statement, each batch its own transaction
  (on SQLite a BEGIN IMMEDIATE held for milliseconds), so workers interleave.

"Never twice" lives as long as `entries`: an entry's (source, entry key) item, its
article's canonical URL and content hash, and its matches and story alerts are kept
that long, so an entry that scrolls back into a feed, or a copy of an article under
another key, is recognised although its text was cleared long before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
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

# stories still growing: their alerts guard them
from worker.articles.stories import NEAR_DUP_WINDOW
from worker.bootstrap import Runtime
from worker.config import RetentionSpec
from worker.core.retention import item_seen_record
from worker.store import models as m
from worker.store.db import Store

log = logging.getLogger(__name__)

DONE_ITEM = ("parsed", "duplicate", "refused")  # an item's work is over (failed: quarantined)
DONE_DELIVERY = ("sent", "dead")  # pending, failed, batched and sending rows are in flight
MAX_BATCHES = 200  # per kind per run: a backlog is worked off over several runs


def prune(rt: Runtime, max_batches: int = MAX_BATCHES) -> dict[str, int]:
    """One pruning pass over every kind of row. Returns the rows removed (or, for
    article text, cleared) per kind."""
    spec = rt.config.current().loaded.config.retention
    now = rt.now()
    done: dict[str, int] = {}
    for kind, step in _steps(spec, now):
        done[kind] = _batches(rt.store, kind, step, spec.batch, max_batches)
    vacuumed = reclaim_sqlite_space(rt.store)
    if any(done.values()) or vacuumed:
        summary = ", ".join(f"{k} {v}" for k, v in done.items() if v)
        log.info(
            "retention: pruned %s%s",
            summary or "nothing",
            f"; {vacuumed} free page(s) returned" if vacuumed else "",
            extra={"event": "retention", **{f"pruned_{k}": v for k, v in done.items()}},
        )
    return done


Step = Callable[[Session, int], int]


def _batches(store: Store, kind: str, step: Step, batch: int, max_batches: int) -> int:
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


def _steps(spec: RetentionSpec, now: datetime) -> list[tuple[str, Step]]:
    text_cut = now - timedelta(seconds=spec.article_text)
    attempts_cut = now - timedelta(seconds=spec.attempts)
    deliveries_cut = now - timedelta(seconds=spec.deliveries)
    entries_cut = now - timedelta(seconds=spec.entries)
    story_active = now - NEAR_DUP_WINDOW
    # the order keeps every foreign key: children before their parents
    return [
        ("attempts", lambda s, n: _attempts(s, n, attempts_cut)),
        ("deliveries", lambda s, n: _deliveries(s, n, deliveries_cut)),
        ("digest_batches", lambda s, n: _digest_batches(s, n, deliveries_cut)),
        ("source_gaps", lambda s, n: _source_gaps(s, n, deliveries_cut)),
        ("matches", lambda s, n: _matches(s, n, entries_cut, story_active)),
        ("article_text", lambda s, n: _article_text(s, n, text_cut, now)),
        ("items", lambda s, n: _items(s, n, entries_cut)),
        ("articles", lambda s, n: _articles(s, n, entries_cut)),
    ]


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
        D.batch_id.is_(None) | D.batch_id.in_(select(B.id).where(B.state.in_(DONE_DELIVERY))),
    )
    ids = _ids(session, select(D.id).where(done).order_by(D.created_at).limit(n))
    if not ids:
        return 0
    session.execute(delete(m.DeliveryAttempt).where(m.DeliveryAttempt.delivery_id.in_(ids)))
    return _deleted(session.execute(delete(D).where(D.id.in_(ids), done)), ids)


def _digest_batches(session: Session, n: int, cut: datetime) -> int:
    B, D = m.DigestBatch, m.Delivery
    done = and_(B.created_at < cut, B.state.in_(DONE_DELIVERY), ~exists().where(D.batch_id == B.id))
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
    done = and_(A.body != "", A.created_at < cut, A.rules_state == "done", ~in_flight)
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
    "body": "", "lead": "", "authors": [], "tags": [], "image_url": None,
}  # fmt: skip


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
        A.rules_state == "done",
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
    one, see worker/store/db.py) has more than a quarter of its pages free (after
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


def format_storage(report: dict[str, Any]) -> str:
    db = report["database"]
    size = f"database: {_mib(db['bytes'])} ({db['backend']}"
    if db["backend"] == "sqlite":
        size += (
            f"; {_mib(db['free_bytes'])} of it free pages, reused by new rows; "
            f"WAL {_mib(db['wal_bytes'])}; auto_vacuum {db['auto_vacuum']}"
        )
    lines = [size + ")", "oldest rows (retention: config `retention:`):"]
    for kind, row in report["rows"].items():
        oldest = row["oldest"]
        when = f"{oldest:%Y-%m-%d %H:%M} UTC" if oldest is not None else "-"
        lines.append(f"  {kind:<18} {row['rows']:>9} rows, oldest {when}")
    return "\n".join(lines)


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"
