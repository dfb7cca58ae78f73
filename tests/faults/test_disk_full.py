"""A full disk under `newswatch run`, with real processes: the data folder (SQLite, the
embedded Redis, beat's schedule, the metric files) is a 64 MB tmpfs that the test fills
with one big file and later frees.

Before the fix the embedded Redis refused every write ("MISCONF Errors writing to the
AOF file: No space left on device"), both Celery workers stopped with "Unrecoverable
error", `run` stopped, and freeing the space did nothing until someone restarted it.
Now: Redis stays writable, the processes stay up, the log says "disk full at PATH", and
once there is room every item is fetched and alerted exactly once, with a `disk_full`
notice naming the outage, and no manual step.

Needs root (to mount the tmpfs): skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from tests.faults.test_pipeline_faults import Feed, entry
from tests.helpers.httpserver import serve
from tests.helpers.processes import NewswatchProcesses
from worker.service.embedded_redis import socket_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZE_MB = 64


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a filesystem of its own, SIZE_MB big."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem for the data folder needs root")
    path = tmp_path / "data"
    path.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Write zeros into `path` until the filesystem refuses (ENOSPC)."""
    filler = path / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError:
            pass
        # the last bytes: what is left is smaller than a chunk
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 4096)
    assert os.statvfs(path).f_bavail == 0
    return filler


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def alert_titles(path: Path) -> Counter[str]:
    return Counter(d["article"]["title"] for d in lines(path) if "article" in d)


def notices(path: Path, event: str) -> list[dict]:
    return [d for d in lines(path) if d.get("event") == event]


def over(path: Path) -> list[dict]:
    return [d for d in notices(path, "disk_full") if d["title"].startswith("disk was full")]


def test_run_waits_out_a_full_disk_and_resumes_by_itself(tmp_path: Path, small_disk: Path):
    alerts = tmp_path / "alerts.jsonl"  # the channel's file is elsewhere: it is what we read
    with serve() as site:
        feed = Feed(site)
        feed.items.append(entry(0, site))
        config = tmp_path / "newswatch.yaml"
        config.write_text(
            f"""
sources:
  - {{name: s, feed: "{feed.url}", every: 1s}}
watchlists:
  - {{name: alpha, keywords: [Alpha], notify: [archive]}}
channels:
  - {{name: archive, file: "{alerts}"}}
notices:
  channel: archive
fetch:
  allow_networks: [127.0.0.0/8]
"""
        )
        env = {"NEWSWATCH_CONFIG": str(config), "NEWSWATCH_DATA_DIR": str(small_disk)}
        with NewswatchProcesses(tmp_path, env) as procs:
            run = procs.start("run", "run", "--concurrency=1", "--fetch-concurrency=2")
            procs.wait_for(lambda: alert_titles(alerts)["Alpha report 0"], 120, "first alert")
            # run's own children: the embedded redis-server and the two workers (their
            # pool processes and Redis's snapshot child come and go by design)
            children = {p.pid for p in psutil.Process(run.pid).children()}
            assert len(children) == 3

            # new items are published as the disk fills: some may be accepted (stored)
            # just before, and must then go on to alert after
            for i in (1, 2):
                feed.items.insert(0, entry(i, site))
            filler = fill(small_disk)
            procs.wait_for(
                lambda: f"disk full at {small_disk}" in procs.log("run"), 30, "disk full logged"
            )
            for i in (3, 4):  # published during the outage
                feed.items.insert(0, entry(i, site))

            # the broker stays writable: a snapshot fails, writes do not
            client = redis.Redis(unix_socket_path=str(socket_path(small_disk)), socket_timeout=5)
            try:

                def snapshot_failed() -> bool:
                    client.set("newswatch-test-disk-full", "1")  # MISCONF before the fix
                    return client.info("persistence")["rdb_last_bgsave_status"] == "err"

                procs.wait_for(snapshot_failed, 60, "a snapshot to fail on the full disk")
            finally:
                client.close()
            assert run.poll() is None
            assert children == {p.pid for p in psutil.Process(run.pid).children()}

            filler.unlink()  # space returns; nobody restarts anything
            for i in (5,):  # and the feed goes on
                feed.items.insert(0, entry(i, site))
            expected = {f"Alpha report {i}" for i in range(6)}
            procs.wait_for(lambda: set(alert_titles(alerts)) == expected, 90, "every item alerted")
            procs.wait_for(lambda: over(alerts), 30, "the disk_full notice naming the span")

            def settled() -> dict | None:  # every delivery made is sent and in the file
                report = json.loads(procs.cli("status", "--json").stdout)
                states = {k: n for k, n in report["deliveries"].items() if n}
                return report if states == {"sent": len(lines(alerts))} else None

            report = procs.wait_for(settled, 30, "every delivery sent")
            assert run.poll() is None
            assert children == {p.pid for p in psutil.Process(run.pid).children()}

        log = procs.log("run")
        assert alert_titles(alerts) == Counter(expected)  # each exactly once
        (notice,) = over(alerts)  # once, with the span of the outage
        assert f"disk was full at {small_disk} for " in notice["title"]
        assert " to " in notice["text"]
        # and at most one while it lasted (SQLite may find room for it in its log)
        assert len(notices(alerts, "disk_full")) <= 2
        assert "Unrecoverable error" not in log and "MISCONF" not in log
        assert "restarting it" not in log  # no worker had to be restarted either
        # nothing quarantined or dead for the outage: every item made it, once; the file
        # holds the six alerts and the notices, nothing else
        assert {k: n for k, n in report["items"].items() if n} == {"parsed": 6}, report["items"]
        assert report["outcomes"]["quarantined"] == 0 and report["outcomes"]["pending"] == 0
        assert len(lines(alerts)) == 6 + len(notices(alerts, "disk_full"))
        assert report["sources"][0]["consecutive_failures"] == 0
