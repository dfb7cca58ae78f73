"""Liveness: a canary task that passes through every queue and comes back.

`newswatch health` sends `newswatch.canary` to the control queue; each hop
checks the database from inside a worker, notes itself in the broker's Redis
and sends the next hop to the next queue (control -> fetch -> parse -> rules ->
alerts). The last hop marks the canary done. The command waits for that mark,
so exit 0 means: the broker takes messages, some worker consumes every queue,
and workers can reach the database, right now. `--queues q1,q2` sends the canary
through those queues only (the order given): the health of a worker that consumes
them, whatever happens to the others.

`--beat` asks instead whether beat ticks: its scheduler (worker/service/beat_alive.py)
refreshes a key in the broker's Redis at every tick.

The marks live in the broker's Redis (a hash per canary, expiring after ten
minutes) because every process can see it and it needs no schema change. A
broker that is not Redis has no place for the marks: the command says so.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from worker.service.broker import QUEUES, broker_url_for
from worker.settings import Settings

CANARY_TASK = "newswatch.canary"  # worker/tasks.py; sent by name, so no import of the tasks
KEY_PREFIX = "newswatch:canary:"
KEY_TTL_SECONDS = 600
BEAT_KEY = "newswatch:beat:alive"  # refreshed by beat's scheduler (worker/service/beat_alive.py)
BEAT_TTL_SECONDS = 600


def broker_redis(settings: Settings) -> Any | None:
    """A redis client for the broker, or None when the broker is not Redis."""
    return redis_for_broker_url(broker_url_for(settings))


def redis_for_broker_url(url: str) -> Any | None:
    """A redis client for a Celery broker URL, or None when it is not Redis."""
    if url.startswith("redis+socket://"):
        url = "unix://" + url[len("redis+socket://") :]
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def canary_hop(
    rt: Any, client: Any, token: str, hop: int, route: Sequence[str] = QUEUES
) -> str | None:
    """One hop, inside a worker: prove the database answers, record the hop. Returns the
    queue of the next hop on `route`, or None after the last."""
    rt.store.ping()
    key = KEY_PREFIX + token
    pipe = client.pipeline()
    pipe.hset(key, route[hop], f"{time.time():.6f}")
    if hop == len(route) - 1:
        pipe.hset(key, "done", "1")
    pipe.expire(key, KEY_TTL_SECONDS)
    pipe.execute()
    return route[hop + 1] if hop + 1 < len(route) else None


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    seconds: float
    reached: tuple[str, ...]  # the queues the canary passed through
    message: str


def check(
    app: Celery, settings: Settings, timeout: float, route: Sequence[str] = QUEUES
) -> HealthResult:
    """Send a canary through `app` along `route` (queues) and wait up to `timeout` seconds
    for it to come back."""
    client = broker_redis(settings)
    if client is None:
        return HealthResult(False, 0.0, (), "the broker is not Redis: no canary support")
    token = uuid.uuid4().hex
    started = time.monotonic()
    try:
        app.send_task(
            CANARY_TASK,
            (token, 0, list(route)),
            queue=route[0],
            expires=timeout,  # a canary nobody took in time must not run later
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 0.5},
        )
    except Exception as exc:  # broker errors come in many types (kombu, redis, socket)
        return HealthResult(False, 0.0, (), f"could not send the canary: {exc}")
    reached: tuple[str, ...] = ()
    last_error: Exception | None = None
    try:
        while time.monotonic() - started < timeout:
            try:
                marks = {k.decode(): v for k, v in client.hgetall(KEY_PREFIX + token).items()}
            except Exception as exc:  # Redis restarting: keep asking until the timeout
                marks, last_error = {}, exc
            else:
                last_error = None
            reached = tuple(q for q in route if q in marks)
            if "done" in marks:
                took = time.monotonic() - started
                return HealthResult(
                    True, took, reached, f"ok: canary through {' -> '.join(reached)} in {took:.2f}s"
                )
            time.sleep(0.1)
        where = f"last hop reached: {reached[-1]}" if reached else "no worker took it"
        if last_error is not None:
            where += f"; broker error: {last_error}"
        return HealthResult(
            False,
            time.monotonic() - started,
            reached,
            f"canary did not come back within {timeout:g}s ({where})",
        )
    finally:
        client.close()


def beat_alive(settings: Settings, max_age: float) -> HealthResult:
    """Whether beat's scheduler ticked within `max_age` seconds (by the broker's clock)."""
    client = broker_redis(settings)
    if client is None:
        return HealthResult(False, 0.0, (), "the broker is not Redis: no beat heartbeat")
    try:
        left = client.ttl(BEAT_KEY)  # seconds the last tick's key has to live; -2: no key
        holder = client.get(BEAT_KEY)
    except Exception as exc:  # broker errors come in many types (redis, socket)
        return HealthResult(False, 0.0, (), f"could not read beat's heartbeat: {exc}")
    finally:
        client.close()
    if left < 0 or holder is None:
        return HealthResult(False, 0.0, (), f"no beat has ticked in the last {BEAT_TTL_SECONDS}s")
    age = float(BEAT_TTL_SECONDS - left)
    who = holder.decode(errors="replace")
    if age > max_age:
        return HealthResult(False, age, (), f"beat ({who}) last ticked {age:.0f}s ago")
    return HealthResult(True, age, (), f"ok: beat ({who}) ticked {age:.0f}s ago")
