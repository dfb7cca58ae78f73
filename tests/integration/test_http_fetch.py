"""The fetcher against real HTTP servers on 127.0.0.1, hostile ones included.

Loopback is only reachable because each fetcher here allows 127.0.0.0/8; the
fake resolver and connect recorder (`fake_dns`) make sure nothing leaves the
machine. Bounds on time are only asserted where stopping is the point, and
they are generous: deadline + 1 s.
"""

from __future__ import annotations

import gzip
import itertools
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import brotli
import pytest
import requests

from tests.helpers import httpserver, netsafety
from tests.helpers.httpserver import RecordedRequest, TestServer
from tests.helpers.netsafety import FakeDNS
from worker.config import FetchSpec
from worker.config.to_sources import fetch_options
from worker.http.errors import FetchError
from worker.http.fetcher import Fetcher, FetchResult, parse_retry_after

http_server = httpserver.http_server
make_http_server = httpserver.make_http_server
fake_dns = netsafety.fake_dns

DEADLINE = 2.0
CAP = 1024 * 1024
LOOPBACK = ("127.0.0.0/8",)
RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


def spec(**overrides: object) -> FetchSpec:
    values: dict[str, object] = {
        "connect_timeout": 1.0,
        "read_timeout": 1.5,
        "deadline": DEADLINE,
        "max_bytes": CAP,
        "allow_networks": LOOPBACK,
    }
    values.update(overrides)
    return FetchSpec(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_fetcher(fake_dns: FakeDNS) -> Iterator[Callable[..., Fetcher]]:
    made: list[Fetcher] = []

    def make(respect_robots: bool = False, **kwargs: object) -> Fetcher:
        ctor = {k: kwargs.pop(k) for k in list(kwargs) if k in _CTOR_KWARGS}
        ctor.setdefault("min_interval", 0.0)
        fetcher = Fetcher(fetch_options(spec(**kwargs)), respect_robots=respect_robots, **ctor)  # type: ignore[arg-type]
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


_CTOR_KWARGS = {"session", "max_per_host", "min_interval", "robots_ttl", "robots_error_ttl"}


@pytest.fixture
def fetcher(make_fetcher: Callable[..., Fetcher]) -> Fetcher:
    return make_fetcher()


def fetch_error(call: Callable[[], FetchResult]) -> tuple[FetchError, float]:
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        call()
    return info.value, time.monotonic() - started


# --- the ordinary path -------------------------------------------------------


def test_get_returns_body_headers_and_sends_our_user_agent(
    http_server: TestServer, fetcher: Fetcher
) -> None:
    url = http_server.add("/feed.xml", RSS, headers={"Content-Type": "application/rss+xml"})
    result = fetcher.get(url, expect="feed")
    assert result.status == 200
    assert result.body == RSS
    assert result.url == url
    assert result.headers["content-type"] == "application/rss+xml"  # case-insensitive
    assert result.not_modified is False
    assert result.elapsed > 0
    sent = http_server.requests[-1].headers
    assert sent["User-Agent"] == FetchSpec().user_agent
    assert "newswatch" in sent["User-Agent"]
    assert "application/rss+xml" in sent["Accept"]
    assert "gzip" in sent["Accept-Encoding"]


def test_gzip_deflate_and_brotli_bodies_are_decoded(
    http_server: TestServer, fetcher: Fetcher
) -> None:
    for encoding, data in [
        ("gzip", gzip.compress(RSS)),
        ("deflate", zlib.compress(RSS)),
        ("br", brotli.compress(RSS)),
    ]:
        url = http_server.add(
            f"/{encoding}", data, headers={"Content-Type": "text/xml", "Content-Encoding": encoding}
        )
        assert fetcher.get(url, expect="feed").body == RSS


def test_conditional_get_with_etag(http_server: TestServer, fetcher: Fetcher) -> None:
    def answer(request: RecordedRequest) -> httpserver.Answer:
        if request.headers.get("If-None-Match") == '"v1"':
            return 304, {"ETag": '"v1"'}, b""
        return 200, {"ETag": '"v1"', "Content-Type": "application/rss+xml"}, RSS

    http_server.routes["/feed"] = answer
    url = http_server.url("/feed")
    first = fetcher.get(url, expect="feed")
    assert (first.status, first.etag, first.not_modified) == (200, '"v1"', False)
    second = fetcher.get(url, etag=first.etag, expect="feed")
    assert (second.status, second.not_modified, second.body) == (304, True, b"")
    assert second.etag == '"v1"'
    assert http_server.requests[-1].headers["If-None-Match"] == '"v1"'
    changed = fetcher.get(url, etag='"v0"', expect="feed")
    assert changed.status == 200 and changed.body == RSS


def test_conditional_get_with_last_modified(http_server: TestServer, fetcher: Fetcher) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"

    def answer(request: RecordedRequest) -> httpserver.Answer:
        if request.headers.get("If-Modified-Since") == stamp:
            return 304, {}, b""
        return 200, {"Last-Modified": stamp, "Content-Type": "text/html"}, b"<html>hi</html>"

    http_server.routes["/page"] = answer
    first = fetcher.get(http_server.url("/page"), expect="html")
    assert first.last_modified == stamp and first.etag is None
    second = fetcher.get(http_server.url("/page"), last_modified=first.last_modified)
    assert second.not_modified and second.body == b"" and second.status == 304
    assert "If-None-Match" not in http_server.requests[-1].headers


def test_redirects_are_followed_and_the_final_url_reported(
    http_server: TestServer, fetcher: Fetcher
) -> None:
    http_server.add("/a", status=301, headers={"Location": "/b"})
    http_server.add("/b", status=302, headers={"Location": http_server.url("/c")})
    final = http_server.add("/c", RSS, headers={"Content-Type": "application/atom+xml"})
    result = fetcher.get(http_server.url("/a"), expect="feed")
    assert result.url == final and result.body == RSS


def test_five_redirects_are_fine_six_are_too_many(
    http_server: TestServer, fetcher: Fetcher
) -> None:
    for i in range(6):
        http_server.add(f"/r{i}", status=307, headers={"Location": f"/r{i + 1}"})
    http_server.add("/r6", b"end")
    assert fetcher.get(http_server.url("/r1")).body == b"end"  # r1 -> ... -> r6: 5 hops
    error, _ = fetch_error(lambda: fetcher.get(http_server.url("/r0")))
    assert error.kind == "too_many_redirects"


def test_redirect_loop_stops(http_server: TestServer, fetcher: Fetcher) -> None:
    http_server.add("/loop", status=302, headers={"Location": "/loop"})
    error, took = fetch_error(lambda: fetcher.get(http_server.url("/loop")))
    assert error.kind == "too_many_redirects"
    assert http_server.hits("/loop") == 6
    assert took < DEADLINE + 1


@pytest.mark.parametrize(
    ("status", "permanent"), [(404, True), (410, True), (500, False), (403, False)]
)
def test_error_statuses(
    http_server: TestServer, fetcher: Fetcher, status: int, permanent: bool
) -> None:
    url = http_server.add("/x", b"nope", status=status)
    error, _ = fetch_error(lambda: fetcher.get(url))
    assert (error.kind, error.status, error.permanent) == ("http_status", status, permanent)


def test_retry_after_seconds_and_http_date(http_server: TestServer, fetcher: Fetcher) -> None:
    http_server.add("/busy", status=429, headers={"Retry-After": "120"})
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
    http_server.add("/down", status=503, headers={"Retry-After": when})
    busy, _ = fetch_error(lambda: fetcher.get(http_server.url("/busy")))
    assert busy.retry_after == 120 and not busy.permanent
    down, _ = fetch_error(lambda: fetcher.get(http_server.url("/down")))
    assert down.retry_after is not None and 500 < down.retry_after <= 600


def test_parse_retry_after() -> None:
    now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("0") == 0
    assert parse_retry_after(" 30 ") == 30
    assert parse_retry_after("Mon, 01 Jan 2024 12:01:30 GMT", now) == 90
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now) == 0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None


