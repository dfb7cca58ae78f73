"""The drop ledger and terminal states, through the real steps on SQLite and PostgreSQL.

Every item that does not alert says why (no match, excluded, duplicate of which article,
story duplicate of which alert); a parse, rules or fetch attempt that raises any
exception fails its own row, is retried with backoff, then quarantined with a metric
and one notice, while the rest of the work flows. `newswatch status` counts the
outcomes and `newswatch why` tells one item's story.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from tests.helpers.pipeline import Clock, make_runtime, run_all
from tests.helpers.processes import run_cli
from tests.helpers.schemas import webhook_validator
from worker import cli
from worker.alerts import sending
from worker.articles import parsing
from worker.bootstrap import Runtime
from worker.core.model import MatchDocument
from worker.matching import applying
from worker.service.sweep import sweep
from worker.sources import polling
from worker.store import models as m
from worker.store.db import claim

STORY = (
    "BAGHDAD (Wire) — Iraq's parliament on Tuesday began debating a bill that would set a "
    "timetable for the withdrawal of foreign forces, a move pushed by lawmakers aligned with "
    "the Popular Mobilization Forces after a string of strikes on militia positions near the "
    "Syrian border. The bill, drafted by the legal committee, would give the government one "
    "year to end the presence of foreign combat units and would bar the use of Iraqi "
    "territory for attacks on neighbouring countries. Several Kurdish and Sunni blocs "
    "boycotted the session. Diplomats in Baghdad said the debate reflected growing pressure "
    "on the prime minister, who has tried to balance relations with Washington and Tehran "
    "since taking office. A vote is expected before the end of the month, although the date "
    "has not been fixed, officials said on Tuesday evening."
)
WEATHER = "Sunny skies are expected across the region for the rest of the week, forecasters said."


def feed(*entries: tuple[str, str, str, str]) -> str:
    """RSS with (guid, title, link, description) items."""
    items = "".join(
        f'<item><guid isPermaLink="false">{escape(g)}</guid><title>{escape(t)}</title>'
        f"<link>{escape(u)}</link><description>{escape(d)}</description></item>"
        for g, t, u, d in entries
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    return f"{head}{items}</channel></rss>"


def config(site, ops: Path) -> str:
    return f"""
sources:
  - name: wire
    feed: {site.url("/wire.xml")}
    every: 5m
  - name: other
    feed: {site.url("/other.xml")}
    every: 5m
watchlists:
  - name: pmf
    names: [{{name: Popular Mobilization Forces, aliases: [PMF]}}]
    notify: [hook]
  - name: troops
    keywords: [troops]
    exclude: [football]
    notify: [hook]
  - name: ameri
    names: [{{name: Hadi al-Ameri}}]
    rule: '"Hadi al-Ameri" AND NOT ceasefire'
    notify: [hook]
channels:
  - name: hook
    webhook: {site.url("/hook")}
  - name: ops
    file: {ops}
notices: {{channel: ops}}
fetch:
  allow_networks: [127.0.0.0/8]
  min_interval: 0  # simulated hours of polling: no real-time pause between requests
  deadline: 10
