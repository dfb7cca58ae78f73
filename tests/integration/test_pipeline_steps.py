"""Each pipeline step against a real database (SQLite and PostgreSQL) and real local servers.

No Celery here: the steps are called directly, with a controlled clock, to
check the guarantees the tasks rely on: claims, idempotency, constraints,
retries and the sweep.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.helpers.pipeline import Clock, count, make_runtime, rss, run_all
from worker.alerts import sending
from worker.articles import parsing
from worker.bootstrap import Runtime
from worker.matching import applying
from worker.service.sweep import sweep
from worker.sources import polling
from worker.store import models as m
from worker.store.db import Store

DATA = Path(__file__).resolve().parents[1] / "data"
SEED_PAGE = (DATA / "extract" / "seed-article.html").read_bytes()

ARTICLE = """<html><head><title>{title}</title></head><body><nav>Home | World</nav><article>
<h1>{title}</h1><p>{body}</p><p>Officials said more details would follow later in the week,
and that talks would continue in the capital with all parties present.</p></article>
<footer>Copyright Example</footer></body></html>"""


def base_config(
    server, *, hook_path: str = "/hook", extra_sources: str = "", full_text: bool = True
) -> str:
    return f"""
sources:
  - name: wire
    feed: {server.url("/feed.xml")}
    every: 5m
    full_text: {str(full_text).lower()}
{extra_sources}
watchlists:
  - name: pmf
    names: [{{name: Popular Mobilization Forces, aliases: [PMF, "Hashd al-Sha'abi"]}}]
    notify: [hook]
  - name: us
    keywords: [US]
    notify: [hook]
channels:
  - name: hook
    webhook: {server.url(hook_path)}
fetch:
  allow_networks: [127.0.0.0/8]
  deadline: 10
