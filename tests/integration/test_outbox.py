"""The outbox against real databases (SQLite and PostgreSQL), a real SMTP server and
a real HTTP receiver, driven step by step with a controlled clock: digests, the
throttle, quiet hours, relevance, story updates, notices and the CLI.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import select

from tests.helpers.pipeline import Clock, count, make_runtime, run_all
from tests.helpers.schemas import webhook_validator
from worker import cli
from worker.alerts import digests, sending
from worker.alerts.notices import check_notices
from worker.articles import parsing
from worker.matching import applying
from worker.service.sweep import sweep
from worker.sources import polling
from worker.store import deliveries
from worker.store import models as m

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "webhook-payload.schema.json"

WATCHLISTS = """
watchlists:
  - name: alpha
    keywords: [Alpha]
    notify: [{channels}]
  - name: beta
    keywords: [Beta]
    notify: [{channels}]
  - name: gamma
    keywords: [Gamma]
    notify: [{channels}]
"""


def feed(*items: tuple[str, str, str]) -> str:
    """RSS with (title, url, description) items; the description is the article body."""
    entries = "".join(
        f"<item><title>{t}</title><link>{u}</link><guid>{u}</guid>"
        f"<description>{d}</description></item>"
        for t, u, d in items
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    return f"{head}{entries}</channel></rss>"


def config(site, channels: str, notify: str, extra: str = "", sources: str = "") -> str:
    return (
        f"""
sources:
  - name: wire
    feed: {site.url("/feed.xml")}
    every: 1m
{sources}"""
        + WATCHLISTS.format(channels=notify)
        + f"""
channels:
{channels}
fetch:
  allow_networks: [127.0.0.0/8]
  min_interval: 0  # simulated hours of polling: no real-time pause between requests
  deadline: 10
{extra}"""
    )


def items(site, path: str, entries: list[tuple[str, str, str]]) -> None:
    site.add(path, feed(*entries), headers={"Content-Type": "application/rss+xml"})


def story_items(word: str, start: int, n: int, site) -> list[tuple[str, str, str]]:
    # bodies share no word pairs, so every item is a story of its own
    return [
        (f"{word} report number {i}", site.url(f"/a/{word.lower()}{i}"),
         f"{word} " + " ".join(f"{word.lower()}{i}w{j}" for j in range(12)))
        for i in range(start, start + n)
    ]  # fmt: skip


def posts(site, path: str = "/hook") -> list:
    return [r for r in site.requests if r.path == path and r.method == "POST"]


@pytest.fixture
def clock() -> Clock:
    return Clock()  # 2026-01-01 12:00 UTC


@pytest.fixture
def site(http_server):
    http_server.add("/hook", b"", status=204)
    return http_server


def poll(rt, clock, seconds: float = 61) -> list[str]:
    clock.advance(seconds)
    return run_all(rt)


# --- digests -----------------------------------------------------------------------------


def test_thirty_matches_in_an_hour_give_one_digest_per_channel(
    tmp_path, database_url, site, smtp_server, clock
):
    channels = f"""
  - name: desk
    email: [desk@example.org]
    smtp: {{host: 127.0.0.1, port: {smtp_server.port}, sender: nw@example.org}}
    digest: hourly
  - name: hook
    webhook: {site.url("/hook")}
    digest: hourly
