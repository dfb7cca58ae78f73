"""The pipeline under faults, with real processes: `newswatch worker` and `newswatch beat`,
feeds, article pages and webhook receivers on 127.0.0.1.

- a pool child killed with SIGKILL mid-fetch, mid-parse and mid-delivery;
- the whole worker killed with SIGKILL mid-fetch, then (its successor) mid-parse;
- Redis restarted with no persistence while work waits in its queues, then Redis
  down at the moment a fetch stores its items and sends their parse tasks;
- PostgreSQL restarted while the worker runs, with two beats running all along.

Every test runs on a private Redis (and, where it restarts it, a private PostgreSQL) from
tests/helpers/servers.py: never the machine's shared servers, which are not ours to
restart, and whose database indexes a concurrent test run may be using too. The slow
stages are made from outside: a feed or page that drips its first answer, a receiver that
holds its first POST; the pool child busy with it is the one holding a connection to that
server's port.

For each case: every expected alert is delivered, no webhook-id is delivered for two
different alerts (a repeat after a kill between send and record carries the same id, so
the receiver can drop it), every item is parsed, and the system is back within
lease + two sweep periods of the fault ending, with no manual step. The lease matters:
a row claimed by a task that died stays claimed until its lease runs out; only then can
the sweep take it back (a redelivered message finds the claim and leaves the row alone).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from tests.helpers import servers
from tests.helpers.httpserver import TestServer
from tests.helpers.processes import ProcessScene
from tests.helpers.servers import (
    PostgresServer,
    RedisServer,
    kill_child_connected_to,
    pool_children,
)
from tests.helpers.webhook_receiver import WebhookReceiver
from worker.store import models as m

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

private_redis = servers.private_redis  # fixtures: a Redis and a PostgreSQL of our own
private_postgres = servers.private_postgres

SWEEP = 2.0
LEASE = 6.0
REQUEUE_AFTER = 3.0
# the bound on recovery after a fault has ended: a dead task's lease, two sweeps, and
# room for a process start and the work itself on a busy 2-core machine
RECOVERY = LEASE + 2 * SWEEP + 20
HOLD = 20.0  # how long a slow answer would last if nobody killed its reader

BRAVO_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Bravo company leaves the valley | Example News</title></head><body>
<article><h1>Bravo company leaves the valley</h1><p class="byline">By Jane Roe</p>
<p>Bravo company left the northern valley on Sunday after six months of patrols, the
regional command said in a statement read to reporters at the base.</p>
<p>The soldiers handed their positions to a local force trained over the winter. Officers
said the handover had gone to plan and that supplies would keep arriving by road.</p>
<p>Residents watched the convoy pass through the market town in the afternoon.</p>
</article></body></html>"""


def entry(i: int, site: TestServer, word: str = "Alpha") -> tuple[str, str, str]:
    """An item that matches `word`; its words share no pairs with other items', so
    each is its own story (near-duplicate stories alert once)."""
    words = " ".join(f"w{word}{i}x{j}" for j in range(12))
    return (site.url(f"/a/{word}/{i}"), f"{word} report {i}", f"{word} {words}")


def rss(items: list[tuple[str, str, str]]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<description>{text}</description></item>"
        for link, title, text in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        f"{entries}</channel></rss>"
    ).encode()


class Feed:
    """A feed whose items can be added while the test runs (ETag follows the items)."""

    def __init__(self, site: TestServer, path: str = "/feed.xml"):
        self.site, self.path = site, path
        self.items: list[tuple[str, str, str]] = []
        self.polls: list[float] = []  # monotonic time of every request
        site.routes[path] = self._answer

    def _answer(self, request: object) -> tuple[int, dict[str, str], bytes]:
        self.polls.append(time.monotonic())
        etag = f'"{len(self.items)}"'
        if getattr(request, "headers", {}).get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"Content-Type": "application/rss+xml", "ETag": etag}, rss(self.items)

    @property
    def url(self) -> str:
        return self.site.url(self.path)


