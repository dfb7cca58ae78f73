"""Retention on real databases (SQLite and PostgreSQL), filled through the real pipeline
under a controlled clock: rows past their time go in batches, work in flight stays,
"never twice" outlives the text, and the database stops growing."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from tests.helpers.pipeline import Clock, count, make_runtime, run_all
from worker import cli
from worker.alerts import digests
from worker.config import ConfigError, load_config
from worker.service import retention
from worker.sources import polling
from worker.store import models as m

DAY = 86400.0

RETENTION = """
retention:
  article_text: 3d
  attempts: 2d
  deliveries: 7d
  entries: 14d
  batch: 10
"""


def feed(*entries: tuple[str, ...]) -> str:
    """RSS of (title, link, text[, guid]) entries; the guid is the link unless given."""
    items = "".join(
        f"<item><title>{e[0]}</title><link>{e[1]}</link><guid>{e[3] if len(e) > 3 else e[1]}"
        f"</guid><description>{e[2]}</description></item>"
        for e in entries
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    return f"{head}{items}</channel></rss>"


def entry(site, n: int) -> tuple[str, str, str]:
    """Item n: a story of its own (its words are its own), about 2 KB of text."""
    words = " ".join(f"w{n}x{j}" for j in range(300))
    return (f"Alpha report {n}", site.url(f"/a/{n}"), f"Alpha {words}")


def config(site, extra: str = RETENTION) -> str:
    return f"""
sources:
  - name: wire
    feed: {site.url("/feed.xml")}
    every: 1m
watchlists:
  - name: alpha
    keywords: [Alpha]
    notify: [hook, later]
channels:
  - name: hook
    webhook: {site.url("/hook")}
  - name: later
    webhook: {site.url("/later")}
    digest: hourly
