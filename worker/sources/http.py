"""The polite, guarded HTTP fetcher for feeds, pages and webhook POSTs.

Everything newswatch downloads or posts goes through `Fetcher`. It owns a
`requests.Session` whose transport is the SSRF guard (`netguard`), and adds
what a long-running crawler needs on top of requests:

- conditional GET (ETag / Last-Modified; 304 is a result, not an error);
- connect and read timeouts, plus an overall deadline armed as a watchdog on
  the socket, so a server dripping one byte a second is cut off on time;
- a cap on decompressed body size, enforced while streaming (gzip, deflate
  and brotli bombs stop at the cap; urllib3 >= 2.6 decodes at most what is
  asked for per read);
- at most five redirects, followed one by one so that each hop is checked
  (scheme, robots.txt, and the guard when its connection is made);
- a content-type check per what the caller expects, lenient where real
  feeds are sloppy;
- robots.txt per host (RFC 9309), cached in-process;
- per-host concurrency limit and minimum interval between requests.

Errors are raised as `FetchError` with a `kind` the caller can act on, named
after the real cause (refused, dns, tls, timeout, an HTTP status...), also when
the failure happened while fetching robots.txt; `outcome` is the label that
sources and metrics record. See docs/fetching.md.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
import threading
import time
import urllib.robotparser
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urljoin, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import DecodeError, HTTPError, NameResolutionError, NewConnectionError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util.retry import Retry

from worker.config import FetchSpec
from worker.core import httpdate
from worker.core.httpdate import FETCH_RETRY_AFTER_CAP
from worker.sources.netguard import AddressGuard, BlockedAddressError, GuardedAdapter, socket_hook

Expect = Literal["feed", "html", "any"]
ErrorKind = Literal[
    "refused",  # nothing listens on the port (or a firewall rejects)
    "dns",  # the host name does not resolve
    "tls",  # handshake or certificate failure
    "timeout",  # connect or read timeout, or the deadline passed
    "reset",  # the server closed or reset the connection mid-exchange
    "unreachable",  # no route to the network or host
    "connection",  # any other transport failure
    "bad_encoding",  # a compressed body that does not decompress
    "too_large",
    "blocked_address",
    "http_status",  # outcome http_<status>
    "too_many_redirects",
    "bad_scheme",
    "content_type",
    "robots_disallow",
    "invalid_url",
]

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_STATUSES = frozenset({404, 410})
_PERMANENT_KINDS = frozenset({"bad_scheme", "invalid_url", "blocked_address"})
_CHUNK = 64 * 1024
_ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB
# robots.txt Crawl-delay (not in RFC 9309; Bing and Yandex honour it) is kept between
# requests to a host, up to this: a day-long delay would only starve the fetch pool
MAX_CRAWL_DELAY = 60.0

_ACCEPT = {
    "feed": (
        "application/rss+xml, application/atom+xml, application/feed+json, "
        "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
    ),
    "html": "text/html, application/xhtml+xml;q=0.9, */*;q=0.5",
    "any": "*/*",
}


@dataclass(frozen=True)
class FetchResult:
    url: str  # final URL, after redirects
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    etag: str | None
    last_modified: str | None
    not_modified: bool
    elapsed: float  # seconds, the whole fetch including redirects and waits


class FetchError(Exception):
    """A fetch that did not produce a usable response.

    `permanent` says retrying the same URL later is pointless (404, 410, a bad
    URL, a refused address); everything else may be retried, no sooner than
    `retry_after` seconds when the server said so (429/503).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.url = url
        self.status = status
        self.retry_after = retry_after
        self.headers = headers  # the response's, for http_status errors
        self.permanent = kind in _PERMANENT_KINDS or status in _PERMANENT_STATUSES

    @property
    def outcome(self) -> str:
        """The label a source records and metrics count: the kind, with the status for
        HTTP errors (`http_503`); at most 900 distinct statuses, a bounded label set."""
        if self.kind == "http_status" and self.status is not None and 100 <= self.status <= 999:
            return f"http_{self.status}"
        return self.kind

    def __repr__(self) -> str:
        return f"FetchError(kind={self.kind!r}, status={self.status!r}, message={self.message!r})"


# --- deadline ----------------------------------------------------------------