# --- URLs and schemes --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("ftp://example.org/feed", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
        ("gopher://example.org/", "bad_scheme"),
        ("example.org/feed", "invalid_url"),
        ("http://", "invalid_url"),
        ("http://example.org:99999/", "invalid_url"),
        ("not a url", "invalid_url"),
    ],
)
def test_bad_urls_are_refused_before_any_request(
    fetcher: Fetcher, fake_dns: FakeDNS, url: str, kind: str
) -> None:
    error, _ = fetch_error(lambda: fetcher.get(url))
    assert error.kind == kind and error.permanent
    assert fake_dns.connects == [] and fake_dns.lookups == []


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/"])
def test_redirect_to_another_scheme_is_refused(
    http_server: TestServer, fetcher: Fetcher, target: str
) -> None:
    url = http_server.add("/r", status=302, headers={"Location": target})
    error, _ = fetch_error(lambda: fetcher.get(url))
    assert error.kind == "bad_scheme" and error.permanent


# --- content types -----------------------------------------------------------


@pytest.mark.parametrize(
    ("expect", "content_type", "body", "ok"),
    [
        ("feed", "application/rss+xml", RSS, True),
        ("feed", "application/atom+xml; charset=utf-8", RSS, True),
        ("feed", "application/feed+json", b'{"version": "x"}', True),
        ("feed", "text/xml", RSS, True),
        ("feed", "text/plain", RSS, True),  # sloppy but real
        ("feed", "application/octet-stream", RSS, True),  # sloppy but real
        ("feed", "text/html", RSS, True),  # RSS served as HTML
        ("feed", None, RSS, True),  # no Content-Type at all
        ("feed", "garbage", RSS, True),  # malformed
        ("feed", ";;;", RSS, True),
        ("feed", "text/xml;;charset=", RSS, True),
        ("feed", "application/octet-stream", b"\x89PNG\r\n\x1a\n\x00\x00binary", False),
        ("feed", "text/plain", b"just some words", False),
        ("feed", "text/html", b"<!DOCTYPE html><html><body>consent</body></html>", False),
        ("feed", "image/png", b"\x89PNG\r\n\x1a\n", False),
        ("feed", "application/pdf", b"%PDF-1.4", False),
        ("feed", "video/mp4", RSS, False),  # refused on the header alone
        ("html", "text/html; charset=utf-8", b"<html><p>hi</p></html>", True),
        ("html", "application/xhtml+xml", b"<?xml version='1.0'?><html/>", True),
        ("html", "text/plain", b"<!doctype html><html></html>", True),
        ("html", "application/octet-stream", b"\x00\x01\x02\x03", False),
        ("html", "image/jpeg", b"\xff\xd8\xff", False),
        ("html", "application/zip", b"PK\x03\x04", False),
        ("any", "application/octet-stream", b"\x00\x01\x02\x03", True),
        ("any", "image/png", b"\x89PNG", True),
    ],
)
def test_content_type_check(
    http_server: TestServer,
    fetcher: Fetcher,
    expect: str,
    content_type: str | None,
    body: bytes,
    ok: bool,
) -> None:
    url = http_server.add(
        "/x", body, headers={"Content-Type": content_type} if content_type else {}
    )
    if ok:
        assert fetcher.get(url, expect=expect).body == body  # type: ignore[arg-type]
    else:
        error, _ = fetch_error(lambda: fetcher.get(url, expect=expect))  # type: ignore[arg-type]
        assert error.kind == "content_type"
        assert expect in error.message


