"""The Celery app: queues, routes, beat schedule and the reliability settings.

The settings follow from "the database is the source of truth": tasks carry
only ids, are acknowledged after they finish (acks_late), go back to the
queue if their worker dies, and store no results.
"""

from __future__ import annotations

import functools
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterable
from typing import Any

from billiard.util import get_logger as multiprocessing_logger
from celery import Celery
from celery.signals import (
    beat_init,
    celeryd_init,
    setup_logging,
    worker_init,
    worker_process_init,
)
from kombu import Queue
from sqlalchemy.orm import configure_mappers

from worker.bootstrap import ProcessRuntime, Runtime
from worker.service.broker import QUEUES, broker_url_for, politeness_url
from worker.service.observability import setup_logging as our_setup_logging
from worker.service.startup import prepare_worker
from worker.service.supervisor import ensure_dies_with_parent
from worker.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "BATCH_IDS",
    "QUEUES",
    "NewswatchApp",
    "broker_url_for",
    "create_app",
    "enqueue",
    "enqueue_batch",
]

# row ids per message for the steps that take batches (parse, rules): a changed poll's
# item costs a share of one message and one task instead of one each, and a message
# stays small and quick to redo (a redelivered batch skips its finished rows by claim)
BATCH_IDS = 20


class NewswatchApp(Celery):
    """The Celery app and what its tasks need from the process that built it."""

    settings: Settings
    runtime: ProcessRuntime  # tasks call `self.app.runtime.get()`
    worker_main_pid: int | None = None  # set in a worker's main process, before its pool forks
    # a worker checks the config and migrates before its pool starts; `newswatch run`
    # does that once for both of its workers and starts them without
    startup_checks: bool = True
    command: str = "celery worker"  # how the refusals name the command


def enqueue(app: Celery, task: str, ids: Iterable[Any]) -> None:
    """Send follow-up messages to the task named `task`, one per row id. If the broker is
    down the rows stay pending in the database and the sweep sends them later, so a
    failure here loses nothing. By name: a process that only sends (the supervisor) has
    no tasks loaded, and where they are (a worker) Celery applies their options.

    Never with a countdown (an ETA): a worker holds such a message in memory, unacked,
    and when the broker goes away kombu's restore of it fails and takes the worker down
    (tests/faults: Redis down while enqueuing). Work that is not due yet waits in the
    database instead, and beat sends it when it is (tasks.dispatch_due)."""
    for row_id in ids:
        try:
            app.send_task(task, (row_id,), retry=True, retry_policy={"max_retries": 3})
        except Exception as exc:  # broker errors come in many types (kombu, redis, socket)
            log.warning("could not enqueue %s(%s), the sweep will: %s", task, row_id, exc)
            return


def enqueue_batch(app: Celery, task: str, ids: Iterable[Any], size: int = BATCH_IDS) -> None:
    """Like `enqueue`, but one message per `size` row ids (the task gets a list: see
    tasks.each_id). Each row is still claimed, done and failed on its own by the task;
    if the broker is down the rows stay pending and the sweep sends them later."""
    rows = list(ids)
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        try:
            app.send_task(task, (chunk,), retry=True, retry_policy={"max_retries": 3})
        except Exception as exc:  # broker errors come in many types (kombu, redis, socket)
            log.warning("could not enqueue %s(%s), the sweep will: %s", task, chunk, exc)
            return


def create_app(settings: Settings) -> NewswatchApp:
    """The app for `settings`; its tasks (worker/tasks.py) are loaded by name when a
    worker starts, so this module never imports them."""
    app = NewswatchApp("newswatch", broker=broker_url_for(settings), include=["worker.tasks"])
    app.settings = settings
    # fetchers on the broker's Redis share per-host limits and robots.txt across processes
    build = functools.partial(Runtime.build, politeness_url=politeness_url(settings))
    app.runtime = ProcessRuntime(settings, build)
    _configure(app, settings)
    _tie_processes(app)
    _prepare_workers(app)
    return app


def _prepare_workers(app: NewswatchApp) -> None:
    @celeryd_init.connect(weak=False)
    def prepare(sender: Any = None, instance: Any = None, options: Any = None, **_: Any) -> None:
        # the one place a worker is set up, whether `newswatch worker` or Celery's own
        # `celery -A worker worker` started it (worker/service/startup.py)
        if instance is None or instance.app is not app:
            return
        settings = prepare_worker(
            app.settings, options or {}, checks=app.startup_checks, command=app.command
        )
        app.settings = app.runtime.settings = settings  # the pool sized for a threads pool
        if settings.log_format == "json":
            instance.quiet = True  # the banner is not JSON


