"""The process tree of `newswatch run`: start its workers, stop them all together.

`run` is one command for a laptop or a small box, but its work wants two kinds of
pool (a threads pool for the network-bound fetch and alerts queues, a prefork pool for
the CPU-bound rest), and a Celery worker has one pool. So `run` starts each worker as
a child process and supervises them:

- SIGTERM or SIGINT to `run` is passed on as SIGTERM to each worker's main process:
  Celery's warm shutdown (tasks in hand finish, reserved messages go back).
- A worker that exits on its own stops the others, and `run` exits non-zero: a
  half-running `run` that looks alive would be worse than a stopped one.
- The children sit in their own process group, so Ctrl-C in a terminal reaches only
  `run`, which drains them in order; and they get SIGTERM from the kernel if `run` dies
  without a word (SIGKILL), so no worker outlives it.
- One `run` per data folder: `InstanceLock` holds an flock on `<data>/newswatch.lock`
  for the supervisor's life. The kernel drops it however the process ends, so a free
  lock proves the previous owner is dead (a pid file alone proves nothing).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int, parent: int) -> bool:
    """Ask the kernel to send `sig` to this process when `parent` dies (Linux
    PR_SET_PDEATHSIG; it survives exec). If the parent died before we got here (the fork
    raced its death, and we were re-parented), exit at once. False where there is no
    prctl: the caller then falls back to `watch_parent`. Safe between fork and exec."""
    ok = False
    with contextlib.suppress(Exception):  # no prctl outside Linux
        ok = ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    if os.getppid() != parent:
        os._exit(1)
    return ok


def watch_parent(sig: int, parent: int, interval: float = 1.0) -> threading.Thread:
    """Where the kernel cannot do it: a daemon thread that sends `sig` to this process once
    it has been re-parented, i.e. once `parent` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), sig)

    thread = threading.Thread(target=watch, name="newswatch-parent-watch", daemon=True)
    thread.start()
    return thread


def ensure_dies_with_parent(sig: int, parent: int) -> None:
    """`die_with_parent`, or the watching thread where the kernel has no such request."""
    if not die_with_parent(sig, parent):
        watch_parent(sig, parent)


def child_setup(parent: int) -> Callable[[], None]:
    """The preexec_fn for a supervised child: dies with `parent`, own process group."""

    def setup() -> None:  # runs in the child between fork and exec: no threads here
        die_with_parent(signal.SIGTERM, parent)
        os.setpgrp()

    return setup


class AlreadyRunning(RuntimeError):
    def __init__(self, path: Path, pid: int | None):
        super().__init__(f"{path} is held by pid {pid or 'unknown'}")
        self.path, self.pid = path, pid


class InstanceLock:
    """An exclusive, non-blocking flock on one file, with the holder's pid written in it
    (for the message only: the lock, not the pid, is the proof). The descriptor is not
    inherited by children (PEP 446), so only this process holds the lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> InstanceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.path, self.holder()) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):  # gone, or the holder is between open and write
            return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # the lock goes with the descriptor; the file stays (no unlink race)

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Supervisor:
    def __init__(self, commands: Mapping[str, Sequence[str]], grace: float = 90.0):
        self.commands = commands
        self.grace = grace  # after SIGTERM, how long a worker may take to finish its tasks
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stop_requested: int | None = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_requested is None:
            self._stop_requested = signum
        else:  # a second Ctrl-C: do not wait for tasks in hand
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

    def run(self) -> int:
        """Start every command, wait until a signal or one exits, stop the rest; the exit
        code is 0 after a requested stop, else the first child's."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            setup = child_setup(os.getpid())
            for name, argv in self.commands.items():
                self.procs[name] = subprocess.Popen(list(argv), preexec_fn=setup)
                log.info("newswatch run: %s worker started (pid %d)", name, self.procs[name].pid)
            failed = self._wait_for_stop_or_exit()
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed is not None:
            name, code = failed
            log.error("newswatch run: the %s worker exited with %s; stopped the others", name, code)
            return code or 1
        return 0

    def _wait_for_stop_or_exit(self) -> tuple[str, int] | None:
        while self._stop_requested is None:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    return name, proc.returncode
            time.sleep(0.2)
        log.info("newswatch run: signal %d, stopping the workers", self._stop_requested)
        return None

    def _stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("newswatch run: the %s worker did not stop in time; killing it", name)
                proc.kill()
                proc.wait()
