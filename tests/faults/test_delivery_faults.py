"""Delivery under faults, with real processes: `newswatch worker` and `newswatch beat`
on Redis (127.0.0.1) and SQLite, a real SMTP server (aiosmtpd) and real HTTP receivers.

- the SMTP server down for a while, then up: every alert arrives, once;
- a webhook answering 500 three times, then 200: one delivery sent, three failed
  attempts logged;
- a worker killed with SIGKILL while the receiver holds its response (sent, not
  yet recorded): the receiver sees at most one repeat, with the same id;
- Redis flushed while deliveries wait in the queue: the sweep delivers them all.

No test-only hooks in newswatch: the faults are made from outside (servers
stopped, slow answers, kill -9, FLUSHDB), as they happen in production.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from tests.helpers.processes import ProcessScene
from tests.helpers.webhook_receiver import WebhookReceiver
from worker.store import models as m

pytestmark = [pytest.mark.redis, pytest.mark.e2e, pytest.mark.slow]


def rss(n: int, site) -> bytes:
    entries = "".join(
        f"<item><title>Alpha report {i}</title><link>{site.url(f'/a/{i}')}</link>"
        f"<guid>{site.url(f'/a/{i}')}</guid><description>Alpha "
        + " ".join(f"w{i}x{j}" for j in range(12))  # no shared word pairs: one story each
        + "</description></item>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        f"{entries}</channel></rss>"
    ).encode()


def write_config(tmp_path: Path, site, channel: str) -> Path:
    path = tmp_path / "newswatch.yaml"
    path.write_text(
        f"""
sources:
  - name: wire
    feed: {site.url("/feed.xml")}
    every: 1s
watchlists:
  - name: alpha
    keywords: [Alpha]
    notify: [out]
channels:
  - name: out
{channel}
fetch:
  allow_networks: [127.0.0.0/8]
  deadline: 10