class _Deadline:
    """The overall time budget of one fetch, enforced on the sockets themselves.

    Per-read timeouts do not stop a server that sends one byte a second (or a
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


# --- per-host politeness -----------------------------------------------------


class _HostLimiter:
    """At most `max_concurrent` requests per host at once, `min_interval` s apart."""

    def __init__(self, max_concurrent: int, min_interval: float) -> None:
        self.max_concurrent = max_concurrent
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}

    @contextmanager
    def slot(self, host: str, deadline: _Deadline, spacing: float = 0.0) -> Iterator[None]:
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

    def _wait_turn(self, host: str, deadline: _Deadline, interval: float) -> None:
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


# --- robots.txt --------------------------------------------------------------


@dataclass
class _RobotsEntry:
    parser: urllib.robotparser.RobotFileParser
    expires: float
    # robots.txt was unreachable (RFC 9309: assume everything is disallowed for now): why
    failure: FetchError | None = None


@dataclass
class _RobotsCache:
    ttl: float
    error_ttl: float
    entries: dict[str, _RobotsEntry] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, origin: str) -> _RobotsEntry | None:
        with self.lock:
            entry = self.entries.get(origin)
            if entry is None or entry.expires <= time.monotonic():
                return None
            return entry

    def put(self, origin: str, entry: _RobotsEntry) -> None:
        with self.lock:
            if len(self.entries) > 4096:  # forget expired hosts now and then
                now = time.monotonic()
                self.entries = {o: e for o, e in self.entries.items() if e.expires > now}
            self.entries[origin] = entry


def _robots_policy(allow_all: bool) -> urllib.robotparser.RobotFileParser:
    parser = urllib.robotparser.RobotFileParser()
    parser.allow_all = allow_all
    parser.disallow_all = not allow_all
    parser.modified()  # robotparser refuses everything until it has been "read"
    return parser


def _robots_parse(body: bytes) -> urllib.robotparser.RobotFileParser:
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(body.decode("utf-8", errors="replace").splitlines())
    parser.modified()
    return parser


# --- helpers -----------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP-date), at most
    FETCH_RETRY_AFTER_CAP (a day); None when absent or unreadable."""
    return httpdate.retry_after(value, now or datetime.now(UTC), FETCH_RETRY_AFTER_CAP)


def _media_type(content_type: str | None) -> str:
    """'Text/HTML; charset=utf-8' -> 'text/html'; malformed or missing -> ''."""
    if not content_type:
        return ""
    mtype = content_type.split(";", 1)[0].strip().lower()
    return mtype if mtype.count("/") == 1 and " " not in mtype else ""


_FEED_TYPES = frozenset(
    {
        "application/xml",
        "text/xml",
        "application/json",
        "text/json",
        "application/x-rss+xml",
        "application/x-atom+xml",
        "application/rdf+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/feed+json",
    }
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Types whose body we look at before refusing: servers label feeds and pages
# with these when misconfigured (or label nothing at all).
_SNIFF_TYPES = frozenset(
    {"", "text/plain", "application/octet-stream", "binary/octet-stream", "application/x-download"}
)


def _type_verdict(expect: Expect, mtype: str) -> Literal["ok", "sniff", "refuse"]:
    if expect == "any":
        return "ok"
    if expect == "feed":
        if mtype in _FEED_TYPES or mtype.endswith(("+xml", "+json")):
            return "ok"
        if mtype in _SNIFF_TYPES or mtype in _HTML_TYPES:
            return "sniff"  # RSS served as text/html is common enough
        return "refuse"
    if mtype in _HTML_TYPES:
        return "ok"
    if mtype in _SNIFF_TYPES or mtype in ("text/xml", "application/xml"):
        return "sniff"
    return "refuse"


def _sniff(body: bytes) -> Literal["xml", "html", "json", "other"]:
    head = body[:1024].lstrip(b"\xef\xbb\xbf\xfe\xff\x00 \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")) or (
        head.startswith(b"<") and b"<html" in head and b"<rss" not in head
    ):
        return "html"
    if head.startswith(b"<"):
        return "xml"
    if head.startswith((b"{", b"[")):
        return "json"
    return "other"


def _sniff_ok(expect: Expect, body: bytes) -> bool:
    kind = _sniff(body)
    if expect == "feed":
        return kind in ("xml", "json")
    return kind in ("html", "xml")


