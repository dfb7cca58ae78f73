"""robots.txt per origin (RFC 9309, parsed by Protego): may this URL be fetched, and how
far apart (Crawl-delay). Verdicts are cached in this process and, with a shared store
(Redis), across processes: one fetch of a robots.txt per cache period for all of them."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from protego import Protego

from worker.http.deadline import Deadline
from worker.http.errors import FetchError
from worker.http.shared_limits import SharedRobotsStore

# RFC 9309 2.5: parse at least 500 KiB; a longer robots.txt is read that far and the
# rest ignored (not "allow everything", as a too-large answer used to mean)
ROBOTS_MAX_BYTES = 500 * 1024
# robots.txt Crawl-delay (not in RFC 9309; Bing and Yandex honour it) is kept between
# requests to a host, up to this: a day-long delay would only starve the fetch pool
MAX_CRAWL_DELAY = 60.0
_WAIT_POLL = 0.05  # seconds between looks for the verdict another process is fetching
# Origins whose verdict a process keeps, least recently used forgotten first: more than
# the 100,000 sites one host can follow, and a put costs the same however many there are
# (sweeping every entry on each put past a bound made a first round over many new sites
# quadratic)
MAX_ORIGINS = 120_000

# Fetches the robots.txt at a URL within the deadline: its body (at most
# ROBOTS_MAX_BYTES, cut there), or a FetchError.
LoadRobots = Callable[[str, Deadline], bytes]


@dataclass(slots=True)
class _RobotsEntry:
    parser: Protego
    expires: float
    # robots.txt was unreachable (RFC 9309: assume everything is disallowed for now): why
    failure: FetchError | None = None


def origin(url: str) -> str:
    """scheme://host[:port], the scope of a robots.txt (RFC 9309)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def product_token(user_agent: str) -> str:
    """`newswatch` of `newswatch/0.1 (+https://…)`: what robots.txt groups name."""
    return (user_agent.split() or [""])[0].split("/")[0]


def robots_text(body: bytes) -> str:
    """The text to parse: at most ROBOTS_MAX_BYTES, cut after the last whole line so a
    rule is never read half (`Disallow: /private` cut to `Disallow: /pr`)."""
    if len(body) >= ROBOTS_MAX_BYTES:
        body = body[:ROBOTS_MAX_BYTES]
        body = body[: body.rfind(b"\n") + 1] if b"\n" in body else b""
    return body.decode("utf-8", errors="replace")


# Parsers without rules, one for every origin that has no robots.txt (most of them); a
# Protego parser is read-only once parsed
_ALLOW_ALL = Protego.parse("")
_DISALLOW_ALL = Protego.parse("User-agent: *\nDisallow: /\n")


def _record_entry(record: dict[str, Any], expires: float) -> _RobotsEntry:
    """A cached verdict as the fetcher uses it (records are what the shared store keeps)."""
    verdict = record["verdict"]
    if verdict == "rules":
        return _RobotsEntry(Protego.parse(record["body"]), expires)
    if verdict == "allow":
        return _RobotsEntry(_ALLOW_ALL, expires)
    f = record["failure"]
    failure = FetchError(
        f["kind"],
        f["message"],
        url=f.get("url"),
        status=f.get("status"),
        retry_after=f.get("retry_after"),
        headers=f.get("headers"),
    )
    return _RobotsEntry(_DISALLOW_ALL, expires, failure)


