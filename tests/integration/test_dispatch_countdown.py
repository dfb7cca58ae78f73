"""The dispatch's countdowns reach the broker: each fetch message carries its due time
as its ETA (a real Redis; the message is read back from the queue, no worker runs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import select

from tests.helpers.pipeline import Clock, make_runtime
from worker.app import create_app, enqueue_later
from worker.settings import Settings
from worker.sources import batch, polling
from worker.store import models as m
from worker.tasks import FETCH, FETCH_BATCH


def test_each_fetch_is_sent_with_the_eta_of_its_due_time(tmp_path, redis_url, http_server):
    sources = "\n".join(
        f"  - {{name: s{i}, feed: '{http_server.url(f'/f{i}.xml')}', every: 1m}}" for i in range(4)
    )
    config = f"sources:\n{sources}\nallow_empty: true\n"
    clock = Clock()
    rt = make_runtime(tmp_path, f"sqlite:///{tmp_path / 'nw.db'}", config, clock)
    polling.dispatch_due(rt, limit=0)  # syncs the sources
    offsets = {"s0": -3.0, "s1": 1.5, "s2": 6.0, "s3": 30.0}
    with rt.store.session() as s:
        for src in s.scalars(select(m.Source)):
            src.next_fetch_at = clock.now + timedelta(seconds=offsets[src.name])
        names = {src.id: src.name for src in s.scalars(select(m.Source))}
    plan = polling.dispatch_plan(rt, ahead=10.0)
    assert {names[i]: delay for i, delay in plan} == {"s0": 0.0, "s1": 1.5, "s2": 6.0}

    app = create_app(
        Settings.from_env({"REDIS_URL": redis_url, "NEWSWATCH_DATA_DIR": str(tmp_path)})
    )
    before = datetime.now(UTC)
    enqueue_later(app, FETCH, plan)
    after = datetime.now(UTC)
    queued = [json.loads(raw) for raw in redis.Redis.from_url(redis_url).lrange("fetch", 0, -1)]
    etas = {}
    for message in queued:
        assert message["headers"]["task"] == FETCH
        (source_id,) = message["headers"]["argsrepr"].strip("(),").split(",")[:1]
        eta = message["headers"]["eta"]
        etas[names[int(source_id)]] = None if eta is None else datetime.fromisoformat(eta)
    assert set(etas) == {"s0", "s1", "s2"}
    assert etas["s0"] is None  # due already: at once
    for name, delay in (("s1", 1.5), ("s2", 6.0)):
        eta = etas[name]
        assert eta is not None
        assert before + timedelta(seconds=delay) <= eta <= after + timedelta(seconds=delay)


def test_each_fetch_batch_is_sent_with_the_eta_of_its_last_due_time(
    tmp_path, redis_url, http_server
):
    sources = "\n".join(
        f"  - {{name: s{i}, feed: '{http_server.url(f'/f{i}.xml')}', every: 1m}}" for i in range(5)
    )
    config = f"sources:\n{sources}\nallow_empty: true\n"
    clock = Clock()
    rt = make_runtime(tmp_path, f"sqlite:///{tmp_path / 'nw.db'}", config, clock)
    polling.dispatch_due(rt, limit=0)  # syncs the sources
    offsets = {"s0": -3.0, "s1": 0.0, "s2": 1.5, "s3": 2.0, "s4": 30.0}
    with rt.store.session() as s:
        for src in s.scalars(select(m.Source)):
            src.next_fetch_at = clock.now + timedelta(seconds=offsets[src.name])
        names = {src.id: src.name for src in s.scalars(select(m.Source))}
    plan = batch.dispatch_batches(rt, ahead=10.0)  # the default span: 1 s
    assert [(sorted(names[i] for i in ids), delay) for ids, delay in plan] == [
        (["s0", "s1"], 0.0),
        (["s2", "s3"], 2.0),
    ]

    app = create_app(
        Settings.from_env({"REDIS_URL": redis_url, "NEWSWATCH_DATA_DIR": str(tmp_path)})
    )
    before = datetime.now(UTC)
    enqueue_later(app, FETCH_BATCH, plan)
    after = datetime.now(UTC)
    queued = [json.loads(raw) for raw in redis.Redis.from_url(redis_url).lrange("fetch", 0, -1)]
    assert [message["headers"]["task"] for message in queued] == [FETCH_BATCH] * 2
    etas = {message["headers"]["argsrepr"]: message["headers"]["eta"] for message in queued}
    first, second = (repr(([*ids],)) for ids, _ in plan)
    assert etas[first] is None  # due already: at once
    eta = datetime.fromisoformat(etas[second])
    assert before + timedelta(seconds=2.0) <= eta <= after + timedelta(seconds=2.0)
