"""The broker as every process sees it: the queues, and the URL to reach it."""

from __future__ import annotations

from worker.service.embedded_redis import socket_path
from worker.settings import Settings

# in the order the liveness canary passes through them (worker/service/health.py)
QUEUES = ("control", "fetch", "parse", "rules", "alerts")


def broker_url_for(settings: Settings) -> str:
    if settings.broker_url:
        return settings.broker_url
    # the embedded Redis that `newswatch run` starts for the data dir
    return f"redis+socket://{socket_path(settings.data_dir)}"


def politeness_url(settings: Settings) -> str | None:
    """The broker's Redis as redis-py reads it (`redis+socket://path` is kombu's form),
    where fetchers share per-host limits and robots.txt; None when the broker is not a
    Redis (then those stay per process)."""
    url = broker_url_for(settings)
    if url.startswith("redis+socket://"):
        return "unix://" + url.removeprefix("redis+socket://")
    if url.startswith(("redis://", "rediss://", "unix://")):
        return url
    return None
