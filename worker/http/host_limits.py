"""Per-host politeness: how many requests to one server at once, and how far apart.

Two implementations of one `slot()` contract: `HostLimiter` holds the limits in this
process; `worker.http.shared_limits.SharedHostLimiter` holds them in Redis so they hold
across processes and hosts. The arithmetic (`next_turn`, `send_wait`) is pure and shared.

Spacing is kept twice: a request takes a *turn* (when it may start), sleeps until it,
then *confirms* its send against the host's last actual send before it goes. Turns
alone space the plan, not the sends: a thread that wakes late (GIL, scheduler) sends
next to the on-time thread of the following turn. The confirmation holds it back
until `interval` after the previous send, so the server sees the spacing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol
from urllib.parse import urlsplit

from worker.http.deadline import Deadline
from worker.http.errors import FetchError

MAX_SPACING = 60.0  # seconds: no interval is longer (robots.MAX_CRAWL_DELAY caps Crawl-delay)


def politeness_key(url: str) -> str:
    # one server, whatever the scheme or port we reach it on
    return (urlsplit(url).hostname or "").lower()


def next_turn(now: float, next_free: float, remaining: float) -> float | None:
    """The start of the next request to a host whose next turn is free from `next_free`:
    None when it is more than `remaining` seconds away (then no turn is taken, so a
    request that cannot wait does not push the others back). The turn after it is
    then free from `start` plus the host's interval. The Lua script in shared_limits
    mirrors this."""
    start = max(now, next_free)
    if start - now > remaining:
        return None
    return start


def send_wait(now: float, last_sent: float | None, interval: float) -> float:
    """Seconds a request whose turn has come must still wait so that it goes out at
    least `interval` after the previous request to its host actually went (`last_sent`,
    None for none): 0.0 means send now, and `now` becomes the host's last send. The
    confirm script in shared_limits mirrors this."""
    if last_sent is None:
        return 0.0
    return max(0.0, last_sent + interval - now)


def past_deadline(host: str) -> FetchError:
    return FetchError("timeout", f"the next request slot for {host} is past the deadline")


def no_free_slot(host: str) -> FetchError:
    return FetchError("timeout", f"waited too long for a free slot for {host}")


class Limiter(Protocol):
    before_send: Callable[[str], None] | None

    def slot(
        self, host: str, deadline: Deadline, spacing: float = 0.0
    ) -> AbstractContextManager[None]: ...


class HostLimiter:
    """At most `max_concurrent` requests per host at once, `min_interval` s apart,
    in this process."""

    def __init__(self, max_concurrent: int, min_interval: float) -> None:
        self.max_concurrent = max_concurrent
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}
        self._last_sent: dict[str, float] = {}
        # Called with the host after a request's turn came and before its send is
        # confirmed: tests hold a thread back here, as a busy scheduler can.
        self.before_send: Callable[[str], None] | None = None

    @contextmanager
    def slot(self, host: str, deadline: Deadline, spacing: float = 0.0) -> Iterator[None]:
        """`spacing`: the host's own minimum interval (robots.txt Crawl-delay), if longer."""
        with self._lock:
            sem = self._slots.setdefault(host, threading.BoundedSemaphore(self.max_concurrent))
        if not sem.acquire(timeout=deadline.remaining()):
            raise no_free_slot(host)
        try:
            interval = max(self.min_interval, spacing)
            self._wait_turn(host, deadline, interval)
            if self.before_send is not None:
                self.before_send(host)
            self.confirm_send(host, deadline, interval)
            yield
        finally:
            sem.release()

    def _wait_turn(self, host: str, deadline: Deadline, interval: float) -> None:
        if interval <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = next_turn(now, self._next_start.get(host, 0.0), deadline.remaining())
            if start is None:
                raise past_deadline(host)
            self._next_start[host] = start + interval
            if len(self._next_start) > 4096:  # forget hosts idle for a while
                self._next_start = {h: t for h, t in self._next_start.items() if t > now}
        wait = start - now
        if wait > 0:
            time.sleep(wait)

    def confirm_send(self, host: str, deadline: Deadline, interval: float) -> None:
        """Return once this request may go: `interval` after the host's last send, which
        it then becomes. FetchError when that is past the deadline."""
        if interval <= 0:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                wait = send_wait(now, self._last_sent.get(host), interval)
                if wait <= 0:
                    self._last_sent[host] = now
                    if len(self._last_sent) > 4096:  # forget hosts idle for a while
                        cut = now - max(MAX_SPACING, self.min_interval)
                        self._last_sent = {h: t for h, t in self._last_sent.items() if t > cut}
                    return
            if wait > deadline.remaining():
                raise past_deadline(host)
            time.sleep(wait)
