"""Polite scheduling against a real database and a real HTTP server on 127.0.0.1.

The steps are driven directly with a controlled clock (no Celery), so every
schedule is exact: the feed's ttl and the response's cache headers stretch the
interval within the source's bounds, failures back off up to the cap, permanent
errors disable a source with a notice, and `respect_robots` is per source.
"""

from __future__ import annotations

import logging
import subprocess
import time
from datetime import timedelta
from email.utils import formatdate

import pytest
from sqlalchemy import select

from tests.helpers.pipeline import Clock, make_runtime, rss
from tests.helpers.processes import run_cli
from worker.alerts import sending
from worker.core import backoff
from worker.sources import polling
from worker.store import models as m


def config(site, source_options: str = "", extra: str = "") -> str:
    return f"""
sources:
  - name: wire
    feed: {site.url("/feed.xml")}
    every: 5m
{source_options}
watchlists:
  - name: w
    keywords: [nothing-matches-this]
    notify: [ops]
channels:
  - name: ops
    webhook: {site.url("/hook")}
fetch:
  allow_networks: [127.0.0.0/8]
  deadline: 10
{extra}
"""


def feed(ttl_minutes: int | None = None) -> str:
    body = rss(("One", "http://example.test/1"))
    if ttl_minutes is not None:
        body = body.replace("<channel>", f"<channel><ttl>{ttl_minutes}</ttl>")
    return body


@pytest.fixture
def clock() -> Clock:
    return Clock()


def poll(rt) -> m.Source:
    """Dispatch what is due, fetch it, and return the source row afterwards."""
    for source_id in polling.dispatch_due(rt):
        polling.fetch_source(rt, source_id)
    with rt.store.session() as s:
        return s.scalar(select(m.Source).where(m.Source.name == "wire"))


def interval(src: m.Source) -> float:
    return (src.next_fetch_at - src.last_fetch_at).total_seconds()


RSS = {"Content-Type": "application/rss+xml"}


@pytest.mark.parametrize(
    ("ttl", "options", "expected"),
    [
        (None, "", 300),  # no hint: every
        (2, "", 300),  # a ttl shorter than every never makes us poll more often
        (12, "", 720),  # 12 minutes: followed
        (60, "", 1200),  # an hour: capped at 4 x every
        (60, "    max_every: 30m", 1800),  # ... or at the source's max_every
    ],
)
def test_the_feed_ttl_stretches_the_interval_within_bounds(
    tmp_path, database_url, http_server, clock, ttl, options, expected
):
    http_server.add("/feed.xml", feed(ttl), headers=RSS)
    rt = make_runtime(tmp_path, database_url, config(http_server, options), clock)
    src = poll(rt)
    assert src.last_error is None
    assert interval(src) == expected


def test_cache_headers_stretch_the_interval_and_a_304_keeps_it(
    tmp_path, database_url, http_server, clock
):
    headers = {**RSS, "ETag": '"v1"', "Cache-Control": "public, max-age=960", "Age": "60"}
    http_server.add("/feed.xml", feed(), headers=headers)
    rt = make_runtime(tmp_path, database_url, config(http_server), clock)
    assert interval(poll(rt)) == 900  # max-age minus Age
    # the next poll is a 304 without cache headers: the server's last word still holds
    http_server.routes["/feed.xml"] = lambda req: (
        (304, {"ETag": '"v1"'}, b"")
        if req.headers.get("If-None-Match") == '"v1"'
        else (500, {}, b"")
    )
    clock.advance(899)
    assert poll(rt).last_fetch_at != clock.now  # not due yet
    clock.advance(1)
    src = poll(rt)
    assert src.last_fetch_at == clock.now and src.last_error is None
    assert interval(src) == 900
    # Expires counts as well, against the server's own Date header (real time here)
    expires = formatdate(time.time() + 600, usegmt=True)
    http_server.routes["/feed.xml"] = (200, {**RSS, "Expires": expires}, feed())
    clock.advance(900)
    assert 590 <= interval(poll(rt)) <= 600
    # no-cache gives no hint
    http_server.routes["/feed.xml"] = (200, {**RSS, "Cache-Control": "no-cache"}, feed(30))
    clock.advance(600)
    assert interval(poll(rt)) == 1200  # the ttl (30m) still counts, capped at 4 x every


