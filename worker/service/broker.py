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
