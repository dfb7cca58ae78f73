"""What every step does with a unit of work that could not be done now."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from worker.tracking import metrics

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)

Defer = Callable[[Session, int, datetime], None]


def wait_for_disk(rt: Runtime, unit: str, row_id: int, exc: Exception, defer: Defer) -> None:
    """A full disk is an outage, not this row's fault: the row stays pending, the attempt
    its claim counted is given back (a long outage never quarantines anything), and the
    sweep tries it again after `requeue_after`. Should this write fail too, the error
    goes up to the task (worker/tasks.py) and the lease runs out as for a killed task."""
    until = rt.now() + timedelta(seconds=rt.settings.requeue_after_seconds)
    with rt.store.session() as session:
        defer(session, row_id, until)
    metrics.count_failure(unit, "disk_full")
    log.warning("%s %s: disk full, tried again later (no attempt spent): %s", unit, row_id, exc)
