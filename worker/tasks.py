"""Thin Celery tasks: load by id, call the pipeline, enqueue the next step after commit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from worker import pipeline
from worker.celery_app import app
from worker.observability import log_context
from worker.runtime import Runtime
from worker.settings import Settings

log = logging.getLogger(__name__)

_runtime: Runtime | None = None
# A threads-pool worker runs many tasks in one process: they must share one Runtime (one
# engine, one fetcher whose per-host politeness only works if it is shared), not race to
# build several.
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    global _runtime
    rt = _runtime
    if rt is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = Runtime.build(Settings.from_env())
            rt = _runtime
    return rt


def reset_runtime() -> None:
    global _runtime, _runtime_lock
    _runtime = None
    # after a fork the lock may have been copied held by a thread that no longer exists
    _runtime_lock = threading.Lock()


def _enqueue(task: Any, ids: Iterable[Any]) -> None:
    """Send follow-up messages. If the broker is down the rows stay pending in the
    database and the sweep sends them later, so a failure here loses nothing."""
    for row_id in ids:
        try:
            task.apply_async((row_id,), retry=True, retry_policy={"max_retries": 3})
        except Exception as exc:  # broker errors come in many types (kombu, redis, socket)
            log.warning("could not enqueue %s(%s), the sweep will: %s", task.name, row_id, exc)
            return


@app.task(name="newswatch.dispatch_due")
def dispatch_due() -> None:
    _enqueue(fetch_source, pipeline.dispatch_due(runtime()))


@app.task(name="newswatch.fetch_source")
def fetch_source(source_id: int) -> None:
    notices: list[str] = []
    with log_context(source_id=source_id):
        _enqueue(parse_item, pipeline.fetch_source(runtime(), source_id, notices))
        _enqueue(deliver, notices)


@app.task(name="newswatch.parse_item")
def parse_item(item_id: int) -> None:
    notices: list[str] = []
    with log_context(item_id=item_id):
        try:
            article_id = pipeline.parse_item(runtime(), item_id, notices)
        except SoftTimeLimitExceeded:
            # the lease stays, so the sweep retries it later; the claim counts attempts
            limit = parse_item.soft_time_limit
            pipeline.record_item_error(runtime(), item_id, f"over the parse time limit ({limit}s)")
            return
        _enqueue(deliver, notices)  # an item quarantined on the way
        if article_id is not None:
            _enqueue(apply_rules, [article_id])


@app.task(name="newswatch.apply_rules")
def apply_rules(article_id: int) -> None:
    with log_context(article_id=article_id):
        _enqueue(deliver, pipeline.apply_rules(runtime(), article_id))


@app.task(name="newswatch.deliver")
def deliver(delivery_id: str) -> None:
    notices: list[str] = []
    with log_context(delivery_id=delivery_id):
        pipeline.deliver(runtime(), delivery_id, notices)
        _enqueue(deliver, notices)


@app.task(name="newswatch.canary")
def canary(token: str, hop: int) -> None:
    """The liveness canary (worker/health.py): one hop per queue, control to alerts."""
    from worker import health

    rt = runtime()
    client = health.broker_redis(rt.settings)
    if client is None:
        return
    try:
        following = health.canary_hop(rt, client, token, hop)
    finally:
        client.close()
    if following is not None:
        # the whole trip shares the deadline the health check set on the first hop
        expires = canary.request.expires
        if isinstance(expires, str):
            expires = datetime.fromisoformat(expires)
        canary.apply_async((token, hop + 1), queue=following, expires=expires)


@app.task(name="newswatch.outbox_tick")
def outbox_tick() -> None:
    """Due digests out, new operational notices in (and on their way); each step fails alone."""
    from worker import outbox

    _enqueue(deliver, outbox.tick(runtime()))


@app.task(name="newswatch.prune")
def prune() -> None:
    """Rows past their retention (worker/retention.py); each batch commits on its own, so
    a run cut short loses nothing and the next one goes on."""
    from worker import retention

    retention.prune(runtime())


@app.task(name="newswatch.sweep")
def sweep() -> None:
    found = pipeline.sweep(runtime())
    _enqueue(parse_item, found.items)
    _enqueue(apply_rules, found.articles)
    _enqueue(deliver, found.deliveries)
