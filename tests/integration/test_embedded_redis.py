"""The embedded broker: a real redis-server (worker/service/redis_binary.py), owned by newswatch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.helpers.processes import wait_for
from worker.service.embedded_redis import EmbeddedRedis, _alive
from worker.service.redis_binary import find_redis_server


def test_a_zombie_is_not_alive():
    """An exited child not yet reaped (a stale server the owner started itself) is gone:
    stopping it must not wait out the grace period for it."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(
        lambda: Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] == "Z", 10, "a zombie"
    )
    try:
        assert not _alive(child.pid)
        assert _alive(os.getpid())
    finally:
        child.wait()
    assert not _alive(child.pid)


def test_start_persist_and_stop(tmp_path):
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    assert url == f"redis+socket://{tmp_path / 'redis' / 'redis.sock'}"
    client = redis.Redis(unix_socket_path=str(server.socket))
    client.rpush("parse", b"task-1")
    pid = server.process.pid
    server.stop()
    assert not _alive(pid)
    # append-only file: what was queued is there after a restart
    server2 = EmbeddedRedis(tmp_path)
    server2.start()
    try:
        assert redis.Redis(unix_socket_path=str(server2.socket)).lrange("parse", 0, -1) == [
            b"task-1"
        ]
    finally:
        server2.stop()


def test_stale_server_from_a_dead_owner_is_replaced(tmp_path):
    # an owner that dies without cleaning up (simulated: a server whose pidfile remains)
    stale = EmbeddedRedis(tmp_path)
    stale.start()
    stale_pid = stale.process.pid
    stale.process = None  # forget it, as a crashed owner would
    fresh = EmbeddedRedis(tmp_path)
    fresh.start()
    try:
        assert not _alive(stale_pid)
        assert fresh.process.pid != stale_pid
        assert redis.Redis(unix_socket_path=str(fresh.socket)).ping()
    finally:
        fresh.stop()


