"""Failed fetches against real servers on 127.0.0.1: bounded Retry-After, and each
failure classified by its real cause, on the source row and in the metrics.

The fetch step runs against a real database with a controlled clock (no Celery),
as in test_politeness.py; names that must not resolve go through `fake_dns`,
so no query ever leaves the machine.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.helpers import httpserver, netsafety
from tests.helpers.httpserver import TestServer
from tests.helpers.netsafety import FakeDNS
from tests.helpers.pipeline import Clock, make_runtime, rss
from worker.config import FetchSpec
from worker.config.to_sources import fetch_options
from worker.core.httpdate import FETCH_RETRY_AFTER_CAP
from worker.http.errors import FetchError
from worker.http.fetcher import Fetcher
from worker.sources import polling
from worker.store import models as m

http_server = httpserver.http_server
make_http_server = httpserver.make_http_server
fake_dns = netsafety.fake_dns

HUGE = ["300000000000", "9" * 5000, "Fri, 31 Dec 9999 23:59:59 GMT"]
RSS = {"Content-Type": "application/rss+xml"}


def spec(**overrides: object) -> FetchSpec:
    values: dict[str, object] = {
        "connect_timeout": 1.0,
        "read_timeout": 1.5,
        "deadline": 3.0,
        "allow_networks": ("127.0.0.0/8",),
    }
    values.update(overrides)
    return FetchSpec(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_fetcher(fake_dns: FakeDNS) -> Iterator[Callable[..., Fetcher]]:
    made: list[Fetcher] = []

    def make(respect_robots: bool = False, **overrides: object) -> Fetcher:
        fetcher = Fetcher(
            fetch_options(spec(**overrides)), respect_robots=respect_robots, min_interval=0.0
        )
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


def fetch_error(fetcher: Fetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetcher.get(url, expect="feed")
    return info.value


def config(url: str, extra_sources: str = "") -> str:
    return f"""
sources:
  - name: wire
    feed: {url}
    every: 5m
{extra_sources}
watchlists:
  - name: w
    keywords: [nothing-matches-this]
    notify: [ops]
channels:
  - name: ops
    file: alerts.jsonl
fetch:
  allow_networks: [127.0.0.0/8]
  connect_timeout: 1
  read_timeout: 1.5
  deadline: 3
"""


@pytest.fixture
def clock() -> Clock:
    return Clock()


def poll(rt) -> m.Source:
    """Dispatch what is due, fetch it (never raising), and return the source row."""
    for source_id in polling.dispatch_due(rt):
        polling.fetch_source(rt, source_id)
    with rt.store.session() as s:
        return s.scalar(select(m.Source).where(m.Source.name == "wire"))


def fetch_outcomes() -> dict[str, float]:
    from prometheus_client import REGISTRY

    return {
        s.labels["outcome"]: s.value
        for metric in REGISTRY.collect()
        if metric.name == "newswatch_fetches"
        for s in metric.samples
        if s.name.endswith("_total")
    }


# --- Retry-After ---------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("value", HUGE)
def test_a_huge_retry_after_is_capped_by_the_fetcher(
    http_server: TestServer, make_fetcher: Callable[..., Fetcher], status: int, value: str
) -> None:
    http_server.add("/feed.xml", b"busy", status=status, headers={"Retry-After": value})
    error = fetch_error(make_fetcher(), http_server.url("/feed.xml"))
    assert error.status == status and error.retry_after == FETCH_RETRY_AFTER_CAP


@pytest.mark.parametrize("value", HUGE)
def test_a_huge_retry_after_backs_the_source_off_for_a_day(
    tmp_path, database_url, http_server: TestServer, clock: Clock, value: str
) -> None:
    # before: OverflowError in the fetch-failure path, the source never recorded a failure
    http_server.add("/feed.xml", b"slow down", status=429, headers={"Retry-After": value})
    rt = make_runtime(tmp_path, database_url, config(http_server.url("/feed.xml")), clock)
    src = poll(rt)
    assert src.consecutive_failures == 1 and src.claimed_until is None
    assert src.last_error_kind == "http_429" and "429" in src.last_error
    assert src.next_fetch_at == clock.now + timedelta(seconds=FETCH_RETRY_AFTER_CAP)
    # and it is polled again after that day
    http_server.add("/feed.xml", rss(("One", "http://example.test/1")), headers=RSS)
    clock.advance(FETCH_RETRY_AFTER_CAP)
    src = poll(rt)
    assert src.last_error is None and src.items_seen == 1


def test_a_huge_retry_after_on_robots_txt_is_capped_too(
    tmp_path, database_url, http_server: TestServer, clock: Clock
) -> None:
    http_server.add("/robots.txt", b"", status=503, headers={"Retry-After": "300000000000"})
    http_server.add("/feed.xml", rss(("One", "http://example.test/1")), headers=RSS)
    rt = make_runtime(tmp_path, database_url, config(http_server.url("/feed.xml")), clock)
    src = poll(rt)
    assert src.last_error_kind == "http_503" and "robots.txt" in src.last_error
    assert src.next_fetch_at == clock.now + timedelta(seconds=FETCH_RETRY_AFTER_CAP)
    assert http_server.hits("/feed.xml") == 0


# --- failures named by their real cause -----------------------------------------


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    return port


class hanging_server:
    """Accepts connections and never answers (a server that hangs)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.stop = threading.Event()
        self.held: list[socket.socket] = []

    def __enter__(self) -> int:
        threading.Thread(target=self._serve, daemon=True).start()
        return self.listener.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for conn in self.held:
            conn.close()
        self.listener.close()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.held.append(conn)


