"""Beat's dispatch sends what is due at once, in batches, with no ETA: a message held for
later sits unacked in a worker's memory, and when the broker goes away kombu's restore of
it fails and takes the worker down (tests/faults: Redis down while enqueuing). A real
Redis; the messages are read back from the queue, no worker runs."""

from __future__ import annotations

import json
from datetime import timedelta

import redis
from sqlalchemy import select

from tests.helpers.pipeline import Clock, make_runtime
from worker.app import create_app, enqueue
from worker.settings import Settings
from worker.sources import batch, polling
from worker.store import models as m
from worker.tasks import FETCH_BATCH


def test_due_sources_go_at_once_in_batches_and_none_with_an_eta(tmp_path, redis_url, http_server):
    sources = "\n".join(
        f"  - {{name: s{i}, feed: '{http_server.url(f'/f{i}.xml')}', every: 1m}}" for i in range(5)
    )
    config = f"sources:\n{sources}\nallow_empty: true\n"
    clock = Clock()
    rt = make_runtime(tmp_path, f"sqlite:///{tmp_path / 'nw.db'}", config, clock)
    polling.dispatch_due(rt, limit=0)  # syncs the sources
    offsets = {"s0": -3.0, "s1": 0.0, "s2": -0.5, "s3": 1.5, "s4": 30.0}
    with rt.store.session() as s:
        for src in s.scalars(select(m.Source)):
            src.next_fetch_at = clock.now + timedelta(seconds=offsets[src.name])
        names = {src.id: src.name for src in s.scalars(select(m.Source))}
    plan = batch.dispatch_batches(rt)  # what tasks.dispatch_due sends
    assert sorted(names[i] for ids, _ in plan for i in ids) == ["s0", "s1", "s2"]  # due now
    assert all(delay == 0.0 for _, delay in plan)

    settings = Settings.from_env({"REDIS_URL": redis_url, "NEWSWATCH_DATA_DIR": str(tmp_path)})
    enqueue(create_app(settings), FETCH_BATCH, [ids for ids, _ in plan])
    queued = [json.loads(raw) for raw in redis.Redis.from_url(redis_url).lrange("fetch", 0, -1)]
    assert [message["headers"]["task"] for message in queued] == [FETCH_BATCH] * len(plan)
    assert [message["headers"]["eta"] for message in queued] == [None] * len(plan)
    # the rest is claimed on later ticks, when due: s3 at 1.5 s
    clock.advance(2)
    assert [names[i] for ids, _ in batch.dispatch_batches(rt) for i in ids] == ["s3"]


def test_beat_looks_for_due_sources_every_second_by_default(tmp_path):
    settings = Settings.from_env({"NEWSWATCH_DATA_DIR": str(tmp_path)})
    entry = create_app(settings).conf.beat_schedule["dispatch-due-sources"]
    assert entry["schedule"] == 1.0
    assert settings.tick_seconds == 10  # the outbox keeps its own, slower tick
    slower = Settings.from_env(
        {"NEWSWATCH_DATA_DIR": str(tmp_path), "NEWSWATCH_TICK_SECONDS": "0.5"}
    )
    assert slower.dispatch_seconds == 0.5  # never slower than the tick asked for
