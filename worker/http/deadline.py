"""The overall time budget of one fetch, enforced on the sockets themselves."""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from contextlib import suppress


class Deadline:
    """Per-read timeouts do not stop a server that sends one byte a second (or a
    header line a second); only cutting the socket at the deadline does. A
    timer shuts down every socket the request used, which wakes a blocked read
    in the fetching thread; the fetcher then reports a timeout. One watchdog thread per
    process times every deadline (a thread per request cost more than a 304's exchange).
    """

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.at = self.started + seconds
        self.expired = False
        self._done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        _WATCHDOG.add(self)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._done:
                return
            if self.expired:
                _shutdown(sock)
            elif sock not in self._sockets:
                self._sockets.append(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._sockets.clear()
        # left in the watchdog's heap until its time: firing a finished deadline does nothing


class _Watchdog:
    """Fires each Deadline at its time, from one daemon thread (started on first use, and
    again in a forked child, where the parent's thread does not exist). A finished
    Deadline stays queued until its time: it is small (its sockets are let go)."""

    def __init__(self) -> None:
        self._order = itertools.count()  # ties never compare Deadlines
        self.reset()

    def reset(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._wake = threading.Condition()  # new: a fork may copy the old one held
        self._running = False

    def add(self, deadline: Deadline) -> None:
        with self._wake:
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="newswatch-deadlines", daemon=True).start()
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._heap[0][2] is deadline:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _at, _n, due = heapq.heappop(self._heap)
            due._fire()


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.reset)


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: cut the TCP stream under
    # TLS without touching the SSL object another thread is reading from.
    # Not close(): the descriptor number could be reused while still in use.
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
