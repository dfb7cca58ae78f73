"""The source table follows the config in batches (store/sources.follow), on SQLite and
PostgreSQL: sources added, changed ones updated, removed ones disabled with their history
kept, a source newswatch disabled itself kept off until its URL changes, and a row the
config does not change left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from worker.config.schema import SourceSpec
from worker.sources.polling import sync_sources
from worker.store import models as m
from worker.store import sources
from worker.store.db import Store

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def spec(name: str, **kw) -> SourceSpec:
    return SourceSpec(name=name, **({"feed": f"https://example.org/{name}.xml"} | kw))


@pytest.fixture
def store(database_url):
    store = Store(database_url)
    store.create_all()
    yield store
    store.engine.dispose()


def rows(store: Store) -> dict[str, m.Source]:
    with store.session() as s:
        return {r.name: r for r in s.scalars(select(m.Source))}


def follow(store: Store, specs: list[SourceSpec], now: datetime = NOW) -> dict[str, int]:
    with store.session() as s:
        return sources.follow(
            s, (sources.Wanted(x.name, x.kind, x.url, x.every, x.enabled) for x in specs), now
        )


def test_adds_in_batches(store, monkeypatch):
    monkeypatch.setattr(sources, "SYNC_BATCH", 7)  # several statements, one partial
    specs = [spec(f"s{i}", every=60 * (i + 1)) for i in range(30)]
    specs.append(spec("page", feed=None, page="https://example.org/news", enabled=False))
    assert follow(store, specs) == {"added": 31, "updated": 0, "disabled": 0}
    got = rows(store)
    assert len(got) == 31
    assert got["s4"].every_seconds == 300 and got["s4"].url == "https://example.org/s4.xml"
    assert got["s4"].kind == "feed" and got["s4"].enabled and got["s4"].next_fetch_at == NOW
    assert got["s4"].consecutive_failures == 0 and got["s4"].items_seen == 0
    assert got["page"].kind == "page" and not got["page"].enabled
    # the same config again writes nothing
    assert follow(store, specs, NOW + timedelta(minutes=5)) == {
        "added": 0,
        "updated": 0,
        "disabled": 0,
    }


def test_updates_and_removals(store, monkeypatch):
    monkeypatch.setattr(sources, "SYNC_BATCH", 2)
    follow(store, [spec("keep"), spec("slower"), spec("moved"), spec("gone"), spec("dead")])
    with store.session() as s:
        for row in s.scalars(select(m.Source)):
            row.etag, row.items_seen, row.next_fetch_at = '"v1"', 5, NOW + timedelta(hours=1)
            if row.name == "dead":
                row.enabled, row.disabled_reason, row.permanent_failures = False, "410", 3
            if row.name == "moved":
                row.window_size, row.permanent_failures = 20, 1
    later = NOW + timedelta(minutes=1)
    result = follow(
        store,
        [
            spec("keep"),
            spec("slower", every=7200),
            spec("moved", feed="https://example.net/moved.xml", every=60),
            spec("dead", every=120),  # not its URL: stays off
            spec("new"),
        ],
        later,
    )
    assert result == {"added": 1, "updated": 3, "disabled": 1}
    got = rows(store)
    assert got["keep"].etag == '"v1"' and got["keep"].next_fetch_at == NOW + timedelta(hours=1)
    assert got["slower"].every_seconds == 7200 and got["slower"].etag == '"v1"'
    moved = got["moved"]
    assert moved.url == "https://example.net/moved.xml" and moved.every_seconds == 60
    assert moved.etag is None and moved.window_size is None and moved.permanent_failures == 0
    assert moved.next_fetch_at == later and moved.items_seen == 5  # its history is kept
    assert not got["dead"].enabled and got["dead"].disabled_reason == "410"
    assert got["dead"].every_seconds == 120
    assert not got["gone"].enabled and got["gone"].items_seen == 5  # kept, off
    assert got["new"].enabled and got["new"].next_fetch_at == later
    # a shorter interval brings a poll that was due later forward
    follow(store, [spec("keep", every=60)], later)
    assert rows(store)["keep"].next_fetch_at == later + timedelta(seconds=60)
    # the dead source's URL changes: it lives again, with a clean record
    follow(store, [spec("dead", feed="https://example.org/dead-new.xml")], later)
    dead = rows(store)["dead"]
    assert dead.enabled and dead.disabled_reason is None and dead.permanent_failures == 0
    # a removed source listed again is enabled again
    follow(store, [spec("gone")], later)
    assert rows(store)["gone"].enabled


def test_sync_sources_follows_a_config(store):
    with store.session() as s:
        sync_sources(s, [spec("a"), spec("b", every=120)], NOW)
    with store.session() as s:
        sync_sources(s, [spec("b", every=60)], NOW)
    got = rows(store)
    assert not got["a"].enabled and got["b"].enabled and got["b"].every_seconds == 60


def test_a_name_added_meanwhile_is_left_to_its_adder(store, monkeypatch):
    follow(store, [spec("a"), spec("b", feed="https://other.example/b.xml")])
    read = sources.select
    # this process read the table before another process added "b"
    monkeypatch.setattr(sources, "select", lambda *c: read(*c).where(m.Source.name != "b"))
    follow(store, [spec("a"), spec("b")])  # no error: the other process's row stands
    assert rows(store)["b"].url == "https://other.example/b.xml"
