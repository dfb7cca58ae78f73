"""Polls in batches (worker/sources/batch.py) against real servers on 127.0.0.1 and a real
database, with a controlled clock (no Celery): each source of a batch keeps its own claim
and its own outcome, a 304 is recorded like a single poll's, one source failing (an HTTP
error, a refused connection, a bug) never fails another, and a batch delivered twice
polls nothing twice."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.helpers import httpserver
from tests.helpers.httpserver import RecordedRequest, TestServer
from tests.helpers.pipeline import Clock, make_runtime, rss
from worker.sources import batch, polling
from worker.store import models as m

http_server = httpserver.http_server
RSS = {"Content-Type": "application/rss+xml"}


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    return port


def scene(server: TestServer) -> str:
    """`same` answers 304 to its ETag; `news` has one more item each poll; `broken`
    answers 500; `gone` refuses the connection."""
    polls = {"news": 0}

    def same(request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        if request.headers.get("If-None-Match") == '"v1"':
            return 304, {"ETag": '"v1"'}, b""
        return 200, {**RSS, "ETag": '"v1"'}, rss(("Same", "http://example.test/same")).encode()

    def news(request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        polls["news"] += 1
        items = [(f"N{k}", f"http://example.test/n{k}") for k in range(polls["news"])]
        return 200, RSS, rss(*items).encode()

    server.routes["/same.xml"] = same
    server.routes["/news.xml"] = news
    server.add("/broken.xml", b"down", status=500)
    lines = "\n".join(
        f"  - {{name: {name}, feed: '{url}', every: 5m}}"
        for name, url in (
            ("same", server.url("/same.xml")),
            ("news", server.url("/news.xml")),
            ("broken", server.url("/broken.xml")),
            ("gone", f"http://127.0.0.1:{closed_port()}/feed.xml"),
        )
    )
    return f"""
sources:
{lines}
allow_empty: true
fetch:
  allow_networks: [127.0.0.0/8]
  connect_timeout: 1
  read_timeout: 1.5
  deadline: 3
