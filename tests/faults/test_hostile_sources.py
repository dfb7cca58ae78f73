"""Hostile sources at system level: one run of a real `newswatch worker` and `beat` with a
dozen sources served from 127.0.0.1, all bad in a different way, and one normal source
that must keep alerting in the same run.

Only names under `.nw.localhost` are allowed (`allow_networks: [".nw.localhost"]`; names
under `.localhost` are loopback without DNS, RFC 6761), so the loopback guard is live for
everything else: a redirect to another local port by address, by `localhost` or by the
decimal form 2130706433 must be refused before any connection is made.

For each hostile source: a classified error in `newswatch status --json`
(`last_error_kind`), the failed fetch over within the deadline + 1 s (from the source
row's `last_fetch_at` to the worker's "fetch failed" log line), the pool children's RSS
bounded (see MEMORY_BOUND), and the normal source's alerts delivered meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.faults.conftest import FAILED
from tests.helpers import servers
from tests.helpers.httpserver import TestServer, serve
from tests.helpers.processes import NewswatchProcesses
from tests.helpers.servers import RedisServer, RssSampler, pool_children

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

private_redis = servers.private_redis  # a Redis of our own (fixture)

DEADLINE = 3.0
MAX_BYTES = 4 * 1024 * 1024
MiB = 1024 * 1024
# A pool child may hold the capped body twice (the stream's buffer and the joined bytes)
# plus what parsing the normal feed allocates, over its RSS before any fetch.
MEMORY_BOUND = 2 * MAX_BYTES + 48 * MiB

EXPECTED = {
    "gzip-bomb": "too_large",
    "endless-chunked": "too_large",
    "drip": "timeout",
    "redirect-loop": "too_many_redirects",
    "redirect-ip": "blocked_address",
    "redirect-localhost": "blocked_address",
    "redirect-decimal": "blocked_address",
    "malformed-xml": "not_a_feed",
    "binary-body": "content_type",
    "empty-200": "content_type",
    "html-50mb": "too_large",
}
# declared UTF-8, sent Latin-1: read anyway (guessed, as feedparser did);
# declared UTF-16 in ASCII bytes, which cannot be: read as UTF-8 (worker/core/encoding.py)
READ_ANYWAY = {"mislabeled-latin1", "wrong-charset"}


def gzip_bomb(size: int = 256 * MiB) -> bytes:
    """`size` bytes of a feed-looking document, gzipped to a few hundred KB."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')]
    block = b"A" * MiB
    parts += [z.compress(block) for _ in range(size // MiB)]
    parts.append(z.flush())
    return b"".join(parts)


def endless() -> Iterator[bytes]:
    """A feed that never ends (stops at 1 GB in case nobody hangs up)."""
    yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    chunk = b"<item><title>more</title></item>" * 2000
    for _ in range(1024 * MiB // len(chunk)):
        yield chunk


def drip() -> Iterator[bytes]:
    for byte in b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>' * 2:
        yield bytes([byte])
        time.sleep(1.0)


def big_html(size: int = 50 * MiB) -> Iterator[bytes]:
    yield b"<!DOCTYPE html><html><head><title>big</title></head><body>"
    para = b"<p>" + b"lorem ipsum dolor sit amet " * 2000 + b"</p>"
    for _ in range(size // len(para)):
        yield para
    yield b"</body></html>"


def rss(items: list[tuple[str, str]]) -> bytes:
    entries = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{link}</guid>"
        f"<description>{t} {link}</description></item>"
        for link, t in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>N</title>{entries}'
        "</channel></rss>"
    ).encode()


def serve_hostile(site: TestServer, other: TestServer) -> dict[str, str]:
    """Routes on `site`; returns source name -> path. `other` is the loopback port the
    redirects point at: it must never be reached."""
    xml = {"Content-Type": "application/rss+xml"}
    bomb = gzip_bomb()
    site.routes["/bomb.xml"] = (200, {**xml, "Content-Encoding": "gzip"}, bomb)
    site.routes["/endless.xml"] = lambda _r: (200, xml, endless())
    site.routes["/drip.xml"] = lambda _r: (200, xml, drip())
    site.routes["/loop-a.xml"] = (302, {"Location": "/loop-b.xml"}, b"")
    site.routes["/loop-b.xml"] = (302, {"Location": "/loop-a.xml"}, b"")
    for name, host in (("ip", "127.0.0.1"), ("localhost", "localhost"), ("decimal", "2130706433")):
        site.routes[f"/to-{name}.xml"] = (302, {"Location": other.url("/feed.xml", host)}, b"")
    other.add("/feed.xml", rss([("http://x.example/1", "Alpha leak")]), headers=xml)
    site.routes["/malformed.xml"] = (200, xml, b'<?xml version="1.0"?><rss><<<>>>&&&<')
    charset = (
        '<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>C</title>'
        "<item><title>Café crème</title><link>http://c.example/1</link></item></channel></rss>"
    ).encode()
    site.routes["/charset.xml"] = (200, {"Content-Type": "application/rss+xml"}, charset)
    latin1 = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>L</title>'
        "<item><title>Café crème</title><link>http://l.example/1</link></item></channel></rss>"
    ).encode("latin-1")
    site.routes["/latin1.xml"] = (200, {"Content-Type": "text/xml; charset=utf-8"}, latin1)
    site.routes["/binary.xml"] = (
        200,
        {"Content-Type": "application/octet-stream"},
        os.urandom(65536),
    )
    site.routes["/empty.xml"] = (200, xml, b"")
    site.routes["/big.html"] = lambda _r: (200, {"Content-Type": "text/html"}, big_html())
    return {
        "gzip-bomb": "/bomb.xml",
        "endless-chunked": "/endless.xml",
        "drip": "/drip.xml",
        "redirect-loop": "/loop-a.xml",
        "redirect-ip": "/to-ip.xml",
        "redirect-localhost": "/to-localhost.xml",
        "redirect-decimal": "/to-decimal.xml",
        "malformed-xml": "/malformed.xml",
        "wrong-charset": "/charset.xml",
        "mislabeled-latin1": "/latin1.xml",
        "binary-body": "/binary.xml",
        "empty-200": "/empty.xml",
        "html-50mb": "/big.html",
    }


FAILED_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*source (\S+): fetch failed \((\w+)\)"
)


def failure_times(log: str) -> dict[str, datetime]:
    """The time of each source's last "fetch failed" log line (local time -> UTC)."""
    found: dict[str, datetime] = {}
    for line in log.splitlines():
        match = FAILED_LINE.match(line)
        if match:
            when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            found[match.group(2)] = when.astimezone(UTC)  # naive = local time
    return found


def status(procs: NewswatchProcesses) -> dict:
    out = procs.cli("status", "--json")
    out.check_returncode()
    return json.loads(out.stdout)


def test_hostile_sources_fail_cleanly_while_a_normal_source_alerts(
    tmp_path: Path, private_redis: RedisServer, request: pytest.FixtureRequest
):
    with serve() as site, serve() as other:
        paths = serve_hostile(site, other)
        normal_items = [(site.url("/n/1"), "Alpha first report")]
        lock = threading.Lock()

        def normal(_r: object) -> tuple[int, dict[str, str], bytes]:
            with lock:
                return 200, {"Content-Type": "application/rss+xml"}, rss(normal_items)

        site.routes["/normal.xml"] = normal

        def url(name: str, path: str) -> str:
            return site.url(path, host=f"{name}.nw.localhost")

        sources = [f'  - {{name: normal, feed: "{url("normal", "/normal.xml")}", every: 1s}}']
        for name, path in paths.items():
            kind = "page" if path.endswith(".html") else "feed"
            sources.append(f'  - {{name: {name}, {kind}: "{url(name, path)}", every: 1s}}')
        alerts = tmp_path / "alerts.jsonl"
        config = tmp_path / "newswatch.yaml"
        config.write_text(
            "sources:\n"
            + "\n".join(sources)
            + f"""
watchlists:
  - {{name: alpha, keywords: [Alpha], notify: [archive]}}
channels:
  - {{name: archive, file: "{alerts}"}}
fetch:
  allow_networks: [".nw.localhost"]
  deadline: {DEADLINE}
  max_bytes: {MAX_BYTES}
"""
        )
        procs = NewswatchProcesses(
            tmp_path,
            {
                "REDIS_URL": private_redis.url,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'nw.db'}",
                "NEWSWATCH_CONFIG": str(config),
            },
        )
        with procs:
            procs.worker("worker", concurrency=3)
            pid = procs.procs["worker"].pid
            procs.wait_for(lambda: len(pool_children(pid)) == 3, 60, "the pool")
            time.sleep(1)
            baseline = max(c.memory_info().rss for c in pool_children(pid))
            with RssSampler(lambda: [c.pid for c in pool_children(pid)]) as rss_peak:
                procs.beat()

                def all_failed_once() -> bool:
                    rows = {s["name"]: s for s in status(procs)["sources"]}
                    return len(rows) == len(paths) + 1 and all(
                        rows[name]["last_error_kind"] for name in EXPECTED
                    )

                procs.wait_for(all_failed_once, 90, "every hostile source failing once")
                procs.wait_for(lambda: _alerts(alerts) >= 1, 30, "the normal source's alert")
                with lock:  # the normal source keeps alerting in the same run
                    normal_items.insert(0, (site.url("/n/2"), "Alpha second report"))
                procs.wait_for(lambda: _alerts(alerts) >= 2, 30, "the second alert")
            procs.stop("beat")
            procs.stop("worker")  # warm shutdown: fetches in flight end (by their deadline)
            report = status(procs)  # so the rows and the log tell of the same last attempts
        rows = {s["name"]: s for s in report["sources"]}
        kinds = {name: rows[name]["last_error_kind"] for name in EXPECTED}
        assert kinds == EXPECTED, kinds
        for name in READ_ANYWAY:
            assert rows[name]["last_error_kind"] is None and rows[name]["items_seen"] == 1
        assert rows["normal"]["last_error_kind"] is None
        assert other.requests == []  # no redirect ever reached the other loopback port
        # each failed fetch was over by its deadline + 1 s
        ended = failure_times(procs.log("worker"))
        for name in EXPECTED:
            started = datetime.fromisoformat(str(rows[name]["last_fetch_at"]))
            if started.tzinfo is None:
                started = started.replace(tzinfo=UTC)
            took = (ended[name] - started).total_seconds()
            print(f"{name:<20} {kinds[name]:<20} failed after {took:.2f}s")
            assert took <= DEADLINE + 1, f"{name}: {took:.2f}s"
        growth = rss_peak.peak - baseline
        print(
            f"pool child RSS: {baseline / MiB:.0f} MiB before, peak {rss_peak.peak / MiB:.0f} "
            f"MiB (+{growth / MiB:.0f} MiB; bound +{MEMORY_BOUND / MiB:.0f} MiB)"
        )
        assert growth <= MEMORY_BOUND
        if request.node.stash.get(FAILED, False):
            print(procs.dump_logs())


def _alerts(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"alpha"' in line)