"""
    rt = make_runtime(tmp_path, database_url, config(site, channels, "desk, hook"), clock)
    entries: list[tuple[str, str, str]] = []
    polls = {  # minute -> (first, count) per watchlist: 10 new matches each, 30 in all
        5: {"Alpha": (0, 4), "Beta": (0, 3), "Gamma": (0, 3)},
        25: {"Alpha": (4, 3), "Beta": (3, 4), "Gamma": (3, 3)},
        45: {"Alpha": (7, 3), "Beta": (7, 3), "Gamma": (6, 4)},
    }
    for minute, plan in polls.items():
        for word, (start, n) in plan.items():
            entries += story_items(word, start, n, site)
        items(site, "/feed.xml", entries)
        clock.now = datetime(2026, 1, 1, 12, minute, tzinfo=UTC)
        assert run_all(rt) == []  # nothing goes out immediately
    assert count(rt, m.Match) == 30
    assert count(rt, m.Delivery, m.Delivery.state == "batched") == 60
    clock.now = datetime(2026, 1, 1, 12, 59, 59, tzinfo=UTC)
    assert digests.send_due_digests(rt) == 0  # not yet
    clock.now = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert digests.send_due_digests(rt) == 2
    assert digests.send_due_digests(rt) == 0  # once

    (mail,) = smtp_server.messages
    assert mail["Subject"] == "[newswatch] 30 alerts: alpha, beta, gamma"
    text = mail.get_body(("plain",)).get_content()
    assert "=== alpha (10) ===" in text and "=== beta (10) ===" in text
    assert "=== gamma (10) ===" in text
    html = mail.get_body(("html",)).get_content()
    assert html.count('class="alert"') == 30
    (post,) = posts(site)
    payload = json.loads(post.body)
    assert payload["type"] == "newswatch.digest" and payload["count"] == 30
    assert {a["watchlist"] for a in payload["alerts"]} == {"alpha", "beta", "gamma"}
    webhook_validator("digest").validate(payload)  # docs/webhook-digest.schema.json
    with rt.store.session() as s:
        batches = s.scalars(select(m.DigestBatch)).all()
        assert {b.state for b in batches} == {"sent"} and len(batches) == 2
        hook_batch = next(b for b in batches if b.channel == "hook")
        desk_batch = next(b for b in batches if b.channel == "desk")
    assert post.headers["webhook-id"] == hook_batch.id  # stable: derived from the batch
    assert mail["Message-ID"] == f"<digest-{desk_batch.id}@newswatch>"
    assert count(rt, m.Delivery, m.Delivery.state == "sent") == 60
    assert count(rt, m.DeliveryAttempt, m.DeliveryAttempt.ok.is_(True)) == 60


def test_a_failed_digest_is_retried_as_the_same_batch(tmp_path, database_url, site, clock):
    answers = iter([503, 200])
    site.routes["/hook"] = lambda req: (next(answers), {"Retry-After": "120"}, b"")
    channels = f"  - name: hook\n    webhook: {site.url('/hook')}\n    digest: hourly\n"
    rt = make_runtime(tmp_path, database_url, config(site, channels, "hook"), clock)
    items(site, "/feed.xml", story_items("Alpha", 0, 3, site))
    poll(rt, clock)
    clock.now = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert digests.send_due_digests(rt) == 0
    # a new match after the failed send does not join the batch that is being retried
    items(site, "/feed.xml", story_items("Alpha", 0, 4, site))
    poll(rt, clock, 1)
    clock.advance(118)
    assert digests.send_due_digests(rt) == 0  # Retry-After honoured
    clock.advance(2)
    assert digests.send_due_digests(rt) == 1
    first, second = posts(site)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert json.loads(second.body)["count"] == 3
    with rt.store.session() as s:
        later = s.scalars(select(m.Delivery).where(m.Delivery.state == "batched")).one()
        batch = s.get(m.DigestBatch, later.batch_id)
    assert batch.due_at == datetime(2026, 1, 1, 14, 0, tzinfo=UTC) and batch.state == "open"


def test_concurrent_claimers_take_disjoint_batches(tmp_path, database_url, site, clock):
    channels = "\n".join(
        f"  - name: c{i}\n    webhook: {site.url('/hook')}\n    digest: hourly" for i in range(12)
    )
    notify = ", ".join(f"c{i}" for i in range(12))
    rt = make_runtime(tmp_path, database_url, config(site, channels, notify), clock)
    items(site, "/feed.xml", story_items("Alpha", 0, 2, site))
    poll(rt, clock)
    assert count(rt, m.DigestBatch) == 12
    clock.now = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def claimer() -> None:
        barrier.wait()
        results.append(digests.claim_due_batches(rt, limit=5))

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [b for r in results for b in r]
    assert len(claimed) == len(set(claimed)) == 12
    # a delivery for a batch that is already claimed does not join it
    with rt.store.session() as s:
        assert (
            deliveries.join_batch(s, "c0", datetime(2026, 1, 1, 13, tzinfo=UTC), clock.now) is None
        )


# --- throttle, quiet hours, relevance ---------------------------------------------------------


def test_throttle_sends_n_per_hour_and_the_rest_in_the_next_digest(
    tmp_path, database_url, site, clock
):
    channels = f"  - name: hook\n    webhook: {site.url('/hook')}\n    throttle: 2\n"
    rt = make_runtime(tmp_path, database_url, config(site, channels, "hook"), clock)
    items(site, "/feed.xml", story_items("Alpha", 0, 5, site) + story_items("Beta", 0, 1, site))
    sent = poll(rt, clock, 600)  # 12:10
    assert len(sent) == 3  # two for alpha, one for beta (the throttle is per watchlist)
    assert count(rt, m.Delivery, m.Delivery.route == "throttle") == 3
    clock.now = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert digests.send_due_digests(rt) == 1
    digest = json.loads(posts(site)[-1].body)
    assert digest["type"] == "newswatch.digest" and digest["count"] == 3
    assert {a["watchlist"] for a in digest["alerts"]} == {"alpha"}
    # an hour after the first two, alpha may alert immediately again
    clock.now = datetime(2026, 1, 1, 13, 11, tzinfo=UTC)
    items(site, "/feed.xml", story_items("Alpha", 0, 6, site))
    assert len(run_all(rt)) == 1
    assert len(posts(site)) == 5


def test_quiet_hours_hold_alerts_until_morning(tmp_path, database_url, site, clock):
    channels = (
        f"  - name: hook\n    webhook: {site.url('/hook')}\n"
        "    quiet_hours: 22:00-07:00\n    timezone: Europe/Berlin\n"
    )
    rt = make_runtime(tmp_path, database_url, config(site, channels, "hook"), clock)
    clock.now = datetime(2026, 1, 1, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    items(site, "/feed.xml", story_items("Alpha", 0, 2, site) + story_items("Gamma", 0, 2, site))
    assert run_all(rt) == []
    for hour in (23, 1, 5):
        clock.now = clock.now.replace(hour=hour) + timedelta(days=hour < 12)
        clock.now = min(clock.now, datetime(2026, 1, 2, 5, 59, tzinfo=UTC))
        assert digests.send_due_digests(rt) == 0
    assert posts(site) == []
    clock.now = datetime(2026, 1, 2, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
    assert digests.send_due_digests(rt) == 1
    assert json.loads(posts(site)[0].body)["count"] == 4
    # in the morning alerts are immediate again
    items(site, "/feed.xml", story_items("Alpha", 0, 3, site))
    clock.advance(600)
    assert len(run_all(rt)) == 1


def test_min_relevance_and_a_watchlist_override(tmp_path, database_url, site, clock):
    channels = (
        f"  - name: hook\n    webhook: {site.url('/hook')}\n    min_relevance: title_or_2\n"
        f"  - name: all\n    webhook: {site.url('/all')}\n"
    )
    site.add("/all", b"", status=204)
    text = config(site, channels, "hook, all").replace(
        "  - name: gamma\n    keywords: [Gamma]\n    notify: [hook, all]",
        "  - name: gamma\n    keywords: [Gamma]\n    notify: [hook, all]\n"
        "    alerts: {min_relevance: any}",
    )
    rt = make_runtime(tmp_path, database_url, text, clock)
    items(site, "/feed.xml", [
        ("A quiet day", site.url("/a/1"), "Only one mention of Alpha here."),
        ("Alpha in the title", site.url("/a/2"), "Nothing else."),
        ("Two mentions", site.url("/a/3"), "Beta said this; Beta said that."),
        ("Once only", site.url("/a/4"), "Gamma once, but gamma lowers the bar."),
    ])  # fmt: skip
    poll(rt, clock)
    hooked = sorted(json.loads(p.body)["article"]["title"] for p in posts(site))
    assert hooked == ["Alpha in the title", "Once only", "Two mentions"]
    assert len(posts(site, "/all")) == 4


# --- one story, one alert; updates where asked -------------------------------------------------

BODY = (
    "The Popular Mobilization Forces said on Sunday that their units would remain in the "
    "northern province until the security situation improved, rejecting calls from several "
    "lawmakers for a withdrawal. A spokesman told reporters in Baghdad that the decision had "
    "been taken after consultations with the government and with local tribal leaders, who "
    "had asked for protection ahead of the harvest season and the elections planned for spring."
)


def test_a_second_source_of_a_story_updates_only_channels_that_ask(
    tmp_path, database_url, site, smtp_server, clock
):
    channels = f"""
  - name: hook
    webhook: {site.url("/hook")}
    story_updates: true
  - name: desk
    email: [desk@example.org]
    smtp: {{host: 127.0.0.1, port: {smtp_server.port}, sender: nw@example.org}}
  - name: later
    webhook: {site.url("/later")}
    digest: hourly