def test_server_dies_with_an_owner_killed_by_sigkill(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; "
        "from worker.service.embedded_redis import EmbeddedRedis; "
        "s = EmbeddedRedis(Path(sys.argv[1])); s.start(); "
        "print(s.process.pid, flush=True); time.sleep(60)"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        server_pid = int(owner.stdout.readline())
        assert _alive(server_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        wait_for(lambda: not _alive(server_pid), 10, "embedded redis-server to exit with its owner")
    finally:
        if owner.poll() is None:
            owner.kill()


def test_newswatch_run_stops_its_redis_on_sigterm(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("allow_empty: true\nwatchlists:\n  - name: w\n    keywords: [x]\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEWSWATCH_", "REDIS_URL", "DATABASE_URL"))
    }
    env.update(NEWSWATCH_DATA_DIR=str(tmp_path / "data"), NEWSWATCH_CONFIG=str(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "run", "--concurrency=1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pidfile = tmp_path / "data" / "redis" / "redis.pid"
    try:
        wait_for(pidfile.exists, 60, "the embedded redis pidfile")
        redis_pid = int(wait_for(lambda: pidfile.read_text().strip(), 10, "a pid"))
        time.sleep(3)  # let the worker come up
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        wait_for(lambda: not _alive(redis_pid), 10, "the embedded redis to stop")
    finally:
        if proc.poll() is None:
            proc.kill()


def _foreign_redis(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A redis-server that is not ours: same binary, another socket."""
    sock = tmp_path / "other" / "o.sock"
    sock.parent.mkdir(parents=True)
    proc = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--unixsocket", str(sock),
         "--dir", str(sock.parent), "--save", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(sock.exists, 10, "the foreign redis socket")
    return proc, sock


def test_a_pid_file_naming_another_redis_server_leaves_it_alone(tmp_path):
    """The pid in redis.pid may by now be any process, another Redis included: only a
    redis-server whose command line names our socket is stopped as stale."""
    foreign, foreign_sock = _foreign_redis(tmp_path)
    try:
        (tmp_path / "data" / "redis").mkdir(parents=True)
        (tmp_path / "data" / "redis" / "redis.pid").write_text(f"{foreign.pid}\n")
        server = EmbeddedRedis(tmp_path / "data")
        server.start()
        try:
            assert _alive(foreign.pid)
            assert redis.Redis(unix_socket_path=str(foreign_sock)).ping()
            assert redis.Redis(unix_socket_path=str(server.socket)).ping()
        finally:
            server.stop()
    finally:
        foreign.kill()
        foreign.wait()


def test_a_stale_server_is_found_without_its_pid_file(tmp_path):
    stale = EmbeddedRedis(tmp_path)
    stale.start()
    stale_pid = stale.process.pid
    stale.process = None  # its owner is gone ...
    wait_for(stale.pidfile.exists, 10, "the pid file")
    stale.pidfile.unlink()  # ... and so is its pid file
    fresh = EmbeddedRedis(tmp_path)
    fresh.start()
    try:
        wait_for(lambda: not _alive(stale_pid), 10, "the stale server to stop")
    finally:
        fresh.stop()


def test_a_long_data_folder_gets_a_short_private_socket(tmp_path):
    """A socket path over sockaddr_un's ~104-108 bytes cannot be bound (a hang, or two
    folders truncated to one path: "Address already in use"): such a folder gets a short
    socket in a private directory, the same one for every process of that folder."""
    from worker.service.broker import broker_url_for
    from worker.settings import Settings

    base = tmp_path / ("long-folder-name-" * 5)
    folders = [base / "one" / "data", base / "two" / "data"]  # alike for 100+ bytes
    servers = [EmbeddedRedis(folder) for folder in folders]
    try:
        for server in servers:
            server.start()
        for folder, server in zip(folders, servers, strict=True):
            assert len(str(folder / "redis" / "redis.sock")) > 110
            assert len(str(server.socket)) <= 100
            assert redis.Redis(unix_socket_path=str(server.socket)).ping()
            info = server.socket.parent.stat()
            assert info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o700
            settings = Settings.from_env({"NEWSWATCH_DATA_DIR": str(folder)})
            assert broker_url_for(settings) == server.url
            # the append-only file stays in the data folder
            wait_for(lambda f=folder: (f / "redis" / "redis.pid").exists(), 10, "pid file")
        assert servers[0].socket != servers[1].socket
    finally:
        for server in servers:
            server.stop()
    assert not servers[0].socket.parent.exists()  # nothing left behind in /tmp


def test_a_short_socket_dir_that_is_not_private_is_refused(tmp_path, monkeypatch):
    from worker.service import embedded_redis

    monkeypatch.setattr(embedded_redis, "_RUNTIME_ROOT", tmp_path / "rt")
    shared = tmp_path / "rt" / f"newswatch-{os.getuid()}"
    shared.mkdir(parents=True, mode=0o755)
    shared.chmod(0o755)  # as another user's (or a careless) mkdir would leave it
    server = EmbeddedRedis(tmp_path / ("x" * 120))
    try:
        server.start()
    except embedded_redis.EmbeddedRedisError as exc:
        assert "not a private directory" in str(exc)
    else:
        server.stop()
        raise AssertionError("started on a socket in a directory others can enter")


def test_ping_is_true_only_for_a_pong(tmp_path):
    # the supervisor pings without a Redis client: a server that is still loading its
    # snapshot, one that closes at once, or no server at all is not up
    import socket
    import threading

    from worker.service.embedded_redis import ping

    path = tmp_path / "fake.sock"
    assert not ping(path)
    for reply, up in (
        (b"+PONG\r\n", True),
        (b"-LOADING Redis is loading\r\n", False),
        (b"", False),
    ):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(1)

        def answer(listener=listener, reply=reply):
            conn, _ = listener.accept()
            with conn:
                assert conn.recv(64) == b"*1\r\n$4\r\nPING\r\n"
                conn.sendall(reply)

        thread = threading.Thread(target=answer)
        thread.start()
        assert ping(path) is up
        thread.join(5)
        listener.close()
        path.unlink()