def _origin(url: str) -> str:
    """scheme://host[:port], the scope of a robots.txt (RFC 9309)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _politeness_key(url: str) -> str:
    # one server, whatever the scheme or port we reach it on
    return (urlsplit(url).hostname or "").lower()


# --- the fetcher -------------------------------------------------------------


class Fetcher:
    """Guarded, polite HTTP client. One per process (or thread pool); thread-safe.

    Extra keywords (not in FetchSpec): `max_per_host` concurrent requests per
    host, `min_interval` seconds between request starts to one host,
    `robots_ttl` / `robots_error_ttl` seconds a robots.txt verdict is cached.
    """

    def __init__(
        self,
        spec: FetchSpec,
        *,
        respect_robots: bool = True,
        session: requests.Session | None = None,
        max_per_host: int = 2,
        min_interval: float = 0.2,
        robots_ttl: float = 3600.0,
        robots_error_ttl: float = 300.0,
    ) -> None:
        self.spec = spec
        self.respect_robots = respect_robots
        self.session = session if session is not None else requests.Session()
        # no proxies or .netrc from the environment: through a proxy the guard
        # would only see the proxy's address
        self.session.trust_env = False
        adapter = GuardedAdapter(
            AddressGuard(spec.allow_networks),
            max_retries=Retry(total=0, connect=0, read=False, redirect=False, status=False),
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._limiter = _HostLimiter(max_per_host, min_interval)
        self._robots = _RobotsCache(robots_ttl, robots_error_ttl)

    # -- public API --

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
        expect: Expect = "any",
        respect_robots: bool | None = None,
    ) -> FetchResult:
        """`respect_robots` overrides the fetcher's setting for this request (a per-source
        option); the per-host limits stay shared."""
        if respect_robots is None:
            respect_robots = self.respect_robots
        headers = {"Accept": accept or _ACCEPT[expect]}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        deadline = _Deadline(self.spec.deadline)
        try:
            return self._get(url, headers, expect, deadline, self.spec.max_bytes, respect_robots)
        finally:
            deadline.finish()

    def post_json(self, url: str, body: bytes, headers: Mapping[str, str]) -> FetchResult:
        """POST a JSON body (webhooks). Redirects are not followed but returned."""
        sent = {"Content-Type": "application/json", "Accept": "*/*", **headers}
        deadline = _Deadline(self.spec.deadline)
        try:
            self._check_url(url)
            result = self._request("POST", url, sent, deadline, self.spec.max_bytes, data=body)
            self._raise_for_status(result)
            return result
        finally:
            deadline.finish()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- GET with redirects --

    def _get(
        self,
        url: str,
        headers: dict[str, str],
        expect: Expect,
        deadline: _Deadline,
        max_bytes: int,
        respect_robots: bool,
    ) -> FetchResult:
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            self._check_url(current)
            spacing = self._check_robots(current, deadline) if respect_robots else 0.0
            result = self._request(
                "GET", current, headers, deadline, max_bytes, expect=expect, spacing=spacing
            )
            if result.status not in _REDIRECT_STATUSES:
                self._raise_for_status(result)
                return result
            location = result.headers.get("Location")
            if not location:
                raise FetchError(
                    "http_status",
                    f"{current}: redirect {result.status} without a Location",
                    url=current,
                    status=result.status,
                )
            current = urljoin(current, location.strip())
        raise FetchError(
            "too_many_redirects", f"{url}: more than {MAX_REDIRECTS} redirects", url=url
        )

    def _check_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port  # raises on a bad port
        except ValueError as exc:
            raise FetchError("invalid_url", f"{url!r}: {exc}", url=url) from None
        scheme = parts.scheme.lower()
        if not scheme:
            raise FetchError("invalid_url", f"{url!r}: not an absolute URL", url=url)
        if scheme not in ("http", "https"):
            raise FetchError("bad_scheme", f"{url!r}: only http and https are fetched", url=url)
        if not parts.hostname or port == 0:
            raise FetchError("invalid_url", f"{url!r}: no host", url=url)

    def _raise_for_status(self, result: FetchResult) -> None:
        if result.status < 400:
            return
        retry_after = None
        if result.status in (429, 503):
            retry_after = parse_retry_after(result.headers.get("Retry-After"))
        raise FetchError(
            "http_status",
            f"{result.url}: HTTP {result.status}",
            url=result.url,
            status=result.status,
            retry_after=retry_after,
            headers=result.headers,
        )

    # -- one request/response --

    def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        deadline: _Deadline,
        max_bytes: int,
        *,
        data: bytes | None = None,
        expect: Expect = "any",
        spacing: float = 0.0,
    ) -> FetchResult:
        sent = {"User-Agent": self.spec.user_agent, "Accept-Encoding": "gzip, deflate, br"}
        sent.update(headers)
        with self._limiter.slot(_politeness_key(url), deadline, spacing):
            token = socket_hook.set(deadline.watch)
            try:
                return self._exchange(method, url, sent, deadline, max_bytes, data, expect)
            except FetchError:
                raise
            except Exception as exc:
                raise self._translate(exc, url, deadline) from exc
            finally:
                socket_hook.reset(token)

    def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        deadline: _Deadline,
        max_bytes: int,
        data: bytes | None,
        expect: Expect,
    ) -> FetchResult:
        connect_timeout = min(self.spec.connect_timeout, deadline.remaining())
        if connect_timeout <= 0:
            raise FetchError("timeout", f"{url}: deadline of {self.spec.deadline}s passed", url=url)
        response = self.session.request(
            method,
            url,
            headers=dict(headers),
            data=data,
            timeout=(connect_timeout, self.spec.read_timeout),
            allow_redirects=False,
            stream=True,
        )
        try:
            body = self._read_checked(response, url, deadline, max_bytes, expect)
        except BaseException:
            response.close()  # drop the connection: the rest of the body is unread
            raise
        response.raw.release_conn()
        resp_headers = CaseInsensitiveDict(response.headers)
        return FetchResult(
            url=url,
            status=response.status_code,
            headers=resp_headers,
            body=body,
            etag=resp_headers.get("ETag"),
            last_modified=resp_headers.get("Last-Modified"),
            not_modified=response.status_code == 304,
            elapsed=deadline.elapsed(),
        )

    def _read_checked(
        self,
        response: requests.Response,
        url: str,
        deadline: _Deadline,
        max_bytes: int,
        expect: Expect,
    ) -> bytes:
        status = response.status_code
        if status == 304 or status in _REDIRECT_STATUSES or status >= 400:
            # not content: read a little (error pages are useful in logs), never much
            return self._read_body(response, url, deadline, min(max_bytes, _CHUNK), truncate=True)
        verdict = _type_verdict(expect, _media_type(response.headers.get("Content-Type")))
        if verdict == "refuse":
            raise FetchError(
                "content_type",
                f"{url}: expected {expect}, got Content-Type "
                f"{response.headers.get('Content-Type')!r}",
                url=url,
                status=status,
            )
        self._check_declared_length(response, url, max_bytes)
        body = self._read_body(response, url, deadline, max_bytes)
        if expect != "any" and not body:
            raise FetchError(
                "content_type", f"{url}: empty body, expected {expect}", url=url, status=status
            )
        if verdict == "sniff" and not _sniff_ok(expect, body):
            raise FetchError(
                "content_type",
                f"{url}: expected {expect}, got Content-Type "
                f"{response.headers.get('Content-Type')!r} and a body that does not look like one",
                url=url,
                status=status,
            )
        return body

    def _check_declared_length(self, response: requests.Response, url: str, max_bytes: int) -> None:
        # only meaningful without compression; compressed sizes say nothing of the decoded size
        if response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
            return
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(
                "too_large",
                f"{url}: Content-Length {declared} is over the limit of {max_bytes} bytes",
                url=url,
                status=response.status_code,
            )

    def _read_body(
        self,
        response: requests.Response,
        url: str,
        deadline: _Deadline,
        max_bytes: int,
        *,
        truncate: bool = False,
    ) -> bytes:
        """Stream the decoded body, stopping at max_bytes (an error unless truncate)."""
        chunks: list[bytes] = []
        total = 0
        while True:
            # ask for one byte more than allowed so that "exactly at the cap" is fine
            want = min(_CHUNK, max_bytes + 1 - total)
            chunk = response.raw.read(want, decode_content=True)
            if deadline.expired:
                break
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                if truncate:
                    chunks.append(chunk[: len(chunk) - (total - max_bytes)])
                    response.close()  # unread rest: this connection cannot be reused
                    break
                raise FetchError(
                    "too_large",
                    f"{url}: body is over the limit of {max_bytes} bytes (decompressed)",
                    url=url,
                    status=response.status_code,
                )
            chunks.append(chunk)
        if deadline.expired:
            # the watchdog cut the socket; what we have is not the whole body
            raise self._timeout(url)
        return b"".join(chunks)

    def _timeout(self, url: str) -> FetchError:
        return FetchError(
            "timeout", f"{url}: no complete response within {self.spec.deadline}s", url=url
        )

    def _translate(self, exc: Exception, url: str, deadline: _Deadline) -> FetchError:
        """requests/urllib3 exceptions -> FetchError kinds."""
        if deadline.expired:
            return self._timeout(url)
        if isinstance(exc, BlockedAddressError):
            return FetchError("blocked_address", str(exc), url=url)
        if isinstance(exc, requests.exceptions.InvalidSchema):
            return FetchError("bad_scheme", f"{url}: {exc}", url=url)
        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return FetchError("invalid_url", f"{url}: {exc}", url=url)
        if isinstance(exc, requests.exceptions.ContentDecodingError | DecodeError):
            return FetchError("bad_encoding", f"{url}: body could not be decoded: {exc}", url=url)
        if isinstance(exc, requests.RequestException | HTTPError | OSError):
            return FetchError(_transport_kind(exc), f"{url}: {_reason(exc)}", url=url)
        if isinstance(exc, UnicodeError | ValueError):
            # e.g. a host name IDNA cannot encode
            return FetchError("invalid_url", f"{url}: {exc}", url=url)
        raise exc

    # -- robots.txt --

    def _check_robots(self, url: str, deadline: _Deadline) -> float:
        """Refuse what robots.txt disallows; the Crawl-delay to keep (seconds, capped)."""
        origin = _origin(url)
        entry = self._robots.get(origin) or self._load_robots(origin, deadline)
        if entry.failure is not None:
            # named after what went wrong (refused, dns, http_503...), not "robots": the
            # server being down is the news, robots.txt only where it was noticed
            failure = entry.failure
            raise FetchError(
                failure.kind,
                # "robots.txt" outside the URL: stored messages cut URLs to scheme and host
                f"{url}: not fetched, robots.txt is unreachable at {origin} ({failure.message}); "
                "RFC 9309 says to assume everything is disallowed until it answers",
                url=url,
                status=failure.status,
                retry_after=failure.retry_after,
                headers=failure.headers,
            )
        if not entry.parser.can_fetch(self.spec.user_agent, url):
            raise FetchError(
                "robots_disallow", f"{url}: disallowed by robots.txt at {origin}", url=url
            )
        delay = entry.parser.crawl_delay(self.spec.user_agent)
        return min(float(delay), MAX_CRAWL_DELAY) if delay else 0.0

    def _load_robots(self, origin: str, deadline: _Deadline) -> _RobotsEntry:
        """Fetch and cache robots.txt; RFC 9309 section 2.3.1 decides what failures mean."""
        now = time.monotonic()
        try:
            result = self._get(
                f"{origin}/robots.txt",
                {"Accept": "text/plain, */*;q=0.5"},
                "any",
                deadline,
                _ROBOTS_MAX_BYTES,
                respect_robots=False,
            )
        except FetchError as exc:
            if exc.kind in ("blocked_address", "bad_scheme", "invalid_url") or deadline.expired:
                raise  # the page itself would fail the same way: say so
            if exc.kind == "too_large" or (
                exc.status is not None and 400 <= exc.status < 500 and exc.status != 429
            ):
                # "unavailable" (4xx), or nothing sensible to parse: crawl freely
                entry = _RobotsEntry(_robots_policy(allow_all=True), now + self._robots.ttl)
            else:
                # "unreachable" (5xx, 429, network errors): complete disallow, for a while
                entry = _RobotsEntry(
                    _robots_policy(allow_all=False), now + self._robots.error_ttl, exc
                )
        else:
            entry = _RobotsEntry(_robots_parse(result.body), now + self._robots.ttl)
        self._robots.put(origin, entry)
        return entry


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (args, .reason, __cause__, __context__)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [*current.args[:1], getattr(current, "reason", None)]
        inner += [current.__cause__, current.__context__]
        todo.extend(e for e in inner if isinstance(e, BaseException))


_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})


def _transport_kind(exc: BaseException) -> ErrorKind:
    """The real cause of a transport failure, from the innermost errors requests and
    urllib3 wrap: a name that does not resolve, a refused connection, TLS, a timeout..."""
    causes = list(_causes(exc))

    def found(*types: type[BaseException]) -> bool:
        return any(isinstance(c, types) for c in causes)

    if found(NameResolutionError, socket.gaierror):
        return "dns"
    if found(ConnectionRefusedError):
        return "refused"
    # urllib3's NewConnectionError subclasses ConnectTimeoutError for history's sake:
    # only a real timeout counts (checked before TLS: a handshake that times out)
    if found(requests.Timeout, TimeoutError) or any(
        isinstance(c, Urllib3TimeoutError) and not isinstance(c, NewConnectionError) for c in causes
    ):
        return "timeout"
    if found(ssl.SSLError, ssl.CertificateError, Urllib3SSLError, requests.exceptions.SSLError):
        return "tls"
    if found(
        ConnectionResetError,
        ConnectionAbortedError,
        BrokenPipeError,
        http.client.RemoteDisconnected,
        http.client.IncompleteRead,
    ):
        return "reset"
    if any(isinstance(c, OSError) and c.errno in _UNREACHABLE for c in causes):
        return "unreachable"
    return "connection"


def _reason(exc: BaseException) -> str:
    """The innermost useful message of a wrapped requests/urllib3 error."""
    inner: BaseException | None = exc
    while inner is not None and inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    return str(reason or inner or exc)