"""
    )
    return path


class Scene(ProcessScene):
    """A feed, the newswatch processes and a look into their database."""

    def __init__(self, tmp_path: Path, redis_url: str, site, channel: str, items: int, **env: str):
        site.add("/feed.xml", rss(items, site), headers={"Content-Type": "application/rss+xml"})
        config = write_config(tmp_path, site, channel)
        super().__init__(
            tmp_path,
            f"sqlite:///{tmp_path / 'newswatch.db'}",
            {"REDIS_URL": redis_url, "NEWSWATCH_CONFIG": str(config), **env},
        )

    def deliveries(self) -> Counter[str]:
        try:
            with self.store.session() as s:
                rows = s.execute(select(m.Delivery.state, func.count()).group_by(m.Delivery.state))
                return Counter(dict(rows.all()))
        except Exception:  # the schema is not there yet
            return Counter()

    def attempts(self) -> list[tuple[str, bool]]:
        with self.store.session() as s:
            rows = s.execute(
                select(m.DeliveryAttempt.delivery_id, m.DeliveryAttempt.ok).order_by(
                    m.DeliveryAttempt.id
                )
            )
            return [tuple(r) for r in rows.all()]


@pytest.fixture
def scene_factory(tmp_path, redis_url, scenes):
    def make(site, channel: str, items: int, **env: str) -> Scene:
        scene = Scene(tmp_path, redis_url, site, channel, items, **env)
        scenes.append(scene)
        return scene

    return make


def test_smtp_down_then_up_every_alert_arrives_once(http_server, make_smtp_server, scene_factory):
    smtp = make_smtp_server()
    smtp.stop()  # down (its port is kept for when it comes back)
    channel = (
        "    email: [desk@example.org]\n"
        f"    smtp: {{host: 127.0.0.1, port: {smtp.port}, sender: nw@example.org, timeout: 5}}"
    )
    scene = scene_factory(http_server, channel, items=5)
    scene.procs.worker()
    scene.procs.beat()
    # every delivery has failed at least once against the closed port
    scene.procs.wait_for(
        lambda: scene.deliveries()["failed"] == 5, 60, "5 deliveries failed while SMTP is down"
    )
    smtp.start()
    scene.procs.wait_for(lambda: scene.deliveries()["sent"] == 5, 60, "5 deliveries sent")
    time.sleep(3)  # more sweeps and ticks: nothing is sent again
    ids = [msg["Message-ID"] for msg in smtp.messages]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert sorted(msg["Subject"] for msg in smtp.messages) == [
        f"[alpha] Alpha report {i}" for i in range(5)
    ]
    failed = [ok for _, ok in scene.attempts() if not ok]
    assert len(failed) >= 5


def test_webhook_500_three_times_then_200(http_server, scene_factory):
    with WebhookReceiver() as hook:
        hook.fail(3, status=500)
        scene = scene_factory(http_server, f"    webhook: {hook.url}", items=1)
        scene.procs.worker()
        scene.procs.beat()
        scene.procs.wait_for(lambda: scene.deliveries()["sent"] == 1, 60, "the delivery sent")
        time.sleep(3)
        requests = hook.requests
    assert [r.headers["webhook-id"] for r in requests] == [requests[0].headers["webhook-id"]] * 4
    assert scene.deliveries() == Counter({"sent": 1})
    attempts = scene.attempts()
    assert [ok for _, ok in attempts] == [False, False, False, True]
    assert {d for d, _ in attempts} == {requests[0].headers["webhook-id"]}


def test_worker_killed_between_sending_and_recording(http_server, make_http_server, scene_factory):
    hook = make_http_server()
    received = threading.Event()

    def slow_first(request):
        if hook.hits("/hook") == 1:  # the first POST: hold the answer while the worker dies
            received.set()
            time.sleep(4)
        return 200, {}, b"ok"

    hook.routes["/hook"] = slow_first
    scene = scene_factory(
        http_server, f"    webhook: {hook.url('/hook')}", items=1, NEWSWATCH_LEASE_SECONDS="8"
    )
    scene.procs.worker("worker1")
    scene.procs.beat()
    scene.procs.wait_for(received.is_set, 60, "the webhook POST")
    scene.procs.stop("worker1", signal.SIGKILL)  # the whole process group, pool included
    assert scene.deliveries()["pending"] == 1  # sent, but not recorded as sent
    scene.procs.worker("worker2")
    scene.procs.wait_for(lambda: scene.deliveries()["sent"] == 1, 60, "the resend recorded")
    time.sleep(3)
    posts = [r for r in hook.requests if r.path == "/hook"]
    assert 1 <= len(posts) <= 2
    assert len({p.headers["webhook-id"] for p in posts}) == 1  # the receiver can drop the repeat


def test_redis_flushed_while_deliveries_are_pending(http_server, redis_url, scene_factory):
    with WebhookReceiver() as hook:
        scene = scene_factory(http_server, f"    webhook: {hook.url}", items=5)
        # no worker for the alerts queue yet: deliveries wait in Redis
        scene.procs.start(
            "pipeline", "worker", "--concurrency=2", "--queues=control,fetch,parse,rules",
            "--hostname=pipeline@%h",
        )  # fmt: skip
        scene.procs.beat()
        client = redis.Redis.from_url(redis_url)
        try:
            scene.procs.wait_for(
                lambda: scene.deliveries()["pending"] == 5 and client.llen("alerts") >= 5,
                60, "5 pending deliveries queued in Redis",
            )  # fmt: skip
            # every queued message is gone; in the same transaction the shared
            # fixture's lock key comes back, so no other session takes this index
            lock = client.get("newswatch-test-lock") or b"flush-test"
            with client.pipeline(transaction=True) as tx:
                flushed, _ = tx.flushdb().set("newswatch-test-lock", lock, ex=900).execute()
            # (not the queue's length after: the beat's canary or outbox may send to it
            # again at once)
            assert flushed is True
        finally:
            client.close()
        scene.procs.start(
            "alerts", "worker", "--concurrency=2", "--queues=alerts", "--hostname=alerts@%h"
        )
        scene.procs.wait_for(lambda: scene.deliveries()["sent"] == 5, 60, "5 deliveries sent")
        time.sleep(3)
        ids = Counter(r.headers["webhook-id"] for r in hook.requests)
    assert len(ids) == 5 and set(ids.values()) == {1}
