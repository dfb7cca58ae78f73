"""A feed answered with 200 and the same bytes (no ETag, no Last-Modified) is not read
again once its entries are stored (worker/sources/unchanged.py), and a changed body is."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.helpers.pipeline import Clock, make_runtime, rss
from worker.sources import polling
from worker.store import models as m

CONFIG = """
sources:
  - {{name: wire, feed: '{url}', every: 5m, full_text: false}}
watchlists:
  - {{name: never, keywords: [Zephyr], notify: [archive]}}
channels:
  - {{name: archive, file: '{data}/alerts.jsonl'}}
fetch:
  allow_networks: [127.0.0.0/8]
"""


def _poll(rt, clock: Clock) -> list[int]:
    clock.advance(600)
    (source_id,) = polling.dispatch_due(rt)
    return polling.fetch_source(rt, source_id)


def _runtime(tmp_path: Path, database_url: str, url: str, clock: Clock):
    return make_runtime(tmp_path, database_url, CONFIG.format(url=url, data=tmp_path), clock)


def test_same_body_adds_nothing_and_a_changed_one_is_read(
    tmp_path, database_url, http_server
) -> None:
    one, two = ("One", http_server.url("/a/1")), ("Two", http_server.url("/a/2"))
    url = http_server.add("/feed.xml", rss(one), headers={"Content-Type": "application/rss+xml"})
    clock = Clock()
    rt = _runtime(tmp_path, database_url, url, clock)
    assert len(_poll(rt, clock)) == 1
    assert _poll(rt, clock) == []  # the same bytes: nothing new, and the poll a success
    with rt.store.session() as s:
        src = s.scalars(select(m.Source)).one()
        assert src.last_success_at == clock.now and src.consecutive_failures == 0
    http_server.add("/feed.xml", rss(two, one), headers={"Content-Type": "application/rss+xml"})
    new = _poll(rt, clock)
    with rt.store.session() as s:
        assert [s.get(m.Item, i).url for i in new] == [two[1]]


def test_a_body_read_for_one_database_is_read_again_for_another(tmp_path, http_server) -> None:
    """Same source id, same URL, same bytes, but another database: its items are stored."""
    url = http_server.add(
        "/feed.xml", rss(("One", http_server.url("/a/1"))), headers={"Content-Type": "text/xml"}
    )
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        clock = Clock()
        rt = _runtime(folder, f"sqlite:///{folder}/nw.db", url, clock)
        assert len(_poll(rt, clock)) == 1, name