def test_empty_200(http_server: TestServer, fetcher: Fetcher) -> None:
    url = http_server.add("/empty", b"", headers={"Content-Type": "application/rss+xml"})
    assert fetcher.get(url).body == b""
    error, _ = fetch_error(lambda: fetcher.get(url, expect="feed"))
    assert error.kind == "content_type" and "empty" in error.message


# --- size --------------------------------------------------------------------


def test_body_exactly_at_the_cap_is_fine(http_server: TestServer, fetcher: Fetcher) -> None:
    url = http_server.add("/exact", b"a" * CAP)
    assert len(fetcher.get(url).body) == CAP


def test_50mb_body_is_too_large(http_server: TestServer, fetcher: Fetcher) -> None:
    url = http_server.add("/big", b"a" * (50 * 1024 * 1024))
    error, took = fetch_error(lambda: fetcher.get(url))
    assert error.kind == "too_large" and not error.permanent
    assert took < DEADLINE + 1


def test_50mb_streamed_without_length_is_too_large_with_bounded_memory(
    http_server: TestServer, fetcher: Fetcher
) -> None:
    chunk = b"a" * 65536
    http_server.add("/big", (chunk for _ in range(800)))  # 50 MiB, chunked
    error, peak, took = _fetch_measured(fetcher, http_server.url("/big"))
    assert error.kind == "too_large"
    assert peak < 2 * CAP
    assert took < DEADLINE + 1