def _configure(app: Celery, settings: Settings) -> None:
    app.conf.update(
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="control",
        task_routes={
            "newswatch.dispatch_due": {"queue": "control"},
            "newswatch.sweep": {"queue": "control"},
            "newswatch.prune": {"queue": "control"},
            "newswatch.fetch_source": {"queue": "fetch"},
            "newswatch.fetch_batch": {"queue": "fetch"},
            "newswatch.parse_item": {"queue": "parse"},
            "newswatch.apply_rules": {"queue": "rules"},
            "newswatch.deliver": {"queue": "alerts"},
            "newswatch.outbox_tick": {"queue": "alerts"},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        worker_prefetch_multiplier=1,
        # prefork only (a threads pool ignores it): a child is replaced after this many
        # tasks, acks_late keeps the task it ends with; None (0 in settings) never
        worker_max_tasks_per_child=settings.max_tasks_per_child or None,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # keep trying: Redis restarts are routine
        broker_transport_options={
            # lost messages are recovered by the sweep from the database long before this
            "visibility_timeout": 3600,
            "socket_timeout": 30,
            "socket_connect_timeout": 10,
        },
        task_serializer="json",
        accept_content=["json"],
        enable_utc=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule=_beat_schedule(settings),
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
        # notes each tick in the broker's Redis for `newswatch health --beat`
        beat_scheduler="worker.service.beat_alive:HeartbeatScheduler",
        task_annotations=_time_limit_annotations(settings),
    )


def _beat_schedule(settings: Settings) -> dict[str, Any]:
    return {
        "dispatch-due-sources": {
            "task": "newswatch.dispatch_due",
            "schedule": settings.dispatch_seconds,
            "options": {"expires": max(settings.dispatch_seconds * 3, 3.0)},
        },
        "outbox": {  # due digests and operational notices
            "task": "newswatch.outbox_tick",
            "schedule": settings.tick_seconds,
            "options": {"expires": settings.tick_seconds * 3},
        },
        "sweep": {
            "task": "newswatch.sweep",
            "schedule": settings.sweep_seconds,
            "options": {"expires": settings.sweep_seconds * 2},
        },
        "retention": {  # rows past their retention, in small batches
            "task": "newswatch.prune",
            "schedule": settings.prune_seconds,
            "options": {"expires": settings.prune_seconds},
        },
    }


def _time_limit_annotations(settings: Settings) -> dict[str, dict[str, float]]:
    # poison work is bounded: past the soft limit the task gets an exception (and
    # records it), past the hard one the pool child is killed and replaced; either way
    # the row's lease lapses, the sweep retries it and the claim counts the attempt
    return {
        task: {"time_limit": hard, **({"soft_time_limit": soft} if soft else {})}
        for kind, soft, hard in settings.time_limits
        for task in _TIME_LIMITED[kind]
    }


_TIME_LIMITED = {
    "fetch": ("newswatch.fetch_source", "newswatch.fetch_batch"),
    "parse": ("newswatch.parse_item",),
    "rules": ("newswatch.apply_rules",),
    "deliver": ("newswatch.deliver", "newswatch.outbox_tick"),
}


def _tie_processes(app: NewswatchApp) -> None:
    """Signal receivers for this app's worker processes. Connected per app (and kept
    alive with it, weak=False) so that each knows its app without `current_app`."""

    @worker_init.connect(weak=False)
    def remember_main_process(sender: Any = None, **_: object) -> None:
        if sender is not None and sender.app is app:
            app.worker_main_pid = os.getpid()  # in the main process, before the pool forks
            if "prefork" in str(getattr(sender, "pool_cls", "")):
                _prepare_to_fork()

    @worker_process_init.connect(weak=False)
    def pool_child_dies_with_main(**_: object) -> None:
        # A pool child dies with the worker's main process, even when that one is
        # SIGKILLed: an orphan keeps its memory and database connections and nobody will
        # take its result. Celery asks the kernel for that too (SIGKILL, on Linux), but
        # only after the fork: a parent killed in between leaves an orphan, which the
        # parent check here ends. (The Runtime is dropped after any fork: ProcessRuntime.)
        if app.worker_main_pid is not None:
            ensure_dies_with_parent(signal.SIGKILL, app.worker_main_pid)

    @beat_init.connect(weak=False)
    def embedded_beat_dies_with_its_worker(sender: Any = None, **_: object) -> None:
        # `worker --beat` (as `run` starts it) forks beat as a process of its own, which
        # Celery does not tie to the worker: after a SIGKILL of the worker it would tick
        # forever. A standalone `newswatch beat` has no worker main process: left alone.
        main = app.worker_main_pid
        if sender is not None and sender.app is app and main is not None and os.getpid() != main:
            ensure_dies_with_parent(signal.SIGTERM, main)


# what a prefork worker's children use and its main process would not load by itself
_CHILDREN_USE = ("worker.articles.parsing", "worker.matching.applying")


def _prepare_to_fork() -> None:
    """In a prefork worker's main process, before its pool (and beat) fork: load what the
    children will use, so that they share those pages copy-on-write instead of each
    loading its own copy, then move every object into the permanent generation
    (gc.freeze): a collection in a child then does not write to, and so copy, each page
    of the parent's heap. Measured in docs/load.md, "Memory at idle"."""
    for name in _CHILDREN_USE:
        importlib.import_module(name)
    _parse_pdeathsig_declaration()
    configure_mappers()  # the ORM's mappers, set up on first use otherwise: per child
    gc.collect()
    gc.freeze()


def _parse_pdeathsig_declaration() -> None:
    """Each pool child asks the kernel for its death signal through billiard, which, when
    cffi is loaded (billiard.util imports it if it is installed), declares prctl with
    `cffi.FFI().cdef(...)`: that imports cffi's C parser (pycparser and its tables) and
    builds one, which cffi keeps for the process. Done once here, before the fork, the
    parser's pages are shared by the children instead of built anew in each."""
    cffi: Any = sys.modules.get("cffi")
    if cffi is None:
        return
    cffi.FFI().cdef("int prctl (int __option, ...);")  # billiard.util.set_pdeathsig's


@setup_logging.connect
def _keep_our_logging(loglevel: int | str | None = None, **_: object) -> None:
    """A receiver here stops Celery from configuring logging itself: the root handler
    (text or JSON lines, worker/service/observability.py) stays the only one, and billiard's
    logger, which Celery would give a plain-text handler of its own, goes through it."""
    if not logging.getLogger().handlers:  # started without the CLI (`celery -A worker`)
        our_setup_logging(logging.getLevelName(loglevel) if isinstance(loglevel, int) else "INFO")
    mp = multiprocessing_logger()
    mp.handlers.clear()
    mp.propagate = True
    mp.setLevel(logging.ERROR)