"""
    site.add("/later", b"", status=204)
    sources = f"  - name: agency\n    feed: {site.url('/feed2.xml')}\n    every: 1m\n"
    text = config(site, channels, "hook, desk, later", sources=sources)
    text = text.replace("keywords: [Alpha]", "keywords: [Popular Mobilization Forces]")
    rt = make_runtime(tmp_path, database_url, text, clock)
    items(site, "/feed.xml", [("PMF to stay in the north", site.url("/a/1"), BODY)])
    items(site, "/feed2.xml", [])
    assert len(poll(rt, clock)) == 2  # hook and desk now; later holds it for the digest
    items(site, "/feed2.xml", [("PMF units to remain", site.url("/b/1"), BODY + " Reuters.")])
    sent = poll(rt, clock)
    assert count(rt, m.Article) == 2 and count(rt, m.Match, m.Match.state == "duplicate") == 1
    assert len(sent) == 1  # the update, to hook only; desk gets nothing new
    update = json.loads(posts(site)[-1].body)
    assert update["kind"] == "update" and update["article"]["source"] == "agency"
    jsonschema.validate(update, json.loads(SCHEMA.read_text()))  # still a version-1 payload
    assert [o["url"] for o in update["other_sources"]] == [site.url("/a/1")]
    assert len(smtp_server.messages) == 1
    # the digest lists the story once, with its other source
    clock.now = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert digests.send_due_digests(rt) == 1
    digest = json.loads(posts(site, "/later")[0].body)
    assert digest["count"] == 1
    assert [o["source"] for o in digest["alerts"][0]["other_sources"]] == ["agency"]
    webhook_validator("digest").validate(digest)


# --- notices ---------------------------------------------------------------------------------


def test_notices_once_per_incident(tmp_path, database_url, site, clock):
    ops = tmp_path / "ops.jsonl"
    channels = f"  - name: hook\n    webhook: {site.url('/gone')}\n  - name: ops\n    file: {ops}\n"
    site.add("/gone", b"", status=410)
    extra = "notices: {channel: ops, source_failing_after: 2h}\n"
    rt = make_runtime(tmp_path, database_url, config(site, channels, "hook", extra), clock)
    items(site, "/feed.xml", story_items("Alpha", 0, 1, site))
    follow: list[str] = []
    for source_id in polling.dispatch_due(rt):
        for item_id in polling.fetch_source(rt, source_id):
            for d in applying.apply_rules(rt, parsing.parse_item(rt, item_id)):
                assert not sending.deliver(rt, d, follow)  # 410: dead at once
    assert len(follow) == 1
    assert sending.deliver(rt, follow[0])
    # the feed starts failing; after 2 h without a success: one notice, however often checked
    site.add("/feed.xml", b"down", status=500)
    for _ in range(30):
        clock.advance(600)
        run_all(rt)
        for d in check_notices(rt):
            assert sending.deliver(rt, d)
    # a broken config edit: one notice (the last good version stays in force)
    rt.config.path.write_text(rt.config.path.read_text() + "\nbogus_section: 1\n")
    for _ in range(3):
        for d in check_notices(rt):
            assert sending.deliver(rt, d)
    lines = [json.loads(x) for x in ops.read_text().splitlines()]
    assert [n["event"] for n in lines] == ["delivery_dead", "source_failing", "config_rejected"]
    assert all(n["type"] == "newswatch.notice" for n in lines)
    for n in lines:  # docs/webhook-notice.schema.json, one of each event
        webhook_validator("notice").validate(n)
    assert lines[1]["title"] == "source wire failing for 2 h"
    assert "bogus_section" in lines[2]["text"]


def test_notice_titles_say_minutes_never_fetched_and_the_first_config_problem(
    tmp_path, database_url, site, clock
):
    """Under an hour a title says minutes (not "failing for 0 h"); a source that never
    worked says so, from when it was added; a refused config names the file and problem."""
    ops = tmp_path / "ops.jsonl"
    extra = "notices: {channel: ops, source_failing_after: 30m}\n"
    channels = f"  - name: ops\n    file: {ops}\n"
    site.add("/feed.xml", b"down", status=500)  # never a success
    rt = make_runtime(tmp_path, database_url, config(site, channels, "ops", extra), clock)
    added = rt.now()
    for i in range(4):
        run_all(rt)
        if i == 0:  # added now, by the test's clock (the row's default is the wall clock)
            with rt.store.session() as s:
                s.execute(m.Source.__table__.update().values(created_at=added))
        for d in check_notices(rt):
            assert sending.deliver(rt, d)
        clock.advance(600)
    rt.config.path.write_text(rt.config.path.read_text() + "\nbogus_section: 1\n")
    for d in check_notices(rt):
        assert sending.deliver(rt, d)
    failing, rejected = [json.loads(x) for x in ops.read_text().splitlines()]
    assert failing["title"] == "source wire never fetched successfully (30 min)"
    assert "failing since" not in failing["text"]
    assert (
        f"never been fetched successfully since it was added at {added.isoformat()}"
        in failing["text"]
    )
    assert rejected["title"].startswith(f"config rejected: {rt.config.path}:")
    assert "bogus_section" in rejected["title"]


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_lists_retries_and_counts_deliveries(
    tmp_path, database_url, site, clock, capsys, monkeypatch
):
    site.routes["/hook"] = lambda req: (500 if len(posts(site)) <= 2 else 204, {}, b"")
    channels = f"  - name: hook\n    webhook: {site.url('/hook')}\n"
    rt = make_runtime(tmp_path, database_url, config(site, channels, "hook"), clock)
    monkeypatch.setenv("DATABASE_URL", database_url)
    items(site, "/feed.xml", story_items("Alpha", 0, 1, site))
    run_all(rt)  # fails once; the CLI shows it failed
    with rt.store.session() as s:  # make it dead the quick way: the last attempt failed
        s.execute(m.Delivery.__table__.update().values(state="dead"))
        (dead_id,) = s.scalars(select(m.Delivery.id)).all()
    assert cli.main(["status"]) == 0
    assert "deliveries: batched 0, dead 1, failed 0, pending 0, sent 0" in capsys.readouterr().out
    assert cli.main(["deliveries", "--dead", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"] == dead_id and row["state"] == "dead"
    assert row["last_error"].startswith("HTTP 500")
    assert row["title"] == "Alpha report number 0"
    assert cli.main(["deliveries", "retry", dead_id]) == 0
    assert "dead -> queued again" in capsys.readouterr().out
    assert cli.main(["deliveries", "retry", dead_id]) == 1  # pending now: nothing to retry
    capsys.readouterr()
    # the sweep picks it up at once (the CLI used the real clock) and it goes out
    clock.now = datetime.now(UTC)
    assert sweep(rt).deliveries == [dead_id]
    assert sending.deliver(rt, dead_id) is False  # the receiver still fails once more
    clock.advance(3600)
    assert sweep(rt).deliveries == [dead_id]
    assert sending.deliver(rt, dead_id)
    assert cli.main(["deliveries"]) == 0
    assert f"{dead_id}  sent" in capsys.readouterr().out
