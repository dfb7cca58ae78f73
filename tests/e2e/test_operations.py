"""Operations on real processes: health canary, metrics scrape, JSON logs, no secret in
any log, poison work bounded by time limits, graceful shutdown, config problems named.

Real `newswatch worker` / `beat` / `metrics` / `health` processes, Redis and PostgreSQL
on 127.0.0.1, feeds and pages and a webhook receiver served on 127.0.0.1, a real SMTP
server with AUTH.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from tests.helpers.pipeline import rss
from tests.helpers.processes import REPO, NewswatchProcesses
from worker.cli import main as cli
from worker.service.embedded_redis import EmbeddedRedis
from worker.store import models as m
from worker.store.db import Store

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DATA = Path(__file__).resolve().parents[1] / "data"
SEED_PAGE = (DATA / "extract" / "seed-article.html").read_bytes()

SMTP_PASSWORD = "smtp-Pa55-w0rd-9f3c1"
WEBHOOK_SECRET = "whsec_c2VjcmV0LXZhbHVlLWZvci10ZXN0cy0xMjM0NQ=="
DB_PASSWORD = "db-Pa55-7c1e0b"

ARTICLE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
</head><body><article><h1>{title}</h1><p>{title}. The Popular Mobilization Forces said on
Sunday that talks would continue in Baghdad with all parties present, officials said.</p>
<p>More details would follow later in the week, a spokesman told reporters.</p>
</article></body></html>"""


@pytest.fixture
def broker_url(tmp_path) -> Iterator[str]:
    """A Redis server of this test's own (the embedded broker's binary, on a Unix socket).

    Not the shared one on 127.0.0.1:6379: test sessions running side by side pick the
    same database indexes there and their workers take each other's messages.
    """
    server = EmbeddedRedis(tmp_path / "broker")
    try:
        yield server.start()
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hook_posts(server):
    return [r for r in server.requests if r.method == "POST" and r.path == "/hook"]


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


# --- health, metrics, JSON logs, secrets --------------------------------------------