class SlowOnce:
    """A route whose first answer is slow (drips, or holds before answering); `arrived`
    is set when that first request comes in. Later requests are answered at once."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, drip: bool = True):
        self.status, self.headers, self.body, self.drip = status, headers, body, drip
        self.arrived = threading.Event()
        self.hits = 0
        self._lock = threading.Lock()

    def __call__(self, request: object) -> tuple[int, dict[str, str], object]:
        with self._lock:
            self.hits += 1
            first = self.hits == 1
        if not first:
            return self.status, self.headers, self.body
        self.arrived.set()
        if not self.drip:  # hold the answer (a receiver that is slow to reply)
            time.sleep(HOLD)
            return self.status, self.headers, self.body
        return self.status, self.headers, self._drip()

    def _drip(self) -> Iterator[bytes]:
        # a byte every 0.25 s: the reader stays busy until it is killed
        for i in range(int(HOLD / 0.25)):
            yield self.body[i : i + 1] or b" "
            time.sleep(0.25)


class Scene(ProcessScene):
    """Processes, servers and a look into the database for one test."""

    def __init__(self, tmp_path: Path, db_url: str, broker_url: str, config: str, **env: str):
        self.config_path = tmp_path / "newswatch.yaml"
        self.config_path.write_text(config)
        super().__init__(
            tmp_path,
            db_url,
            {
                "REDIS_URL": broker_url,
                "NEWSWATCH_CONFIG": str(self.config_path),
                "NEWSWATCH_SWEEP_SECONDS": str(SWEEP),
                "NEWSWATCH_LEASE_SECONDS": str(LEASE),
                "NEWSWATCH_REQUEUE_AFTER_SECONDS": str(REQUEUE_AFTER),
                **env,
            },
        )

    def counts(self) -> dict[str, Counter[str]]:
        """Rows by state; empty while the schema is not there yet (or the database is down)."""
        try:
            with self.store.session() as s:

                def by(column: object) -> Counter[str]:
                    rows = s.execute(select(column, func.count()).group_by(column)).all()
                    return Counter(dict(rows))  # type: ignore[arg-type]

                return {
                    "items": by(m.Item.state),
                    "articles": by(m.Article.rules_state),
                    "deliveries": by(m.Delivery.state),
                }
        except (OperationalError, ProgrammingError):  # no schema yet, or the database restarts
            return {"items": Counter(), "articles": Counter(), "deliveries": Counter()}

    def settled(self, items: int, sent: int) -> bool:
        """Every item parsed, every article ruled on, `sent` deliveries sent, nothing pending."""
        c = self.counts()
        return (
            c["items"]["parsed"] == items
            and sum(c["items"].values()) == items
            and set(c["articles"]) <= {"done"}
            and c["deliveries"]["sent"] == sent
            and sum(c["deliveries"].values()) == sent
        )

    def worker_pid(self, name: str) -> int:
        return self.procs.procs[name].pid


@pytest.fixture
def scene_factory(tmp_path: Path, scenes: list[ProcessScene]) -> Callable[..., Scene]:
    def make(db_url: str, broker_url: str, config: str, **env: str) -> Scene:
        scene = Scene(tmp_path, db_url, broker_url, config, **env)
        scenes.append(scene)
        return scene

    return make


def wire_and_config(
    site: TestServer, hook: WebhookReceiver, items: int, every: str
) -> tuple[Feed, str]:
    """A feed of `items` entries, watchlist `alpha` on it and a webhook: the usual scene."""
    wire = Feed(site)
    wire.items = [entry(i, site) for i in range(items)]
    config = config_text(
        sources=f'  - {{name: wire, feed: "{wire.url}", every: {every}}}',
        watchlists="  - {name: alpha, keywords: [Alpha], notify: [hook]}",
        channels=f'  - {{name: hook, webhook: "{hook.url}"}}',
    )
    return wire, config


def config_text(sources: str, channels: str, watchlists: str) -> str:
    return f"""
sources:
{sources}
watchlists:
{watchlists}
channels:
{channels}
fetch:
  allow_networks: [127.0.0.0/8]
  deadline: 40
