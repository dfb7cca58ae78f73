"""The polite, guarded HTTP fetcher for feeds, pages and webhook POSTs.

Everything newswatch downloads or posts goes through `Fetcher`. It owns a
`requests.Session` whose transport is the SSRF guard (`netguard`); its GETs go straight
to that transport's pools (`plain_get`, a fraction of the Session's CPU per exchange),
its POSTs through the Session. It adds what a long-running crawler needs on top:

- conditional GET (ETag / Last-Modified; 304 is a result, not an error);
- connect and read timeouts, plus an overall deadline armed as a watchdog on
  the socket, so a server dripping one byte a second is cut off on time
  (`deadline`);
- a cap on decompressed body size, enforced while streaming (gzip, deflate
  and brotli bombs stop at the cap; urllib3 >= 2.6 decodes at most what is
  asked for per read);
- at most five redirects, followed one by one so that each hop is checked
  (scheme, robots.txt, and the guard when its connection is made);
- a content-type check per what the caller expects, lenient where real
  feeds are sloppy (`sniff`);
- robots.txt per host (RFC 9309, Protego), cached (`robots`);
- per-host concurrency limit and minimum interval between requests (`host_limits`);
  with `shared_url` (the broker's Redis) both are shared by every process on that
  Redis (`shared_limits`), else they are this process's.
- keep-alive: idle connections are kept for the `keep_alive_hosts` most recently used
  hosts (by default as many as a quarter of the process's open-file limit allows, at
  most 4096), so a poll of a host polled before skips the TCP (and TLS) handshake. The guard
  checked a kept connection's address when it was made; a new connection is checked
  again, so a host whose DNS changes meanwhile is refused from its next connection.

Errors are raised as `FetchError` (`fetch_errors`). See docs/fetching.md.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import DecodeError, HTTPError
from urllib3.util.retry import Retry

from worker.core import httpdate
from worker.core.httpdate import FETCH_RETRY_AFTER_CAP
from worker.http.deadline import Deadline
from worker.http.errors import FetchError, reason, transport_kind
from worker.http.host_limits import HostLimiter, Limiter, politeness_key
from worker.http.netguard import AddressGuard, BlockedAddressError, GuardedAdapter, socket_hook
from worker.http.plain_get import PlainGet
from worker.http.robots import ROBOTS_MAX_BYTES, RobotsRules
from worker.http.shared_limits import SharedHostLimiter, SharedRedis, SharedRobotsStore
from worker.http.sniff import ACCEPT, Expect, media_type, sniff_ok, type_verdict

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
# hosts whose idle connections are kept (least recently used dropped first): each is an
# open socket, so at most a quarter of the process's open-file limit (256 of the usual
# 1024), the rest left to the database, Redis, logs and the connections in use
KEEP_ALIVE_HOSTS_MAX = 4096


def default_keep_alive_hosts() -> int:
    """Hosts whose idle connections a fetcher keeps by default, from the open-file
    limit (RLIMIT_NOFILE, soft): a quarter of it, between 16 and 4096."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return KEEP_ALIVE_HOSTS_MAX
    return max(16, min(KEEP_ALIVE_HOSTS_MAX, soft // 4))


@dataclass(frozen=True)
class FetchOptions:
    """What every request is sent with and held to (worker/config/to_sources.py maps
    the config's `fetch:` section into these)."""

    user_agent: str
    connect_timeout: float  # seconds
    read_timeout: float  # seconds between two reads
    deadline: float  # seconds for the whole request, body included
    max_bytes: int  # decompressed
    allow_networks: tuple[str, ...] = ()  # networks or host names allowed although private


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


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP-date), at most
    FETCH_RETRY_AFTER_CAP (a day); None when absent or unreadable."""
    return httpdate.retry_after(value, now or datetime.now(UTC), FETCH_RETRY_AFTER_CAP)


def _check_url(url: str) -> None:
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


def _raise_for_status(result: FetchResult) -> None:
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


class Fetcher:
    """Guarded, polite HTTP client. One per process (or thread pool); thread-safe.

    Keywords: `max_per_host` concurrent requests per host, `min_interval` seconds
    between request starts to one host, `robots_ttl` / `robots_error_ttl` seconds a
    robots.txt verdict is cached; `shared_url`: a Redis (URL) where these limits and the
    robots.txt cache are shared with every other fetcher on it (None: per process);
    `keep_alive_hosts` hosts whose idle connections are kept.
    """

    def __init__(
        self,
        options: FetchOptions,
        *,
        respect_robots: bool = True,
        session: requests.Session | None = None,
        max_per_host: int = 2,
        min_interval: float = 0.2,
        robots_ttl: float = 3600.0,
        robots_error_ttl: float = 300.0,
        shared_url: str | None = None,
        keep_alive_hosts: int | None = None,
    ) -> None:
        self.options = options
        self.respect_robots = respect_robots
        self.session = session if session is not None else requests.Session()
        # no proxies or .netrc from the environment: through a proxy the guard
        # would only see the proxy's address
        self.session.trust_env = False
        adapter = GuardedAdapter(
            AddressGuard(options.allow_networks),
            # a pool per host (urllib3's default: 10)
            pool_connections=keep_alive_hosts or default_keep_alive_hosts(),
            max_retries=Retry(total=0, connect=0, read=False, redirect=False, status=False),
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._plain = PlainGet(self.session, adapter)
        self._shared = SharedRedis(shared_url) if shared_url else None
        self._limiter: Limiter = HostLimiter(max_per_host, min_interval)
        robots_store = None
        if self._shared is not None:
            self._limiter = SharedHostLimiter(self._shared, max_per_host, min_interval)
            robots_store = SharedRobotsStore(self._shared)
        self._robots = RobotsRules(robots_ttl, robots_error_ttl, robots_store)

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
        headers = {"Accept": accept or ACCEPT[expect]}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        deadline = Deadline(self.options.deadline)
        try:
            return self._get(url, headers, expect, deadline, self.options.max_bytes, respect_robots)
        finally:
            deadline.finish()

    def post_json(self, url: str, body: bytes, headers: Mapping[str, str]) -> FetchResult:
        """POST a JSON body (webhooks). Redirects are not followed but returned."""
        sent = {"Content-Type": "application/json", "Accept": "*/*", **headers}
        deadline = Deadline(self.options.deadline)
        try:
            _check_url(url)
            result = self._request("POST", url, sent, deadline, self.options.max_bytes, data=body)
            _raise_for_status(result)
            return result
        finally:
            deadline.finish()

    def close(self) -> None:
        self.session.close()
        if self._shared is not None:
            self._shared.close()

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
        deadline: Deadline,
        max_bytes: int,
        respect_robots: bool,
        truncate: bool = False,
    ) -> FetchResult:
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            _check_url(current)
            spacing = 0.0
            if respect_robots:
                spacing = self._robots.check(
                    current, self.options.user_agent, deadline, self._load_robots
                )
            result = self._request(
                "GET",
                current,
                headers,
                deadline,
                max_bytes,
                expect=expect,
                spacing=spacing,
                truncate=truncate,
            )
            if result.status not in _REDIRECT_STATUSES:
                _raise_for_status(result)
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

    def _load_robots(self, url: str, deadline: Deadline) -> bytes:
        accept = {"Accept": "text/plain, */*;q=0.5"}
        # a longer robots.txt is cut, not refused: RFC 9309 parses the first 500 KiB
        return self._get(url, accept, "any", deadline, ROBOTS_MAX_BYTES, False, True).body

    # -- one request/response --

    def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        deadline: Deadline,
        max_bytes: int,
        *,
        data: bytes | None = None,
        expect: Expect = "any",
        spacing: float = 0.0,
        truncate: bool = False,
    ) -> FetchResult:
        sent = {"User-Agent": self.options.user_agent, "Accept-Encoding": "gzip, deflate, br"}
        sent.update(headers)
        with self._limiter.slot(politeness_key(url), deadline, spacing):
            token = socket_hook.set(deadline.watch)
            try:
                return self._exchange(
                    method, url, sent, deadline, max_bytes, data, expect, truncate
                )
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
        deadline: Deadline,
        max_bytes: int,
        data: bytes | None,
        expect: Expect,
        truncate: bool = False,
    ) -> FetchResult:
        connect_timeout = min(self.options.connect_timeout, deadline.remaining())
        if connect_timeout <= 0:
            raise FetchError(
                "timeout", f"{url}: deadline of {self.options.deadline}s passed", url=url
            )
        response = None
        if method == "GET":
            response = self._plain.open(url, headers, connect_timeout, self.options.read_timeout)
        if response is None:
            response = self.session.request(
                method,
                url,
                headers=dict(headers),
                data=data,
                timeout=(connect_timeout, self.options.read_timeout),
                allow_redirects=False,
                stream=True,
            ).raw
        try:
            body = self._read_checked(response, url, deadline, max_bytes, expect, truncate)
        except BaseException:
            _drop(response)  # the rest of the body is unread
            raise
        response.release_conn()
        resp_headers = CaseInsensitiveDict(response.headers)
        return FetchResult(
            url=url,
            status=response.status,
            headers=resp_headers,
            body=body,
            etag=resp_headers.get("ETag"),
            last_modified=resp_headers.get("Last-Modified"),
            not_modified=response.status == 304,
            elapsed=deadline.elapsed(),
        )

    def _read_checked(
        self,
        response: BaseHTTPResponse,
        url: str,
        deadline: Deadline,
        max_bytes: int,
        expect: Expect,
        truncate: bool = False,
    ) -> bytes:
        status = response.status
        if status == 304 or status in _REDIRECT_STATUSES or status >= 400:
            # not content: read a little (error pages are useful in logs), never much
            return self._read_body(response, url, deadline, min(max_bytes, _CHUNK), truncate=True)
        content_type = response.headers.get("Content-Type")
        verdict = type_verdict(expect, media_type(content_type))
        if verdict == "refuse":
            raise FetchError(
                "content_type",
                f"{url}: expected {expect}, got Content-Type {content_type!r}",
                url=url,
                status=status,
            )
        if not truncate:
            _check_declared_length(response, url, max_bytes)
        body = self._read_body(response, url, deadline, max_bytes, truncate=truncate)
        if expect != "any" and not body:
            raise FetchError(
                "content_type", f"{url}: empty body, expected {expect}", url=url, status=status
            )
        if verdict == "sniff" and not sniff_ok(expect, body):
            raise FetchError(
                "content_type",
                f"{url}: expected {expect}, got Content-Type "
                f"{content_type!r} and a body that does not look like one",
                url=url,
                status=status,
            )
        return body

    def _read_body(
        self,
        response: BaseHTTPResponse,
        url: str,
        deadline: Deadline,
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
            chunk = response.read(want, decode_content=True)
            if deadline.expired:
                break
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                if truncate:
                    chunks.append(chunk[: len(chunk) - (total - max_bytes)])
                    _drop(response)  # unread rest: this connection cannot be reused
                    break
                raise FetchError(
                    "too_large",
                    f"{url}: body is over the limit of {max_bytes} bytes (decompressed)",
                    url=url,
                    status=response.status,
                )
            chunks.append(chunk)
        if deadline.expired:
            # the watchdog cut the socket; what we have is not the whole body
            raise self._timeout(url)
        return b"".join(chunks)

    def _timeout(self, url: str) -> FetchError:
        return FetchError(
            "timeout", f"{url}: no complete response within {self.options.deadline}s", url=url
        )

    def _translate(self, exc: Exception, url: str, deadline: Deadline) -> FetchError:
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
            return FetchError(transport_kind(exc), f"{url}: {reason(exc)}", url=url)
        if isinstance(exc, UnicodeError | ValueError):
            # e.g. a host name IDNA cannot encode
            return FetchError("invalid_url", f"{url}: {exc}", url=url)
        raise exc


def _drop(response: BaseHTTPResponse) -> None:
    """Close the response's connection (what is left of the body is unread, so it
    cannot carry another request) and give its place back to the pool."""
    response.close()
    response.release_conn()


def _check_declared_length(response: BaseHTTPResponse, url: str, max_bytes: int) -> None:
    # only meaningful without compression; compressed sizes say nothing of the decoded size
    if response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        return
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            "too_large",
            f"{url}: Content-Length {declared} is over the limit of {max_bytes} bytes",
            url=url,
            status=response.status,
        )
