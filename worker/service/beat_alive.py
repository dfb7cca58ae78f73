"""Beat's heartbeat: the scheduler refreshes a key in the broker's Redis as it ticks, so
`newswatch health --beat` (a container's healthcheck) can tell a beat that schedules from
one that hangs or lost its broker. The key expires by itself (BEAT_TTL_SECONDS): its remaining
time gives the age of the last tick by Redis's own clock, whatever the hosts' clocks say.
"""

from __future__ import annotations

import dbm.dumb
import logging
import os
import shelve
import socket
import time
from typing import Any

from celery.beat import PersistentScheduler

from worker.service.health import BEAT_KEY, BEAT_TTL_SECONDS, redis_for_broker_url

log = logging.getLogger(__name__)

EVERY_SECONDS = 10.0  # at most one write per this many seconds, and a tick at least as often


class PlainFileShelve:
    """`shelve` on dbm.dumb's plain files, for beat's schedule file. Python 3.13's default
    dbm is SQLite, and beat's store (opened by the worker that embeds beat, used in its beat
    process) failed there with "locking protocol" and killed beat: no poll was sent again
    (tests/e2e/test_python313.py caught it). The schedule is small and written at most every
    few minutes; plain files need no locking."""

    @staticmethod
    def open(filename: str, writeback: bool = False) -> shelve.Shelf[Any]:
        # the Shelf owns the store and closes it; typeshed does not see it is a mapping
        store = dbm.dumb.open(filename, "c")  # noqa: SIM115
        return shelve.Shelf(store, writeback=writeback)  # type: ignore[arg-type]


class HeartbeatScheduler(PersistentScheduler):
    """Celery's persistent scheduler that also notes each tick (see the module docstring)."""

    persistence = PlainFileShelve
    _noted_at = float("-inf")

    def adjust(self, n: float, drift: float = 0.0) -> float:
        # Celery wakes 10 ms early (drift -0.010). An entry found not yet due is put back
        # at "its remaining time, adjusted", which for the last 10 ms is now or earlier:
        # beat then ticks without sleeping until it is due, ~70 ticks a second with a 1 s
        # entry (dispatch), 11 ms of CPU a second for nothing. Waking on time, it sleeps.
        return n

    def tick(self, *args: Any, **kwargs: Any) -> float:
        delay = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now - self._noted_at >= EVERY_SECONDS:
            self._noted_at = now
            note_tick(self.app.conf.broker_url)
        return min(delay, EVERY_SECONDS)


def note_tick(broker_url: str) -> None:
    """Refresh the key; a broker that fails now is logged, never fatal: beat goes on, and
    the healthcheck sees the key age."""
    client = redis_for_broker_url(broker_url or "")
    if client is None:
        return
    try:
        client.set(BEAT_KEY, f"{socket.gethostname()}:{os.getpid()}", ex=BEAT_TTL_SECONDS)
    except Exception as exc:  # broker errors come in many types (redis, socket)
        log.warning("beat heartbeat not written: %s", exc)
    finally:
        client.close()
