"""The outbox tick: the periodic step of the alerts stage.

Rows first, messages second: deliveries are planned with their match
(worker/alerts/planning.py) and sent one by one (worker/alerts/sending.py); what is
left for the tick is what is due by the clock: digests (worker/alerts/digests.py),
notices (worker/alerts/notices.py) and the watchdog's checks and heartbeat.
Nothing here keeps state in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.alerts.digests import send_due_digests
from worker.alerts.notices import check_notices
from worker.service import watchdog
from worker.tracking.notices import step_failed

if TYPE_CHECKING:
    from worker.bootstrap import Runtime


def tick(rt: Runtime) -> list[str]:
    """Due digests out, new notices in, the watchdog's checks and heartbeat. Returns the
    notice deliveries to enqueue. Every step fails alone (see `send_due_digests`,
    `check_notices`): a broken batch never keeps a notice from being raised."""
    notices: list[str] = []
    try:
        send_due_digests(rt, notices)
    except Exception as exc:  # send_due_digests guards each batch; this is the last net
        step_failed("digests", "all", exc)
    try:
        notices += check_notices(rt)
    except Exception as exc:  # e.g. the live config could not be read
        step_failed("notices", "all", exc)
    try:  # no fetch, stalled work or deliveries, feed gaps; the heartbeat
        notices += watchdog.tick(rt)
    except Exception as exc:
        step_failed("watchdog", "all", exc)
    return notices
