"""A webhook endpoint that answers 410 Gone is switched off until an operator switches it on."""

from __future__ import annotations

from sqlalchemy import select

from tests.helpers.pipeline import Clock, make_runtime, rss, run_all
from tests.helpers.processes import run_cli
from worker.alerts import outbox
from worker.store import models as m

PAGE = "<html><body><article><p>{}</p></article></body></html>"


def config(server) -> str:
    return f"""
sources:
  - name: wire
    feed: {server.url("/feed.xml")}
    every: 1m
watchlists:
  - name: troops
    keywords: [troops]
    notify: [hook]
channels:
  - name: hook
    webhook: {server.url("/hook")}
fetch:
  allow_networks: [127.0.0.0/8]
"""


def test_410_switches_the_endpoint_off_until_enabled(tmp_path, database_url, http_server):
    answers = {"status": 410}
    http_server.routes["/hook"] = lambda req: (answers["status"], {}, b"")
    http_server.add("/feed.xml", rss(("Troops leave the north", "http://news.test/1")))
    rt = make_runtime(tmp_path, database_url, config(http_server), Clock())
    assert run_all(rt) == []
    posts = lambda: len([r for r in http_server.requests if r.path == "/hook"])  # noqa: E731
    assert posts() == 1
    (off,) = outbox.disabled_endpoints(rt.store)
    assert off["channel"] == "hook" and off["url"] == http_server.url("/hook")
    # a later alert to the same channel is not sent at all: dead at once, saying why
    http_server.add(
        "/feed.xml",
        rss(
            ("Troops return south", "http://news.test/2"),
            ("Troops leave the north", "http://news.test/1"),
        ),
    )
    rt.clock.advance(120)
    assert run_all(rt) == []
    assert posts() == 1
    with rt.store.session() as s:
        rows = s.scalars(select(m.Delivery).order_by(m.Delivery.created_at)).all()
    assert [d.state for d in rows] == ["dead", "dead"]
    assert (
        "endpoint disabled" in rows[1].last_error and "endpoints enable hook" in rows[1].last_error
    )

    # the operator switches it on (the CLI) and retries the dead delivery
    answers["status"] = 204
    env = {"DATABASE_URL": database_url, "NEWSWATCH_CONFIG": str(rt.config.path)}
    run = run_cli("endpoints", "enable", "hook", env=env, timeout=60, text=True)
    assert run.returncode == 0, run.stderr
    assert outbox.disabled_endpoints(rt.store) == []
    assert outbox.retry(rt.store, rows[1].id, rt.now()) is not None
    assert outbox.deliver(rt, rows[1].id)
    assert posts() == 2
