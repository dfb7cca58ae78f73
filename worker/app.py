"""The Celery app: queues, routes, beat schedule and the reliability settings.

The settings follow from "the database is the source of truth": tasks carry
only ids, are acknowledged after they finish (acks_late), go back to the
queue if their worker dies, and store no results.
"""

from __future__ import annotations

import logging
import os
import signal

from celery import Celery
from celery.signals import beat_init, setup_logging, worker_init, worker_process_init
from kombu import Queue

from worker.settings import Settings

QUEUES = ("control", "fetch", "parse", "rules", "alerts")


def broker_url_for(settings: Settings) -> str:
    if settings.broker_url:
        return settings.broker_url
    # the embedded Redis that `newswatch run` starts for the data dir
    from worker.service.embedded_redis import socket_path

    return f"redis+socket://{socket_path(settings.data_dir)}"


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    app = Celery("newswatch", broker=broker_url_for(settings), include=["worker.tasks"])
    app.conf.update(
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="control",
        task_routes={
            "newswatch.dispatch_due": {"queue": "control"},
            "newswatch.sweep": {"queue": "control"},
            "newswatch.prune": {"queue": "control"},
            "newswatch.fetch_source": {"queue": "fetch"},
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
        beat_schedule={
            "dispatch-due-sources": {
                "task": "newswatch.dispatch_due",
                "schedule": settings.tick_seconds,
                "options": {"expires": settings.tick_seconds * 3},
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
        },
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
        # poison work is bounded: past the soft limit the task gets an exception (and
        # records it), past the hard one the pool child is killed and replaced; either way
        # the row's lease lapses, the sweep retries it and the claim counts the attempt
        task_annotations={
            task: {"time_limit": hard, **({"soft_time_limit": soft} if soft else {})}
            for kind, soft, hard in settings.time_limits
            for task in _TIME_LIMITED[kind]
        },
    )
    return app


_TIME_LIMITED = {
    "fetch": ("newswatch.fetch_source",),
    "parse": ("newswatch.parse_item",),
    "rules": ("newswatch.apply_rules",),
    "deliver": ("newswatch.deliver", "newswatch.outbox_tick"),
}


_worker_main_pid: int | None = None


@worker_init.connect
def _remember_main_process(**_: object) -> None:
    global _worker_main_pid
    _worker_main_pid = os.getpid()  # in the main process, before the pool forks


@worker_process_init.connect
def _fresh_runtime_after_fork(**_: object) -> None:
    # A pool child dies with the worker's main process, even when that one is SIGKILLed:
    # an orphan keeps its memory and database connections and nobody will take its result.
    # Celery asks the kernel for that too (SIGKILL, on Linux), but only after the fork: a
    # parent killed in between leaves an orphan, which the parent check here ends.
    from worker.service.supervisor import ensure_dies_with_parent

    if _worker_main_pid is not None:
        ensure_dies_with_parent(signal.SIGKILL, _worker_main_pid)
    # connections and pools must never cross a fork
    from worker import tasks

    tasks.reset_runtime()


@setup_logging.connect
def _keep_our_logging(loglevel: int | str | None = None, **_: object) -> None:
    """A receiver here stops Celery from configuring logging itself: the root handler
    (text or JSON lines, worker/service/observability.py) stays the only one, and billiard's
    logger, which Celery would give a plain-text handler of its own, goes through it."""
    from billiard.util import get_logger as multiprocessing_logger

    from worker.service.observability import setup_logging as our_setup

    if not logging.getLogger().handlers:  # started without the CLI (`celery -A ...`)
        our_setup(logging.getLevelName(loglevel) if isinstance(loglevel, int) else "INFO")
    mp = multiprocessing_logger()
    mp.handlers.clear()
    mp.propagate = True
    mp.setLevel(logging.ERROR)


@beat_init.connect
def _embedded_beat_dies_with_its_worker(**_: object) -> None:
    # `worker --beat` (as `run` starts it) forks beat as a process of its own, which Celery
    # does not tie to the worker: after a SIGKILL of the worker it would tick forever. A
    # standalone `newswatch beat` has no worker main process and is left alone.
    from worker.service.supervisor import ensure_dies_with_parent

    if _worker_main_pid is not None and os.getpid() != _worker_main_pid:
        ensure_dies_with_parent(signal.SIGTERM, _worker_main_pid)


app = create_app()