def test_failures_back_off_exponentially_up_to_the_cap_and_honour_retry_after(
    tmp_path, database_url, http_server, clock
):
    http_server.add("/feed.xml", b"down", status=500)
    rt = make_runtime(tmp_path, database_url, config(http_server), clock)
    delays = []
    for _ in range(12):
        src = poll(rt)
        delays.append(interval(src))
        clock.now = src.next_fetch_at
    assert src.consecutive_failures == 12 and src.enabled
    assert all(d >= 300 for d in delays)  # never more often than every
    assert max(delays) <= backoff.MAX_BACKOFF.total_seconds()
    assert delays[-1] >= backoff.MAX_BACKOFF.total_seconds() / 2  # reached the cap (jittered)
    assert delays[1] < delays[4] < delays[8]
    # Retry-After beyond the backoff wins
    http_server.routes["/feed.xml"] = (503, {"Retry-After": "86400"}, b"busy")
    src = poll(rt)
    assert interval(src) == 86400
    # a success resets everything
    clock.now = src.next_fetch_at
    http_server.routes["/feed.xml"] = (200, RSS, feed())
    src = poll(rt)
    assert src.consecutive_failures == 0 and interval(src) == 300


def test_permanent_errors_disable_the_source_with_a_log_line_and_a_notice(
    tmp_path, database_url, http_server, clock, caplog
):
    http_server.add("/hook", b"", status=204)
    http_server.add("/feed.xml", b"gone", status=410)
    notices = "notices: {channel: ops}"
    text = config(http_server, "    disable_after: 3", notices)
    rt = make_runtime(tmp_path, database_url, text, clock)
    caplog.set_level(logging.WARNING, logger="worker")
    src = poll(rt)
    # a transient error in between neither counts nor resets the permanent ones
    http_server.routes["/feed.xml"] = (500, {}, b"oops")
    clock.now = src.next_fetch_at
    src = poll(rt)
    assert src.permanent_failures == 1 and src.enabled
    http_server.routes["/feed.xml"] = (404, {}, b"not found")
    for _ in range(2):
        clock.now = src.next_fetch_at
        notice_ids: list[str] = []
        for source_id in polling.dispatch_due(rt):
            polling.fetch_source(rt, source_id, notice_ids)
        with rt.store.session() as s:
            src = s.scalar(select(m.Source))
    assert src.permanent_failures == 3
    assert not src.enabled
    assert "3 permanent error(s)" in src.disabled_reason and "404" in src.disabled_reason
    disabled = [r for r in caplog.records if "DISABLED" in r.getMessage()]
    assert len(disabled) == 1 and disabled[0].levelno == logging.ERROR
    assert disabled[0].source_id == src.id
    # the notice: one delivery to the notices channel, returned for enqueueing
    with rt.store.session() as s:
        rows = s.scalars(select(m.Delivery).where(m.Delivery.kind == "notice")).all()
    assert [r.id for r in rows] == notice_ids
    assert rows[0].notice["event"] == "source_disabled" and rows[0].channel == "ops"
    assert sending.deliver(rt, notice_ids[0])
    # no more polls, even much later
    hits = http_server.hits("/feed.xml")
    clock.advance(7 * 24 * 3600)
    assert polling.dispatch_due(rt) == []
    # editing another option keeps it disabled; a new URL brings it back
    (tmp_path / "newswatch.yaml").write_text(text.replace("every: 5m", "every: 10m"))
    assert polling.dispatch_due(rt) == []
    http_server.add("/feed2.xml", feed(), headers=RSS)
    (tmp_path / "newswatch.yaml").write_text(text.replace("/feed.xml", "/feed2.xml"))
    src = poll(rt)
    assert src.enabled and src.disabled_reason is None and src.last_error is None
    assert http_server.hits("/feed.xml") == hits


def test_respect_robots_is_a_per_source_option(tmp_path, database_url, http_server, clock):
    http_server.add(
        "/robots.txt", "User-agent: *\nDisallow: /\n", headers={"Content-Type": "text/plain"}
    )
    http_server.add("/feed.xml", feed(), headers=RSS)
    rt = make_runtime(tmp_path, database_url, config(http_server), clock)
    src = poll(rt)
    assert src.last_error_kind == "robots_disallow" and http_server.hits("/feed.xml") == 0
    # the operator owns this site (or has permission): robots.txt is not consulted at all
    (tmp_path / "newswatch.yaml").write_text(config(http_server, "    respect_robots: false"))
    robots_hits = http_server.hits("/robots.txt")
    clock.now = src.next_fetch_at
    src = poll(rt)
    assert src.last_error is None and src.items_seen == 1
    assert http_server.hits("/robots.txt") == robots_hits


