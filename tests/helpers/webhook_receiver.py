"""A real webhook receiver on 127.0.0.1 for tests: records requests, answers as told.

    with WebhookReceiver() as hook:                 # or the `webhook_receiver` fixture
        hook.fail(2, status=500)                    # 500, 500, then the default (200)
        hook.always(410)                            # 410 Gone from now on
        hook.fail(1, status=429, headers={"Retry-After": "7"})
        status, headers = post_with_requests(hook.url, body, headers)
        hook.requests[0].body, hook.requests[0].headers["webhook-id"]

    hook.stop(); hook.start()                       # down and up again, same port

Answers are taken from a queue (`fail`, `answer`) first, then the default set by
`always` (200 to begin with). `post_with_requests` is a plain `requests` POST with
no proxies from the environment, matching `worker.alerts.webhook.PostFn`.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


class WebhookReceiver:
    def __init__(self, port: int = 0):
        self.port = port
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._queue: deque[Answer] = deque()
        self._default = Answer()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> WebhookReceiver:
        if self._server is not None:
            return self
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = receiver._record(
                    ReceivedRequest(
                        method="POST",
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                    )
                )
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        server = http.server.ThreadingHTTPServer((HOST, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        # a short poll interval keeps stop() (and fixture teardown) quick
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    def url_for(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    # -- scripting answers --

    def answer(
        self, status: int, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Queue one answer for the next request."""
        with self._lock:
            self._queue.append(Answer(status, dict(headers or {}), body))

    def fail(self, times: int, status: int = 500, headers: Mapping[str, str] | None = None) -> None:
        """The next `times` requests get `status`; later ones the default."""
        for _ in range(times):
            self.answer(status, headers, b"error")

    def always(
        self, status: int, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        """The answer once the queue is empty (200 to begin with)."""
        with self._lock:
            self._default = Answer(status, dict(headers or {}), body)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            self._default = Answer()

    # -- what arrived --

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def _record(self, request: ReceivedRequest) -> Answer:
        with self._lock:
            self._requests.append(request)
            return self._queue.popleft() if self._queue else self._default


def post_with_requests(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float = 5.0
) -> tuple[int, Mapping[str, str]]:
    """The `post` seam of `deliver_webhook`, done with plain requests (tests only)."""
    with requests.Session() as session:
        session.trust_env = False  # no proxies from the environment: 127.0.0.1 only
        response = session.post(
            url, data=body, headers=dict(headers), timeout=timeout, allow_redirects=False
        )
        return response.status_code, response.headers


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connection refused)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --- pytest fixtures --------------------------------------------------------------


@pytest.fixture
def make_webhook_receiver() -> Iterator[Callable[[], WebhookReceiver]]:
    receivers: list[WebhookReceiver] = []

    def make() -> WebhookReceiver:
        receiver = WebhookReceiver().start()
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        receiver.stop()


@pytest.fixture
def webhook_receiver(make_webhook_receiver: Callable[[], WebhookReceiver]) -> WebhookReceiver:
    return make_webhook_receiver()
