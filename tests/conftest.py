"""Shared fixtures: real databases (SQLite always, PostgreSQL when reachable), Redis.

Tests that need a server carry a marker (`redis`, `postgres`) and are skipped
with the reason when the server is absent, instead of failing obscurely.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.helpers.httpserver import http_server, make_http_server  # noqa: F401
from tests.helpers.servers import throwaway_database
from tests.helpers.smtpserver import make_smtp_server, smtp_server  # noqa: F401

REDIS_URL = os.environ.get("NEWSWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379")
POSTGRES_URL = os.environ.get(
    "NEWSWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


HAVE_REDIS = _reachable(REDIS_URL, 6379)
HAVE_POSTGRES = _reachable(POSTGRES_URL, 5432)


# Tests that start real worker, beat, Redis or PostgreSQL processes share one xdist
# worker (one at a time; some check deadlines and memory of the processes they run),
# while the other worker takes everything else.
_PROCESS_DIRS = ("e2e", "faults")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name in _PROCESS_DIRS:
            item.add_marker(pytest.mark.xdist_group("processes"))
        if "redis" in item.keywords and not HAVE_REDIS:
            item.add_marker(pytest.mark.skip(reason=f"needs Redis at {REDIS_URL} (not reachable)"))
        if "postgres" in item.keywords and not HAVE_POSTGRES:
            item.add_marker(
                pytest.mark.skip(reason=f"needs PostgreSQL at {POSTGRES_URL} (not reachable)")
            )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with throwaway_database(POSTGRES_URL) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'newswatch.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'newswatch.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database index of its own, flushed before and after the test.

    The index is taken with a lock key, so pytest sessions running at the same time
    (several developers, or CI beside a developer) never share queues.
    """
    import redis

    lock_key, token = "newswatch-test-lock", f"{os.getpid()}-{uuid.uuid4().hex}"
    for _ in range(600):
        for db in range(1, 16):
            client = redis.Redis.from_url(f"{REDIS_URL}/{db}")
            if client.set(lock_key, token, nx=True, ex=900):
                break
            client.close()
        else:
            time.sleep(0.5)
            continue
        break
    else:
        pytest.fail("no free Redis database index for 5 minutes")
    url = f"{REDIS_URL}/{db}"
    client.flushdb()
    client.set(lock_key, token, ex=900)
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
