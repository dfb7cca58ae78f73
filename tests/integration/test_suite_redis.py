"""The suite's Redis fixtures leave a developer's Redis alone.

`redis_url` flushes the database it hands out. It used to take database 1-15 of
whatever listened on 127.0.0.1:6379, so a developer's own data there was erased by
running the tests. Now the tests start a redis-server of their own; this test puts a
key in every database 1-15 of the Redis on 127.0.0.1:6379, runs a few tests using
`redis_url` in a pytest subprocess, and checks every key is still there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests.helpers.servers import HOST, redis_binary

SHARED_PORT = 6379
REPO = Path(__file__).resolve().parents[2]

# Run by the inner pytest with the suite's conftest as a plugin: each test takes a
# database from `redis_url` (flushed before and after) and writes to it.
INNER_TESTS = """
import os

import pytest
import redis


@pytest.mark.parametrize("n", range(3))
def test_writes_to_its_redis(redis_url, n):
    with open(os.environ["INNER_URLS"], "a") as out:
        out.write(redis_url + "\\n")
    client = redis.Redis.from_url(redis_url)
    client.set("inner", n)
    assert client.get("inner") == str(n).encode()
    client.close()
"""


@pytest.fixture
def shared_redis() -> None:
    """Skips the test when no usable Redis listens on 127.0.0.1:6379 (nothing to protect)."""
    client = redis.Redis(host=HOST, port=SHARED_PORT, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.skip(f"no usable Redis on {HOST}:{SHARED_PORT} to protect ({e})")
    finally:
        client.close()


@pytest.mark.skipif(redis_binary() is None, reason="no redis-server binary for a private Redis")
def test_redis_fixtures_leave_the_redis_on_6379_alone(tmp_path: Path, shared_redis: None) -> None:
    key = f"newswatch-test-canary-{uuid.uuid4().hex}"
    clients = [redis.Redis(host=HOST, port=SHARED_PORT, db=db) for db in range(1, 16)]
    try:
        for client in clients:
            client.set(key, "a developer's data", ex=600)  # gone by itself if we are killed
        (tmp_path / "test_inner.py").write_text(INNER_TESTS)
        urls = tmp_path / "urls.txt"
        env = {k: v for k, v in os.environ.items() if k != "NEWSWATCH_TEST_REDIS_URL"}
        env |= {"PYTHONPATH": str(REPO), "INNER_URLS": str(urls)}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "tests.conftest",
             "-p", "no:cacheprovider", "test_inner.py"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        used = urls.read_text().split()
        assert len(used) == 3
        wiped = [db for db, client in enumerate(clients, 1) if client.get(key) is None]
        assert wiped == [], f"the tests erased data in database(s) {wiped} of :{SHARED_PORT}"
        assert all(urlsplit(u).port != SHARED_PORT for u in used), used
    finally:
        for client in clients:
            client.delete(key)
            client.close()
