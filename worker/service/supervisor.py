"""The process tree of `newswatch run`: start its workers, stop them all together.

`run` is one command for a laptop or a small box, but its work wants two kinds of
pool (a threads pool for the network-bound fetch and alerts queues, a prefork pool for
the CPU-bound rest), and a Celery worker has one pool. So `run` starts each worker as
a child process and supervises them:

- SIGTERM or SIGINT to `run` is passed on as SIGTERM to each worker's main process:
  Celery's warm shutdown (tasks in hand finish, reserved messages go back).
- A worker that exits on its own (a broker that refused writes on a full disk, the OOM
  killer, a crash) is started again, with a backoff, and the log says so: `run` mends
  itself. Only a worker that cannot start at all stops `run`, with a fatal message.
- The children sit in their own process group, so Ctrl-C in a terminal reaches only
  `run`, which drains them in order; and they get SIGTERM from the kernel if `run` dies
  without a word (SIGKILL), so no worker outlives it.
- The children's environment is built here, once (`child_environment`): this process's
  own plus what `run` decided (the config given by flag, the embedded broker's URL).
  Nothing in newswatch writes `os.environ`.
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
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


def child_environment(
    base: Mapping[str, str],
    *,
    config: Path | None = None,
    broker_url: str | None = None,
    metrics_dir: Path | None = None,
) -> dict[str, str]:
    """The environment of `run`'s workers: `base` (run's own), with the config path the
    command was given and the broker it started, so that each worker builds the same
    settings as `run` (worker/settings.py). The one place a child environment is built."""
    env = dict(base)
    if config is not None:
        env["NEWSWATCH_CONFIG"] = str(config)
    if broker_url is not None:
        env["NEWSWATCH_BROKER_URL"] = broker_url
    if metrics_dir is not None and not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # where the workers count
    return env


def run_in_child(fn: Callable[[], object]) -> int:
    """Run `fn` in a forked child and return its exit status (0 when it returns, the
    code of a SystemExit, 1 after printing any other exception). For `run`'s one-off
    steps (the config compiled and checked, the database migrated, the endpoints
    probed): what they import and build (alembic, the rule compiler, the probes' HTTP
    client) goes with the child instead of staying in the supervisor for its whole life
    (docs/load.md, "Memory at idle"). Call it before any thread is started."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child ends in os._exit, coverage never hears
        code = 1
        try:
            fn()
            code = 0
        except SystemExit as exc:
            if isinstance(exc.code, int) or exc.code is None:
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


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


@dataclass
class _Child:
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # monotonic
    starts: int = 0
    quick_exits: int = 0  # exits in a row, each within `stable_after` of its start
    ever_stable: bool = False  # it once ran for `stable_after`: it can start
    restart_at: float | None = None  # monotonic; while it is waiting to be restarted


class Supervisor:
    """Starts the commands and keeps them running until a signal asks it to stop.

    A child that exits without being asked (Celery's "Unrecoverable error" when its
    broker refuses writes, the OOM killer, a crash) is started again after a backoff
    that doubles per quick exit (`restart_delay` up to `max_restart_delay`), and the log
    says so each time: a service that must keep watching for months mends itself rather
    than wait for a person. Only a child that cannot start at all (it never stayed up
    for `stable_after` seconds, `start_attempts` times in a row) stops everything, with
    a fatal message: that is a broken install or config, which no waiting mends.
    `on_tick`, if given, is called about every `tick` seconds (the disk watch). `env` is
    the children's environment (`child_environment`; None: this process's)."""

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        grace: float = 90.0,
        *,
        restart_delay: float = 1.0,
        max_restart_delay: float = 60.0,
        stable_after: float = 30.0,
        start_attempts: int = 5,
        on_tick: Callable[[], None] | None = None,
        tick: float = 2.0,
        env: Mapping[str, str] | None = None,
    ):
        self.commands = commands
        self.grace = grace  # after SIGTERM, how long a worker may take to finish its tasks
        self.restart_delay, self.max_restart_delay = restart_delay, max_restart_delay
        self.stable_after, self.start_attempts = stable_after, start_attempts
        self.on_tick, self.tick = on_tick, tick
        self.env = None if env is None else dict(env)
        self.children = {name: _Child(list(argv)) for name, argv in commands.items()}
        self._stop_requested: int | None = None

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        return {n: c.proc for n, c in self.children.items() if c.proc is not None}

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_requested is None:
            self._stop_requested = signum
        else:  # a second Ctrl-C: do not wait for tasks in hand
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

    def run(self) -> int:
        """Start every command and keep them up until a signal, then stop them all; the
        exit code is 0 after a requested stop, 1 when a child could not start at all."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._setup = child_setup(os.getpid())
            for name in self.children:
                self._start(name)
            fatal = self._supervise()
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if fatal is not None:
            log.critical("%s", fatal)
            return 1
        return 0

    def _start(self, name: str) -> None:
        child = self.children[name]
        child.proc = subprocess.Popen(child.argv, preexec_fn=self._setup, env=self.env)
        child.started, child.restart_at = time.monotonic(), None
        child.starts += 1
        verb = "started" if child.starts == 1 else f"restarted (start {child.starts})"
        log.info("newswatch run: %s worker %s (pid %d)", name, verb, child.proc.pid)

    def _supervise(self) -> str | None:
        """Until a stop is requested: restart children that exit; returns a fatal message
        when one cannot start at all."""
        next_tick = time.monotonic()
        while self._stop_requested is None:
            now = time.monotonic()
            for name, child in self.children.items():
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        self._start(name)
                    continue
                assert child.proc is not None
                code = child.proc.poll()
                if code is None:
                    if not child.ever_stable and now - child.started >= self.stable_after:
                        child.ever_stable = True
                    continue
                fatal = self._exited(name, child, code, now)
                if fatal is not None:
                    return fatal
            if self.on_tick is not None and now >= next_tick:
                next_tick = now + self.tick
                try:
                    self.on_tick()
                except Exception:  # the watch must never stop the supervision
                    log.exception("newswatch run: periodic check failed")
            time.sleep(0.2)
        log.info("newswatch run: signal %d, stopping the workers", self._stop_requested)
        return None

    def _exited(self, name: str, child: _Child, code: int, now: float) -> str | None:
        ran = now - child.started
        if ran >= self.stable_after:
            child.ever_stable, child.quick_exits = True, 0
        child.quick_exits += 1
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if not child.ever_stable and child.quick_exits >= self.start_attempts:
            return (
                f"newswatch run: the {name} worker cannot start: it {how} after {ran:.1f} s, "
                f"{child.quick_exits} times in a row; see its messages above. Stopped."
            )
        delay = min(self.max_restart_delay, self.restart_delay * 2 ** (child.quick_exits - 1))
        log.error(
            "newswatch run: the %s worker %s unexpectedly after %.0f s; restarting it in %s s",
            name,
            how,
            ran,
            f"{delay:g}",
        )
        child.restart_at = now + delay
        return None

    def _stop_all(self) -> None:
        for child in self.children.values():
            child.restart_at = None
        procs = self.procs
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for name, proc in procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("newswatch run: the %s worker did not stop in time; killing it", name)
                proc.kill()
                proc.wait()
