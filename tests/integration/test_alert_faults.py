"""Deliveries fail alone (issue 10): on SQLite and PostgreSQL, with the real pipeline steps,
a real SMTP server, a real HTTP receiver and a controlled clock.

- case 1: an item dated 9999-12-31 23:59:59 GMT to email channels east of UTC;
- one poisoned alert among 20 good ones, in one immediate channel and one digest batch;
- a channel whose sends raise an unexpected exception, beside a failing source;
- case 11: a webhook URL with a token in its path, in no log, row, CLI output or notice;
- case 12: bidi and zero-width characters in titles reach no rendered output.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.helpers.pipeline import Clock, count, make_runtime, run_all
from tests.helpers.webhook_receiver import closed_port
from tests.integration.test_outbox import config, items, posts, story_items
from worker import cli
from worker.alerts import digests, sending
from worker.articles import parsing
from worker.bootstrap import Runtime
from worker.matching import applying
from worker.service import outbox
from worker.service.sweep import sweep
from worker.sources import polling
from worker.store import models as m


@pytest.fixture
def clock() -> Clock:
    return Clock()  # 2026-01-01 12:00 UTC


@pytest.fixture
def site(http_server):
    http_server.add("/hook", b"", status=204)
    return http_server


def smtp_channel(name: str, smtp_server, extra: str = "") -> str:
    return (
        f"  - name: {name}\n    email: [desk@example.org]\n"
        f"    smtp: {{host: 127.0.0.1, port: {smtp_server.port}, sender: nw@example.org}}\n" + extra
    )


def ingest(rt: Runtime, clock: Clock) -> list[str]:
    """Fetch, parse and match what the feed has now; the ids of deliveries to send now."""
    clock.advance(61)
    ids: list[str] = []
    for source_id in polling.dispatch_due(rt):
        for item_id in polling.fetch_source(rt, source_id):
            article_id = parsing.parse_item(rt, item_id)
            if article_id is not None:
                ids += applying.apply_rules(rt, article_id)
    return ids


def deliver_all(rt: Runtime, ids: list[str]) -> None:
    """Deliver, then deliver the notices raised on the way (and theirs), to the end."""
    todo = list(ids)
    while todo:
        follow: list[str] = []
        for delivery_id in todo:
            sending.deliver(rt, delivery_id, follow)
        todo = follow


def settle(rt: Runtime, clock: Clock, minutes: int) -> None:
    """What beat does every minute, in steps of ten: the outbox tick and the sweep."""
    for _ in range(minutes // 10):
        clock.advance(600)
        deliver_all(rt, outbox.tick(rt))
        deliver_all(rt, sweep(rt).deliveries)


def dead(rt: Runtime) -> list[m.Delivery]:
    with rt.store.session() as s:
        rows = s.scalars(select(m.Delivery).where(m.Delivery.state == "dead")).all()
        s.expunge_all()
        return list(rows)


def attempt_errors(rt: Runtime, delivery_id: str) -> list[str | None]:
    with rt.store.session() as s:
        return list(
            s.scalars(
                select(m.DeliveryAttempt.error)
                .where(m.DeliveryAttempt.delivery_id == delivery_id)
                .order_by(m.DeliveryAttempt.id)
            )
        )


def notice_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


# --- case 1: 9999-12-31 23:59:59 GMT, email east of UTC ------------------------------------

FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def dated_feed(site, entries: list[tuple[str, str, str]], dates: dict[str, str]) -> None:
    xml = "".join(
        f"<item><title>{t}</title><link>{u}</link><guid>{u}</guid>"
        + (f"<pubDate>{dates[t]}</pubDate>" if t in dates else "")
        + f"<description>{d}</description></item>"
        for t, u, d in entries
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    body = f"{head}{xml}</channel></rss>"
    site.add("/feed.xml", body, headers={"Content-Type": "application/rss+xml"})


def test_an_item_dated_9999_reaches_email_channels_east_of_utc(
    tmp_path, database_url, site, smtp_server, clock
):
    channels = smtp_channel("tokyo", smtp_server, "    timezone: Asia/Tokyo\n") + smtp_channel(
        "tokyo-digest", smtp_server, "    timezone: Asia/Tokyo\n    digest: hourly\n"
    )
    rt = make_runtime(tmp_path, database_url, config(site, channels, "tokyo, tokyo-digest"), clock)
    entries = story_items("Alpha", 0, 4, site)
    far = entries[2][0]
    dated_feed(site, entries, {far: "Fri, 31 Dec 9999 23:59:59 GMT"})
    ids = ingest(rt, clock)
    with rt.store.session() as s:  # what the feed said; whatever the feed side makes of such
        # dates, a row can hold this one, and rendering must cope with it
        s.execute(update(m.Article).where(m.Article.title == far).values(published_at=FAR_FUTURE))
    deliver_all(rt, ids)
    assert len(smtp_server.messages) == 4  # the immediate ones, the 9999 one included
    (mail,) = [x for x in smtp_server.messages if far in x["Subject"]]
    assert "Published: 9999-12-31 23:59 UTC" in mail.get_body(("plain",)).get_content()

    clock.now = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert digests.send_due_digests(rt) == 1  # the digest, with the unrelated alerts in it
    digest = smtp_server.messages[-1]
    assert digest["Subject"] == "[newswatch] 4 alerts: alpha"
    assert count(rt, m.Delivery, m.Delivery.state == "sent") == 8
    assert count(rt, m.Delivery, m.Delivery.state != "sent") == 0


# --- the fault test: one poisoned alert among 20 good ones ------------------------------------


def test_one_poisoned_alert_among_twenty_fails_alone(
    tmp_path, database_url, site, smtp_server, clock
):
    ops = tmp_path / "ops.jsonl"
    channels = (
        f"  - name: hook\n    webhook: {site.url('/hook')}\n"
        + smtp_channel("desk", smtp_server, "    digest: hourly\n")
        + f"  - name: ops\n    file: {ops}\n"
    )
    # `settle` runs the tick and the sweep for hours but polls nothing: the watchdog's
    # no_fetch (worker/service/watchdog.py) would rightly shout, and is not what this tests
    extra = "notices: {channel: ops, no_fetch_after: 1d}\n"
    rt = make_runtime(tmp_path, database_url, config(site, channels, "hook, desk", extra), clock)
    entries = story_items("Alpha", 0, 21, site)
    poisoned_title = entries[7][0]
    items(site, "/feed.xml", entries)
    ids = ingest(rt, clock)
    assert len(ids) == 21  # immediate to hook; the 21 to desk wait in its digest batch
    with rt.store.session() as s:
        # The poison: a match row that cannot be read back as an alert (a bug, a manual
        # edit, a half-migrated row): its hits are not hits. Any exception type will do.
        poisoned = s.scalar(
            select(m.Match.id)
            .join(m.Article, m.Article.id == m.Match.article_id)
            .where(m.Article.title == poisoned_title)
        )
        s.execute(update(m.Match).where(m.Match.id == poisoned).values(hits=[{"bogus": 1}]))
    failures_before = load_failures()
    deliver_all(rt, ids)
    settle(rt, clock, 180)  # the 13:00 digest, every retry and the notice

    # 20 delivered once on each channel
    hooked = [json.loads(p.body)["article"]["title"] for p in posts(site)]
    assert len(hooked) == 20 and len({p.headers["webhook-id"] for p in posts(site)}) == 20
    assert poisoned_title not in hooked
    (digest,) = smtp_server.messages
    assert digest["Subject"] == "[newswatch] 20 alerts: alpha"
    html = digest.get_body(("html",)).get_content()
    assert html.count('class="alert"') == 20 and poisoned_title not in html
    with rt.store.session() as s:
        sent = s.scalars(select(m.Delivery).where(m.Delivery.state == "sent")).all()
        assert len(sent) == 41  # 20 + 20 + the notice
        good = [d.id for d in sent if d.kind != "notice"]
        tries = s.scalars(select(m.DeliveryAttempt).where(m.DeliveryAttempt.delivery_id.in_(good)))
        assert len(tries.all()) == 40  # each good delivery attempted once
        batch = s.scalars(select(m.DigestBatch)).one()
        assert (batch.state, batch.size) == ("sent", 20)

    # the poisoned alert: dead on both channels with its reason, after the attempt limit
    gone = dead(rt)
    assert {d.match_id for d in gone} == {poisoned} and {d.channel for d in gone} == {
        "hook",
        "desk",
    }
    for d in gone:
        assert d.last_error.startswith("load: TypeError") and "bogus" in d.last_error
        assert d.attempts == 4  # NEWSWATCH_DELIVERY_ATTEMPTS in tests/helpers/pipeline.py
        errors = attempt_errors(rt, d.id)
        assert len(errors) == 4 and all(e and e.startswith("load: TypeError") for e in errors)
    assert load_failures() - failures_before == 8  # counted: 2 deliveries x 4 attempts
    # exactly one notice, delivered, naming the reason
    assert count(rt, m.Delivery, m.Delivery.kind == "notice") == 1
    (notice,) = notice_lines(ops)
    assert notice["event"] == "delivery_dead"
    assert "TypeError" in notice["text"] and f"match {poisoned}" in notice["text"]


def load_failures() -> float:
    from prometheus_client import REGISTRY

    labels = {"unit": "delivery", "stage": "load", "error": "TypeError"}
    return REGISTRY.get_sample_value("newswatch_unit_failures_total", labels) or 0.0


# --- an unexpected exception on every send; the tick's steps fail alone ---------------------


def test_a_channel_that_raises_ends_dead_and_the_tick_still_raises_notices(
    tmp_path, database_url, site, clock, caplog
):
    ops = tmp_path / "ops.jsonl"
    # a path the OS refuses with ValueError (embedded null byte), not OSError: an exception
    # type no sender expects
    channels = (
        '  - name: broken\n    file: "/tmp/newswatch\\0/alerts.jsonl"\n'
        '  - name: broken-digest\n    file: "/tmp/newswatch\\0/digest.jsonl"\n'
        "    digest: hourly\n"
        f"  - name: ops\n    file: {ops}\n"
    )
    # one source, failing: source_failing is the notice tested, not the watchdog's no_fetch
    extra = "notices: {channel: ops, source_failing_after: 1h, no_fetch_after: 1d}\n"
    text = config(site, channels, "broken, broken-digest", extra)
    rt = make_runtime(tmp_path, database_url, text, clock)
    items(site, "/feed.xml", story_items("Alpha", 0, 2, site))
    ids = ingest(rt, clock)
    site.add("/feed.xml", b"down", status=500)  # and from now on the source fails
    deliver_all(rt, ids)
    for _ in range(12):  # two hours of beat: polls fail, deliveries retry, the digest is due
        clock.advance(600)
        run_all(rt)
        deliver_all(rt, outbox.tick(rt))
        deliver_all(rt, sweep(rt).deliveries)

    gone = dead(rt)
    assert len(gone) == 4  # two immediate, two in the digest
    for d in gone:
        assert "ValueError" in d.last_error and "null byte" in d.last_error
    immediate = [d for d in gone if d.channel == "broken"]
    for d in immediate:
        assert d.attempts == 4 and d.last_error.startswith("send: ValueError")
        assert len(attempt_errors(rt, d.id)) == 4
    with rt.store.session() as s:
        batch = s.scalars(select(m.DigestBatch)).one()
        assert (batch.state, batch.attempts) == ("dead", 4)
        assert "ValueError" in batch.last_error
    events = [n["event"] for n in notice_lines(ops)]
    assert sorted(events) == ["delivery_dead"] * 3 + ["source_failing"]
    assert any("ValueError" in r.getMessage() for r in caplog.records)


# --- case 11: a token in a webhook URL ------------------------------------------------------

SECRET = "T0SECRET0/B0SECRET0/XXsecretTOKENinPATHxx"


def test_a_token_in_a_webhook_url_is_never_shown(
    tmp_path, database_url, site, clock, caplog, capsys, monkeypatch
):
    caplog.set_level(logging.INFO)  # the worker's default level (NEWSWATCH_LOG_LEVEL)
    ops = tmp_path / "ops.jsonl"
    site.add(f"/services/{SECRET}", b"no", status=500)
    site.add(f"/moved/{SECRET}", b"", status=301, headers={"Location": f"/new/{SECRET}"})
    channels = (
        f"  - name: down\n    webhook: http://127.0.0.1:{closed_port()}/services/{SECRET}\n"
        f"  - name: erroring\n    webhook: {site.url(f'/services/{SECRET}')}\n"
        f"  - name: slack\n    webhook: {site.url(f'/services/{SECRET}')}\n    format: slack\n"
        f"  - name: moved\n    webhook: http://u:p4ssw0rd@127.0.0.1:{site.port}/moved/{SECRET}\n"
        # a "/" in the password: the URL does not parse, and the parser's message quotes
        # a piece of it without any URL syntax around it
        f"  - name: malformed\n    webhook: http://u:p4ss{SECRET}@127.0.0.1:{site.port}/x\n"
        f"  - name: ops\n    file: {ops}\n"
    )
    extra = "notices: {channel: ops, no_fetch_after: 1d}\n"  # settle polls nothing
    notify = "down, erroring, slack, moved, malformed"
    rt = make_runtime(tmp_path, database_url, config(site, channels, notify, extra), clock)
    items(site, "/feed.xml", story_items("Alpha", 0, 1, site))
    deliver_all(rt, ingest(rt, clock))
    settle(rt, clock, 120)

    gone = dead(rt)
    assert {d.channel for d in gone} == {"down", "erroring", "slack", "moved", "malformed"}
    assert len(notice_lines(ops)) == 5  # one dead-delivery notice each
    assert site.hits(f"/moved/{SECRET}") == 1  # a redirect is permanent: dead at once
    monkeypatch.setenv("DATABASE_URL", rt.settings.database_url)
    assert cli.main(["deliveries"]) == 0
    assert cli.main(["deliveries", "--dead", "--json"]) == 0
    shown = capsys.readouterr().out
    assert "last error: " in shown and "127.0.0.1" in shown  # the host is still named

    with rt.store.session() as s:
        rows = [
            *s.scalars(select(m.Delivery.last_error)),
            *(json.dumps(n) for n in s.scalars(select(m.Delivery.notice))),
            *s.scalars(select(m.DeliveryAttempt.error)),
        ]
    texts = {
        "log records": [r.getMessage() for r in caplog.records]
        + [caplog.text],  # with any traceback the handler formatted
        "rows": [r for r in rows if r],
        "deliveries CLI": [shown],
        "notices": [ops.read_text()],
    }
    for where, found in texts.items():
        for text in found:
            for secret in ("SECRET", "secretTOKEN", "p4ss", "/new/"):
                assert secret not in text, (where, text[:300])


# --- case 12: bidi overrides and zero-width characters in titles ----------------------------

SPOOF = "\u202eAlpha\u2066 report\u2069\u200b on\ufeff the\u2028 vote\u200f"
INVISIBLE = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200e\u200f\ufeff")


def test_bidi_and_zero_width_characters_reach_no_output(
    tmp_path, database_url, site, smtp_server, clock
):
    out = tmp_path / "alerts.jsonl"
    site.add("/chat", b"", status=200)
    channels = (
        smtp_channel("desk", smtp_server)
        + f"  - name: chat\n    webhook: {site.url('/chat')}\n    format: slack\n"
        + f"  - name: hook\n    webhook: {site.url('/hook')}\n"
        + f"  - name: lines\n    file: {out}\n"
    )
    rt = make_runtime(
        tmp_path, database_url, config(site, channels, "desk, chat, hook, lines"), clock
    )
    body = "Alpha \u202emembers\u200b voted\u2067 on the motion"
    items(site, "/feed.xml", [(SPOOF, site.url("/a/1"), body)])
    assert len(run_all(rt)) == 4
    (mail,) = smtp_server.messages
    outputs = {
        "subject": [str(mail["Subject"])],
        "text": [mail.get_body(("plain",)).get_content()],
        "html": [mail.get_body(("html",)).get_content()],
        "chat": json_strings(json.loads(posts(site, "/chat")[0].body)),
        "webhook": json_strings(json.loads(posts(site, "/hook")[0].body)),
        "file": json_strings(json.loads(out.read_text(encoding="utf-8"))),
    }
    for where, texts in outputs.items():
        found = [hex(ord(c)) for text in texts for c in text if c in INVISIBLE]
        assert not found, (where, found)
    assert mail["Subject"] == "[alpha] Alpha report on the vote"
    assert "Alpha report on the vote" in outputs["chat"][0]  # Slack's fallback line


def json_strings(value: object) -> list[str]:
    """Every string in a JSON document (so escapes such as \\u202e are decoded first)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    return [value] if isinstance(value, str) else []
