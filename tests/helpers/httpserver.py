"""A real HTTP server on 127.0.0.1 for tests: routes in a dict, requests recorded.

    from tests.helpers import httpserver

    http_server = httpserver.http_server  # use the fixture in this module

    def test_feed(http_server):
        http_server.routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml"}, b"<rss/>")
        url = http_server.url("/feed.xml")
        ...
        assert http_server.requests[0].headers["User-Agent"].startswith("newswatch")

A route value is one of:

- `(status, headers, body)`: body is bytes, str (sent as UTF-8), or an iterable
  of bytes chunks, streamed as they come (chunked encoding unless the headers
  set Content-Length). A generator can sleep between chunks to drip.
- a callable `(request: RecordedRequest) -> (status, headers, body)`, for
  answers that depend on the request (conditional GET, counting hits...).

Unknown paths answer 404. The server speaks HTTP/1.1 with keep-alive, runs on
a random free port, one thread per connection, and stops with the fixture.
`make_http_server` is a factory fixture for tests that need several servers.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import pytest

Body = bytes | str | Iterable[bytes]
Answer = tuple[int, Mapping[str, str], Body]
Route = Answer | Callable[["RecordedRequest"], Answer]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: Message  # an http.client.HTTPMessage: case-insensitive
    body: bytes
    port: int  # the server that received it


@dataclass
class TestServer:
    host: str = "127.0.0.1"
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    scheme: str = "http"
    connections: int = 0  # TCP connections accepted
    _server: http.server.ThreadingHTTPServer | None = None

    __test__ = False  # not a test class, despite the name

    def url(self, path: str = "/", host: str | None = None) -> str:
        """This server's URL for `path`; `host` replaces the address (for names in fake DNS)."""
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def add(
        self,
        path: str,
        body: Body = b"",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Serve `body` at `path`; returns the URL."""
        self.routes[path] = (status, dict(headers or {}), body)
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "newswatch-test/1"
    test_server: TestServer  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def setup(self) -> None:
        self.test_server.connections += 1  # one handler per accepted connection
        super().setup()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            self.command, self.path, self.headers, body, self.test_server.port
        )
        self.test_server.requests.append(request)
        route = self.test_server.routes.get(self.path)
        if route is None:
            route = self.test_server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            answer: Answer = (404, {"Content-Type": "text/plain"}, b"not found")
        else:
            answer = route(request) if callable(route) else route
        try:
            self._send(*answer)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True  # the client hung up: that is often the point

    def _send(self, status: int, headers: Mapping[str, str], body: Body) -> None:
        self.send_response(status)
        names = {k.lower() for k in headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if isinstance(body, str):
            body = body.encode("utf-8")
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        if isinstance(body, bytes | bytearray):
            if "content-length" not in names and not no_body:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not no_body:
                self.wfile.write(body)
            return
        chunked = "content-length" not in names
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for chunk in body:
            if not chunk:
                continue
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self.wfile.write(chunk)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # hostile handlers may still be dripping at exit

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that hang up or refuse our certificate are expected in these tests
        pass


@contextmanager
def serve(
    host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> Iterator[TestServer]:
    """Run a TestServer on a free port of `host` (loopback) until the block ends.

    With `ssl_context` (a server-side context, e.g. from trustme) it speaks HTTPS.
    """
    ts = TestServer(host=host, scheme="https" if ssl_context else "http")
    handler = type("Handler", (_Handler,), {"test_server": ts})
    server = _Server((host, 0), handler)
    if ssl_context is not None:
        # handshake in the connection's thread, not in the accept loop
        server.socket = ssl_context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    ts.port = server.server_address[1]
    ts._server = server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield ts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[TestServer]:
    with serve() as ts:
        yield ts


@pytest.fixture
def make_http_server() -> Iterator[Callable[[], TestServer]]:
    """Factory: `second = make_http_server()` for tests needing several servers."""
    with _Stack() as stack:
        yield stack.start


class _Stack:
    def __init__(self) -> None:
        self._managers: list[Any] = []

    def start(self) -> TestServer:
        cm = serve()
        ts = cm.__enter__()
        self._managers.append(cm)
        return ts

    def __enter__(self) -> _Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        for cm in reversed(self._managers):
            cm.__exit__(None, None, None)