_BOMB_SIZE = 64 * 1024 * 1024  # decompressed: 64 times the cap


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """Compressed zeros, built before memory is measured (the server shares our process)."""
    zeros = bytes(_BOMB_SIZE)
    built = {
        "gzip": gzip.compress(zeros, compresslevel=9),
        "deflate": zlib.compress(zeros, 9),
        "br": brotli.compress(zeros, quality=5),
    }
    del zeros
    return built


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_decompression_bombs_stop_at_the_cap_with_bounded_memory(
    http_server: TestServer, fetcher: Fetcher, bombs: dict[str, bytes], encoding: str
) -> None:
    assert len(bombs[encoding]) < _BOMB_SIZE / 500  # it is a bomb
    http_server.add(
        "/bomb",
        bombs[encoding],
        headers={"Content-Type": "application/rss+xml", "Content-Encoding": encoding},
    )
    error, peak, took = _fetch_measured(fetcher, http_server.url("/bomb"))
    assert error.kind == "too_large" and "decompressed" in error.message
    assert peak < 2 * CAP
    assert took < DEADLINE + 1


def test_endless_chunked_body_stops(http_server: TestServer, fetcher: Fetcher) -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"<item>" + b"x" * 4096 + b"</item>"

    http_server.add("/endless", endless(), headers={"Content-Type": "application/rss+xml"})
    error, peak, took = _fetch_measured(fetcher, http_server.url("/endless"))
    assert error.kind == "too_large"
    assert peak < 2 * CAP
    assert took < DEADLINE + 1


def _fetch_measured(fetcher: Fetcher, url: str) -> tuple[FetchError, int, float]:
    tracemalloc.start()
    try:
        error, took = fetch_error(lambda: fetcher.get(url))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return error, peak, took


# --- time --------------------------------------------------------------------


def test_one_byte_a_second_drip_is_cut_at_the_deadline(
    http_server: TestServer, fetcher: Fetcher
) -> None:
    def drip() -> Iterator[bytes]:
        for _ in range(60):
            yield b"<"
            time.sleep(0.5)  # well under the read timeout: only the deadline can stop it

    http_server.add("/drip", drip(), headers={"Content-Type": "text/xml"})
    error, took = fetch_error(lambda: fetcher.get(http_server.url("/drip")))
    assert error.kind == "timeout" and not error.permanent
    assert took < DEADLINE + 1


