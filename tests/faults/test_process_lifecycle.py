"""The process tree, with real processes: one `run` per data folder, nothing outlives its
parent, no worker waiting forever on a broker nobody serves, long data folders.

Faults are made from outside, as in production: a second `run` started by mistake,
kill -9 of a worker's or of `run`'s main process, a deep data folder.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests.helpers.processes import NewswatchProcesses, run_cli, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = """
sources:
  - name: nowhere
    feed: http://127.0.0.1:9/feed.xml
    every: 1h
watchlists:
  - name: w
    keywords: [troops]
fetch:
  allow_networks: [127.0.0.0/8]
"""


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "newswatch.yaml"
    path.write_text(CONFIG)
    return path


def _gone(pid: int) -> bool:
    """Exited (a zombie has exited too: only its parent's reaping is left)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _all_gone(pids: list[int]) -> bool:
    return all(_gone(pid) for pid in pids)


def _ready_workers(procs: NewswatchProcesses, name: str) -> int:  # one line per worker
    return procs.log(name).count(" ready.")


def test_nothing_outlives_a_worker_killed_by_sigkill(tmp_path):
    """SIGKILL of `run`'s prefork worker (the OOM killer's way): its children (pool
    processes and the beat it embeds) used to live on, beat ticking forever against a
    broker that `run` had stopped. Every child must end with it; `run` starts the
    worker again (and says so), and when `run` stops, its whole tree stops."""
    env = {"NEWSWATCH_CONFIG": str(_config(tmp_path))}
    with NewswatchProcesses(tmp_path, env) as procs:
        run = procs.start("run", "run", "--concurrency=2", "--fetch-concurrency=2")
        procs.wait_for(lambda: _ready_workers(procs, "run") >= 2, 120, "both workers ready")
        (cpu,) = [p for p in psutil.Process(run.pid).children() if "--pool=prefork" in p.cmdline()]
        # two pool processes and the embedded beat (a process of its own)
        children = procs.wait_for(
            lambda: len(kids := cpu.children()) >= 3 and kids, 30, "pool processes and beat"
        )
        tree = [p.pid for p in psutil.Process(run.pid).children(recursive=True)]
        os.kill(cpu.pid, signal.SIGKILL)
        wait_for(
            lambda: _all_gone([c.pid for c in children]),
            30,
            f"the children {[c.pid for c in children]} of the killed worker to exit",
        )
        # not a half-running `run`: the killed worker is started again, and the log says so
        procs.wait_for(lambda: _ready_workers(procs, "run") >= 3, 120, "the worker restarted")
        assert "the cpu worker was killed by signal 9 unexpectedly" in procs.log("run")
        assert run.poll() is None
        tree = [p.pid for p in psutil.Process(run.pid).children(recursive=True)]
        assert procs.stop("run") == 0
        wait_for(lambda: _all_gone(tree), 30, f"all of run's process tree {tree} to exit")


def test_a_second_run_in_the_same_data_folder_refuses_and_the_first_keeps_working(tmp_path):
    """The second `run` used to stop the first's Redis as "stale": the first then looped
    on a missing socket doing nothing. Now: one `run` per data folder (a lock), and a
    server is stopped only when its owner is provably dead."""
    env = {"NEWSWATCH_CONFIG": str(_config(tmp_path))}  # embedded Redis and SQLite
    data = tmp_path / "data"
    with NewswatchProcesses(tmp_path, env) as procs:
        first = procs.start("first", "run", "--concurrency=1", "--fetch-concurrency=2")
        procs.wait_for(lambda: _ready_workers(procs, "first") >= 2, 120, "both workers ready")
        redis_pid = int((data / "redis" / "redis.pid").read_text())

        second = procs.cli("run", "--concurrency=1", timeout=60)
        assert second.returncode == 1
        assert f"newswatch run is already running here (pid {first.pid}" in second.stderr
        assert psutil.pid_exists(redis_pid) and not _gone(redis_pid)
        assert int((data / "redis" / "redis.pid").read_text()) == redis_pid
        health = procs.cli("health", "--timeout", "60", timeout=90)
        assert health.returncode == 0, health.stdout + health.stderr  # still doing work

        # kill -9 of `run`: nothing of its tree stays, and its lock is free again
        tree = [p.pid for p in psutil.Process(first.pid).children(recursive=True)]
        assert redis_pid in tree and len(tree) >= 4  # redis, two workers, a pool child
        procs.stop("first", signal.SIGKILL)
        wait_for(lambda: _all_gone(tree), 120, f"run's process tree {tree} to exit")
        procs.start("third", "run", "--concurrency=1", "--fetch-concurrency=2")
        procs.wait_for(lambda: _ready_workers(procs, "third") >= 2, 120, "the third run ready")
        assert "already running" not in procs.log("third")


def test_run_works_in_a_long_data_folder(tmp_path):
    """A data folder whose socket path would not fit in sockaddr_un (~108 bytes) used to
    hang or fail with "Address already in use"."""
    data = tmp_path / ("a-rather-long-folder-name-" * 3) / ("and-another-one-" * 3) / "data"
    assert len(str(data / "redis" / "redis.sock")) > 110
    env = {"NEWSWATCH_CONFIG": str(_config(tmp_path)), "NEWSWATCH_DATA_DIR": str(data)}
    with NewswatchProcesses(tmp_path, env) as procs:
        procs.start("run", "run", "--concurrency=1", "--fetch-concurrency=2")
        procs.wait_for(lambda: _ready_workers(procs, "run") >= 2, 120, "both workers ready")
        health = procs.cli("health", "--timeout", "60", timeout=90)
        assert health.returncode == 0, health.stdout + health.stderr
        # the paths it uses, said at start
        assert f"data folder {data}" in procs.log("run")
        assert f"database sqlite:///{data / 'newswatch.db'}" in procs.log("run")


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_a_worker_or_beat_without_a_broker_says_what_to_do(tmp_path, command):
    env = {"NEWSWATCH_CONFIG": str(_config(tmp_path)), "NEWSWATCH_DATA_DIR": str(tmp_path)}
    run = run_cli(command, env=env, cwd=tmp_path, text=True, timeout=60)
    assert run.returncode == 2
    assert "REDIS_URL" in run.stderr and "newswatch run" in run.stderr


def test_a_worker_started_by_hand_counts_into_its_data_folder(tmp_path, redis_url):
    """prometheus_client reads its multiprocess folder from the environment only; a worker
    started without one starts again (same pid, same arguments) with it, so its counts
    reach the exporter, and nothing writes os.environ."""
    data = tmp_path / "data"
    env = {
        "NEWSWATCH_CONFIG": str(_config(tmp_path)),
        "NEWSWATCH_DATA_DIR": str(data),
        "NEWSWATCH_BROKER_URL": redis_url,
    }
    with NewswatchProcesses(tmp_path, env) as procs:
        proc = procs.worker(concurrency=1)
        procs.wait_for(lambda: _ready_workers(procs, "worker") >= 1, 120, "the worker ready")
        worker = psutil.Process(proc.pid)  # the same process, after it started again
        assert worker.environ().get("PROMETHEUS_MULTIPROC_DIR") == str(data / "metrics")
        assert worker.cmdline()[-4:] == ["worker", "--pool=prefork", "--concurrency=1",
                                         "--hostname=worker@%h"]  # fmt: skip
        assert (data / "metrics").is_dir()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_beat_refuses_a_bad_config_with_its_line(tmp_path, redis_url):
    """beat checks and migrates in a child it then lets go of: a bad config still stops
    it, with the file, the line and what is wrong, and no traceback."""
    config = tmp_path / "newswatch.yaml"
    config.write_text("sources:\n  - name: a\n    url: http://127.0.0.1:9/feed\n    every: soon\n")
    env = {
        "NEWSWATCH_CONFIG": str(config),
        "NEWSWATCH_DATA_DIR": str(tmp_path / "data"),
        "NEWSWATCH_BROKER_URL": redis_url,
    }
    run = run_cli("beat", env=env, cwd=tmp_path, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"{config}:4" in run.stderr, run.stderr
    assert "every" in run.stderr
    assert "Traceback" not in run.stderr