fetch:
  allow_networks: [127.0.0.0/8]
  min_interval: 0  # simulated hours of polling: no real-time pause between requests
  deadline: 10
{extra}"""


@pytest.fixture
def clock() -> Clock:
    return Clock()  # 2026-01-01 12:00 UTC


@pytest.fixture
def site(http_server):
    http_server.add("/hook", b"", status=204)
    http_server.add("/later", b"", status=204)
    return http_server


def publish(site, entries: list[tuple[str, str, str]]) -> None:
    site.add("/feed.xml", feed(*entries), headers={"Content-Type": "application/rss+xml"})


def posts(site, path: str) -> list:
    return [r for r in site.requests if r.path == path and r.method == "POST"]


def rows(rt) -> dict[str, int]:
    models = {
        "items": m.Item,
        "articles": m.Article,
        "bands": m.FingerprintBand,
        "matches": m.Match,
        "story_alerts": m.StoryAlert,
        "deliveries": m.Delivery,
        "attempts": m.DeliveryAttempt,
        "batches": m.DigestBatch,
    }
    return {k: count(rt, model) for k, model in models.items()}


def day(rt, clock, site, published: list, n: int) -> list[str]:
    """One simulated day: three new items in a feed that shows the last six, a poll,
    the due digests, pruning; then the clock to the next day."""
    published += [entry(site, n * 3 + i) for i in range(3)]
    publish(site, published[-6:])
    sent = run_all(rt)
    clock.advance(3600)  # the hourly digest is due
    digests.send_due_digests(rt)
    retention.prune(rt)
    clock.advance(DAY - 3600)
    return sent


def test_forty_days_level_off_and_every_item_alerts_once(tmp_path, database_url, site, clock):
    rt = make_runtime(tmp_path, database_url, config(site), clock)
    published: list = []
    seen: dict[int, dict[str, int]] = {}
    size: dict[int, int] = {}
    # 40 days: the longest retention here is 14 days, so days 25 to 39 are steady state
    for n in range(40):
        sent = day(rt, clock, site, published, n)
        assert len(sent) == 3  # three new items, each alerted once on `hook`
        if n in (25, 39):
            seen[n] = rows(rt)
            size[n] = retention.storage_report(rt.store)["database"]["bytes"]
    # every published item alerted exactly once, on each channel
    assert len(posts(site, "/hook")) == 120
    digested = [
        a["article"]["url"] for p in posts(site, "/later") for a in json.loads(p.body)["alerts"]
    ]
    assert sorted(digested) == sorted(e[1] for e in published)
    # steady state: the same number of rows of every kind after 25 days as after 40
    assert seen[25] == seen[39], seen
    assert seen[39]["items"] == 14 * 3  # `entries: 14d` of three items a day
    assert seen[39]["deliveries"] == 7 * 3 * 2  # `deliveries: 7d`, two channels
    assert seen[39]["bands"] > 0
    # and the database with them: freed pages are reused (a little slack for page splits)
    assert size[39] <= size[25] * 1.1, size
    # text kept only `article_text: 3d`; older articles keep their title and link
    with rt.store.session() as s:
        kept = s.scalars(select(m.Article.created_at).where(m.Article.body != "")).all()
        stubs = s.scalars(select(m.Article).where(m.Article.body == "")).all()
    assert kept and min(kept) >= clock.now - timedelta(days=3)
    assert stubs and all(a.title and a.canonical_url and not a.lead for a in stubs)


def test_an_old_entry_back_in_its_feed_after_its_text_is_gone_never_alerts_again(
    tmp_path, database_url, site, clock
):
    rt = make_runtime(tmp_path, database_url, config(site), clock)
    old = entry(site, 1)
    publish(site, [old])
    assert len(run_all(rt)) == 1
    for n in range(2, 12):  # ten days of other news; the old entry scrolls out
        clock.advance(DAY)
        publish(site, [entry(site, n)])
        assert len(run_all(rt)) == 1
        digests.send_due_digests(rt)
        retention.prune(rt)
    with rt.store.session() as s:
        article = s.scalar(select(m.Article).where(m.Article.canonical_url == old[1]))
        assert article is not None and article.body == ""  # text pruned, stub kept
        assert (
            s.scalar(select(m.FingerprintBand).where(m.FingerprintBand.article_id == article.id))
            is None
        )
    hooks = len(posts(site, "/hook"))
    # the same entry again, and a copy of it under another GUID: neither alerts
    clock.advance(DAY)
    publish(site, [old, (*old, "urn:other-guid")])
    assert run_all(rt) == []
    assert len(posts(site, "/hook")) == hooks
    assert count(rt, m.Item, m.Item.state == "duplicate") == 1  # the copy: its article's stub


def test_work_in_flight_is_kept_whatever_its_age(tmp_path, database_url, site, clock):
    site.add("/hook", b"", status=503)  # immediate alerts keep failing: `failed`, retried
    rt = make_runtime(tmp_path, database_url, config(site), clock)
    publish(site, [entry(site, 1)])
    assert run_all(rt) == []
    publish(site, [entry(site, 1), entry(site, 2)])
    clock.advance(61)
    (source_id,) = polling.dispatch_due(rt)
    (pending_item,) = polling.fetch_source(rt, source_id)  # fetched, never parsed
    before = rows(rt)
    assert count(rt, m.Delivery, m.Delivery.state == "failed") == 1
    assert count(rt, m.Delivery, m.Delivery.state == "batched") == 1  # the open digest
    clock.advance(500 * DAY)
    retention.prune(rt)
    # nothing in flight, nor anything it refers to, went; only the parsed item, a seen
    # key past `entries` (its article stays, and recognises the entry should it return)
    assert rows(rt) == before | {"items": 1}
    with rt.store.session() as s:
        assert s.scalar(select(m.Item.id)) == pending_item
        assert all(a.body for a in s.scalars(select(m.Article)))  # its alert is unsent
        assert s.scalar(select(m.DigestBatch.state)) == "open"


def test_pruning_goes_in_batches_children_first(tmp_path, database_url, site, clock):
    rt = make_runtime(tmp_path, database_url, config(site), clock)
    publish(site, [entry(site, n) for n in range(25)])
    assert len(run_all(rt)) == 25
    clock.advance(3600)
    digests.send_due_digests(rt)
    clock.advance(20 * DAY)
    # one batch of each kind per run: `batch: 10` rows, committed on its own
    first = retention.prune(rt, max_batches=1)
    assert first["attempts"] == 10 and first["deliveries"] == 10
    assert count(rt, m.Delivery) == 50 - 10  # 25 sent at once, 25 in the digest
    assert first["article_text"] == 10
    for _ in range(10):
        retention.prune(rt, max_batches=1)
    assert rows(rt) == dict.fromkeys(rows(rt), 0)


def test_status_shows_the_database_size_and_the_oldest_row_of_each_kind(
    tmp_path, database_url, site, clock, capsys, monkeypatch
):
    rt = make_runtime(tmp_path, database_url, config(site), clock)
    publish(site, [entry(site, 1)])
    run_all(rt)
    report = retention.storage_report(rt.store)
    assert report["database"]["bytes"] > 0
    assert report["rows"]["items"] == {"rows": 1, "oldest": clock.now}
    assert report["rows"]["article_text"]["oldest"] == clock.now
    assert report["rows"]["fingerprint_bands"]["oldest"] == clock.now
    assert report["rows"]["attempts"]["rows"] == 1
    assert report["rows"]["digest_batches"]["rows"] == 1
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("NEWSWATCH_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "database: " in out and "MiB" in out
    assert re.search(r"items +1 rows, oldest 2026-01-01 12:00 UTC", out)
    assert cli.main(["status", "--json"]) == 0
    storage = json.loads(capsys.readouterr().out)["storage"]
    assert storage["rows"]["matches"]["rows"] == 1


def test_the_item_keeps_no_second_copy_of_the_text(tmp_path, database_url, site, clock):
    rt = make_runtime(tmp_path, database_url, config(site), clock)
    publish(site, [entry(site, 1)])
    run_all(rt)
    with rt.store.session() as s:
        item = s.scalar(select(m.Item))
        article = s.scalar(select(m.Article))
    assert "w1x299" in article.body
    assert "summary" not in item.data and "content_html" not in item.data
    assert item.data["title"] == "Alpha report 1" and item.data["url"] == article.canonical_url


def test_the_migration_trims_items_parsed_before_it(tmp_path, database_url):
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from worker.store.db import MIGRATIONS, Store

    store = Store(database_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    with store.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.commit()
    data = {
        "entry_key": "k",
        "url": "https://x.test/a",
        "title": "T",
        "summary": "S" * 5000,
        "content_html": "<p>body</p>",
        "published": None,
    }
    source = (
        "INSERT INTO source (id, name, kind, url, every_seconds, enabled, next_fetch_at, "
        "consecutive_failures, permanent_failures, items_seen, created_at) VALUES "
        "(1, 's', 'feed', 'https://x.test/', 60, true, '2026-01-01', 0, 0, 0, '2026-01-01')"
    )
    item = (
        "INSERT INTO item (source_id, entry_key, url, data, state, attempts, enqueued_at, "
        "created_at) VALUES (1, :k, 'u', :d, :s, 0, '2026-01-01', '2026-01-01')"
    )
    with store.engine.begin() as conn:
        conn.execute(text(source))
        for i, state in enumerate(("parsed", "duplicate", "pending")):
            conn.execute(text(item), {"k": f"k{i}", "d": json.dumps(data), "s": state})
    store.upgrade()
    with store.session() as s:
        got = {i.state: i.data for i in s.scalars(select(m.Item))}
    identification = {k: v for k, v in data.items() if k not in ("summary", "content_html")}
    assert got["parsed"] == got["duplicate"] == identification
    assert got["pending"] == data  # the parser still needs it
    # the articles whose text is kept are indexed alone (a partial index on both databases)
    with store.engine.connect() as conn:
        if store.is_postgres:
            ddl = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_article_text_kept'"
        else:
            ddl = "SELECT sql FROM sqlite_master WHERE name = 'ix_article_text_kept'"
        assert "WHERE" in conn.execute(text(ddl)).scalar().upper()


def test_sqlite_gives_pages_back_without_a_full_vacuum(tmp_path, site, clock):
    rt = make_runtime(tmp_path, f"sqlite:///{tmp_path / 'n.db'}", config(site), clock)
    publish(site, [entry(site, n) for n in range(60)])
    run_all(rt)
    clock.advance(3600)
    digests.send_due_digests(rt)
    grown = retention.storage_report(rt.store)["database"]
    assert grown["auto_vacuum"] == "incremental"  # every new database file
    clock.advance(30 * DAY)
    retention.prune(rt)
    after = retention.storage_report(rt.store)["database"]
    assert after["bytes"] < grown["bytes"] * 0.75
    assert after["free_bytes"] <= after["bytes"] * retention.RECLAIM_ABOVE


def test_retention_config_is_validated_with_its_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    base = (
        "sources:\n  - name: s\n    feed: https://example.org/rss\n"
        "watchlists:\n  - name: a\n    keywords: [a]\n"
    )
    cfg.write_text(base + "retention:\n  article_text: 1d\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    (problem,) = exc.value.problems
    assert problem.line == 8 and "near-duplicate window" in problem.message
    cfg.write_text(base + "retention:\n  entries: 2y\n")
    with pytest.raises(ConfigError):
        load_config(cfg)
    cfg.write_text(base + "retention:\n  entries: 730d\n")
    spec = load_config(cfg).config.retention
    assert spec.entries == 730 * 86400 and spec.article_text == 30 * 86400  # the default


def test_a_pruned_article_leaves_a_small_seen_record_that_why_explains(
    tmp_path, database_url, site, clock, capsys, monkeypatch
):
    rt = make_runtime(tmp_path, database_url, config(site), clock)
    old = entry(site, 1)
    publish(site, [old, (*old, "urn:copy")])  # the entry, and a copy of it under another key
    assert len(run_all(rt)) == 1
    clock.advance(3600)
    digests.send_due_digests(rt)
    with rt.store.session() as s:
        s.execute(update(m.Article).values(authors=["A. Writer"], tags=["t"], image_url="x"))
    clock.advance(4 * DAY)  # past `article_text: 3d`
    retention.prune(rt)
    with rt.store.session() as s:
        article = s.scalar(select(m.Article))
        items = {i.entry_key: i for i in s.scalars(select(m.Item))}
        matches = s.scalars(select(m.Match)).all()
    assert (article.body, article.lead, article.authors, article.tags, article.image_url) == (
        "", "", [], [], None
    )  # fmt: skip
    assert article.title == old[0] and article.canonical_url == old[1] and article.content_hash
    assert len(items) == 2 and len(matches) == 1
    for item in items.values():
        assert item.data == {"identity": item.data["identity"], "title": old[0],
                             "text_pruned": "2026-01-05"}  # fmt: skip
        assert item.article_id == article.id and item.outcome  # the ledger's row stays
    assert sorted(i.state for i in items.values()) == ["duplicate", "parsed"]
    if not rt.store.is_postgres:
        with rt.store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    # `why` says what it still can, and when the text went
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("NEWSWATCH_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["why", old[1]]) == 0
    out = capsys.readouterr().out
    assert "text pruned on 2026-01-05" in out and old[0] in out and "OUTCOME:   matched" in out
    # and the entry back in its feed, or another copy, still never alerts again
    hooks = len(posts(site, "/hook"))
    publish(site, [old, (*old, "urn:third")])
    clock.advance(61)
    assert run_all(rt) == []
    assert len(posts(site, "/hook")) == hooks


def test_sqlite_packs_the_seen_records_into_full_pages(tmp_path, site, clock):
    """A row shrunk in place would leave its page mostly empty for a year (`entries`)."""
    rt = make_runtime(tmp_path, f"sqlite:///{tmp_path / 'n.db'}", config(site), clock)
    publish(site, [entry(site, n) for n in range(200)])
    run_all(rt)
    clock.advance(3600)
    digests.send_due_digests(rt)
    clock.advance(4 * DAY)
    retention.prune(rt)
    assert count(rt, m.Article, m.Article.body != "") == 0
    with rt.store.engine.connect() as conn:
        fill = conn.execute(
            text(
                "SELECT name, 1.0 - 1.0 * sum(unused) / sum(pgsize) FROM dbstat "
                "WHERE name IN ('item', 'article') GROUP BY name"
            )
        ).all()
    assert len(fill) == 2 and all(used >= 0.6 for _, used in fill), fill


def test_feed_gaps_go_after_deliveries_once_their_notice_is_gone(
    tmp_path, database_url, site, clock
):
    rt = make_runtime(tmp_path, database_url, config(site), clock)
    publish(site, [entry(site, 1)])
    run_all(rt)
    with rt.store.session() as s:
        source_id = s.scalar(select(m.Source.id))

        def gap(days_ago: float) -> m.SourceGap:
            row = m.SourceGap(
                source_id=source_id, detected_at=clock.now - timedelta(days=days_ago),
                basis="window", visible=5, detail="all 5 entries are new",
            )  # fmt: skip
            s.add(row)
            return row

        old, noticed, recent = gap(8), gap(8), gap(6)
        s.flush()
        s.add(
            m.Delivery(
                id="00000000-0000-0000-0000-000000000001", channel="hook", state="failed",
                kind="notice", notice_key=f"source_gap:{noticed.id}", route="immediate",
                notice={"event": "source_gap", "title": "t", "text": "x"},
                created_at=clock.now, next_attempt_at=clock.now + timedelta(days=99),
            )
        )  # fmt: skip
        ids = {"old": old.id, "noticed": noticed.id, "recent": recent.id}
    done = retention.prune(rt)
    assert done["source_gaps"] == 1
    with rt.store.session() as s:
        left = set(s.scalars(select(m.SourceGap.id)))
    assert left == {ids["noticed"], ids["recent"]}  # `deliveries: 7d`; a notice still there