"""


def rows(rt) -> dict[str, m.Source]:
    with rt.store.session() as s:
        return {src.name: src for src in s.scalars(select(m.Source))}


def one_batch(rt) -> list[int]:
    planned = batch.dispatch_batches(rt)
    assert len(planned) == 1  # all due at once: one message for the four
    ids, countdown = planned[0]
    assert countdown == 0.0 and len(ids) == 4
    return ids


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_each_source_of_a_batch_keeps_its_own_outcome(
    tmp_path, database_url, http_server: TestServer, clock: Clock
) -> None:
    rt = make_runtime(tmp_path, database_url, scene(http_server), clock)
    first = batch.fetch_batch(rt, one_batch(rt))
    assert len(first) == 2  # same's item and news's first
    src = rows(rt)
    assert all(s.claimed_until is None for s in src.values())
    assert src["same"].etag == '"v1"' and src["same"].last_error is None
    assert src["broken"].last_error_kind == "http_500" and src["broken"].consecutive_failures == 1
    assert src["gone"].last_error_kind == "refused" and src["gone"].consecutive_failures == 1
    assert src["news"].items_seen == 1

    clock.advance(3600)
    second = batch.fetch_batch(rt, one_batch(rt))
    assert len(second) == 1  # news's second item; same answered 304
    src = rows(rt)
    same = src["same"]
    asked = [r for r in http_server.requests if r.path == "/same.xml"]
    assert len(asked) == 2 and asked[-1].headers.get("If-None-Match") == '"v1"'
    assert same.last_success_at == same.last_fetch_at == clock.now
    assert same.next_fetch_at == clock.now + timedelta(minutes=5)
    assert same.etag == '"v1"' and same.items_seen == 1 and same.claimed_until is None
    assert src["news"].items_seen == 2 and src["news"].last_success_at == clock.now
    assert src["broken"].consecutive_failures == 2 and src["gone"].consecutive_failures == 2
    assert src["broken"].next_fetch_at > clock.now + timedelta(minutes=5)  # backed off


def test_a_batch_delivered_twice_polls_nothing_twice(
    tmp_path, database_url, http_server: TestServer, clock: Clock
) -> None:
    rt = make_runtime(tmp_path, database_url, scene(http_server), clock)
    ids = one_batch(rt)
    batch.fetch_batch(rt, ids)
    asked = len(http_server.requests)
    assert batch.fetch_batch(rt, ids) == []  # the second delivery: no claim left
    assert len(http_server.requests) == asked
    assert rows(rt)["broken"].consecutive_failures == 1


def test_a_bug_in_one_poll_fails_that_source_alone(
    tmp_path, database_url, http_server: TestServer, clock: Clock, monkeypatch
) -> None:
    rt = make_runtime(tmp_path, database_url, scene(http_server), clock)
    real = polling.fetch

    def buggy(rt, src, spec):
        if src.ref.name == "news":
            raise KeyError("boom")
        return real(rt, src, spec)

    monkeypatch.setattr(polling, "fetch", buggy)
    new = batch.fetch_batch(rt, one_batch(rt))
    assert len(new) == 1  # same's
    src = rows(rt)
    assert src["news"].last_error_kind == "internal" and "KeyError" in src["news"].last_error
    assert src["news"].claimed_until is None and src["news"].consecutive_failures == 1
    assert src["same"].last_error is None and src["same"].items_seen == 1
    assert src["broken"].last_error_kind == "http_500"


def test_a_killed_batch_is_claimed_again_after_its_lease(
    tmp_path, database_url, http_server: TestServer, clock: Clock
) -> None:
    rt = make_runtime(tmp_path, database_url, scene(http_server), clock)
    one_batch(rt)  # claimed, and the worker that took the batch dies before any poll
    assert batch.dispatch_batches(rt) == []  # held by their leases
    clock.advance(rt.settings.lease_seconds + 1)
    again = one_batch(rt)
    assert len(batch.fetch_batch(rt, again)) == 2
    assert all(s.claimed_until is None for s in rows(rt).values())


def test_a_slow_source_holds_up_no_other_sources_outcome(
    tmp_path, database_url, http_server: TestServer, clock: Clock
) -> None:
    release, answered = threading.Event(), threading.Event()

    def slow(request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        release.wait(20)  # until the fast source's items are through (or 20 s)
        answered.set()
        return 500, {}, b"late"

    config = scene(http_server)
    http_server.routes["/broken.xml"] = slow
    rt = make_runtime(tmp_path, database_url, config, clock)
    seen: list[tuple[int, bool, int]] = []

    def on_items(ids: list[int]) -> None:
        src = rows(rt)
        recorded = sum(src[name].claimed_until is None for name in ("same", "news"))
        seen.append((len(ids), answered.is_set(), recorded))
        release.set()

    new = batch.fetch_batch(rt, one_batch(rt), on_items=on_items)
    # same's item and news's, gathered into one call (two, when they end HOLD_SECONDS apart)
    assert len(new) == 2 and sum(n for n, _, _ in seen) == 2
    # the first changed sources' items came on, their rows recorded, while the slow source
    # was still waiting for its answer
    ids, slow_answered, recorded = seen[0]
    assert not slow_answered and recorded >= ids >= 1
    assert rows(rt)["broken"].last_error_kind == "http_500"


def spread_scene(
    server: TestServer, n: int, hold_until: int = 1, pause: float = 0.0
) -> tuple[str, list[int]]:
    """n sources on hosts of their own; each feed request is held until `hold_until` of
    them are in the server at once (or 10 s), and `pause` seconds more, then answered
    200. Returns the config and [in flight, peak]."""
    counts = [0, 0]
    lock, crowd = threading.Lock(), threading.Condition()

    def feed(request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        with lock:
            counts[0] += 1
            counts[1] = max(counts[1], counts[0])
        with crowd:
            crowd.notify_all()
            crowd.wait_for(lambda: counts[1] >= hold_until, timeout=10)
        time.sleep(pause)
        with lock:
            counts[0] -= 1
        return 200, RSS, rss(("Item", "http://example.test/item")).encode()

    lines = []
    for i in range(n):
        server.routes[f"/feed/{i}.xml"] = feed
        url = server.url(f"/feed/{i}.xml", host=f"h{i}.batch.localhost")
        lines.append(f"  - {{name: s{i}, feed: '{url}', every: 5m, respect_robots: false}}")
    sources_yaml = "\n".join(lines)
    config = f"""
sources:
{sources_yaml}
allow_empty: true
fetch:
  allow_networks: ['.batch.localhost']
  min_interval: 0
"""
    return config, counts


def test_a_batch_of_fast_exchanges_keeps_to_one_thread(
    tmp_path, database_url, http_server: TestServer, clock: Clock, monkeypatch
) -> None:
    # each answer takes 50 ms, and no RAMP_SECONDS (made long here) passes without one
    # ending: the batch never adds a thread (all at once, they would all be in the server)
    monkeypatch.setattr(batch, "RAMP_SECONDS", 5.0)
    config, counts = spread_scene(http_server, 12, pause=0.05)
    rt = make_runtime(tmp_path, database_url, config, clock)
    ids = [i for planned, _ in batch.dispatch_batches(rt) for i in planned]
    assert len(ids) == 12
    assert len(batch.fetch_batch(rt, ids)) == 12
    assert counts[1] == 1  # the server never saw two of the batch's requests at once


def test_a_batch_of_slow_exchanges_spreads_up_to_its_thread_limit(
    tmp_path, database_url, http_server: TestServer, clock: Clock
) -> None:
    # the server answers nothing until 8 requests wait: only a batch that keeps adding
    # threads while none ends gets there, and the limit (8) holds with 4 sources more
    config, counts = spread_scene(http_server, 12, hold_until=8)
    rt = make_runtime(tmp_path, database_url, config, clock)
    assert rt.settings.fetch_batch_threads == 8
    ids = [i for planned, _ in batch.dispatch_batches(rt) for i in planned]
    assert len(batch.fetch_batch(rt, ids)) == 12
    assert counts[1] == 8
    assert all(s.items_seen == 1 and s.last_error is None for s in rows(rt).values())