@pytest.fixture
def tls_server() -> Iterator[TestServer]:
    import ssl

    import trustme

    ca = trustme.CA()  # a CA nobody trusts: the fetcher refuses its certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with httpserver.serve(ssl_context=context) as server:
        server.add("/robots.txt", b"User-agent: *\nAllow: /\n")
        server.add("/feed.xml", rss(("One", "http://example.test/1")), headers=RSS)
        yield server


@pytest.fixture
def scenes(
    http_server: TestServer, tls_server: TestServer, fake_dns: FakeDNS
) -> Iterator[dict[str, tuple[str, str]]]:
    """name -> (feed URL, the kind its failure must be recorded as)."""
    http_server.add("/robots.txt", b"User-agent: *\nDisallow: /private/\n")
    http_server.add("/private/feed.xml", rss(("One", "http://example.test/1")), headers=RSS)
    http_server.add("/gone.xml", b"gone", status=410)
    http_server.add("/busy.xml", b"busy", status=503)
    xml = {"Content-Type": "application/xml"}
    http_server.add("/config.xml", b'<?xml version="1.0"?><config><a>1</a></config>', headers=xml)
    with hanging_server() as hang_port:
        yield {
            "refused": (f"http://127.0.0.1:{closed_port()}/feed.xml", "refused"),
            "dns": ("http://no-such-host.example/feed.xml", "dns"),  # fake_dns: no record
            "timeout": (f"http://127.0.0.1:{hang_port}/feed.xml", "timeout"),
            "tls-untrusted": (tls_server.url("/feed.xml"), "tls"),
            # https:// to a server that speaks plain HTTP
            "tls-mismatch": (
                http_server.url("/feed.xml").replace("http://", "https://"),
                "tls",
            ),
            "disallowed": (http_server.url("/private/feed.xml"), "robots_disallow"),
            "gone": (http_server.url("/gone.xml"), "http_410"),
            "busy": (http_server.url("/busy.xml"), "http_503"),
            "not-a-feed": (http_server.url("/config.xml"), "not_a_feed"),
        }
    assert fake_dns.lookups.count("no-such-host.example") >= 1  # and nothing else resolved


@pytest.mark.parametrize("respect_robots", [True, False])
def test_the_fetcher_names_the_real_cause(
    scenes: dict[str, tuple[str, str]], make_fetcher: Callable[..., Fetcher], respect_robots: bool
) -> None:
    # with robots.txt respected, most failures happen while fetching robots.txt:
    # a server that is down is still "refused", not "robots"
    fetcher = make_fetcher(respect_robots=respect_robots)
    for name, (url, kind) in scenes.items():
        if kind == "not_a_feed" or (kind == "robots_disallow" and not respect_robots):
            continue  # not the fetcher's verdict (the feed parser's), or nothing to refuse
        error = fetch_error(fetcher, url)
        assert error.outcome == kind, (name, error)
        if respect_robots and kind in ("refused", "dns", "timeout", "tls"):
            assert "robots.txt is unreachable" in error.message, name
        # a second time the cached robots.txt verdict says the same
        if respect_robots and kind != "timeout":
            assert fetch_error(fetcher, url).outcome == kind, name


def test_the_source_row_and_the_metrics_name_the_real_cause(
    tmp_path, database_url, scenes: dict[str, tuple[str, str]], clock: Clock
) -> None:
    names = list(scenes)
    sources = "".join(
        f"  - name: {name}\n    feed: {url}\n    every: 5m\n" for name, (url, _) in scenes.items()
    )
    text = config(scenes["busy"][0]).replace(
        f"  - name: wire\n    feed: {scenes['busy'][0]}\n    every: 5m\n", sources
    )
    rt = make_runtime(tmp_path, database_url, text, clock)
    before = fetch_outcomes()
    for source_id in polling.dispatch_due(rt):
        assert polling.fetch_source(rt, source_id) == []  # fails alone, never raises
    with rt.store.session() as s:
        rows = {r.name: r for r in s.scalars(select(m.Source))}
    got = {name: rows[name].last_error_kind for name in names}
    assert got == {name: kind for name, (_, kind) in scenes.items()}
    for name in names:
        assert rows[name].consecutive_failures == 1 and rows[name].last_error
    assert "Connection refused" in rows["refused"].last_error
    after = fetch_outcomes()
    for kind in {kind for _, kind in scenes.values()}:
        expected = sum(k == kind for _, k in scenes.values())
        assert after.get(kind, 0) - before.get(kind, 0) == expected, kind
    assert after.get("robots", 0) == before.get("robots", 0)
    # permanent only where retrying cannot help: 410 Gone
    assert rows["gone"].permanent_failures == 1
    assert all(rows[n].permanent_failures == 0 for n in names if n != "gone")
