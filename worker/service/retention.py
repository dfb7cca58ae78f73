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

import logging
from datetime import datetime, timedelta
from typing import Any

from worker.articles.stories import (
    NEAR_DUP_WINDOW,  # stories still growing: their alerts guard them
)
from worker.bootstrap import Runtime
from worker.config import RetentionSpec
from worker.store import upkeep
from worker.store.upkeep import RECLAIM_ABOVE, reclaim_sqlite_space, storage_report

log = logging.getLogger(__name__)

MAX_BATCHES = 200  # per kind per run: a backlog is worked off over several runs


def prune(rt: Runtime, max_batches: int = MAX_BATCHES) -> dict[str, int]:
    """One pruning pass over every kind of row. Returns the rows removed (or, for
    article text, cleared) per kind."""
    spec = rt.config.current().loaded.config.retention
    now = rt.now()
    done: dict[str, int] = {}
    for kind, step in upkeep.steps(cutoffs(spec, now)):
        done[kind] = upkeep.run_batches(rt.store, kind, step, spec.batch, max_batches)
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


def cutoffs(spec: RetentionSpec, now: datetime) -> upkeep.Cutoffs:
    """What the config keeps, as moments: rows older than these are past their time."""

    def before(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    return upkeep.Cutoffs(
        now=now,
        article_text=before(spec.article_text),
        attempts=before(spec.attempts),
        deliveries=before(spec.deliveries),
        entries=before(spec.entries),
        story_active=now - NEAR_DUP_WINDOW,
    )


# --- what status shows ----------------------------------------------------------------------


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


__all__ = [
    "RECLAIM_ABOVE",
    "cutoffs",
    "format_storage",
    "prune",
    "reclaim_sqlite_space",
    "storage_report",
]