"""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def site(http_server):
    http_server.add("/hook", b"", status=204)
    http_server.add("/articles/seed", SEED_PAGE, headers={"Content-Type": "text/html"})
    http_server.add(
        "/feed.xml",
        rss(("Militias demand U.S. leave", http_server.url("/articles/seed"))),
        headers={"Content-Type": "application/rss+xml", "ETag": '"v1"'},
    )
    return http_server


def test_migrations_match_the_models(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = Store(database_url)
    store.upgrade()
    store.upgrade()  # a second run is a no-op
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
    assert diff == []


def test_full_pass_alerts_once_and_a_second_poll_adds_nothing(tmp_path, database_url, site, clock):
    rt = make_runtime(tmp_path, database_url, base_config(site), clock)
    sent = run_all(rt)
    assert len(sent) == 2  # pmf and us ("U.S." is the US: see docs/rules.md)
    posts = [r for r in site.requests if r.path == "/hook"]
    assert len(posts) == 2
    assert {p.headers["webhook-id"] for p in posts} == set(sent)
    # the feed is polled again when due: conditional GET -> 304 -> nothing new
    clock.advance(301)
    site.routes["/feed.xml"] = lambda req: (
        (304, {"ETag": '"v1"'}, b"")
        if req.headers.get("If-None-Match") == '"v1"'
        else (500, {}, b"")
    )
    assert run_all(rt) == []
    assert count(rt, m.Item) == 1 and count(rt, m.Article) == 1 and count(rt, m.Delivery) == 2
    with rt.store.session() as s:
        src = s.scalar(select(m.Source))
        assert src.last_error is None and src.items_seen == 1
        assert src.next_fetch_at == clock.now + timedelta(minutes=5)


def test_a_second_dispatcher_never_doubles_a_fetch(tmp_path, database_url, site, clock):
    extra = "\n".join(
        f"  - name: s{i}\n    feed: {site.url(f'/f{i}.xml')}\n    every: 1m" for i in range(20)
    )
    rt1 = make_runtime(tmp_path, database_url, base_config(site, extra_sources=extra), clock)
    polling.dispatch_due(rt1)  # syncs sources; claims them all
    clock.advance(3600)
    with rt1.store.session() as s:  # release the claims so both dispatchers race for them
        s.execute(m.Source.__table__.update().values(claimed_until=None))
    rt2 = Runtime(
        settings=rt1.settings,
        store=Store(rt1.settings.database_url),
        config=rt1.config,
        clock=clock,
    )
    results: list[list[int]] = []
    threads = [
        threading.Thread(target=lambda rt=rt: results.append(polling.dispatch_due(rt)))
        for rt in (rt1, rt2, rt1, rt2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [sid for r in results for sid in r]
    assert len(claimed) == 21 and len(set(claimed)) == 21


def test_dispatch_looks_one_tick_ahead_and_counts_down_to_each_due_time(
    tmp_path, database_url, site, clock
):
    extra = "\n".join(
        f"  - name: s{i}\n    feed: {site.url(f'/f{i}.xml')}\n    every: 1m" for i in range(6)
    )
    rt = make_runtime(tmp_path, database_url, base_config(site, extra_sources=extra), clock)
    polling.dispatch_due(rt)  # syncs the sources and claims them all
    offsets = {"wire": -4.0, "s0": 0.0, "s1": 2.5, "s2": 9.75, "s3": 10.0, "s4": 10.5, "s5": 60}
    with rt.store.session() as s:
        for src in s.scalars(select(m.Source)):
            src.claimed_until = None
            src.next_fetch_at = clock.now + timedelta(seconds=offsets[src.name])
        names = {src.id: src.name for src in s.scalars(select(m.Source))}
    plan = polling.dispatch_plan(rt, ahead=10.0)
    # due within the tick: each with the seconds until its due time, soonest first
    assert [(names[i], delay) for i, delay in plan] == [
        ("wire", 0.0), ("s0", 0.0), ("s1", 2.5), ("s2", 9.75), ("s3", 10.0),
    ]  # fmt: skip
    with rt.store.session() as s:
        held = {src.name: src.claimed_until for src in s.scalars(select(m.Source))}
    lease_end = clock.now + timedelta(seconds=10 + rt.settings.lease_seconds)
    assert {n for n, until in held.items() if until is not None} == {
        "wire", "s0", "s1", "s2", "s3"
    }  # fmt: skip
    assert all(until == lease_end for until in held.values() if until is not None)
    # the lease holds them through their countdown: a second dispatch sends nothing again
    clock.advance(10)
    assert [names[i] for i, _ in polling.dispatch_plan(rt, ahead=10.0)] == ["s4"]
    assert polling.dispatch_plan(rt, ahead=10.0) == []


def test_a_batched_claim_takes_at_most_the_limit_soonest_first(tmp_path, database_url, site, clock):
    extra = "\n".join(
        f"  - name: s{i}\n    feed: {site.url(f'/f{i}.xml')}\n    every: 1m" for i in range(9)
    )
    rt = make_runtime(tmp_path, database_url, base_config(site, extra_sources=extra), clock)
    polling.dispatch_due(rt, limit=0)  # syncs the sources, claims none
    with rt.store.session() as s:
        for i, src in enumerate(s.scalars(select(m.Source).order_by(m.Source.name))):
            src.next_fetch_at = clock.now - timedelta(seconds=i)
        by_due = [src.id for src in s.scalars(select(m.Source).order_by(m.Source.next_fetch_at))]
    first = polling.dispatch_due(rt, limit=4)
    assert first == by_due[:4]
    rest = polling.dispatch_due(rt, limit=100)
    assert rest == by_due[4:]


def test_same_article_from_two_sources_is_one_article(tmp_path, database_url, site, clock):
    site.add(
        "/feed2.xml",
        rss(("Copy", site.url("/articles/seed?utm_source=twitter&fbclid=x"))),
        headers={"Content-Type": "application/rss+xml"},
    )
    extra = f"  - name: other\n    feed: {site.url('/feed2.xml')}\n    full_text: true"
    rt = make_runtime(tmp_path, database_url, base_config(site, extra_sources=extra), clock)
    sent = run_all(rt)
    assert len(sent) == 2
    assert count(rt, m.Article) == 1
    assert count(rt, m.Item, m.Item.state == "duplicate") == 1


def test_rules_and_delivery_are_idempotent(tmp_path, database_url, site, clock):
    rt = make_runtime(tmp_path, database_url, base_config(site), clock)
    (source_id,) = polling.dispatch_due(rt)
    (item_id,) = polling.fetch_source(rt, source_id)
    assert polling.fetch_source(rt, source_id) == []  # a redelivered fetch message does nothing
    article_id = parsing.parse_item(rt, item_id)
    assert article_id is not None
    assert parsing.parse_item(rt, item_id) is None  # already parsed
    deliveries = applying.apply_rules(rt, article_id)
    assert len(deliveries) == 2
    assert applying.apply_rules(rt, article_id) == []  # already done
    assert all(sending.deliver(rt, d) for d in deliveries)
    assert not any(sending.deliver(rt, d) for d in deliveries)  # already sent
    assert len([r for r in site.requests if r.path == "/hook"]) == 2


@pytest.mark.parametrize("matching", [True, False], ids=["matched", "unmatched"])
def test_rules_leave_an_article_whose_text_changed_meanwhile_pending(
    tmp_path, database_url, site, clock, monkeypatch, matching
):
    """A new version of the article's text is stored while its rules run: the rules'
    result is of the old text, so the article stays pending (its rules run again on the
    new text) and its items get no outcome from the old one; matched or not."""
    config = base_config(site)
    if not matching:
        pmf = config[config.index("names: [{name: Popular") :].split("\n", 1)[0]
        config = config.replace(pmf, "keywords: [Nobody]").replace("[US]", "[Zanzibar]")
    rt = make_runtime(tmp_path, database_url, config, clock)
    (source_id,) = polling.dispatch_due(rt)
    (item_id,) = polling.fetch_source(rt, source_id)
    article_id = parsing.parse_item(rt, item_id)
    assert article_id is not None

    real = applying.MatchDocument.from_article

    def new_version_meanwhile(article):
        with rt.store.session() as session:
            session.get(m.Article, article_id).content_hash = "a-newer-version"
        return real(article)

    monkeypatch.setattr(applying.MatchDocument, "from_article", new_version_meanwhile)
    applying.apply_rules(rt, article_id)
    with rt.store.session() as session:
        article = session.get(m.Article, article_id)
        assert article.rules_state == "pending"
        assert session.get(m.Item, item_id).outcome is None
    monkeypatch.undo()
    # and a text that stays put is finished, with its outcome
    clock.advance(3600)  # past the lease
    applying.apply_rules(rt, article_id)
    with rt.store.session() as session:
        assert session.get(m.Article, article_id).rules_state == "done"
        assert session.get(m.Item, item_id).outcome == ("matched" if matching else "no_match")


def test_webhook_failing_then_recovering_is_retried_from_the_row(
    tmp_path, database_url, site, clock
):
    answers = iter([500, 500, 500, 200, 200, 200, 200, 200])
    site.routes["/flaky"] = lambda req: (next(answers), {}, b"")
    rt = make_runtime(tmp_path, database_url, base_config(site, hook_path="/flaky"), clock)
    assert run_all(rt) == []  # both deliveries failed once
    for _ in range(10):
        clock.advance(3600)
        found = sweep(rt)
        for d in found.deliveries:
            sending.deliver(rt, d)
    with rt.store.session() as s:
        states = s.scalars(select(m.Delivery.state)).all()
        attempts = s.execute(
            select(m.DeliveryAttempt.ok, func.count()).group_by(m.DeliveryAttempt.ok)
        ).all()
    assert states == ["sent", "sent"]
    assert dict(attempts) == {False: 3, True: 2}


def test_dead_after_the_last_attempt_and_on_410(tmp_path, database_url, site, clock):
    site.add("/down", b"", status=503)
    rt = make_runtime(tmp_path, database_url, base_config(site, hook_path="/down"), clock)
    run_all(rt)
    for _ in range(10):
        clock.advance(24 * 3600)
        for d in sweep(rt).deliveries:
            sending.deliver(rt, d)
    with rt.store.session() as s:
        rows = s.scalars(select(m.Delivery)).all()
    assert [r.state for r in rows] == ["dead", "dead"]
    assert all(r.attempts == 4 for r in rows)  # NEWSWATCH_DELIVERY_ATTEMPTS
    # 410 Gone: dead at once, no retry
    site.add("/gone", b"", status=410)
    rt.config.path.write_text(base_config(site, hook_path="/gone"))
    with rt.store.session() as s:
        s.execute(
            m.Delivery.__table__.update().values(
                state="pending", attempts=0, claimed_until=None, next_attempt_at=clock.now
            )
        )
        ids = s.scalars(select(m.Delivery.id)).all()
    for d in ids:
        assert not sending.deliver(rt, d)
    with rt.store.session() as s:
        assert {r.state for r in s.scalars(select(m.Delivery))} == {"dead"}


def test_sweep_recovers_work_whose_message_was_lost(tmp_path, database_url, site, clock):
    rt = make_runtime(tmp_path, database_url, base_config(site), clock)
    (source_id,) = polling.dispatch_due(rt)
    (item_id,) = polling.fetch_source(rt, source_id)
    # the parse message is lost (Redis flushed): nothing happens until the sweep
    assert sweep(rt).items == []  # not stale yet
    clock.advance(61)
    found = sweep(rt)
    assert found.items == [item_id]
    assert sweep(rt).items == []  # just re-enqueued: not again at once
    article_id = parsing.parse_item(rt, item_id)
    # the rules message is lost too
    clock.advance(61)
    assert sweep(rt).articles == [article_id]
    deliveries = applying.apply_rules(rt, article_id)
    clock.advance(61)
    assert sorted(sweep(rt).deliveries) == sorted(deliveries)
    # a worker killed mid-parse leaves a claimed row: taken back after the lease
    with rt.store.session() as s:
        s.add(
            m.Item(
                source_id=source_id,
                entry_key="k2",
                url=None,
                data={"entry_key": "k2", "title": "t"},
                state="pending",
                enqueued_at=clock.now,
                claimed_until=clock.now + timedelta(seconds=300),
            )
        )
    clock.advance(120)
    assert sweep(rt).items == []  # still leased
    clock.advance(300)
    assert len(sweep(rt).items) == 1


def test_poison_item_is_quarantined_after_max_attempts(tmp_path, database_url, site, clock):
    site.add(
        "/feed.xml",
        rss(("Broken page", site.url("/articles/500"))),
        headers={"Content-Type": "application/rss+xml"},
    )
    site.add("/articles/500", b"oops", status=500)
    rt = make_runtime(tmp_path, database_url, base_config(site), clock)
    (source_id,) = polling.dispatch_due(rt)
    (item_id,) = polling.fetch_source(rt, source_id)
    for _ in range(rt.settings.max_attempts + 2):
        parsing.parse_item(rt, item_id)
        clock.advance(24 * 3600)
    with rt.store.session() as s:
        item = s.get(m.Item, item_id)
    assert item.state == "failed"
    assert "500" in item.error


def test_feed_failure_is_recorded_with_backoff(tmp_path, database_url, site, clock):
    site.add("/feed.xml", b"<html>maintenance</html>", status=503, headers={"Retry-After": "900"})
    rt = make_runtime(tmp_path, database_url, base_config(site), clock)
    (source_id,) = polling.dispatch_due(rt)
    assert polling.fetch_source(rt, source_id) == []
    with rt.store.session() as s:
        src = s.get(m.Source, source_id)
    assert src.consecutive_failures == 1
    assert src.last_error_kind == "http_503" and "503" in src.last_error
    assert src.next_fetch_at >= clock.now + timedelta(seconds=900)  # Retry-After honoured
    assert src.claimed_until is None


def test_page_source_follows_article_links(tmp_path, database_url, site, clock):
    site.add(
        "/listing",
        '<a href="/articles/seed">Militias</a> <a href="/about">About</a>',
        headers={"Content-Type": "text/html"},
    )
    config = base_config(site).replace(
        f"    feed: {site.url('/feed.xml')}\n    every: 5m\n    full_text: true",
        f"    page: {site.url('/listing')}\n    follow: /articles/\n    every: 5m",
    )
    rt = make_runtime(tmp_path, database_url, config, clock)
    assert len(run_all(rt)) == 2
    with rt.store.session() as s:
        art = s.scalar(select(m.Article))
    assert art.body.startswith("A senior commander")
    assert art.authors == ["Ben Kew"]


def test_us_does_not_match_lowercase_us(tmp_path, database_url, site, clock):
    page = ARTICLE.format(
        title="Talks resume", body="Let us hope, the minister told us, that talks resume."
    )
    site.add("/articles/us", page, headers={"Content-Type": "text/html"})
    site.add(
        "/feed.xml",
        rss(("Talks resume", site.url("/articles/us"))),
        headers={"Content-Type": "application/rss+xml"},
    )
    rt = make_runtime(tmp_path, database_url, base_config(site), clock)
    assert run_all(rt) == []
    assert count(rt, m.Match) == 0
