"""Shared fixtures: real databases (SQLite always, PostgreSQL when reachable), Redis.

Tests that need a server carry a marker (`redis`, `postgres`) and are skipped
with the reason when the server is absent, instead of failing obscurely.

Redis is a redis-server of the session's own (one per xdist worker, on a free
127.0.0.1 port): the `redis_url` fixture flushes the databases it hands out, so it
must never be pointed at a Redis that holds someone's data unless they ask for it
with NEWSWATCH_TEST_REDIS_URL.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.helpers.httpserver import http_server, make_http_server  # noqa: F401
from tests.helpers.nodns.sitecustomize import getaddrinfo as no_dns_getaddrinfo
from tests.helpers.servers import HOST, RedisServer, redis_binary, throwaway_database
from tests.helpers.smtpserver import make_smtp_server, smtp_server  # noqa: F401

# Set only when the person running the tests names a Redis the tests may flush.
EXTERNAL_REDIS_URL = os.environ.get("NEWSWATCH_TEST_REDIS_URL") or None
REDIS_BINARY = redis_binary()
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


def _redis_missing() -> str | None:
    """Why the `redis` tests cannot run here, or None when they can."""
    if EXTERNAL_REDIS_URL is not None:
        if _reachable(EXTERNAL_REDIS_URL, 6379):
            return None
        return f"needs Redis at NEWSWATCH_TEST_REDIS_URL={EXTERNAL_REDIS_URL} (not reachable)"
    if REDIS_BINARY is None:
        return (
            "needs a redis-server binary (on PATH, or newswatch[embedded]'s) to start a "
            "private Redis, or NEWSWATCH_TEST_REDIS_URL naming a Redis the tests may flush"
        )
    return None


REDIS_MISSING = _redis_missing()
HAVE_REDIS = REDIS_MISSING is None
HAVE_POSTGRES = _reachable(POSTGRES_URL, 5432)


# Tests that start real worker, beat, Redis or PostgreSQL processes run one at a time per
# folder: e2e's on one xdist worker, faults' on another, so that at most two such trees
# share the machine (some check deadlines and memory of the processes they run); the
# rest fill in around them. Most of these tests wait on their processes' timers, so
# three workers on two cores keep the cores busier than two did (the suite: 825 s on
# -n 2 with one such group, 605 s on -n 3 with two, on this 2-core machine).
_PROCESS_DIRS = ("e2e", "faults")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name in _PROCESS_DIRS:
            item.add_marker(pytest.mark.xdist_group(f"processes-{item.path.parent.name}"))
        if "redis" in item.keywords and not HAVE_REDIS:
            item.add_marker(pytest.mark.skip(reason=REDIS_MISSING))
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


def _with_db(url: str, db: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis the `redis_url` fixture takes database indexes from.

    A redis-server of this session's own (no persistence, 127.0.0.1 only), started on
    first use and stopped at the end; NEWSWATCH_TEST_REDIS_URL instead, when set.
    """
    if EXTERNAL_REDIS_URL is not None:
        if not HAVE_REDIS:
            pytest.skip(REDIS_MISSING)
        yield EXTERNAL_REDIS_URL
        return
    if REDIS_BINARY is None:
        pytest.skip(REDIS_MISSING)
    with RedisServer(directory=tmp_path_factory.mktemp("redis")) as server:
        yield f"redis://{HOST}:{server.port}"


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database index of its own, flushed before and after the test.

    The index is taken with a lock key, so pytest sessions sharing a Redis named by
    NEWSWATCH_TEST_REDIS_URL (several developers, or CI beside a developer) never
    share queues; on the session's private server the first index is always free.
    """
    import redis

    lock_key, token = "newswatch-test-lock", f"{os.getpid()}-{uuid.uuid4().hex}"
    for _ in range(600):
        for db in range(1, 16):
            client = redis.Redis.from_url(_with_db(redis_server_url, db))
            if client.set(lock_key, token, nx=True, ex=900):
                break
            client.close()
        else:
            time.sleep(0.5)
            continue
        break
    else:
        pytest.fail("no free Redis database index for 5 minutes")
    url = _with_db(redis_server_url, db)
    client.flushdb()
    client.set(lock_key, token, ex=900)
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A command run in process (`worker.cli`) configures the root logger for its run: a
    handler on the stderr pytest captured for that test, and a level. Left behind, the
    handler writes later tests' records to a closed file ("--- Logging error ---", even
    from a server thread of another test) and the level changes what they log."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        # only plain stream handlers: pytest's own capture handlers come and go by phase
        if type(handler) is logging.StreamHandler and handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DNS query leaves a test: host names other than localhost fail as unknown names
    (child processes get the same from tests/helpers/nodns via their PYTHONPATH)."""
    monkeypatch.setattr(socket, "getaddrinfo", no_dns_getaddrinfo)
