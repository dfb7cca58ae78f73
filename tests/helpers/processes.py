"""Real newswatch processes for end-to-end and fault tests.

`NewswatchProcesses` starts `newswatch worker` / `beat` / `run` as child
processes with an environment of their own, keeps their logs in files, and
stops them (SIGTERM, then SIGKILL) when the test ends. On a failing test the
logs are printed so the cause is visible in CI output.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from worker.store.db import Store

REPO = Path(__file__).resolve().parents[2]


def wait_for(
    predicate: Callable[[], Any], timeout: float, message: str, interval: float = 0.2
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for: {message}")
        time.sleep(interval)


NODNS = Path(__file__).parent / "nodns"  # its sitecustomize refuses host names


def _clean_environ() -> dict[str, str]:
    """This process's environment without newswatch's own settings (tests give theirs),
    and with no DNS: a child resolves only literal addresses and localhost."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEWSWATCH_", "REDIS_URL", "DATABASE_URL"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NODNS), env.get("PYTHONPATH")]))
    return env


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
    timeout: float = 120,
    input: bytes | None = None,
    text: bool = False,
) -> subprocess.CompletedProcess:
    """`newswatch ARGS` once, in a child process, with `env` as its newswatch settings."""
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        input=input,
        capture_output=True,
        cwd=cwd,
        env={**_clean_environ(), **(env or {})},
        timeout=timeout,
        text=text,
    )


class NewswatchProcesses:
    def __init__(self, workdir: Path, env: Mapping[str, str]):
        self.workdir = workdir
        self.env = {
            **_clean_environ(),
            "PYTHONUNBUFFERED": "1",
            "NEWSWATCH_TICK_SECONDS": "0.5",
            "NEWSWATCH_SWEEP_SECONDS": "2",
            "NEWSWATCH_REQUEUE_AFTER_SECONDS": "4",
            "NEWSWATCH_RETRY_BASE_SECONDS": "1",
            "NEWSWATCH_LEASE_SECONDS": "30",
            "NEWSWATCH_CONFIG_CHECK_SECONDS": "0.5",
            "NEWSWATCH_DATA_DIR": str(workdir / "data"),
            **env,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(
        self, name: str, *args: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """`newswatch ARGS` as a child process named `name`."""
        return self.spawn(name, [sys.executable, "-m", "worker.cli", *args], extra_env)

    def spawn(
        self, name: str, command: list[str], extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Any command (Celery's own, say) with these processes' environment and logs."""
        log_path = self.workdir / f"{name}.log"
        self.logs[name] = log_path
        fh = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            command,
            cwd=self.workdir,
            env={**self.env, **(extra_env or {})},
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        self.procs[name] = proc
        return proc

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A one-off command (status, health...) with these processes' settings."""
        return run_cli(*args, env=self.env, cwd=self.workdir, timeout=timeout, text=True)

    def worker(
        self,
        name: str = "worker",
        concurrency: int = 2,
        pool: str = "prefork",
        queues: str | None = None,
    ) -> subprocess.Popen[bytes]:
        return self.start(
            name,
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            f"--hostname={name}@%h",
            *([f"--queues={queues}"] if queues else []),
        )

    def beat(self, name: str = "beat") -> subprocess.Popen[bytes]:
        return self.start(name, "beat")

    def check_alive(self) -> None:
        """Fail fast, with the log, when a process died instead of waiting for a timeout."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(
                    f"{name} exited with {proc.returncode}:\n{self.log(name)[-5000:]}"
                )

    def wait_for(self, predicate: Callable[[], Any], timeout: float, message: str) -> Any:
        def alive_and(p: Callable[[], Any] = predicate) -> Any:
            self.check_alive()
            return p()

        return wait_for(alive_and, timeout, message)

    def log(self, name: str) -> str:
        path = self.logs.get(name)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def __enter__(self) -> NewswatchProcesses:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """Stop every process; when the block failed, print their logs first (pytest shows
        a failing test's output)."""
        if exc_type is not None:
            print(self.dump_logs())
        self.stop_all()

    def dump_logs(self) -> str:
        return "\n".join(f"===== {n} =====\n{self.log(n)[-15000:]}" for n in self.logs)


class ProcessScene:
    """Newswatch processes on one database, with a look into it, for one fault test."""

    def __init__(self, workdir: Path, db_url: str, env: Mapping[str, str]):
        self.db_url = db_url
        self.procs = NewswatchProcesses(workdir, {"DATABASE_URL": db_url, **env})
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:  # the processes create the schema
            self._store = Store(self.db_url)
        return self._store

    def close(self, failed: bool) -> None:
        if failed:
            print(self.procs.dump_logs())
        self.procs.stop_all()
        if self._store is not None:
            self._store.dispose()