"""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def site(http_server):
    http_server.add("/hook", b"", status=204)
    http_server.add("/other.xml", feed(), headers={"Content-Type": "application/rss+xml"})
    return http_server


def serve(site, path: str, *entries: tuple[str, str, str, str]) -> None:
    site.add(path, feed(*entries), headers={"Content-Type": "application/rss+xml"})


def hook_posts(site) -> list:
    return [r for r in site.requests if r.path == "/hook" and r.method == "POST"]


def guid(entry_key: str) -> str:
    """The feed's own id: an item key is the id, the link when it differs, and a digest of
    the content (worker/articles/normalize.py)."""
    return entry_key.split(" ", 1)[0]


def items_by_key(rt: Runtime) -> dict[str, m.Item]:
    with rt.store.session() as s:
        return {guid(i.entry_key): i for i in s.scalars(select(m.Item))}


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def cli_env(rt: Runtime) -> dict[str, str]:
    return {"DATABASE_URL": rt.settings.database_url, "NEWSWATCH_CONFIG": str(rt.config.path)}


@pytest.fixture
def newswatch(monkeypatch, capsys):
    """`newswatch ARGS` in this process (fast); returns (exit code, stdout, stderr)."""

    def run(rt: Runtime, *args: str) -> tuple[int, str, str]:
        for key, value in cli_env(rt).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


# --- every item has an outcome ------------------------------------------------------------


def test_every_item_that_does_not_alert_says_why(tmp_path, database_url, site, clock, newswatch):
    a = site.url("/a/pmf")
    serve(
        site, "/wire.xml",
        ("A", "Parliament debates a bill", a, STORY),
        ("B", "Troops at the final", site.url("/a/b"), "The troops watched the football final."),
        ("C", "Weather", site.url("/a/c"), WEATHER),
        ("D", "Parliament debates a bill (again)", a, STORY + " Updated."),  # same link as A
        ("E", "Weather", site.url("/a/e"), WEATHER),  # same text as C
        ("F", "Parliament debates a bill", site.url("/a/f"), STORY.replace("evening", "night")),
        ("G", "Ameri", site.url("/a/g"), "Hadi al-Ameri announced a ceasefire on Friday."),
    )  # fmt: skip
    rt = make_runtime(tmp_path, database_url, config(site, tmp_path / "ops.jsonl"), clock)
    assert len(run_all(rt)) == 1  # A alerts pmf, once
    items = items_by_key(rt)
    outcome = {k: i.outcome for k, i in items.items()}
    assert outcome == {
        "A": "matched",
        "B": "excluded",
        "C": "no_match",
        "D": "duplicate",
        "E": "duplicate",
        "F": "story_duplicate",
        "G": "excluded",
    }
    art_a, art_c = items["A"].article_id, items["C"].article_id
    assert items["A"].outcome_detail == "alerted pmf"
    assert items["B"].outcome_detail == "troops: excluded by 'football'"
    rule = '"Hadi al-Ameri" AND NOT ceasefire'
    assert items["G"].outcome_detail == f"ameri: rule not satisfied: {rule}"
    assert items["C"].outcome_detail.startswith("no term of the 3 watchlist(s)")
    assert items["D"].outcome_detail == f"same canonical URL as article {art_a}: {a}"
    assert items["E"].outcome_detail.startswith(f"same content hash as article {art_c} (")
    assert items["F"].outcome_detail == (
        f"story {art_a} (first article {art_a}) had already alerted pmf by article {art_a} "
        f"(match 1)"
    )
    assert items["D"].article_id == art_a and items["E"].article_id == art_c

    # the metric, from the rows at scrape time
    from worker.service.observability import DatabaseCollector

    families = {f.name: f for f in DatabaseCollector(rt.store).collect()}
    gauge = {s.labels["outcome"]: s.value for s in families["newswatch_item_outcomes"].samples}
    assert gauge == {
        "matched": 1,
        "story_duplicate": 1,
        "excluded": 2,
        "no_match": 1,
        "duplicate": 2,
    }

    # `newswatch status` counts them, every outcome shown
    code, out, _ = newswatch(rt, "status", "--json")
    assert code == 0
    assert json.loads(out)["outcomes"] == {
        "matched": 1, "story_duplicate": 1, "excluded": 2, "no_match": 1, "duplicate": 2,
        "refused": 0, "quarantined": 0, "pending": 0,
    }  # fmt: skip
    text = newswatch(rt, "status")[1]
    assert "item outcomes: matched 1, story_duplicate 1, excluded 2, no_match 1" in text

    # `newswatch why` for the story duplicate: the story, its evidence, the first alert
    code, out, _ = newswatch(rt, "why", str(items["F"].id), "--json")
    assert code == 0
    (f,) = json.loads(out)["items"]
    assert (f["source"], guid(f["entry_key"]), f["outcome"]) == ("wire", "F", "story_duplicate")
    assert f["story"]["id"] == art_a and f["story"]["first_article"] == art_a
    assert f["story"]["near_duplicate"] is not None  # the hook: why it joined the story
    (match,) = f["matches"]
    assert match["watchlist"] == "pmf" and match["state"] == "duplicate"
    assert match["first_alert"]["article_id"] == art_a and match["deliveries"] == []
    text = newswatch(rt, "why", str(items["F"].id))[1]
    assert "OUTCOME:   story_duplicate: story" in text
    assert f"story alerted by article {art_a}" in text

    # by URL: both items of that link, the copy pointing at the article that alerted
    # (once as a user runs it: the installed command in its own process)
    run = run_cli("why", a, "--json", env=cli_env(rt), text=True)
    assert run.returncode == 0, run.stderr
    found = {guid(i["entry_key"]): i for i in json.loads(run.stdout)["items"]}
    assert set(found) == {"A", "D"}
    assert found["D"]["article"]["role"] == "copy of" and found["D"]["article"]["id"] == art_a
    (alert,) = found["A"]["matches"]
    assert [(d["channel"], d["state"]) for d in alert["deliveries"]] == [("hook", "sent")]
    text = newswatch(rt, "why", a)[1]
    assert "-> hook: sent (alert, immediate)" in text and "OUTCOME:   duplicate: same" in text

    code, _, err = newswatch(rt, "why", "999999")
    assert code == 1 and "no item" in err


# --- terminal states, whatever the exception ----------------------------------------------


def parse_until_settled(rt: Runtime, clock: Clock, item_ids: list[int]) -> tuple[list, list]:
    """Parse, sweep and retry (a day apart) until nothing is pending; rules and deliveries
    run as the tasks would. Returns (notice ids, alert ids sent)."""
    notices: list[str] = []
    sent: list[str] = []
    pending = list(item_ids)
    for _ in range(3 * rt.settings.max_attempts):
        for item_id in pending:
            article_id = parsing.parse_item(rt, item_id, notices)
            if article_id is not None:
                sent += [d for d in applying.apply_rules(rt, article_id) if sending.deliver(rt, d)]
        clock.advance(24 * 3600)
        found = sweep(rt)
        pending = found.items
        for article_id in found.articles:
            sent += [d for d in applying.apply_rules(rt, article_id) if sending.deliver(rt, d)]
        if not found:
            break
    return notices, sent


def test_a_parse_bug_fails_its_items_alone_then_quarantines_them_with_one_notice(
    tmp_path, database_url, site, clock, monkeypatch, newswatch
):
    serve(
        site, "/wire.xml",
        ("P1", "Poison one", site.url("/a/p1"), "First entry that trips the bug."),
        ("P2", "Poison two", site.url("/a/p2"), "Second entry that trips the bug."),
    )  # fmt: skip
    serve(site, "/other.xml", ("OK", "Parliament debates a bill", site.url("/a/ok"), STORY))
    real = parsing.build_article

    def buggy(data, source_name, *args, **kwargs):  # stands for a bug in normalisation
        if data.get("title", "").startswith("Poison"):
            raise KeyError("published_parsed")
        return real(data, source_name, *args, **kwargs)

    monkeypatch.setattr(parsing, "build_article", buggy)
    ops = tmp_path / "ops.jsonl"
    rt = make_runtime(tmp_path, database_url, config(site, ops), clock)
    failed_before = counter("newswatch_failures_total", unit="item", kind="internal")
    quarantined_before = counter("newswatch_quarantined_total", unit="item", kind="internal")

    item_ids = [i for s in polling.dispatch_due(rt) for i in polling.fetch_source(rt, s)]
    assert len(item_ids) == 3
    # the first attempt: the error and its class on the row, a backoff, nothing raised
    for item_id in item_ids:
        parsing.parse_item(rt, item_id)
    items = items_by_key(rt)
    p1 = items["P1"]
    assert p1.state == "pending" and p1.outcome is None
    assert p1.error == "KeyError: 'published_parsed'" and p1.error_kind == "internal"
    assert p1.claimed_until > clock.now  # backing off, not retried at once
    assert parsing.parse_item(rt, p1.id) is None
    assert items_by_key(rt)["P1"].attempts == 1

    notices, _ = parse_until_settled(rt, clock, [p1.id, items["P2"].id])
    items = items_by_key(rt)
    for key in ("P1", "P2"):
        it = items[key]
        assert it.state == "failed" and it.outcome == "quarantined"
        assert it.attempts == rt.settings.max_attempts
        assert it.outcome_detail == (
            f"after {rt.settings.max_attempts} attempts: KeyError: 'published_parsed'"
        )
    assert items["OK"].outcome == "matched"
    assert len(hook_posts(site)) == 1  # the good article alerted, once
    # one notice for the source's incident (both items in the same hour)
    assert len(notices) == 1
    assert all(sending.deliver(rt, n) for n in notices)
    (line,) = [json.loads(x) for x in ops.read_text().splitlines()]
    assert line["event"] == "item_quarantined" and "source wire" in line["text"]
    # it names the first item quarantined (the backoffs are jittered: either of the two)
    assert any(f"newswatch why {items[k].id}`" in line["text"] for k in ("P1", "P2"))
    webhook_validator("notice").validate(line)
    failed = counter("newswatch_failures_total", unit="item", kind="internal")
    assert failed == failed_before + 2 * rt.settings.max_attempts
    assert counter("newswatch_quarantined_total", unit="item", kind="internal") == (
        quarantined_before + 2
    )
    outcomes = json.loads(newswatch(rt, "status", "--json")[1])["outcomes"]
    assert (outcomes["quarantined"], outcomes["matched"], outcomes["pending"]) == (2, 1, 0)


def test_rules_that_raise_end_in_a_terminal_state_with_the_error_and_a_notice(
    tmp_path, database_url, site, clock, monkeypatch, newswatch
):
    serve(site, "/wire.xml", ("X", "Poison for the rules", site.url("/a/x"), STORY + " X."))
    serve(site, "/other.xml", ("OK", "Parliament debates a bill", site.url("/a/ok"), STORY))
    real = MatchDocument.from_article.__func__

    def buggy(cls, article):  # stands for a bug in the matcher's input
        if article.title.startswith("Poison"):
            raise KeyError("lead")
        return real(cls, article)

    monkeypatch.setattr(MatchDocument, "from_article", classmethod(buggy))
    ops = tmp_path / "ops.jsonl"
    rt = make_runtime(tmp_path, database_url, config(site, ops), clock)
    before = counter("newswatch_quarantined_total", unit="article", kind="internal")
    item_ids = [i for s in polling.dispatch_due(rt) for i in polling.fetch_source(rt, s)]
    parse_until_settled(rt, clock, item_ids)

    items = items_by_key(rt)
    assert items["OK"].outcome == "matched" and len(hook_posts(site)) == 1
    x = items["X"]
    with rt.store.session() as s:
        art = s.get(m.Article, x.article_id)
    assert art.rules_state == "failed"  # a terminal state, not retried forever
    assert art.attempts == rt.settings.max_attempts
    assert (art.error, art.error_kind) == ("KeyError: 'lead'", "internal")
    assert x.state == "parsed" and x.outcome == "quarantined"
    assert x.outcome_detail == (
        f"rules failed: after {rt.settings.max_attempts} attempts: KeyError: 'lead'"
    )
    assert counter("newswatch_quarantined_total", unit="article", kind="internal") == before + 1
    # the notice came back from apply_rules with the deliveries: parse_until_settled sent it
    (line,) = [json.loads(x) for x in ops.read_text().splitlines()]
    assert line["event"] == "rules_failed" and "KeyError: 'lead'" in line["text"]
    assert sweep(rt).articles == []  # nothing left to retry

    why = json.loads(newswatch(rt, "why", str(x.id), "--json")[1])
    (it,) = why["items"]
    assert it["article"]["rules_state"] == "failed" and it["article"]["error_kind"] == "internal"


def test_a_rules_attempt_that_never_comes_back_is_quarantined_too(
    tmp_path, database_url, site, clock
):
    serve(site, "/wire.xml", ("A", "Parliament debates a bill", site.url("/a/a"), STORY))
    rt = make_runtime(tmp_path, database_url, config(site, tmp_path / "ops.jsonl"), clock)
    item_ids = [i for s in polling.dispatch_due(rt) for i in polling.fetch_source(rt, s)]
    article_id = parsing.parse_item(rt, item_ids[0])
    # each attempt's worker is killed after its claim: the lease expires, nothing recorded
    for _ in range(rt.settings.max_attempts):
        with rt.store.session() as s:
            assert claim(s, m.Article, article_id, clock.now, rt.settings.lease_seconds)
        clock.advance(rt.settings.lease_seconds + 1)
    notices = applying.apply_rules(rt, article_id)
    assert len(notices) == 1 and hook_posts(site) == []
    with rt.store.session() as s:
        art = s.get(m.Article, article_id)
        item = s.get(m.Item, item_ids[0])
    assert art.rules_state == "failed"
    n = rt.settings.max_attempts
    assert art.error.startswith(f"quarantined after {n} attempts: no attempt finished")
    assert item.outcome == "quarantined" and "no attempt finished" in item.outcome_detail


def test_a_fetch_that_raises_anything_is_recorded_on_its_source_and_loses_nothing(
    tmp_path, database_url, site, clock, monkeypatch, newswatch
):
    from worker.sources import schedule

    serve(site, "/wire.xml", ("A", "Parliament debates a bill", site.url("/a/a"), STORY))
    serve(site, "/other.xml", ("B", "Weather", site.url("/a/b"), WEATHER))
    real = schedule.poll_interval

    def buggy(*args, name, **kwargs):  # stands for a bug after the entries were stored
        if name == "wire":
            raise KeyError("ttl")
        return real(*args, name=name, **kwargs)

    monkeypatch.setattr(schedule, "poll_interval", buggy)
    rt = make_runtime(tmp_path, database_url, config(site, tmp_path / "ops.jsonl"), clock)
    by_source: dict[str, list[int]] = {}
    for source_id in polling.dispatch_due(rt):
        with rt.store.session() as s:
            name = s.get(m.Source, source_id).name
        by_source[name] = polling.fetch_source(rt, source_id)  # never raises
    with rt.store.session() as s:
        src = {r.name: r for r in s.scalars(select(m.Source))}
    wire, other = src["wire"], src["other"]
    assert (wire.last_error_kind, wire.last_error) == ("internal", "KeyError: 'ttl'")
    assert wire.consecutive_failures == 1 and wire.claimed_until is None
    assert wire.next_fetch_at > clock.now  # backed off, polled again later
    assert other.last_error is None and len(by_source["other"]) == 1  # the other one flowed
    text = newswatch(rt, "status")[1]
    assert "ERROR (internal): KeyError: 'ttl'" in text
    # the entry stored before the failure is not lost: the sweep sends it on, and it alerts
    assert by_source["wire"] == []
    clock.advance(rt.settings.requeue_after_seconds + 1)
    _, sent = parse_until_settled(rt, clock, sweep(rt).items)
    assert items_by_key(rt)["A"].outcome == "matched" and len(sent) == 1


# --- rows stored before the ledger ---------------------------------------------------------


def test_migration_gives_old_rows_the_outcome_their_states_tell(database_url):
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import insert

    from worker.store.db import MIGRATIONS, Store

    store = Store(database_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    with store.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.commit()
    t = clock_now = Clock().now
    with store.engine.begin() as conn:
        conn.execute(insert(m.Source.__table__), [dict(id=1, name="s", kind="feed", url="u",
                     every_seconds=60, enabled=True, next_fetch_at=t, created_at=t)])  # fmt: skip
        arts = [(1, "done"), (2, "done"), (3, "done"), (4, "failed")]
        conn.execute(insert(m.Article.__table__), [
            dict(id=i, source_id=1, canonical_url=f"https://x/{i}", content_hash=f"h{i}",
                 title="t", body="b", lead="", authors=[], tags=[], rules_state=state,
                 attempts=1, enqueued_at=t, created_at=t, story_id=1)
            for i, state in arts
        ])  # fmt: skip
        conn.execute(insert(m.Match.__table__), [
            dict(id=1, watchlist="w", article_id=1, story_id=1, config_version="v", hits=[],
                 names=[], snippet="", highlights=[], state="alerted", created_at=t),
            dict(id=2, watchlist="w", article_id=2, story_id=1, config_version="v", hits=[],
                 names=[], snippet="", highlights=[], state="duplicate", created_at=t),
        ])  # fmt: skip
        rows = [("matched", "parsed", 1, None), ("story", "parsed", 2, None),
                ("none", "parsed", 3, None), ("rules", "parsed", 4, None),
                ("dup", "duplicate", 1, None), ("bad", "failed", None, "quarantined after 5"),
                ("wait", "pending", None, None)]  # fmt: skip
        conn.execute(insert(m.Item.__table__), [
            dict(source_id=1, entry_key=k, url=None, data={}, state=state, attempts=1,
                 enqueued_at=clock_now, created_at=t, article_id=a, error=e)
            for k, state, a, e in rows
        ])  # fmt: skip
    store.upgrade()
    with store.session() as s:
        got = {i.entry_key: (i.outcome, i.outcome_detail) for i in s.scalars(select(m.Item))}
    store.dispose()
    assert {k: o for k, (o, _) in got.items()} == {
        "matched": "matched", "story": "story_duplicate", "none": "no_match",
        "rules": "quarantined", "dup": "duplicate", "bad": "quarantined", "wait": None,
    }  # fmt: skip
    assert got["dup"][1].startswith("same canonical URL or content hash as article 1")
    assert got["bad"][1] == "quarantined after 5"


def test_item_backoff_is_cleared_and_outcome_written_when_a_retry_succeeds(
    tmp_path, database_url, site, clock, monkeypatch
):
    serve(site, "/wire.xml", ("A", "Parliament debates a bill", site.url("/a/a"), STORY))
    real = parsing.build_article
    failures = iter([OSError("disk hiccup")])

    def flaky(*args, **kwargs):
        for exc in failures:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(parsing, "build_article", flaky)
    rt = make_runtime(tmp_path, database_url, config(site, tmp_path / "ops.jsonl"), clock)
    item_ids = [i for s in polling.dispatch_due(rt) for i in polling.fetch_source(rt, s)]
    notices, sent = parse_until_settled(rt, clock, item_ids)
    (item,) = items_by_key(rt).values()
    assert item.attempts == 2 and item.state == "parsed" and item.outcome == "matched"
    assert item.error is None and item.error_kind is None and notices == []
    assert len(sent) == 1 and len(hook_posts(site)) == 1


def test_an_input_error_that_cannot_go_away_is_quarantined_at_once_without_a_notice(
    tmp_path, database_url, site, clock
):
    serve(site, "/wire.xml", ("G", "Gone", site.url("/a/gone"), "A teaser."))
    site.add("/a/gone", b"gone", status=404)
    ops = tmp_path / "ops.jsonl"
    full_text = config(site, ops).replace(
        "    every: 5m\n  - name: other", "    every: 5m\n    full_text: true\n  - name: other"
    )
    rt = make_runtime(tmp_path, database_url, full_text, clock)
    (item_id,) = [i for s in polling.dispatch_due(rt) for i in polling.fetch_source(rt, s)]
    notices: list[str] = []
    assert parsing.parse_item(rt, item_id, notices) is None
    (item,) = items_by_key(rt).values()
    assert (item.state, item.attempts, item.error_kind) == ("failed", 1, "http_status")
    assert item.outcome == "quarantined"
    assert item.outcome_detail.startswith("permanent error: FetchError: ")
    assert "404" in item.outcome_detail
    assert notices == [] and not ops.exists()  # the feed's content, not an incident
