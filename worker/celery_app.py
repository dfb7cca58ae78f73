"""The Celery app: queues, routes, beat schedule and the reliability settings.

The settings follow from "the database is the source of truth": tasks carry
only ids, are acknowledged after they finish (acks_late), go back to the
queue if their worker dies, and store no results.
"""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import setup_logging, worker_process_init
from kombu import Queue

from worker.settings import Settings

QUEUES = ("control", "fetch", "parse", "rules", "alerts")


def broker_url_for(settings: Settings) -> str:
    if settings.broker_url:
        return settings.broker_url
    # the embedded Redis that `newswatch run` starts under the data dir
    return f"redis+socket://{settings.data_dir / 'redis' / 'redis.sock'}"


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


@worker_process_init.connect
def _fresh_runtime_after_fork(**_: object) -> None:
    # connections and pools must never cross a fork
    from worker import tasks

    tasks.reset_runtime()


@setup_logging.connect
def _keep_our_logging(loglevel: int | str | None = None, **_: object) -> None:
    """A receiver here stops Celery from configuring logging itself: the root handler
    (text or JSON lines, worker/observability.py) stays the only one, and billiard's
    logger, which Celery would give a plain-text handler of its own, goes through it."""
    from billiard.util import get_logger as multiprocessing_logger

    from worker.observability import setup_logging as our_setup

    if not logging.getLogger().handlers:  # started without the CLI (`celery -A ...`)
        our_setup(logging.getLevelName(loglevel) if isinstance(loglevel, int) else "INFO")
    mp = multiprocessing_logger()
    mp.handlers.clear()
    mp.propagate = True
    mp.setLevel(logging.ERROR)


app = create_app()
