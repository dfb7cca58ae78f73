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
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from types import FrameType

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):  # Linux only; elsewhere the children may outlive us
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()


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
            for name, argv in self.commands.items():
                self.procs[name] = subprocess.Popen(list(argv), preexec_fn=_child_setup)
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
