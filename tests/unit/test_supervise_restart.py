"""`Supervisor` with real child processes: a child that exits unexpectedly is started
again, with a backoff, and the log says so; one that cannot start at all stops everything
with a fatal message; a signal stops them all."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from worker.service.supervisor import Supervisor

# a child that counts its starts in a file, then exits at once or after a while
CHILD = """
import sys, time, pathlib
p = pathlib.Path(sys.argv[1]); p.write_text(p.read_text() + "x" if p.exists() else "x")
code, linger = int(sys.argv[2]), float(sys.argv[3])
if len(p.read_text()) >= int(sys.argv[4]):  # from this start on it stays up
    time.sleep(3600)
time.sleep(linger)
sys.exit(code)
"""


def child(tmp_path: Path, name: str, code: int, linger: float, stays_up_from: int) -> list[str]:
    return [sys.executable, "-c", CHILD, str(tmp_path / name), str(code), str(linger),
            str(stays_up_from)]  # fmt: skip


def starts(tmp_path: Path, name: str) -> int:
    path = tmp_path / name
    return len(path.read_text()) if path.exists() else 0


def stop_when(sup: Supervisor, done: Callable[[], bool], timeout: float = 60) -> threading.Thread:
    def watch() -> None:
        event = threading.Event()
        for _ in range(int(timeout / 0.1)):
            if done():
                break
            event.wait(0.1)
        os.kill(os.getpid(), signal.SIGTERM)  # what an operator's `kill` does

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_child_that_exits_is_restarted_with_backoff(tmp_path, caplog):
    # exits 3 times (the "Unrecoverable error" of a worker whose broker refused writes),
    # then stays up; the other child is left alone throughout
    sup = Supervisor(
        {"flaky": child(tmp_path, "flaky", 1, 0, 4), "steady": child(tmp_path, "steady", 0, 0, 1)},
        grace=5, restart_delay=0.1, max_restart_delay=0.4, stable_after=30, start_attempts=5,
    )  # fmt: skip
    caplog.set_level(logging.INFO, logger="worker.service.supervisor")
    stop_when(sup, lambda: starts(tmp_path, "flaky") >= 4)
    assert sup.run() == 0  # stopped by the signal, not by the child
    assert starts(tmp_path, "flaky") == 4 and starts(tmp_path, "steady") == 1
    restarts = [r.getMessage() for r in caplog.records if "restarting it in" in r.getMessage()]
    assert len(restarts) == 3
    assert "the flaky worker exited with code 1 unexpectedly" in restarts[0]
    # the delay doubles per quick exit, up to its cap
    assert [r.split("restarting it in ")[1] for r in restarts] == ["0.1 s", "0.2 s", "0.4 s"]
    assert "flaky worker restarted (start 4)" in caplog.text


def test_a_child_that_cannot_start_at_all_is_fatal(tmp_path, caplog):
    sup = Supervisor(
        {"broken": child(tmp_path, "broken", 2, 0.0, 99), "steady": child(tmp_path, "s", 0, 0, 1)},
        grace=5, restart_delay=0.05, max_restart_delay=0.1, stable_after=30, start_attempts=3,
    )  # fmt: skip
    assert sup.run() == 1
    assert starts(tmp_path, "broken") == 3
    assert "the broken worker cannot start: it exited with code 2" in caplog.text
    assert "3 times in a row" in caplog.text
    assert all(p.poll() is not None for p in sup.procs.values())  # the others were stopped


def test_a_child_that_ran_for_a_while_is_always_restarted(tmp_path, caplog):
    # once it has run for `stable_after`, quick exits later never make it "cannot start"
    sup = Supervisor(
        {"w": child(tmp_path, "w", 1, 0.5, 6)},
        grace=5, restart_delay=0.05, max_restart_delay=0.05, stable_after=0.3, start_attempts=2,
    )  # fmt: skip
    stop_when(sup, lambda: starts(tmp_path, "w") >= 6)
    assert sup.run() == 0
    assert starts(tmp_path, "w") == 6
    assert "cannot start" not in caplog.text
