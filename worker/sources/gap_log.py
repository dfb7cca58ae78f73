"""Feed gaps, recorded: the fetch step's side of worker/sources/gaps.py.

After a successful poll of a feed that got entries, `observe` judges the window against
the one stored on the source row, records a `source_gap` row when the feed moved past
everything seen, and returns the new window for the source row. The notice for a gap
is raised by the watchdog (worker/service/watchdog.py) from the periodic tick, once per gap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from worker.sources import gaps
from worker.store import incidents, status
from worker.store import models as m
from worker.tracking import metrics

log = logging.getLogger(__name__)


def previous_window(src: m.Source) -> gaps.Window | None:
    """The window the source's last successful poll stored; None before its first."""
    if src.window_size is None:
        return None
    tokens = frozenset(t for t in src.window_tokens or () if isinstance(t, str))
    return gaps.Window(src.window_size, src.window_newest_at, tokens, src.last_success_at)


def observe(
    session: Session,
    source_id: int,
    name: str,
    previous: gaps.Window | None,
    entries: Iterable[Mapping[str, Any]],
    new_keys: set[str],
    now: datetime,
) -> dict[str, Any]:
    """Judge this poll's window, record a gap if it shows one, and return the source
    columns that store the window for the next poll ({} when there is nothing to store:
    no readable entry, which leaves the last window in place)."""
    visible = gaps.visible_entries(entries, new_keys)
    if not visible:
        return {}
    gap = gaps.judge(previous, visible, now)
    if gap is not None:
        detail = gap.describe()
        incidents.record_gap(
            session,
            source_id,
            now,
            basis=gap.basis,
            visible=gap.visible,
            last_seen_at=gap.last_seen_at,
            oldest_visible_at=gap.oldest_visible_at,
            previous_poll_at=gap.previous_poll_at,
            detail=detail,
        )
        _count_gap(gap.basis)
        log.warning(
            "source %s: GAP, entries may have been missed: %s",
            name,
            detail,
            extra={"source_id": source_id, "event": "source_gap"},
        )
    window = gaps.window_of(visible, now)
    return {
        "window_size": window.size,
        "window_newest_at": window.newest_at,
        "window_tokens": sorted(window.tokens),
    }


def _count_gap(basis: str) -> None:

    metrics.count_gap(basis)


def recent(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The newest gaps first, for `newswatch status`."""
    return status.recent_gaps(session, limit)
