"""Stopping to poll a source after permanent errors, said loudly (a log line and a notice)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from worker.store import models as m
from worker.tracking.notices import raise_notice

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)


def disable(
    rt: Runtime,
    session: Session,
    row: m.Source,
    error: str,
    started: datetime,
    notices: list[str] | None,
) -> None:
    row.enabled = False
    row.disabled_reason = (
        f"disabled at {started.isoformat()} after {row.permanent_failures} permanent "
        f"error(s) in a row; last: {error[:500]}"
    )
    notice = notify_source_disabled(rt, session, row, started)
    if notice is not None and notices is not None:
        notices.append(notice)


def notify_source_disabled(
    rt: Runtime, session: Session, row: m.Source, now: datetime
) -> str | None:
    """Say loudly that newswatch stopped polling a source: an ERROR log line always, and
    an operational notice when a `notices:` channel is configured. Returns the notice's
    delivery id (to enqueue after the commit), once per disabling."""
    log.error(
        "source %s DISABLED: %s. Fix the URL in the config (a changed URL re-enables it).",
        row.name,
        row.disabled_reason,
        extra={"source_id": row.id, "event": "source_disabled"},
    )
    return raise_notice(
        rt,
        session,
        f"source_disabled:{row.name}:{now.isoformat()}",
        "source_disabled",
        f"source {row.name} disabled",
        f"newswatch stopped polling source {row.name} ({row.url}): {row.disabled_reason}.\n"
        "Fix the URL in the config file; a changed URL re-enables the source.",
        now,
    )
