"""Per-host politeness: how many requests to one server at once, and how far apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from worker.http.deadline import Deadline
from worker.http.errors import FetchError


def politeness_key(url: str) -> str:
    # one server, whatever the scheme or port we reach it on
    return (urlsplit(url).hostname or "").lower()


class HostLimiter:
    """At most `max_concurrent` requests per host at once, `min_interval` s apart."""

    def __init__(self, max_concurrent: int, min_interval: float) -> None:
        self.max_concurrent = max_concurrent
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}

    @contextmanager
    def slot(self, host: str, deadline: Deadline, spacing: float = 0.0) -> Iterator[None]:
        """`spacing`: the host's own minimum interval (robots.txt Crawl-delay), if longer."""
        with self._lock:
            sem = self._slots.setdefault(host, threading.BoundedSemaphore(self.max_concurrent))
        if not sem.acquire(timeout=deadline.remaining()):
            raise FetchError("timeout", f"waited too long for a free slot for {host}")
        try:
            self._wait_turn(host, deadline, max(self.min_interval, spacing))
            yield
        finally:
            sem.release()

    def _wait_turn(self, host: str, deadline: Deadline, interval: float) -> None:
        if interval <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start.get(host, 0.0))
            if start - now > deadline.remaining():
                # not reserved: a request that cannot wait must not push the others back
                raise FetchError(
                    "timeout", f"the next request slot for {host} is past the deadline"
                )
            self._next_start[host] = start + interval
            if len(self._next_start) > 4096:  # forget hosts idle for a while
                self._next_start = {h: t for h, t in self._next_start.items() if t > now}
        wait = start - now
        if wait > 0:
            time.sleep(wait)