def test_headers_dripped_forever_are_cut_at_the_deadline(fetcher: Fetcher) -> None:
    def drip_headers(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for i in range(60):
            conn.sendall(b"X-Slow-%d: y\r\n" % i)
            time.sleep(0.3)

    with _raw_server(drip_headers) as port:
        error, took = fetch_error(lambda: fetcher.get(f"http://127.0.0.1:{port}/"))
    assert error.kind == "timeout"
    assert took < DEADLINE + 1


def test_read_timeout_when_the_server_goes_silent(make_fetcher: Callable[..., Fetcher]) -> None:
    fetcher = make_fetcher(read_timeout=0.3, deadline=5.0)

    def silent(conn: socket.socket) -> None:
        conn.recv(65536)
        time.sleep(3)

    with _raw_server(silent) as port:
        error, took = fetch_error(lambda: fetcher.get(f"http://127.0.0.1:{port}/"))
    assert error.kind == "timeout"
    assert took < 5.0  # the read timeout, not the deadline, ended it


def test_connect_timeout(make_fetcher: Callable[..., Fetcher]) -> None:
    """A listener whose backlog is full never completes the handshake."""
    fetcher = make_fetcher(connect_timeout=0.3, deadline=5.0)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue (its size varies by kernel)
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.1)
        error, took = fetch_error(lambda: fetcher.get(f"http://127.0.0.1:{port}/"))
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert error.kind == "timeout"
    assert took < 5.0


def test_connection_refused(fetcher: Fetcher) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    error, _ = fetch_error(lambda: fetcher.get(f"http://127.0.0.1:{port}/"))
    assert error.kind == "refused" and error.outcome == "refused" and not error.permanent


