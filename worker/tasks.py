"""Thin Celery tasks: load by id, call the pipeline, enqueue the next step after commit."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from worker.alerts import outbox
from worker.app import app
from worker.articles import parsing
from worker.bootstrap import Runtime
from worker.matching import applying
from worker.service import diskspace
from worker.service import sweep as sweeping
from worker.service.observability import log_context
from worker.settings import Settings
from worker.sources import polling

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
    global _runtime, _runtime_lock, _space
    _runtime, _space = None, None
    # after a fork the lock may have been copied held by a thread that no longer exists
    _runtime_lock = threading.Lock()


_space: diskspace.SpaceCheck | None = None


def _disk_full(rt: Runtime) -> list[Path]:
    """The SQLite database's folder when its disk is full (checked at most once a second
    per process). A server database's disk is its server's: its errors say so instead."""
    global _space
    if _space is None:
        db = rt.settings.sqlite_path
        _space = diskspace.SpaceCheck([db.parent] if db else [], rt.settings.min_free_bytes)
    return _space.full()


def _waits_for_disk(fn: Callable[..., None]) -> Callable[..., None]:
    """A task that writes to the database does nothing while its disk is full: its rows
    stay pending (no claim, no attempt spent) and the sweep sends them again once there
    is room. A full-disk error met anyway (a server database, a write bigger than the
    room left) ends the task with one line and a count, not a traceback per message:
    the steps record what they can and leave the row for later."""
    name = fn.__name__

    @functools.wraps(fn)
    def run(*args: Any) -> None:
        from worker.service import observability

        rt = runtime()
        if _disk_full(rt):
            # no count here: the counters are memory-mapped files in the data folder, and
            # a page first touched on a full disk kills the process (SIGBUS). The exporter
            # shows the outage (newswatch_disk_full, computed at scrape time).
            return
        try:
            fn(*args)
        except Exception as exc:
            if not diskspace.is_disk_full(exc):
                raise
            observability.count_unit_failure("task", name, "disk_full")
            log.error("%s%s: disk full, left for later: %s", name, args, exc)

    return run


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
@_waits_for_disk
def dispatch_due() -> None:
    _enqueue(fetch_source, polling.dispatch_due(runtime()))


@app.task(name="newswatch.fetch_source")
@_waits_for_disk
def fetch_source(source_id: int) -> None:
    notices: list[str] = []
    with log_context(source_id=source_id):
        _enqueue(parse_item, polling.fetch_source(runtime(), source_id, notices))
        _enqueue(deliver, notices)


@app.task(name="newswatch.parse_item")
@_waits_for_disk
def parse_item(item_id: int) -> None:
    notices: list[str] = []
    with log_context(item_id=item_id):
        try:
            article_id = parsing.parse_item(runtime(), item_id, notices)
        except SoftTimeLimitExceeded:
            # the lease stays, so the sweep retries it later; the claim counts attempts
            limit = parse_item.soft_time_limit
            parsing.record_item_error(runtime(), item_id, f"over the parse time limit ({limit}s)")
            return
        _enqueue(deliver, notices)  # an item quarantined on the way
        if article_id is not None:
            _enqueue(apply_rules, [article_id])


@app.task(name="newswatch.apply_rules")
@_waits_for_disk
def apply_rules(article_id: int) -> None:
    with log_context(article_id=article_id):
        _enqueue(deliver, applying.apply_rules(runtime(), article_id))


@app.task(name="newswatch.deliver")
@_waits_for_disk
def deliver(delivery_id: str) -> None:
    notices: list[str] = []
    with log_context(delivery_id=delivery_id):
        outbox.deliver(runtime(), delivery_id, notices)
        _enqueue(deliver, notices)


@app.task(name="newswatch.canary")
def canary(token: str, hop: int) -> None:
    """The liveness canary (worker/service/health.py): one hop per queue, control to alerts."""
    from worker.service import health

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
@_waits_for_disk
def outbox_tick() -> None:
    """Due digests out, new operational notices in (and on their way); each step fails alone."""
    _enqueue(deliver, outbox.tick(runtime()))


@app.task(name="newswatch.prune")
@_waits_for_disk
def prune() -> None:
    """Rows past their retention (worker/service/retention.py); each batch commits on its own, so
    a run cut short loses nothing and the next one goes on."""
    from worker.service import retention

    retention.prune(runtime())


@app.task(name="newswatch.sweep")
@_waits_for_disk
def sweep() -> None:
    found = sweeping.sweep(runtime())
    _enqueue(parse_item, found.items)
    _enqueue(apply_rules, found.articles)
    _enqueue(deliver, found.deliveries)