def test_jitter_spreads_sources_of_one_interval(tmp_path, database_url, http_server, clock):
    """With jitter on, twenty 5-minute sources first polled on one tick fall due apart."""
    from worker.bootstrap import Runtime
    from worker.bootstrap.config_in_force import LiveConfig
    from worker.settings import Settings
    from worker.store.db import Store

    http_server.add("/feed.xml", feed(), headers=RSS)
    sources = "\n".join(
        f"  - name: s{i}\n    feed: {http_server.url('/feed.xml')}\n    every: 5m"
        for i in range(20)
    )
    path = tmp_path / "cfg.yaml"
    path.write_text(
        f"allow_empty: true\nsources:\n{sources}\nfetch:\n  allow_networks: [127.0.0.0/8]\n"
    )
    settings = Settings.from_env({"DATABASE_URL": database_url, "NEWSWATCH_CONFIG": str(path)})
    assert settings.schedule_jitter == 0.1  # the default
    store = Store(database_url)
    store.upgrade()
    rt = Runtime(settings=settings, store=store, config=LiveConfig(path, 0.0), clock=clock)
    for source_id in polling.dispatch_due(rt):
        polling.fetch_source(rt, source_id)
    with store.session() as s:
        due = [(r.next_fetch_at - clock.now).total_seconds() for r in s.scalars(select(m.Source))]
    assert all(300 <= d < 330 for d in due)  # never early, at most 10 % late
    assert len({round(d) for d in due}) > 12  # spread over the window, not one tick
    clock.advance(timedelta(seconds=330).total_seconds())
    assert len(polling.dispatch_due(rt)) == 20


def _cli(rt, database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {"DATABASE_URL": database_url, "NEWSWATCH_CONFIG": str(rt.config.path)}
    return run_cli(*args, env=env, timeout=60, text=True)


def test_a_disabled_source_is_listed_and_enabled_again_by_the_cli(
    tmp_path, database_url, http_server, clock
):
    http_server.add("/hook", b"", status=204)
    http_server.add("/feed.xml", b"gone", status=410)
    rt = make_runtime(tmp_path, database_url, config(http_server, "    disable_after: 1"), clock)
    src = poll(rt)
    assert not src.enabled and src.disabled_reason

    listed = _cli(rt, database_url, "sources")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("wire ") and "1 permanent error(s)" in listed.stdout

    http_server.add("/feed.xml", feed(), headers=RSS)  # the feed is back
    run = _cli(rt, database_url, "sources", "enable", "wire")
    assert run.returncode == 0, run.stderr
    assert "wire: enabled" in run.stdout
    with rt.store.session() as s:
        src = s.scalar(select(m.Source))
    assert src.enabled and src.disabled_reason is None and src.permanent_failures == 0
    clock.now = max(clock.now, src.next_fetch_at)
    src = poll(rt)
    assert src.last_error is None and src.last_fetch_at == clock.now
    assert "no disabled sources" in _cli(rt, database_url, "sources").stdout
    again = _cli(rt, database_url, "sources", "enable", "wire")
    assert again.returncode == 0 and "not disabled" in again.stdout


def test_the_pause_between_requests_to_one_host_comes_from_the_config(tmp_path, http_server):
    text = f"""
sources:
  - name: a
    feed: {http_server.url("/a.xml")}
watchlists:
  - name: w
    keywords: [x]
fetch:
  allow_networks: [127.0.0.0/8]
  min_interval: 0.7
"""
    rt = make_runtime(tmp_path, f"sqlite:///{tmp_path / 'nw.db'}", text, Clock())
    assert rt.fetcher()._limiter.min_interval == 0.7
    (tmp_path / "newswatch.yaml").write_text(text.replace("min_interval: 0.7", ""))
    assert rt.fetcher()._limiter.min_interval == 0.2  # the default, on the next reload