class RobotsRules:
    """The robots.txt verdicts of the origins fetched lately: `ttl` seconds for a
    robots.txt read (or absent), `error_ttl` for one that was unreachable. `shared`:
    the store all processes share (None: this process only)."""

    def __init__(
        self,
        ttl: float,
        error_ttl: float,
        shared: SharedRobotsStore | None = None,
        max_origins: int = MAX_ORIGINS,
    ) -> None:
        self.ttl = ttl
        self.error_ttl = error_ttl
        self.shared = shared
        self.max_origins = max_origins
        self.entries: OrderedDict[str, _RobotsEntry] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, url: str, user_agent: str, deadline: Deadline, load: LoadRobots) -> float:
        """Refuse what robots.txt disallows; the Crawl-delay to keep (seconds, capped)."""
        site = origin(url)
        entry = self._get(site) or self._load(site, deadline, load)
        if entry.failure is not None:
            # named after what went wrong (refused, dns, http_503...), not "robots": the
            # server being down is the news, robots.txt only where it was noticed
            failure = entry.failure
            raise FetchError(
                failure.kind,
                # "robots.txt" outside the URL: stored messages cut URLs to scheme and host
                f"{url}: not fetched, robots.txt is unreachable at {site} ({failure.message}); "
                "RFC 9309 says to assume everything is disallowed until it answers",
                url=url,
                status=failure.status,
                retry_after=failure.retry_after,
                headers=failure.headers,
            )
        token = product_token(user_agent)
        if not entry.parser.can_fetch(url, token):
            raise FetchError(
                "robots_disallow", f"{url}: disallowed by robots.txt at {site}", url=url
            )
        delay = entry.parser.crawl_delay(token)
        return min(float(delay), MAX_CRAWL_DELAY) if delay else 0.0

    def _get(self, site: str) -> _RobotsEntry | None:
        with self._lock:
            entry = self.entries.get(site)
            if entry is None or entry.expires <= time.monotonic():
                return None
            self.entries.move_to_end(site)
            return entry

    def _put(self, site: str, entry: _RobotsEntry) -> _RobotsEntry:
        with self._lock:
            self.entries[site] = entry
            self.entries.move_to_end(site)
            while len(self.entries) > self.max_origins:
                self.entries.popitem(last=False)
        return entry

    def _load(self, site: str, deadline: Deadline, load: LoadRobots) -> _RobotsEntry:
        if self.shared is not None and self.shared.shared.available:
            try:
                return self._load_shared(self.shared, site, deadline, load)
            except redis.RedisError as exc:
                self.shared.shared.failed(exc)
        record, ttl = self._fetch(site, deadline, load)
        return self._put(site, _record_entry(record, time.monotonic() + ttl))

    def _load_shared(
        self, store: SharedRobotsStore, site: str, deadline: Deadline, load: LoadRobots
    ) -> _RobotsEntry:
        """The verdict another process stored, or fetch it under the lock and store it."""
        while True:
            found = store.get(site)
            if found is not None:
                record, left = found
                return self._put(site, _record_entry(record, time.monotonic() + left))
            token = store.lock(site)
            if token is not None:
                try:
                    # the holder before us may have stored its verdict and let go between
                    # our look and our lock: look again, or its robots.txt is read twice
                    found = store.get(site)
                    if found is not None:
                        record, ttl = found
                    else:
                        record, ttl = self._fetch(site, deadline, load)
                        store.put(site, record, ttl)
                finally:
                    store.unlock(site, token)
                return self._put(site, _record_entry(record, time.monotonic() + ttl))
            if deadline.remaining() <= _WAIT_POLL:
                raise FetchError(
                    "timeout", f"{site}: waited too long for robots.txt (fetched elsewhere)"
                )
            time.sleep(_WAIT_POLL)

    def _fetch(
        self, site: str, deadline: Deadline, load: LoadRobots
    ) -> tuple[dict[str, Any], float]:
        """Fetch robots.txt: the verdict to cache and for how long (RFC 9309 2.3.1)."""
        try:
            body = load(f"{site}/robots.txt", deadline)
        except FetchError as exc:
            if exc.kind in ("blocked_address", "bad_scheme", "invalid_url") or deadline.expired:
                raise  # the page itself would fail the same way: say so
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                return {"verdict": "allow"}, self.ttl  # "unavailable": crawl freely
            # "unreachable" (5xx, 429, network errors): complete disallow, for a while
            failure = {
                "kind": exc.kind,
                "message": exc.message,
                "url": exc.url,
                "status": exc.status,
                "retry_after": exc.retry_after,
                "headers": dict(exc.headers) if exc.headers is not None else None,
            }
            return {"verdict": "disallow", "failure": failure}, self.error_ttl
        return {"verdict": "rules", "body": robots_text(body)}, self.ttl
