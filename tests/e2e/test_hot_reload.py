"""Hot reload on real processes: edit the config while `newswatch worker` and `beat` run.

The next article is matched by the new rule with no restart, and its match
row records the new config version; a broken edit is refused (logged with
the file, the line and a caret) and the last good rules stay in force.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.test_pipeline import rss
from tests.helpers.processes import NewswatchProcesses
from worker.config import load_config
from worker.store import models as m
from worker.store.db import Store

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

BASE = """
sources:
  - name: wire
    feed: {feed}
    every: 1s
watchlists:
  - name: pmf
    names:
      - name: Popular Mobilization Forces
        aliases: [PMF]
    notify: [archive]
{extra}
channels:
  - name: archive
    file: {alerts}
fetch:
  allow_networks: [127.0.0.0/8]
"""

AMERI = """  - name: ameri-troops
    names: [Hadi al-Ameri]
    rule: '"Hadi al-Ameri" AND {tail}'
    notify: [archive]
"""


def _matches(store: Store) -> list[tuple[str, str, str]]:
    """(article title, watchlist, config version) of every match row."""
    with store.session() as s:
        rows = s.execute(
            select(m.Article.title, m.Match.watchlist, m.Match.config_version).join(
                m.Article, m.Article.id == m.Match.article_id
            )
        )
        return sorted(tuple(r) for r in rows)


def _write(path: Path, text: str) -> str:
    """Write a config and return its version; the mtime must change even within a tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    if path.stat().st_mtime_ns == before:  # coarse file-system clocks
        time.sleep(0.01)
        path.write_text(text, encoding="utf-8")
    return load_config(path).version


def test_config_edits_take_effect_without_restart(
    tmp_path, database_url, redis_url, make_http_server
):
    site = make_http_server()
    items: list[tuple[str, str, str]] = []

    def feed(request):
        return 200, {"Content-Type": "application/rss+xml"}, rss(items)

    site.routes["/feed.xml"] = feed
    config = tmp_path / "newswatch.yaml"
    fill = {"feed": site.url("/feed.xml"), "alerts": tmp_path / "alerts.jsonl"}
    v1 = _write(config, BASE.format(extra="", **fill))
    store = Store(database_url)
    store.upgrade()  # before the processes start, so the test can read from the first poll
    procs = NewswatchProcesses(
        tmp_path,
        {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "NEWSWATCH_CONFIG": str(config)},
    )

    def add_item(n: int, title: str, text: str) -> None:
        items.insert(0, (title, f"http://news.test/{n}", text))

    try:
        with procs:
            procs.worker(concurrency=1)
            procs.beat()
            add_item(1, "PMF units move north", "The PMF said troops moved. Hadi al-Ameri spoke.")
            procs.wait_for(lambda: _matches(store), 45, "the first match")
            assert _matches(store) == [("PMF units move north", "pmf", v1)]

            # 1. a new watchlist with a rule: the next article is matched by it, no restart
            v2 = _write(config, BASE.format(extra=AMERI.format(tail="troops"), **fill))
            procs.wait_for(
                lambda: "config reloaded" in procs.log("worker"), 20, "the worker to reload"
            )
            add_item(2, "Ameri on troops", "Hadi al-Ameri said foreign troops must leave.")
            procs.wait_for(lambda: len(_matches(store)) >= 2, 30, "the match by the new rule")
            assert ("Ameri on troops", "ameri-troops", v2) in _matches(store)

            # 2. a broken edit (unbalanced parentheses) is refused, logged with file, line, caret
            _write(config, BASE.format(extra=AMERI.format(tail="(troops OR withdraw*"), **fill))
            procs.wait_for(
                lambda: "config change refused" in procs.log("worker"), 20, "the refusal in the log"
            )
            log = procs.log("worker")
            assert "unbalanced parentheses: '(' is never closed" in log
            assert f"{config}:" in log  # the file and the line of the rule
            assert "^" in log
            # ... and the last good rules (version 2) keep working
            add_item(3, "Ameri again", "Hadi al-Ameri said the troops will stay.")
            procs.wait_for(lambda: len(_matches(store)) >= 3, 30, "a match under the old rules")
            assert ("Ameri again", "ameri-troops", v2) in _matches(store)
            procs.check_alive()
    finally:
        store.dispose()