@pytest.mark.postgres
def test_health_metrics_json_logs_and_no_secret_in_any_log(
    tmp_path, postgres_url, broker_url, make_http_server, make_smtp_server
):
    site = make_http_server()
    site.add("/hook", b"", status=204)
    site.add("/articles/1", SEED_PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
    site.add(
        "/feed.xml",
        rss(("Militias demand U.S. leave", site.url("/articles/1"))),
        headers={"Content-Type": "application/rss+xml"},
    )
    smtp = make_smtp_server(auth=("newswatch", SMTP_PASSWORD))
    config = tmp_path / "newswatch.yaml"
    config.write_text(
        f"""
sources:
  - {{name: wire, feed: "{site.url("/feed.xml")}", every: 1s, full_text: true}}
  - {{name: gone, feed: "{site.url("/gone.xml")}", every: 1s, disable_after: 2}}
watchlists:
  - name: pmf
    names: [{{name: Popular Mobilization Forces, aliases: [PMF]}}]
    notify: [desk, hook]
channels:
  - name: desk
    email: [desk@example.org]
  - name: hook
    webhook: {site.url("/hook")}
    secret: ${{WEBHOOK_SECRET}}
smtp: {{host: 127.0.0.1, port: {smtp.port}, username: newswatch, password: "${{SMTP_PASSWORD}}",
        sender: newswatch@example.org}}
notices: {{channel: hook}}
fetch: {{allow_networks: [127.0.0.0/8], deadline: 10}}
"""
    )
    database_url = with_password(postgres_url, DB_PASSWORD)
    env = {
        "NEWSWATCH_BROKER_URL": broker_url,
        "DATABASE_URL": database_url,
        "NEWSWATCH_CONFIG": str(config),
        "NEWSWATCH_LOG_FORMAT": "json",
        "NEWSWATCH_LOG_LEVEL": "DEBUG",  # the most talkative: still no secret
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    procs = NewswatchProcesses(tmp_path, env)
    with procs:
        procs.worker()
        procs.beat()
        procs.wait_for(
            lambda: len(smtp.received) >= 1 and len(hook_posts(site)) >= 2,
            60,
            "the email, the webhook alert and the source-disabled notice",
        )
        assert smtp.received[0].login == "newswatch"

        # liveness: the canary goes through every queue and comes back
        result = procs.cli("health", "--timeout", "30")
        assert result.returncode == 0, result.stderr
        assert "control -> fetch -> parse -> rules -> alerts" in result.stdout

        # metrics: a real scrape over HTTP
        port = free_port()
        procs.start("metrics", "metrics", f"--port={port}")
        scrape = procs.wait_for(lambda: _scrape(port), 30, "the metrics endpoint")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(scrape)
            for s in fam.samples
        }
        assert samples[("newswatch_fetches_total", (("outcome", "ok"),))] >= 1
        assert samples[("newswatch_fetches_total", (("outcome", "http_404"),))] >= 2
        assert samples[("newswatch_items", (("state", "parsed"),))] == 1
        assert samples[("newswatch_articles", (("state", "done"),))] == 1
        assert samples[("newswatch_matches", (("state", "alerted"),))] == 1
        assert samples[("newswatch_deliveries", (("kind", "alert"), ("state", "sent")))] == 2
        assert samples[("newswatch_sources", (("state", "auto_disabled"),))] == 1
        for queue in ("control", "fetch", "parse", "rules", "alerts"):
            assert ("newswatch_queue_depth", (("queue", queue),)) in samples
        assert samples[("newswatch_publish_to_alert_seconds_count", ())] == 2
        assert samples[("newswatch_seen_to_alert_seconds_count", ())] == 2
        assert samples[("newswatch_seen_to_alert_seconds_bucket", (("le", "+Inf"),))] == 2
        assert samples[("newswatch_database_up", ())] == 1

        # the canary fails when no worker is there to take it
        procs.stop("worker")
        result = procs.cli("health", "--timeout", "2")
        assert result.returncode == 1
        assert "did not come back within 2s (no worker took it)" in result.stderr

    # JSON logs: every line of the worker's log is one JSON object, ids attached
    records = []
    for line in procs.log("worker").splitlines():
        if line.strip():
            records.append(json.loads(line))  # fails on any line that is not JSON
    for key in ("source_id", "item_id", "article_id", "delivery_id"):
        assert any(key in r for r in records), key
    fetched = [r for r in records if r["message"].startswith("source wire: 1 new item")]
    assert fetched and isinstance(fetched[0]["source_id"], int)
    assert any(r.get("event") == "source_disabled" and r["level"] == "ERROR" for r in records)
    assert all(json.loads(line) for line in procs.log("beat").splitlines() if line.strip())

    # no secret value in any log
    for name in procs.logs:
        text = procs.log(name)
        for secret in (SMTP_PASSWORD, WEBHOOK_SECRET, DB_PASSWORD):
            assert secret not in text, f"{secret!r} in the {name} log"


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return None


# --- poison work ---------------------------------------------------------------------


def test_a_parse_that_hangs_is_killed_retried_and_quarantined_while_other_work_flows(
    tmp_path, broker_url, make_http_server
):
    site = make_http_server()
    site.add("/hook", b"", status=204)

    def drip():
        yield b"<html><body><p>"
        for _ in range(60):  # 30 s of one byte every half second: far past the time limit
            time.sleep(0.5)
            yield b"x"

    site.routes["/articles/slow"] = lambda req: (200, {"Content-Type": "text/html"}, drip())
    site.add(
        "/articles/good",
        ARTICLE.format(title="Talks continue"),
        headers={"Content-Type": "text/html; charset=utf-8"},
    )
    site.add(
        "/listing",
        '<html><body><a href="/articles/slow">Slow</a> <a href="/articles/good">Good</a>'
        "</body></html>",
        headers={"Content-Type": "text/html"},
    )
    procs, store = _listing_site(
        tmp_path,
        site,
        broker_url,
        NEWSWATCH_PARSE_TIME_LIMIT="2",
        NEWSWATCH_PARSE_SOFT_TIME_LIMIT="0",  # none: the hard limit kills the child
        NEWSWATCH_MAX_ATTEMPTS="2",
        NEWSWATCH_LEASE_SECONDS="3",
    )

    def item(path: str) -> m.Item | None:
        with store.session() as s:
            return s.scalar(select(m.Item).where(m.Item.url == site.url(path)))

    try:
        with procs:
            procs.worker(concurrency=2)
            procs.beat()
            # the good article alerts while the slow one is still being retried
            procs.wait_for(lambda: len(hook_posts(site)) >= 1, 60, "the alert for the good article")
            assert item("/articles/good").state == "parsed"
            slow = procs.wait_for(
                lambda: (i := item("/articles/slow")) is not None and i.state == "failed" and i,
                90,
                "the slow article quarantined",
            )
            assert slow.error.startswith("quarantined after 2 attempts: no attempt finished")
            assert site.hits("/articles/slow") == 2  # one GET per attempt, none after
            assert "Hard time limit (2" in procs.log("worker")
            procs.check_alive()  # the worker itself lives on; only pool children were replaced
            assert len(hook_posts(site)) == 1
    finally:
        store.dispose()


# --- graceful shutdown -----------------------------------------------------------------


def test_sigterm_finishes_in_flight_work_and_nothing_is_lost_or_doubled(
    tmp_path, broker_url, make_http_server
):
    site = make_http_server()
    site.add("/hook", b"", status=204)
    n = 6

    def slow_article(req):
        time.sleep(1.5)  # long enough that SIGTERM lands while pages are being read
        i = int(req.path.rsplit("/", 1)[-1])
        # six different stories (not near-duplicates, which would alert once)
        words = " ".join(f"{city}{i}" for city in ("Basra", "Mosul", "Erbil", "Najaf") * 12)
        page = ARTICLE.format(title=f"Report {i}: {words[:40]}").replace(
            "More details", f"{words}. More details"
        )
        return 200, {"Content-Type": "text/html; charset=utf-8"}, page

    links = ""
    for i in range(n):
        site.routes[f"/articles/{i}"] = slow_article
        links += f'<a href="/articles/{i}">{i}</a> '
    site.add(
        "/listing", f"<html><body>{links}</body></html>", headers={"Content-Type": "text/html"}
    )
    procs, store = _listing_site(tmp_path, site, broker_url)

    def items() -> list[m.Item]:
        with store.session() as s:
            return list(s.scalars(select(m.Item)))

    try:
        with procs:
            worker = procs.worker(concurrency=2)
            procs.beat()
            procs.wait_for(
                lambda: sum(site.hits(f"/articles/{i}") for i in range(n)) >= 1,
                60,
                "the first article pages being read",
            )
            assert any(i.state == "pending" for i in items())  # work still in hand and queued
            os.kill(worker.pid, signal.SIGTERM)  # the main process only, as docker stop does
            assert worker.wait(60) == 0
            log = procs.log("worker")
            assert "warm shutdown" in log.lower()
            # every item is either done, or untouched and back in the queue: nothing half-done
            for i in items():
                assert (i.state, i.attempts) in (("parsed", 1), ("pending", 0)), (i.url, i.state)
            procs.procs.pop("worker")
            procs.worker(name="worker2", concurrency=2)
            procs.wait_for(lambda: len(hook_posts(site)) >= n, 60, f"{n} alerts")
            time.sleep(2)  # a late duplicate would show up here
            posts = hook_posts(site)
            assert len(posts) == n and len({p.headers["webhook-id"] for p in posts}) == n
            assert all(i.state == "parsed" and i.attempts == 1 for i in items())
            assert [site.hits(f"/articles/{i}") for i in range(n)] == [1] * n  # none fetched twice
    finally:
        store.dispose()


# --- bad config ---------------------------------------------------------------------------


def test_check_config_names_each_problem(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NW_TEST_UNSET_SECRET", raising=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        """sources:
  - name: wire
    feed: https://example.org/rss
    every: 5 minutes
    colour: blue
channels:
  - name: hook
    webhook: https://example.org/hook
    secret: ${NW_TEST_UNSET_SECRET}
"""
    )
    assert cli(["check-config", "--config", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:4: sources[wire].every: '5 minutes' is not an interval" in out
    assert f"{bad}:5: sources[wire].colour: unknown key" in out
    assert f"{bad}:9: channels[hook].secret: environment variable NW_TEST_UNSET_SECRET" in out

    closed = free_port()  # nothing listens there
    good = tmp_path / "good.yaml"
    good.write_text(
        f"""channels:
  - {{name: desk, email: [desk@example.org]}}
  - {{name: hook, webhook: "http://127.0.0.1:{closed}/hook?token=abc"}}
smtp: {{host: 127.0.0.1, port: {closed}, password: "pw-not-shown"}}
allow_empty: true  # only channels here: no source, no watchlist, on purpose
"""
    )
    assert cli(["check-config", "--config", str(good)]) == 0  # without --connect: fine
    capsys.readouterr()
    assert cli(["check-config", "--config", str(good), "--connect", "--connect-timeout=2"]) == 1
    out = capsys.readouterr().out
    assert f"smtp: SMTP server 127.0.0.1:{closed} unreachable (used by channel desk)" in out
    assert f"channels[hook].webhook: cannot connect to 127.0.0.1:{closed}" in out
    assert "refused" in out.lower()
    assert "pw-not-shown" not in out and "token=abc" not in out


def test_the_compose_healthcheck_is_the_canary():
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    test = compose["services"]["worker"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "newswatch", "health"]


def _listing_site(
    tmp_path: Path, site: Any, broker_url: str, **env: str
) -> tuple[NewswatchProcesses, Store]:
    """Processes (not started) and their database for a listing page whose /articles/ links
    alert `pmf` through a webhook on the same site."""
    config = tmp_path / "newswatch.yaml"
    config.write_text(
        f"""
sources:
  - {{name: site, page: "{site.url("/listing")}", follow: /articles/, every: 1h}}
watchlists:
  - {{name: pmf, names: [Popular Mobilization Forces], notify: [hook]}}
channels:
  - {{name: hook, webhook: "{site.url("/hook")}"}}
fetch: {{allow_networks: [127.0.0.0/8], deadline: 30}}
"""
    )
    database_url = f"sqlite:///{tmp_path / 'newswatch.db'}"
    procs = NewswatchProcesses(
        tmp_path,
        {
            "NEWSWATCH_BROKER_URL": broker_url,
            "DATABASE_URL": database_url,
            "NEWSWATCH_CONFIG": str(config),
            **env,
        },
    )
    return procs, Store(database_url)
