"""Thin Celery tasks: load by id, call the use case, enqueue the next step after commit.

The tasks are shared tasks: a worker's app (worker/app.py) loads this module by name
(`include`) and each task registers on it; a task finds its Runtime through its app.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from worker.alerts import sending
from worker.app import NewswatchApp, enqueue, enqueue_batch
from worker.bootstrap import Runtime
from worker.service import diskspace, health, outbox, retention
from worker.service import sweep as sweeping
from worker.service.observability import log_context
from worker.sources import batch, polling
from worker.tracking import diskfull, metrics

log = logging.getLogger(__name__)


def runtime(task: Task) -> Runtime:
    """The Runtime of this process, from the app the task is registered on."""
    app = task.app
    assert isinstance(app, NewswatchApp), "tasks run on an app from worker.app.create_app"
    return app.runtime.get()


def _disk_full(rt: Runtime) -> list[Path]:
    """The SQLite database's folder when its disk is full (checked at most once a second
    per process). A server database's disk is its server's: its errors say so instead."""
    if rt.space_check is None:
        db = rt.settings.sqlite_path
        rt.space_check = diskspace.SpaceCheck([db.parent] if db else [], rt.settings.min_free_bytes)
    return rt.space_check.full()


def _waits_for_disk(fn: Callable[..., None]) -> Callable[..., None]:
    """A task that writes to the database does nothing while its disk is full: its rows
    stay pending (no claim, no attempt spent) and the sweep sends them again once there
    is room. A full-disk error met anyway (a server database, a write bigger than the
    room left) ends the task with one line and a count, not a traceback per message:
    the steps record what they can and leave the row for later."""
    name = fn.__name__

    @functools.wraps(fn)
    def run(task: Task, *args: Any) -> None:
        if _disk_full(runtime(task)):
            # no count here: the counters are memory-mapped files in the data folder, and
            # a page first touched on a full disk kills the process (SIGBUS). The exporter
            # shows the outage (newswatch_disk_full, computed at scrape time).
            return
        try:
            fn(task, *args)
        except Exception as exc:
            if not diskfull.is_disk_full(exc):
                raise
            metrics.count_unit_failure("task", name, "disk_full")
            log.error("%s%s: disk full, left for later: %s", name, args, exc)

    return run


# Follow-up messages go out by task name through the app the task runs on (never a
# module-level task object: that would resolve through `current_app`, which a pool
# thread does not have).
FETCH_BATCH = "newswatch.fetch_batch"
FETCH, PARSE, RULES, DELIVER = (
    "newswatch.fetch_source",
    "newswatch.parse_item",
    "newswatch.apply_rules",
    "newswatch.deliver",
)


@shared_task(name="newswatch.dispatch_due", bind=True)
@_waits_for_disk
def dispatch_due(task: Task) -> None:
    rt = runtime(task)
    # what is due now, in batches (one message per batch, not per source), sent at once:
    # the dispatch tick (1 s) is the lateness bound, and no message waits in a worker
    # with an ETA (app.enqueue says why)
    plan = batch.dispatch_batches(rt)
    enqueue(task.app, FETCH_BATCH, [ids for ids, _ in plan])


@shared_task(name=FETCH_BATCH, bind=True)
@_waits_for_disk
def fetch_batch(task: Task, source_ids: list[int]) -> None:
    notices: list[str] = []
    with log_context(batch=len(source_ids)):
        # each source's new items go on as soon as they are stored, not after the batch
        batch.fetch_batch(
            runtime(task),
            source_ids,
            notices,
            on_items=lambda ids: enqueue_batch(task.app, PARSE, ids),
        )
        enqueue(task.app, DELIVER, notices)


# one source's poll: the messages of a release that sent one per source
@shared_task(name=FETCH, bind=True)
@_waits_for_disk
def fetch_source(task: Task, source_id: int) -> None:
    notices: list[str] = []
    with log_context(source_id=source_id):
        enqueue_batch(task.app, PARSE, polling.fetch_source(runtime(task), source_id, notices))
        enqueue(task.app, DELIVER, notices)


def each_id(ids: Any) -> list[Any]:
    """The row ids one message carries: a batch (a list: app.enqueue_batch), or one id (a
    message sent by a release before batches, still queued after an upgrade)."""
    return list(ids) if isinstance(ids, list | tuple) else [ids]


def _failed_alone(stage: str, row_id: Any, exc: Exception, note: Callable[[str], None]) -> None:
    """What one id of a batch raised past its use case (which records its own errors: this
    is a bug or the database failing on that row): noted on its row when that can be
    done, logged and counted; the batch goes on with its other ids."""
    metrics.count_unit_failure("task", stage, "internal")
    log.error("%s %s: internal error", stage, row_id, exc_info=exc)
    try:
        note(f"internal error: {type(exc).__name__}: {exc}"[:2000])
    except Exception as again:
        log.warning("%s %s: could not note the error: %s", stage, row_id, again)


def _each_alone(
    task: Task,
    stage: str,
    queue: str,
    key: str,
    ids: list[Any],
    step: Callable[[Any], None],
    note: Callable[[Any, str], None],
    over_limit: Callable[[Any], bool],
) -> None:
    """Run `step` on each id of a batch, each failing alone: an error escaping it is
    noted on that id's row (`note`) and the others go on. Past the soft time limit,
    `over_limit(id)` says whether to raise; the rest of the batch goes on in a message
    of its own (on `queue`) either way. A full disk stops the batch: the rest waits for
    room too (_waits_for_disk)."""
    for n, row_id in enumerate(ids):
        with log_context(**{key: row_id}):
            try:
                step(row_id)
            except SoftTimeLimitExceeded:
                again = over_limit(row_id)
                enqueue_batch(task.app, queue, ids[n + 1 :])
                if again:
                    raise
                return
            except Exception as exc:
                if diskfull.is_disk_full(exc):
                    raise
                _failed_alone(stage, row_id, exc, functools.partial(note, row_id))


@shared_task(name=PARSE, bind=True)
@_waits_for_disk
def parse_item(task: Task, item_ids: list[int] | int) -> None:
    """Parse a batch of items (or one: an older message), each claimed, done or failed on
    its own: one item's error never fails or drops another. Their articles go on to the
    rules in one message per batch."""
    # the parse and rules stages are imported where they run: the threads worker (fetch,
    # alerts) never loads the extractors; a prefork worker loads them before it forks
    # (worker/app.py, _prepare_to_fork)
    from worker.articles import parsing

    rt = runtime(task)
    notices: list[str] = []
    articles: list[int] = []

    def parse(item_id: int) -> None:
        article_id = parsing.parse_item(rt, item_id, notices)
        if article_id is not None:
            articles.append(article_id)

    def over_limit(item_id: int) -> bool:
        # the lease stays, so the sweep retries it later; the claim counts attempts
        limit = task.soft_time_limit
        parsing.record_item_error(rt, item_id, f"over the parse time limit ({limit}s)")
        return False

    def note(item_id: int, message: str) -> None:
        parsing.record_item_error(rt, item_id, message, kind="internal")

    try:
        _each_alone(
            task, "parse_item", PARSE, "item_id", each_id(item_ids), parse, note, over_limit
        )
    finally:
        enqueue(task.app, DELIVER, notices)  # items quarantined on the way
        enqueue_batch(task.app, RULES, articles)


@shared_task(name=RULES, bind=True)
@_waits_for_disk
def apply_rules(task: Task, article_ids: list[int] | int) -> None:
    """Match a batch of articles (or one: an older message), each claimed, done or failed
    on its own."""
    from worker.matching import applying

    rt = runtime(task)

    def match(article_id: int) -> None:
        enqueue(task.app, DELIVER, applying.apply_rules(rt, article_id))

    def note(article_id: int, message: str) -> None:
        applying.note_error(rt, article_id, message)

    # past the time limit, as before batches: the lease stays and the sweep retries it
    _each_alone(
        task,
        "apply_rules",
        RULES,
        "article_id",
        each_id(article_ids),
        match,
        note,
        over_limit=lambda _id: True,
    )


@shared_task(name=DELIVER, bind=True)
@_waits_for_disk
def deliver(task: Task, delivery_id: str) -> None:
    notices: list[str] = []
    with log_context(delivery_id=delivery_id):
        sending.deliver(runtime(task), delivery_id, notices)
        enqueue(task.app, DELIVER, notices)


@shared_task(name=health.CANARY_TASK, bind=True)
def canary(task: Task, token: str, hop: int, route: list[str] | None = None) -> None:
    """The liveness canary (worker/service/health.py): one hop per queue of `route`
    (every queue, control to alerts, when None: a canary sent before routes existed)."""
    rt = runtime(task)
    client = health.broker_redis(rt.settings)
    if client is None:
        return
    try:
        following = health.canary_hop(rt, client, token, hop, route or health.QUEUES)
    finally:
        client.close()
    if following is not None:
        # the whole trip shares the deadline the health check set on the first hop
        expires = task.request.expires
        if isinstance(expires, str):
            expires = datetime.fromisoformat(expires)
        task.apply_async((token, hop + 1, route), queue=following, expires=expires)


@shared_task(name="newswatch.outbox_tick", bind=True)
@_waits_for_disk
def outbox_tick(task: Task) -> None:
    """Due digests out, new operational notices in (and on their way); each step fails alone."""
    enqueue(task.app, DELIVER, outbox.tick(runtime(task)))


@shared_task(name="newswatch.prune", bind=True)
@_waits_for_disk
def prune(task: Task) -> None:
    """Rows past their retention (worker/service/retention.py); each batch commits on its own, so
    a run cut short loses nothing and the next one goes on."""
    retention.prune(runtime(task))


@shared_task(name="newswatch.sweep", bind=True)
@_waits_for_disk
def sweep(task: Task) -> None:
    found = sweeping.sweep(runtime(task))
    enqueue_batch(task.app, PARSE, found.items)
    enqueue_batch(task.app, RULES, found.articles)
    enqueue(task.app, DELIVER, found.deliveries)
