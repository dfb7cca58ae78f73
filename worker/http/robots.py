"""robots.txt per origin (RFC 9309), cached in-process: may this URL be fetched, and
how far apart (Crawl-delay)."""

from __future__ import annotations

import threading
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from worker.http.deadline import Deadline
from worker.http.errors import FetchError

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB
# robots.txt Crawl-delay (not in RFC 9309; Bing and Yandex honour it) is kept between
# requests to a host, up to this: a day-long delay would only starve the fetch pool
MAX_CRAWL_DELAY = 60.0

# Fetches the robots.txt at a URL within the deadline: its body, or a FetchError.
LoadRobots = Callable[[str, Deadline], bytes]


@dataclass
class _RobotsEntry:
    parser: urllib.robotparser.RobotFileParser
    expires: float
    # robots.txt was unreachable (RFC 9309: assume everything is disallowed for now): why
    failure: FetchError | None = None


def origin(url: str) -> str:
    """scheme://host[:port], the scope of a robots.txt (RFC 9309)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _policy(allow_all: bool) -> urllib.robotparser.RobotFileParser:
    parser = urllib.robotparser.RobotFileParser()
    parser.allow_all = allow_all
    parser.disallow_all = not allow_all
    parser.modified()  # robotparser refuses everything until it has been "read"
    return parser


def _parse(body: bytes) -> urllib.robotparser.RobotFileParser:
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(body.decode("utf-8", errors="replace").splitlines())
    parser.modified()
    return parser


class RobotsRules:
    """The robots.txt verdicts of the origins fetched lately: `ttl` seconds for a
    robots.txt read (or absent), `error_ttl` for one that was unreachable."""

    def __init__(self, ttl: float, error_ttl: float) -> None:
        self.ttl = ttl
        self.error_ttl = error_ttl
        self.entries: dict[str, _RobotsEntry] = {}
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
        if not entry.parser.can_fetch(user_agent, url):
            raise FetchError(
                "robots_disallow", f"{url}: disallowed by robots.txt at {site}", url=url
            )
        delay = entry.parser.crawl_delay(user_agent)
        return min(float(delay), MAX_CRAWL_DELAY) if delay else 0.0

    def _get(self, site: str) -> _RobotsEntry | None:
        with self._lock:
            entry = self.entries.get(site)
            if entry is None or entry.expires <= time.monotonic():
                return None
            return entry

    def _put(self, site: str, entry: _RobotsEntry) -> None:
        with self._lock:
            if len(self.entries) > 4096:  # forget expired hosts now and then
                now = time.monotonic()
                self.entries = {o: e for o, e in self.entries.items() if e.expires > now}
            self.entries[site] = entry

    def _load(self, site: str, deadline: Deadline, load: LoadRobots) -> _RobotsEntry:
        """Fetch and cache robots.txt; RFC 9309 section 2.3.1 decides what failures mean."""
        now = time.monotonic()
        try:
            body = load(f"{site}/robots.txt", deadline)
        except FetchError as exc:
            if exc.kind in ("blocked_address", "bad_scheme", "invalid_url") or deadline.expired:
                raise  # the page itself would fail the same way: say so
            if exc.kind == "too_large" or (
                exc.status is not None and 400 <= exc.status < 500 and exc.status != 429
            ):
                # "unavailable" (4xx), or nothing sensible to parse: crawl freely
                entry = _RobotsEntry(_policy(allow_all=True), now + self.ttl)
            else:
                # "unreachable" (5xx, 429, network errors): complete disallow, for a while
                entry = _RobotsEntry(_policy(allow_all=False), now + self.error_ttl, exc)
        else:
            entry = _RobotsEntry(_parse(body), now + self.ttl)
        self._put(site, entry)
        return entry
