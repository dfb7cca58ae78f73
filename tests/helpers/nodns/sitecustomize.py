"""No DNS query from a child process a test starts: tests/helpers/processes.py puts this
folder on the child's PYTHONPATH, and Python imports `sitecustomize` at start.

Literal addresses and `localhost` are answered as usual (no query leaves the machine
for them); every other host name fails as an unknown name does, so code that resolves
one (check-config, a fetch) takes its "could not resolve" path instead of asking a
real DNS server. Self-contained: the tests package is not importable this early."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_real_getaddrinfo = socket.getaddrinfo


def _local(host: Any) -> bool:
    if host is None:
        return True
    name = (host.decode() if isinstance(host, bytes) else str(host)).strip("[]").rstrip(".")
    if name.lower() == "localhost" or name.lower().endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    return True


def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    if not _local(host):
        raise socket.gaierror(socket.EAI_NONAME, f"no DNS in tests: {host!r} not resolved")
    return _real_getaddrinfo(host, port, *args, **kwargs)


if __name__ == "sitecustomize":  # run at a child's start; imported by tests/conftest.py
    socket.getaddrinfo = getaddrinfo
