"""`newswatch rules test`: replay stored articles against a changed config (SQLite, PostgreSQL).

Articles are stored through the real pipeline steps (fetch, parse, rules,
deliver), then a changed config is replayed: what would alert, what is added
and removed against the `match` table, and nothing is written or sent.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.helpers.pipeline import Clock, count, make_runtime, run_all
from worker import cli
from worker.bootstrap.config_in_force import compile_config
from worker.matching.dry_run import replay
from worker.store import models as m

FEED_ITEMS = [
    ("PMF units move", "The PMF moved north as U.S. officials watched."),
    ("Ameri speaks", "Hadi al-Amiri said the bill would pass."),
    ("Weather", "Rain is expected across the region on Sunday."),
]

CONFIG = """
sources:
  - name: wire
    feed: {feed}
    every: 5m
watchlists:
{watchlists}
channels:
  - name: archive
    file: {alerts}
fetch:
  allow_networks: [127.0.0.0/8]
"""

OLD = """  - name: pmf
    names: [{name: Popular Mobilization Forces, aliases: [PMF]}]
    notify: [archive]
  - name: us
    keywords: [US]
    notify: [archive]
"""

NEW = """  - name: pmf
    names: [{name: Popular Mobilization Forces, aliases: [PMF]}]
    notify: [archive]
  - name: ameri
    names: [{name: Hadi al-Ameri, aliases: [Hadi al-Amiri]}]
    notify: [archive]
"""


def _feed(server) -> bytes:
    items = "".join(
        f"<item><title>{t}</title><link>{server.url(f'/a/{i}')}</link><guid>a{i}</guid>"
        f"<description>{d}</description></item>"
        for i, (t, d) in enumerate(FEED_ITEMS)
    )
    channel = f"<channel><title>T</title>{items}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'.encode()


@pytest.fixture
def stored(tmp_path, database_url, http_server):
    """A runtime whose database holds the three articles, matched by the OLD config."""
    http_server.add(
        "/feed.xml", _feed(http_server), headers={"Content-Type": "application/rss+xml"}
    )
    fill = {"feed": http_server.url("/feed.xml"), "alerts": tmp_path / "alerts.jsonl"}
    clock = Clock()
    rt = make_runtime(tmp_path, database_url, CONFIG.format(watchlists=OLD, **fill), clock)
    run_all(rt)
    assert count(rt, m.Article) == 3
    assert count(rt, m.Match) == 2  # pmf and us on the first article
    new_config = tmp_path / "changed.yaml"
    new_config.write_text(CONFIG.format(watchlists=NEW, **fill))
    yield rt, clock, new_config
    rt.store.dispose()


def test_replay_reports_added_and_removed_and_writes_nothing(stored, tmp_path):
    rt, clock, new_config = stored
    before = (count(rt, m.Match), count(rt, m.Delivery))
    alerts_before = (tmp_path / "alerts.jsonl").read_text()

    report = replay(rt.store, compile_config(new_config).matcher, clock.now - timedelta(days=1))

    assert report.articles_seen == 3
    by_title = {a.title: a for a in report.articles}
    assert set(by_title) == {"PMF units move", "Ameri speaks"}  # the weather matched nothing
    pmf = by_title["PMF units move"]
    assert (pmf.would, pmf.did, pmf.added, pmf.removed) == (
        ("pmf",),
        ("pmf", "us"),
        (),
        ("us",),
    )
    ameri = by_title["Ameri speaks"]
    assert (ameri.would, ameri.added, ameri.removed) == (("ameri",), ("ameri",), ())
    assert "Hadi al-Amiri" in ameri.snippets["ameri"]
    assert (report.added, report.removed) == (1, 1)
    # a dry run: no row written, nothing sent
    assert (count(rt, m.Match), count(rt, m.Delivery)) == before
    assert (tmp_path / "alerts.jsonl").read_text() == alerts_before


def test_replay_window_excludes_older_articles(stored):
    rt, clock, new_config = stored
    report = replay(rt.store, compile_config(new_config).matcher, clock.now + timedelta(seconds=1))
    assert report.articles_seen == 0
    assert report.articles == []


def test_rules_test_command(stored, capsys, monkeypatch, database_url):
    rt, _, new_config = stored
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("NEWSWATCH_DATA_DIR", str(rt.settings.data_dir))
    # the stored articles carry the test clock's date (2026-01-01): a window reaching it
    argv = ["rules", "test", "--since", "3650d", "--config", str(new_config)]
    assert cli.main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["articles_seen"] == 3
    assert (out["added"], out["removed"]) == (1, 1)
    rows = {a["title"]: a for a in out["articles"]}
    assert rows["PMF units move"]["removed"] == ["us"]
    assert rows["Ameri speaks"]["added"] == ["ameri"]

    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "1 added, 1 removed" in text
    assert "+ ameri:" in text
    assert "- us" in text


def test_rules_test_refuses_a_broken_config(stored, capsys, monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    broken = tmp_path / "broken.yaml"
    broken.write_text("watchlists:\n  - name: x\n    rule: 'a AND (b'\n")
    assert cli.main(["rules", "test", "--config", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{broken}:3" in err and "never closed" in err