"""


def hook_ids(requests: list) -> Counter[str]:
    return Counter(r.headers["webhook-id"] for r in requests if r.method == "POST")


def assert_once_each(ids: Counter[str], expected: int) -> None:
    """`expected` alerts arrived, each with its own id. A repeat of one id is the documented
    resend after a kill between send and record, which the receiver drops by that id."""
    assert len(ids) == expected, ids


# --- pool child killed mid-fetch, mid-parse, mid-delivery --------------------------------


def chain_scene(
    make_http_server: Callable[[], TestServer], hook: WebhookReceiver
) -> tuple[str, Feed, SlowOnce, SlowOnce, SlowOnce, dict[str, TestServer]]:
    """A normal `wire` feed of Alpha items to `hook`, and a `slow` chain: its feed drips
    its first answer (fetch), its one item's page drips (parse), and its Bravo alert goes
    to a receiver that holds its first POST (delivery). One server per slow stage, so the
    child talking to that port is the one busy with that stage."""
    site, feed_srv, page_srv, hook_srv = (make_http_server() for _ in range(4))
    wire = Feed(site)
    wire.items = [entry(i, site) for i in range(3)]
    page_url = page_srv.url("/bravo.html")
    slow_feed = SlowOnce(
        200,
        {"Content-Type": "application/rss+xml"},
        rss([(page_url, "Bravo company leaves", "Bravo company")]),
    )
    feed_srv.routes["/slow.xml"] = slow_feed
    slow_page = SlowOnce(200, {"Content-Type": "text/html; charset=utf-8"}, BRAVO_PAGE.encode())
    page_srv.routes["/bravo.html"] = slow_page
    slow_hook = SlowOnce(200, {}, b"ok", drip=False)
    hook_srv.routes["/hook"] = slow_hook
    config = config_text(
        sources=f"""
  - {{name: wire, feed: "{wire.url}", every: 1s}}
  - {{name: slow, feed: "{feed_srv.url("/slow.xml")}", every: 1s, full_text: true}}""",
        watchlists="""
  - {name: alpha, keywords: [Alpha], notify: [hook]}
  - {name: bravo, keywords: [Bravo], notify: [slowhook]}""",
        channels=f"""
  - {{name: hook, webhook: "{hook.url}"}}
  - {{name: slowhook, webhook: "{hook_srv.url("/hook")}"}}""",
    )
    servers = {"feed": feed_srv, "page": page_srv, "hook": hook_srv}
    return config, wire, slow_feed, slow_page, slow_hook, servers


def test_pool_child_killed_mid_fetch_parse_and_delivery(
    tmp_path, private_redis: RedisServer, make_http_server, scene_factory
):
    with WebhookReceiver() as hook:
        config, _wire, slow_feed, slow_page, slow_hook, srv = chain_scene(make_http_server, hook)
        scene = scene_factory(f"sqlite:///{tmp_path / 'nw.db'}", private_redis.url, config)
        scene.procs.worker("worker", concurrency=2)
        scene.procs.beat()
        pid = scene.worker_pid("worker")
        killed = []
        for stage, slow in (("feed", slow_feed), ("page", slow_page), ("hook", slow_hook)):
            scene.procs.wait_for(slow.arrived.is_set, 60, f"the slow {stage} request")
            killed.append(kill_child_connected_to(pid, srv[stage].port))
        last_kill = time.monotonic()
        assert len(set(killed)) == 3  # three different children: the pool replaced each
        scene.procs.wait_for(lambda: scene.settled(items=4, sent=4), RECOVERY, "all 4 alerts sent")
        recovered_in = time.monotonic() - last_kill
        time.sleep(SWEEP * 1.5)  # more sweeps and ticks: nothing more is sent
        assert scene.settled(items=4, sent=4)
        assert scene.procs.procs["worker"].poll() is None  # the worker itself lived on
        assert len(pool_children(pid)) == 2
        assert_once_each(hook_ids(hook.requests), 3)
        slow_posts = [r for r in srv["hook"].requests if r.path == "/hook"]
        assert 1 <= len(slow_posts) <= 2
        assert len({p.headers["webhook-id"] for p in slow_posts}) == 1
        assert slow_feed.hits >= 2 and slow_page.hits >= 2  # the killed work was done again
        print(f"recovered {recovered_in:.1f}s after the last kill")


# --- whole worker killed mid-fetch, then mid-parse ---------------------------------------


def test_whole_worker_killed_mid_fetch_then_mid_parse(
    tmp_path, private_redis: RedisServer, make_http_server, scene_factory
):
    with WebhookReceiver() as hook:
        config, _wire, slow_feed, slow_page, slow_hook, srv = chain_scene(make_http_server, hook)
        slow_hook.hits = 1  # this test is about fetch and parse: the receiver answers at once
        scene = scene_factory(f"sqlite:///{tmp_path / 'nw.db'}", private_redis.url, config)
        scene.procs.worker("worker1")
        scene.procs.beat()
        scene.procs.wait_for(slow_feed.arrived.is_set, 60, "the slow feed request")
        scene.procs.stop("worker1", signal.SIGKILL)  # main process and pool, at once
        scene.procs.worker("worker2")
        scene.procs.wait_for(slow_page.arrived.is_set, RECOVERY, "the slow page request")
        scene.procs.stop("worker2", signal.SIGKILL)
        # a message taken by a killed worker sits in Redis's unacked set; the database
        # (claims with leases, the sweep) gets the work done without it
        scene.procs.worker("worker3")
        scene.procs.wait_for(lambda: scene.settled(items=4, sent=4), RECOVERY, "all 4 alerts sent")
        time.sleep(SWEEP * 1.5)
        assert scene.settled(items=4, sent=4)
        assert_once_each(hook_ids(hook.requests), 3)
        assert_once_each(hook_ids(srv["hook"].requests), 1)
        assert slow_feed.hits >= 2 and slow_page.hits >= 2


# --- Redis restarted empty with work queued; Redis down while tasks are sent -------------


def test_redis_restarted_empty_then_down_while_enqueuing(
    tmp_path, private_redis: RedisServer, http_server, scene_factory
):
    with WebhookReceiver() as hook:
        wire, config = wire_and_config(http_server, hook, items=3, every="1s")
        scene = scene_factory(f"sqlite:///{tmp_path / 'nw.db'}", private_redis.url, config)
        # no worker for parse/rules/alerts yet: the parse tasks wait in Redis
        scene.procs.start(
            "front", "worker", "--concurrency=1", "--queues=control,fetch", "--hostname=front@%h"
        )
        scene.procs.beat()
        client = redis.Redis.from_url(private_redis.url)
        scene.procs.wait_for(
            lambda: scene.counts()["items"]["pending"] == 3 and client.llen("parse") >= 3,
            60,
            "3 parse tasks queued in Redis",
        )
        client.close()
        private_redis.restart()  # SIGKILL, started again empty: the queued tasks are gone
        fault_over = time.monotonic()
        scene.procs.start(
            "back", "worker", "--concurrency=2", "--queues=parse,rules,alerts",
            "--hostname=back@%h",
        )  # fmt: skip
        scene.procs.wait_for(lambda: scene.settled(items=3, sent=3), RECOVERY, "3 alerts sent")
        print(f"after the Redis restart: recovered in {time.monotonic() - fault_over:.1f}s")

        # Redis goes down just as a fetch is about to store new items and send their
        # parse tasks: the feed's answer is held until Redis has been stopped
        held = SlowOnce(200, {}, b"", drip=False)
        hold_done = threading.Event()

        def feed_while_redis_goes(request: object) -> tuple[int, dict[str, str], bytes]:
            if not held.arrived.is_set():
                held.arrived.set()
                hold_done.wait(15)
            return Feed._answer(wire, request)

        wire.items += [entry(i, http_server) for i in range(3, 5)]
        http_server.routes[wire.path] = feed_while_redis_goes
        scene.procs.wait_for(held.arrived.is_set, 30, "the next poll of the feed")
        private_redis.stop()
        hold_done.set()  # the fetch goes on, stores 2 items, cannot send their tasks
        scene.procs.wait_for(
            lambda: "could not enqueue newswatch.parse_item" in scene.procs.log("front"),
            30,
            "the worker noticing that the broker is down",
        )
        assert scene.counts()["items"]["pending"] == 2  # stored, waiting in the database
        time.sleep(SWEEP)  # a sweep period or so with Redis away
        private_redis.start()
        fault_over = time.monotonic()
        scene.procs.wait_for(lambda: scene.settled(items=5, sent=5), RECOVERY, "5 alerts sent")
        print(f"after Redis came back: recovered in {time.monotonic() - fault_over:.1f}s")
        time.sleep(SWEEP * 1.5)
        assert scene.settled(items=5, sent=5)
        assert_once_each(hook_ids(hook.requests), 5)


# --- PostgreSQL restarted while the worker runs; two beats at once -----------------------


def test_postgres_restarted_with_two_beats(
    tmp_path,
    private_redis: RedisServer,
    private_postgres: PostgresServer,
    http_server,
    scene_factory,
):
    with WebhookReceiver() as hook:
        wire, config = wire_and_config(http_server, hook, items=2, every="2s")
        scene = scene_factory(private_postgres.url, private_redis.url, config)
        scene.procs.worker("worker", concurrency=2)
        scene.procs.beat("beat1")
        scene.procs.beat("beat2")  # by mistake: it must do no harm
        scene.procs.wait_for(lambda: scene.settled(items=2, sent=2), 60, "the first 2 alerts")
        # new items, and PostgreSQL restarted while they are on their way through
        wire.items += [entry(i, http_server) for i in range(2, 5)]
        polls = http_server.hits(wire.path)
        scene.procs.wait_for(lambda: http_server.hits(wire.path) > polls, 10, "the next poll")
        private_postgres.restart(mode="fast")  # every connection cut, data kept
        fault_over = time.monotonic()
        wire.items += [entry(i, http_server) for i in range(5, 7)]
        scene.procs.wait_for(lambda: scene.settled(items=7, sent=7), RECOVERY, "7 alerts sent")
        print(f"after the PostgreSQL restart: recovered in {time.monotonic() - fault_over:.1f}s")
        time.sleep(SWEEP * 1.5)
        assert scene.settled(items=7, sent=7)
        assert_once_each(hook_ids(hook.requests), 7)
        # two beats, one dispatch per due time: no two polls of the source closer together
        # than half its interval
        gaps = [b - a for a, b in zip(wire.polls, wire.polls[1:], strict=False)]
        assert len(gaps) >= 3 and min(gaps) >= 1.0, gaps
        for name in ("beat1", "beat2"):
            assert scene.procs.procs[name].poll() is None, f"{name} died"
