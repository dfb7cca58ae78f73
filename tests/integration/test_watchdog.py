"""Feed gaps, the watchdog's notices and the heartbeat, on SQLite and PostgreSQL, with the
real pipeline steps, a controlled clock, real feeds on a localhost HTTP server and a
real heartbeat receiver (docs/operations.md, "Watchdog and heartbeat")."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from tests.helpers.pipeline import Clock, count, make_runtime, run_all
from tests.helpers.schemas import webhook_validator
from worker import cli
from worker.alerts import sending
from worker.articles import parsing
from worker.cli.views import status_report
from worker.matching import applying
from worker.service import outbox, watchdog
from worker.service.observability import DatabaseCollector
from worker.service.sweep import sweep
from worker.sources import polling
from worker.store import models as m


@pytest.fixture
def clock() -> Clock:
    return Clock()  # 2026-01-01 12:00 UTC


def rss(entries: list[tuple[str, str, datetime | None]]) -> str:
    """(guid, link, date) entries; the title and text say which article it is (by link)."""
    items = ""
    for guid, link, date in entries:
        pub = f"<pubDate>{format_datetime(date)}</pubDate>" if date else ""
        article = link.rsplit("/", 1)[-1]
        items += (
            f"<item><title>Report {article}</title><link>{link}</link>"
            f'<guid isPermaLink="false">{guid}</guid>{pub}'
            f"<description>Alpha report {article} text {article}</description></item>"
        )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
    )


def serve(site, entries: list[tuple[str, str, datetime | None]], path: str = "/feed.xml") -> None:
    site.add(path, rss(entries), headers={"Content-Type": "application/rss+xml"})


def window(site, start: int, n: int, base: datetime | None, guid: str = "g") -> list:
    """Articles start..start+n-1, newest first, one an hour after `base` (None: undated)."""
    out = []
    for i in reversed(range(start, start + n)):
        date = base + timedelta(hours=i) if base else None
        out.append((f"{guid}-{i}", site.url(f"/a/{i}"), date))
    return out


def config(site, ops, extra: str = "", feed: str = "/feed.xml", notices: str = "") -> str:
    return f"""
sources:
  - name: wire
    feed: {site.url(feed)}
    every: 1m
watchlists:
  - name: alpha
    keywords: [Zeta]
    notify: [ops]
channels:
  - name: ops
    file: {ops}
  - name: hook
    webhook: {site.url("/hook")}
