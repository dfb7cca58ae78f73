"""Operational notices: the one place a notice is raised.

A notice is a delivery to the `notices:` channel, keyed by its incident so that each
incident notifies once (the (notice_key, channel) constraint decides). Every stage
that has something to say (a source disabled, an item quarantined, the watchdog, a
full disk, a dead delivery) calls `raise_notice`; the alerts stage sends it like any
delivery, and worker/alerts/notices.py raises those the database and config show.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from worker.core.redact import redact_text
from worker.store import deliveries as store
from worker.tracking import metrics

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)


def raise_notice(
    rt: Runtime, session: Session, key: str, event: str, title: str, body: str, now: datetime
) -> str | None:
    """A notice delivery to the notices channel, once per `key` (the incident).
    Returns its id when new; None when it was raised before or no channel takes notices."""
    notices = rt.config.current().loaded.config.notices
    if notices is None:
        return None
    # notices quote errors and sources: no URL in them beyond its scheme and host
    title, body = redact_text(title), redact_text(body)
    notice = {"event": event, "title": title[:500], "text": body[:4000]}
    row_id = store.insert_notice(session, notices.channel, key, notice, now)
    if row_id is not None:
        log.warning("notice to %s: %s", notices.channel, title)
    return row_id


def collect(into: list[str] | None, item: str | None) -> None:
    if into is not None and item is not None:
        into.append(item)


def step_failed(step: str, what: str, exc: BaseException) -> None:
    """One step of a periodic tick failed: log it with the reason and count it; the
    tick goes on with the next step (and the next tick tries this one again)."""
    metrics.count_unit_failure("tick", step, type(exc).__name__)
    reason = redact_text(f"{type(exc).__name__}: {exc}")
    log.error("outbox tick: %s (%s) failed, the other steps go on: %s", step, what, reason)