class _raw_server:
    """A TCP server on 127.0.0.1 whose connections are handled by `handle(conn)`."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.handle = handle
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.stop = threading.Event()

    def __enter__(self) -> int:
        threading.Thread(target=self._serve, daemon=True).start()
        return self.listener.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.listener.close()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            conn.close()


# --- webhooks ----------------------------------------------------------------


def test_post_json_sends_body_and_headers(http_server: TestServer, fetcher: Fetcher) -> None:
    url = http_server.add("/hook", b"ok", headers={"Content-Type": "text/plain"})
    result = fetcher.post_json(url, b'{"a": 1}', {"webhook-id": "msg_1"})
    assert result.status == 200 and result.body == b"ok"
    request = http_server.requests[-1]
    assert request.method == "POST" and request.body == b'{"a": 1}'
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == "msg_1"
    assert "newswatch" in request.headers["User-Agent"]
    assert http_server.hits("/robots.txt") == 0


def test_post_json_returns_redirects_without_following(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(respect_robots=True)
    url = http_server.add("/hook", status=302, headers={"Location": "/elsewhere"})
    http_server.add("/elsewhere", b"no")
    result = fetcher.post_json(url, b"{}", {})
    assert result.status == 302 and result.headers["Location"] == "/elsewhere"
    assert http_server.hits("/elsewhere") == 0
    assert http_server.hits("/robots.txt") == 0  # webhooks are not crawling


def test_post_json_error_status(http_server: TestServer, fetcher: Fetcher) -> None:
    http_server.add("/hook", b"busy", status=503, headers={"Retry-After": "7"})
    error, _ = fetch_error(lambda: fetcher.post_json(http_server.url("/hook"), b"{}", {}))
    assert (error.kind, error.status, error.retry_after) == ("http_status", 503, 7)


def test_post_json_is_guarded(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(allow_networks=())
    url = http_server.add("/hook", b"ok")
    error, _ = fetch_error(lambda: fetcher.post_json(url, b"{}", {}))
    assert error.kind == "blocked_address" and error.permanent
    assert http_server.requests == []


# --- robots.txt --------------------------------------------------------------


def test_robots_disallow_is_honoured_and_cached(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(respect_robots=True)
    http_server.add(
        "/robots.txt",
        "User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n",
        headers={"Content-Type": "text/plain"},
    )
    http_server.add("/private/page", b"<html>secret</html>")
    http_server.add("/public", b"<html>ok</html>")
    error, _ = fetch_error(lambda: fetcher.get(http_server.url("/private/page")))
    assert error.kind == "robots_disallow" and not error.permanent
    assert fetcher.get(http_server.url("/public")).body == b"<html>ok</html>"
    assert fetcher.get(http_server.url("/public")).status == 200
    error, _ = fetch_error(lambda: fetcher.get(http_server.url("/private/page")))
    assert error.kind == "robots_disallow"
    assert http_server.hits("/robots.txt") == 1  # cached
    assert http_server.hits("/private/page") == 0


def test_robots_group_for_our_product_token_wins(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(respect_robots=True)
    http_server.add(
        "/robots.txt", "User-agent: *\nDisallow: /\n\nUser-agent: newswatch\nDisallow: /nw-no\n"
    )
    http_server.add("/nw-no", b"x")
    http_server.add("/news", b"n")
    error, _ = fetch_error(lambda: fetcher.get(http_server.url("/nw-no")))
    assert error.kind == "robots_disallow"
    assert fetcher.get(http_server.url("/news")).body == b"n"


def test_robots_cache_expires(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(respect_robots=True, robots_ttl=0.2)
    http_server.add("/robots.txt", "User-agent: *\nDisallow:\n")
    http_server.add("/a", b"a")
    fetcher.get(http_server.url("/a"))
    fetcher.get(http_server.url("/a"))
    time.sleep(0.3)
    fetcher.get(http_server.url("/a"))
    assert http_server.hits("/robots.txt") == 2


def test_robots_4xx_allows_everything(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(respect_robots=True)
    url = http_server.add("/page", b"p")  # /robots.txt is a 404 here
    assert fetcher.get(url).body == b"p"
    assert http_server.hits("/robots.txt") == 1


def test_robots_5xx_disallows_for_a_while(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(respect_robots=True, robots_error_ttl=0.3)
    http_server.add("/robots.txt", b"oops", status=503)
    url = http_server.add("/page", b"p")
    for _ in range(2):
        error, _ = fetch_error(lambda: fetcher.get(url))
        # named after the cause, robots.txt only where it was noticed
        assert (error.kind, error.status, error.outcome) == ("http_status", 503, "http_503")
        assert "robots.txt is unreachable" in error.message and not error.permanent
    assert http_server.hits("/robots.txt") == 1 and http_server.hits("/page") == 0
    http_server.add("/robots.txt", "User-agent: *\nAllow: /\n")
    time.sleep(0.4)
    assert fetcher.get(url).body == b"p"


def test_robots_are_checked_on_every_redirect_hop(
    http_server: TestServer,
    make_http_server: Callable[[], TestServer],
    make_fetcher: Callable[..., Fetcher],
) -> None:
    fetcher = make_fetcher(respect_robots=True)
    other = make_http_server()
    other.add("/robots.txt", "User-agent: *\nDisallow: /\n")
    other.add("/target", b"t")
    url = http_server.add("/go", status=302, headers={"Location": other.url("/target")})
    error, _ = fetch_error(lambda: fetcher.get(url))
    assert error.kind == "robots_disallow" and other.hits("/target") == 0


def test_respect_robots_false_skips_robots(http_server: TestServer, fetcher: Fetcher) -> None:
    http_server.add("/robots.txt", "User-agent: *\nDisallow: /\n")
    url = http_server.add("/page", b"p")
    assert fetcher.get(url).body == b"p"
    assert http_server.hits("/robots.txt") == 0


# --- politeness --------------------------------------------------------------


def test_per_host_concurrency_limit(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(max_per_host=1, deadline=5.0)
    active = 0
    most = 0
    lock = threading.Lock()

    def slow(_request: RecordedRequest) -> httpserver.Answer:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.2)
        with lock:
            active -= 1
        return 200, {}, b"ok"

    http_server.routes["/slow"] = slow
    threads = [
        threading.Thread(target=fetcher.get, args=(http_server.url("/slow"),)) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert http_server.hits("/slow") == 3
    assert most == 1


def test_min_interval_between_requests_to_one_host(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    fetcher = make_fetcher(min_interval=0.3)
    arrivals: list[float] = []

    def stamp(_request: RecordedRequest) -> httpserver.Answer:
        arrivals.append(time.monotonic())
        return 200, {}, b"ok"

    http_server.routes["/s"] = stamp
    for _ in range(3):
        fetcher.get(http_server.url("/s"))
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(gap >= 0.25 for gap in gaps), gaps


# --- the session -------------------------------------------------------------


def test_a_given_session_is_used_and_guarded(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    session = requests.Session()
    session.headers["X-Extra"] = "1"
    guarded = make_fetcher(session=session, allow_networks=())
    url = http_server.add("/p", b"p")
    error, _ = fetch_error(lambda: guarded.get(url))
    assert error.kind == "blocked_address"
    allowed = make_fetcher(session=session)
    assert allowed.get(url).body == b"p"
    assert http_server.requests[-1].headers["X-Extra"] == "1"


def test_proxy_environment_is_ignored(
    http_server: TestServer, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # through a proxy the guard would only see the proxy's address
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    url = http_server.add("/p", b"p")
    assert fetcher.get(url).body == b"p"


# --- connection reuse ----------------------------------------------------------


def test_connections_are_reused_and_the_deadline_still_applies(
    http_server: TestServer, fetcher: Fetcher, fake_dns: FakeDNS
) -> None:
    def drip() -> Iterator[bytes]:
        for _ in range(60):
            yield b"<"
            time.sleep(0.5)

    http_server.add("/ok", b"ok")
    http_server.add("/drip", drip())
    assert fetcher.get(http_server.url("/ok")).body == b"ok"
    error, took = fetch_error(lambda: fetcher.get(http_server.url("/drip")))
    assert len(fake_dns.connects) == 1  # the second request went over the pooled connection
    assert error.kind == "timeout"
    assert took < DEADLINE + 1


def test_a_partly_read_error_page_does_not_poison_the_next_request(
    http_server: TestServer, fetcher: Fetcher
) -> None:
    http_server.add("/gone", b"x" * 300_000, status=404, headers={"X-Why": "moved"})
    http_server.add("/ok", b"ok")
    error, _ = fetch_error(lambda: fetcher.get(http_server.url("/gone")))
    assert error.status == 404 and error.headers is not None
    assert error.headers["x-why"] == "moved"
    assert fetcher.get(http_server.url("/ok")).body == b"ok"


def test_a_dripped_tls_handshake_is_cut_at_the_deadline(fetcher: Fetcher) -> None:
    """A server dripping its TLS handshake is stopped too, before any HTTP is spoken.

    (CPython bounds a whole handshake by the socket timeout; the fetcher also
    puts the socket under the deadline watchdog before the handshake starts.)
    """

    def drip_handshake(conn: socket.socket) -> None:
        conn.recv(65536)  # the ClientHello
        conn.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16 KiB follows...
        for _ in range(200):
            conn.sendall(b"\x00")  # ...one byte at a time, each well within the timeouts
            time.sleep(0.3)

    with _raw_server(drip_handshake) as port:
        error, took = fetch_error(lambda: fetcher.get(f"https://127.0.0.1:{port}/"))
    assert error.kind == "timeout"
    assert took < DEADLINE + 1


def test_robots_crawl_delay_spaces_requests_to_the_host(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    """Crawl-delay 30 with a 3 s deadline: the second request cannot wait its turn and is
    refused without a request, and without pushing the next turn further back."""
    fetcher = make_fetcher(respect_robots=True, deadline=3.0)
    http_server.add("/robots.txt", "User-agent: *\nCrawl-delay: 30\nDisallow: /private/\n")
    url = http_server.add("/news", b"n")
    assert fetcher.get(url).body == b"n"
    turn = fetcher._limiter._next_start["127.0.0.1"]
    assert turn - time.monotonic() > 20  # the host's next turn: ~30 s on
    for _ in range(2):
        error, _ = fetch_error(lambda: fetcher.get(url))
        assert error.kind == "timeout" and "past the deadline" in error.message
    assert fetcher._limiter._next_start["127.0.0.1"] == turn
    assert http_server.hits("/news") == 1


def test_crawl_delay_for_another_agent_or_without_robots_is_not_kept(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    http_server.add("/robots.txt", "User-agent: slowbot\nCrawl-delay: 30\n")
    url = http_server.add("/news", b"n")
    polite = make_fetcher(respect_robots=True, deadline=3.0)
    assert [polite.get(url).status for _ in range(3)] == [200, 200, 200]
    http_server.add("/robots.txt", "User-agent: *\nCrawl-delay: 30\n")
    rude = make_fetcher(respect_robots=False, deadline=3.0)
    assert [rude.get(url).status for _ in range(3)] == [200, 200, 200]


def test_a_huge_crawl_delay_is_capped(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher]
) -> None:
    from worker.http.robots import MAX_CRAWL_DELAY

    fetcher = make_fetcher(respect_robots=True)
    http_server.add("/robots.txt", "User-agent: newswatch\nCrawl-delay: 86400\n")
    url = http_server.add("/news", b"n")
    fetcher.get(url)
    wait = fetcher._limiter._next_start["127.0.0.1"] - time.monotonic()
    assert MAX_CRAWL_DELAY - 5 < wait <= MAX_CRAWL_DELAY


# --- the plain GET (worker/http/plain_get.py) -------------------------------------


def test_a_get_goes_to_the_pool_without_the_session_and_sends_what_the_session_would(
    http_server: TestServer, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.add("/feed", RSS, headers={"Content-Type": "application/rss+xml", "ETag": '"v"'})

    def no_session(*_a: object, **_k: object) -> None:
        raise AssertionError("a plain GET went through requests.Session")

    monkeypatch.setattr(fetcher.session, "request", no_session)
    result = fetcher.get(http_server.url("/feed?a=1&b=%20c d"), etag='"v0"', expect="feed")
    assert result.body == RSS and result.etag == '"v"'
    sent = http_server.requests[-1]
    assert sent.path == "/feed?a=1&b=%20c%20d"  # quoted as requests quotes it
    assert sent.headers["If-None-Match"] == '"v0"'
    assert sent.headers["User-Agent"].startswith("newswatch")
    assert sent.headers["Accept-Encoding"] == "gzip, deflate, br"
    assert sent.headers["Connection"] == "keep-alive"  # the session's default header


def test_cookies_and_credentials_go_through_the_session_as_before(
    http_server: TestServer, fetcher: Fetcher
) -> None:
    """A cookie a plain GET receives is kept in the session's jar and sent back (as a
    requests.Session does); a URL with user:password is sent with Basic auth."""
    http_server.add("/set", b"x", headers={"Set-Cookie": "sid=42; Path=/"})
    http_server.add("/next", b"y")
    fetcher.get(http_server.url("/set"))
    assert "Cookie" not in http_server.requests[-1].headers
    fetcher.get(http_server.url("/next"))
    assert http_server.requests[-1].headers["Cookie"] == "sid=42"

    fetcher.session.cookies.clear()
    fetcher.get(http_server.url("/next").replace("http://", "http://reader:s3cret@"))
    assert http_server.requests[-1].headers["Authorization"].startswith("Basic ")


def test_keep_alive_hosts_follow_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from worker.http import fetcher as fetcher_module

    for soft, kept in [(1024, 256), (20000, 4096), (40, 16), (resource.RLIM_INFINITY, 4096)]:
        monkeypatch.setattr(resource, "getrlimit", lambda _which, s=soft: (s, s))
        assert fetcher_module.default_keep_alive_hosts() == kept