notices: {{channel: ops{notices}}}
fetch:
  allow_networks: [127.0.0.0/8]
  min_interval: 0  # simulated hours of polling: no real-time pause between requests
  deadline: 10
{extra}"""


def poll(rt, clock, seconds: float = 61) -> None:
    clock.advance(seconds)
    run_all(rt)


def tick(rt) -> list[dict]:
    """One outbox tick; sends the notices it raised and returns them as written."""
    sent = []
    for d in outbox.tick(rt):
        assert sending.deliver(rt, d)
        sent.append(d)
    return sent


def notices(ops) -> list[dict]:
    if not ops.exists():
        return []
    return [json.loads(line) for line in ops.read_text().splitlines()]


def gaps(rt) -> list[m.SourceGap]:
    with rt.store.session() as s:
        return list(s.scalars(select(m.SourceGap).order_by(m.SourceGap.id)))


BASE = datetime(2025, 12, 31, 0, 0, tzinfo=Clock().now.tzinfo)


# --- gaps ------------------------------------------------------------------------------


def test_a_feed_that_jumps_past_its_window_records_one_gap_and_one_notice(
    tmp_path, database_url, http_server, clock, capsys, monkeypatch
):
    ops = tmp_path / "ops.jsonl"
    rt = make_runtime(tmp_path, database_url, config(http_server, ops), clock)
    serve(http_server, window(http_server, 0, 10, BASE))
    poll(rt, clock)  # first poll: 10 entries, all new, never a gap
    serve(http_server, window(http_server, 3, 10, BASE))  # moved on by 3: overlaps
    poll(rt, clock)
    assert gaps(rt) == [] and tick(rt) == []
    # newswatch was away while 25 entries were published: the window is all new, and its
    # oldest entry (article 25) is newer than the newest seen (article 12)
    clock.advance(3 * 3600)
    serve(http_server, window(http_server, 25, 10, BASE))
    poll(rt, clock)
    (gap,) = gaps(rt)
    assert gap.basis == "dates" and gap.visible == 10
    assert gap.last_seen_at == BASE + timedelta(hours=12)
    assert gap.oldest_visible_at == BASE + timedelta(hours=25)
    assert gap.previous_poll_at == clock.now - timedelta(seconds=3 * 3600 + 61)
    assert "13.0 h between may be missed" in gap.detail and "3.0 h ago" in gap.detail
    assert len(tick(rt)) == 1 and tick(rt) == []  # one notice, however many ticks
    families = {f.name: f for f in DatabaseCollector(rt.store).collect()}
    assert families["newswatch_source_gaps"].samples[0].value == 1
    (notice,) = notices(ops)
    webhook_validator("notice").validate(notice)
    assert notice["event"] == "source_gap"
    assert notice["title"] == "source wire: possible missed items"
    assert "13.0 h" in notice["text"]
    # the next poll overlaps again: no second gap
    serve(http_server, window(http_server, 27, 10, BASE))
    poll(rt, clock)
    assert len(gaps(rt)) == 1 and tick(rt) == []
    # shown in status, text and --json
    report = status_report(rt.store)
    assert [g["source"] for g in report["gaps"]] == ["wire"]
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("NEWSWATCH_CONFIG", str(rt.config.path))
    monkeypatch.setenv("NEWSWATCH_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["status", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["gaps"][0]["basis"] == "dates" and shown["gaps"][0]["visible"] == 10
    assert cli.main(["status"]) == 0
    text = capsys.readouterr().out
    assert "gaps (possible missed items):" in text and "13.0 h between" in text


def test_a_first_poll_and_a_feed_that_rewrites_its_guids_record_no_gap(
    tmp_path, database_url, http_server, clock
):
    ops = tmp_path / "ops.jsonl"
    rt = make_runtime(tmp_path, database_url, config(http_server, ops), clock)
    # a first poll with a full window of dated entries (all new): no gap
    serve(http_server, window(http_server, 0, 25, BASE, guid="run0"))
    poll(rt, clock)
    # then the feed rewrites every GUID on every poll: all keys new, dates old
    for run in range(1, 5):
        serve(http_server, window(http_server, 0, 25, BASE, guid=f"run{run}"))
        poll(rt, clock)
    # and once with fresh dates too (a feed that stamps every entry with the time it is
    # served): same articles, by their links and texts
    now_dated = [(f"run9-{i}", http_server.url(f"/a/{i}"), clock.now) for i in range(25)]
    serve(http_server, now_dated)
    poll(rt, clock)
    assert count(rt, m.Item) == 25 * 6  # every rewritten GUID was a new key
    assert gaps(rt) == [] and tick(rt) == [] and notices(ops) == []


def test_an_undated_feed_gaps_by_its_window_and_a_new_url_starts_afresh(
    tmp_path, database_url, http_server, clock
):
    ops = tmp_path / "ops.jsonl"
    rt = make_runtime(tmp_path, database_url, config(http_server, ops), clock)
    serve(http_server, window(http_server, 0, 8, None))
    poll(rt, clock)
    # undated, rewritten GUIDs, same articles: no gap
    serve(http_server, window(http_server, 0, 8, None, guid="x"))
    poll(rt, clock)
    # undated and all new, but shorter than its usual window: not a full window, no gap
    serve(http_server, window(http_server, 100, 5, None))
    poll(rt, clock)
    assert gaps(rt) == []
    # a full window, all new, none of the previous window's articles: a gap
    serve(http_server, window(http_server, 200, 8, None))
    poll(rt, clock)
    (gap,) = gaps(rt)
    assert gap.basis == "window" and gap.visible == 8 and gap.last_seen_at is None
    assert "none was in the previous window" in gap.detail
    # the source's URL changes: its first poll is a first poll, whatever it shows
    rt.config.path.write_text(config(http_server, ops, feed="/other.xml"))
    serve(http_server, window(http_server, 500, 8, None), path="/other.xml")
    poll(rt, clock)
    assert len(gaps(rt)) == 1
    assert len(tick(rt)) == 1 and [n["event"] for n in notices(ops)] == ["source_gap"]


# --- the watchdog's conditions -------------------------------------------------------------


def test_no_fetch_notifies_once_per_incident_and_none_while_healthy(
    tmp_path, database_url, http_server, clock
):
    ops = tmp_path / "ops.jsonl"
    # the backoff is jittered, so the recovery poll may come more than 2 h after the last
    # success: source_failing (its default 2h; tested in test_outbox.py) would then join
    # the no_fetch notices this test counts
    limits = ", no_fetch_after: 30m, source_failing_after: 1d"
    rt = make_runtime(tmp_path, database_url, config(http_server, ops, notices=limits), clock)
    serve(http_server, window(http_server, 0, 5, BASE))
    for _ in range(40):  # healthy for 40 minutes: nothing
        poll(rt, clock, 60)
        assert tick(rt) == []
    http_server.add("/feed.xml", b"down", status=503)
    for _ in range(60):  # an hour of failures, a tick every minute
        poll(rt, clock, 60)
        tick(rt)
    assert [n["event"] for n in notices(ops)] == ["no_fetch"]
    assert (
        notices(ops)[0]["title"] == "no source fetched successfully for 32 min"
    )  # 1m + 30m, then the next tick
    webhook_validator("notice").validate(notices(ops)[0])
    with rt.store.session() as s:
        shown = watchdog.status(s, clock.now)
    assert [i["condition"] for i in shown["incidents"]] == ["no_fetch"]
    # it recovers (at its next poll, after the backoff): the incident closes; a second
    # outage is a second notice
    serve(http_server, window(http_server, 0, 5, BASE))
    for _ in range(40):
        poll(rt, clock, 600)
        assert tick(rt) == []
        with rt.store.session() as s:
            if s.scalar(select(m.Source.consecutive_failures)) == 0:
                break
    with rt.store.session() as s:
        assert watchdog.status(s, clock.now)["incidents"] == []
    http_server.add("/feed.xml", b"down", status=503)
    for _ in range(45):
        poll(rt, clock, 60)
        tick(rt)
    assert [n["event"] for n in notices(ops)] == ["no_fetch", "no_fetch"]


def test_queue_stalled_notifies_once_when_nothing_takes_the_work(
    tmp_path, database_url, http_server, clock
):
    ops = tmp_path / "ops.jsonl"
    rt = make_runtime(
        tmp_path, database_url, config(http_server, ops, notices=", queue_stalled_after: 30m"),
        clock,
    )  # fmt: skip
    serve(http_server, window(http_server, 0, 3, BASE))
    # feeds are fetched (so no_fetch holds not), but no worker parses the items; the
    # sweep keeps re-enqueuing them, which must not hide how long they have waited
    fired = []
    for minute in range(1, 46):
        clock.advance(60)
        for source_id in polling.dispatch_due(rt):
            polling.fetch_source(rt, source_id)
        sweep(rt)
        fired += [minute] * len(tick(rt))
    assert fired == [32]  # stored at minute 1: the first tick at which they waited > 30 min
    families = {f.name: f for f in DatabaseCollector(rt.store, clock=clock).collect()}
    waited = {
        s.labels["unit"]: s.value for s in families["newswatch_oldest_waiting_seconds"].samples
    }
    assert waited["item"] == 44 * 60 and waited["delivery"] == 0
    (notice,) = notices(ops)
    assert notice["event"] == "queue_stalled" and "item" in notice["title"]
    webhook_validator("notice").validate(notice)
    # the parse workers come back: the items go through, the incident closes
    with rt.store.session() as s:
        pending = list(s.scalars(select(m.Item.id).where(m.Item.state == "pending")))
    for item_id in pending:
        article_id = parsing.parse_item(rt, item_id)
        if article_id is not None:
            applying.apply_rules(rt, article_id)
    assert tick(rt) == []
    with rt.store.session() as s:
        assert watchdog.status(s, clock.now)["incidents"] == []


def test_deliveries_stalled_while_matches_are_made(tmp_path, database_url, http_server, clock):
    ops = tmp_path / "ops.jsonl"
    http_server.add("/hook", b"", status=500)  # the alert receiver is broken
    text = config(
        http_server,
        ops,
        notices=", deliveries_stalled_after: 30m, queue_stalled_after: 1d, delivery_dead: false",
    ).replace("notify: [ops]", "notify: [hook]")
    rt = make_runtime(tmp_path, database_url, text, clock)
    zeta = []
    for minute in range(50):
        # a matching article every ten minutes
        if minute % 10 == 0:
            n = len(zeta)
            zeta.append((f"z{n}", http_server.url(f"/z/{n}"), BASE + timedelta(minutes=n)))
            entries = [(g, u, d) for g, u, d in reversed(zeta)]
            body = rss(entries).replace("Alpha report", "Zeta report")
            http_server.add("/feed.xml", body, headers={"Content-Type": "application/rss+xml"})
        poll(rt, clock, 60)
        for d in sweep(rt).deliveries:  # the retries, as they fall due
            sending.deliver(rt, d)
        tick(rt)
    assert count(rt, m.Match) == 5
    assert [n["event"] for n in notices(ops)] == ["deliveries_stalled"]
    assert "500" in notices(ops)[0]["text"]
    webhook_validator("notice").validate(notices(ops)[0])
    # the receiver is fixed: alerts go out, the incident closes without a new notice
    http_server.add("/hook", b"", status=204)
    for _ in range(30):
        poll(rt, clock, 60)
        for d in sweep(rt).deliveries:
            sending.deliver(rt, d)
        tick(rt)
    assert [n["event"] for n in notices(ops)] == ["deliveries_stalled"]
    with rt.store.session() as s:
        assert watchdog.status(s, clock.now)["incidents"] == []


# --- the heartbeat ------------------------------------------------------------------------


def heartbeat_config(http_server, ops, path: str, extra: str = "") -> str:
    return config(
        http_server,
        ops,
        f"heartbeat:\n  url: {http_server.url(path)}\n  every: 1m\n{extra}",
        notices=", no_fetch_after: 30m",
    )


def test_the_heartbeat_is_pinged_when_healthy_and_not_when_a_condition_holds(
    tmp_path, database_url, make_http_server, clock
):
    feeds, receiver = make_http_server(), make_http_server()
    receiver.add("/ping/abc123secret", b"OK")
    receiver.add("/ping/abc123secret/fail", b"OK")
    ops = tmp_path / "ops.jsonl"
    text = config(
        feeds,
        ops,
        f"heartbeat:\n  url: {receiver.url('/ping/abc123secret')}\n  every: 1m\n"
        f"  fail_url: {receiver.url('/ping/abc123secret/fail')}\n",
        notices=", no_fetch_after: 30m",
    )
    rt = make_runtime(tmp_path, database_url, text, clock)
    serve(feeds, window(feeds, 0, 5, BASE))
    tick(rt)  # nothing fetched yet: not healthy, no ping of the heartbeat URL
    assert receiver.hits("/ping/abc123secret") == 0
    poll(rt, clock, 60)
    tick(rt)
    assert receiver.hits("/ping/abc123secret") == 1
    for _ in range(5):  # ticks every 10 s: never more than one ping a minute
        clock.advance(10)
        tick(rt)
    assert receiver.hits("/ping/abc123secret") == 1
    for _ in range(10):
        poll(rt, clock, 60)
        tick(rt)
    assert receiver.hits("/ping/abc123secret") == 11
    # the feed goes down: once no_fetch holds, only the fail URL is pinged
    feeds.add("/feed.xml", b"down", status=503)
    for _ in range(40):
        poll(rt, clock, 60)
        tick(rt)
    healthy_pings = receiver.hits("/ping/abc123secret")
    assert 11 < healthy_pings < 11 + 40  # healthy minutes still pinged; not after no_fetch
    assert receiver.hits("/ping/abc123secret/fail") >= 1
    with rt.store.session() as s:
        assert [i["condition"] for i in watchdog.status(s, clock.now)["incidents"]] == ["no_fetch"]
    for _ in range(5):
        poll(rt, clock, 60)
        tick(rt)
    assert receiver.hits("/ping/abc123secret") == healthy_pings  # still down: no pings
    assert all(r.method == "GET" for r in receiver.requests)


def test_no_fail_url_means_silence_and_a_failing_ping_never_logs_the_secret(
    tmp_path, database_url, make_http_server, clock, caplog
):
    feeds, receiver = make_http_server(), make_http_server()
    receiver.add("/hb/s3cr3t-token-value", b"no", status=500)
    ops = tmp_path / "ops.jsonl"
    text = config(
        feeds,
        ops,
        f"heartbeat:\n  url: {receiver.url('/hb/s3cr3t-token-value')}\n  method: post\n",
        notices=", no_fetch_after: 30m",
    )
    rt = make_runtime(tmp_path, database_url, text, clock)
    serve(feeds, window(feeds, 0, 5, BASE))
    with caplog.at_level(logging.INFO):  # the worker's default level (NEWSWATCH_LOG_LEVEL)
        poll(rt, clock, 60)
        tick(rt)
    (ping,) = receiver.requests
    assert ping.method == "POST" and json.loads(ping.body)["status"] == "ok"
    assert "s3cr3t-token-value" not in caplog.text
    assert "heartbeat ping to http://127.0.0.1" in caplog.text
    with rt.store.session() as s:
        hb = watchdog.status(s, clock.now)["heartbeat"]
    assert hb["last_ping"] is None and "ping failed" in hb["last"]
    assert "s3cr3t" not in hb["last"]
    # unhealthy without a fail URL: nothing is sent at all
    feeds.add("/feed.xml", b"down", status=503)
    for _ in range(40):
        poll(rt, clock, 60)
        tick(rt)
    assert all(json.loads(r.body)["status"] == "ok" for r in receiver.requests)
    late = [r for r in receiver.requests]
    for _ in range(3):
        poll(rt, clock, 60)
        tick(rt)
    assert receiver.requests == late


def test_a_bad_heartbeat_config_is_refused_without_quoting_the_url(tmp_path):
    from worker.config import ConfigError, load_config

    path = tmp_path / "newswatch.yaml"
    path.write_text(
        "sources: [{name: a, feed: 'http://example.org/f'}]\n"
        "watchlists: [{name: w, keywords: [x]}]\n"
        "heartbeat:\n  url: ftp://hc.example/secret-token-123\n  every: 0\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "newswatch.yaml:4: heartbeat.url: must be an http(s) URL" in message
    assert "heartbeat.every" in message and "secret-token-123" not in message
