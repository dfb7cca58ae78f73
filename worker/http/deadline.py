"""The overall time budget of one fetch, enforced on the sockets themselves."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress


class Deadline:
    """Per-read timeouts do not stop a server that sends one byte a second (or a
    header line a second); only cutting the socket at the deadline does. A
    timer shuts down every socket the request used, which wakes a blocked read
    in the fetching thread; the fetcher then reports a timeout.
    """

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.at = self.started + seconds
        self.expired = False
        self._done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

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
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: cut the TCP stream under
    # TLS without touching the SSL object another thread is reading from.
    # Not close(): the descriptor number could be reused while still in use.
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
