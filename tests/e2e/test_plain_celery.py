"""Celery's own command, `celery -A worker worker`, is the same worker as `newswatch
worker`: the same refusal of a bad config, a migrated database, the metrics folder, JSON
logs (worker/service/startup.py, from Celery's `celeryd_init`). And `newswatch worker`
passes the flags it does not know to Celery.

Real processes, a Redis of each test's own on a Unix socket, SQLite in tmp_path."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers.processes import NewswatchProcesses, run_cli
from worker.app import create_app
from worker.service.embedded_redis import EmbeddedRedis
from worker.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.redis]

GOOD = """
sources:
  - name: local
    feed: http://127.0.0.1:9/feed.xml
    every: 1h
watchlists:
  - name: troops
    keywords: [troops]
    notify: [archive]
channels:
  - name: archive
    file: alerts.jsonl
fetch:
  allow_networks: [127.0.0.0/8]
"""

BAD = """
sources: []
watchlists: oops
"""

CELERY = [sys.executable, "-m", "celery", "-A", "worker", "worker"]


@pytest.fixture
def broker_url(tmp_path) -> Iterator[str]:
    """A Redis of this test's own (not the shared 6379: other sessions' workers)."""
    server = EmbeddedRedis(tmp_path / "broker")
    try:
        yield server.start()
    finally:
        server.stop()


def _env(tmp_path: Path, broker_url: str, config: str, **extra: str) -> dict[str, str]:
    path = tmp_path / "newswatch.yaml"
    path.write_text(config)
    return {
        "NEWSWATCH_CONFIG": str(path),
        "NEWSWATCH_DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": broker_url,
        **extra,
    }


def _refusal(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("newswatch: config"))
    return lines[start:]


def test_both_commands_refuse_a_bad_config_with_the_same_words(tmp_path, broker_url):
    env = _env(tmp_path, broker_url, BAD)
    ours = run_cli("worker", env=env, cwd=tmp_path, text=True, timeout=120)
    procs = NewswatchProcesses(tmp_path, env)
    celery = subprocess.run(
        CELERY, env=procs.env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert ours.returncode == celery.returncode == 1, celery.stderr
    assert _refusal(celery.stderr) == _refusal(ours.stderr)
    assert "watchlists" in _refusal(celery.stderr)[1]
    assert not (tmp_path / "data" / "newswatch.db").exists()  # refused before migrating


def test_plain_celery_migrates_counts_and_takes_the_canary(tmp_path, broker_url):
    env = _env(tmp_path, broker_url, GOOD, NEWSWATCH_LOG_FORMAT="json")
    data = tmp_path / "data"
    with NewswatchProcesses(tmp_path, env) as procs:
        celery = procs.spawn("celery", [*CELERY, "--concurrency=1", "--hostname=plain@%h"])
        procs.wait_for(
            lambda: procs.cli("health", "--timeout", "10").returncode == 0,
            120,
            "the canary through every queue of `celery -A worker worker`",
        )
        # the fresh database was migrated to the head revision
        with sqlite3.connect(data / "newswatch.db") as db:
            (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version
        # the worker started itself again (same pid) with a metrics folder to count into
        environ = psutil.Process(celery.pid).environ()
        assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(data / "metrics")
        assert (data / "metrics").is_dir()
        procs.stop("celery")
    lines = [line for line in procs.log("celery").splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line JSON: no banner
    assert any("celery worker: config" in r.get("message", "") for r in records)


def test_newswatch_worker_passes_celery_flags_through(tmp_path, broker_url):
    env = _env(tmp_path, broker_url, GOOD)
    with NewswatchProcesses(tmp_path, env) as procs:
        procs.start(
            "worker",
            "worker",
            "--hostname=flags@%h",
            "-E",
            "--max-tasks-per-child",
            "5",
            "--autoscale",
            "3,1",
        )
        app = create_app(Settings.from_env(procs.env))
        stats = procs.wait_for(lambda: app.control.inspect(timeout=2).stats(), 120, "stats")
        ((_, worker),) = stats.items()
        assert worker["pool"]["max-tasks-per-child"] == 5
        assert worker["autoscaler"]["max"] == 3
        # -E: the worker sends task events, seen here while the canary goes through
        succeeded = threading.Event()
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(
                conn, handlers={"task-succeeded": lambda _event: succeeded.set()}
            )
            listening = threading.Thread(
                target=receiver.capture, kwargs={"limit": None, "wakeup": False}, daemon=True
            )
            listening.start()
            assert procs.cli("health", "--timeout", "30").returncode == 0
            assert succeeded.wait(30), "no task-succeeded event: -E did not reach Celery"
            receiver.should_stop = True
            listening.join(10)


def test_other_commands_refuse_unknown_flags(tmp_path):
    result = run_cli("check-config", "--max-tasks-per-child", "5", cwd=tmp_path, text=True)
    assert result.returncode == 2
    assert "unrecognized arguments: --max-tasks-per-child 5" in result.stderr
