"""Keep tests on loopback: a fake resolver and a connect() recorder.

    from tests.helpers import netsafety

    fake_dns = netsafety.fake_dns  # use the fixture in this module

    def test_x(fake_dns):
        fake_dns.records["metadata.example"] = ["169.254.169.254"]
        ...
        assert fake_dns.connects == []            # nothing was even attempted

`socket.getaddrinfo` answers IP literals and `localhost` itself, names listed in
`records` with the given addresses, and refuses every other name (so no query
ever leaves the machine). `socket.socket.connect` records every destination and
refuses anything that is not loopback, so a test that would send a packet out
fails instead.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class FakeDNS:
    records: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)  # names passed to getaddrinfo
    connects: list[Any] = field(default_factory=list)  # sockaddrs passed to connect

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, *a: Any, **k: Any):
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        if name in self.records:
            addresses = self.records[name]
        elif name == "localhost":
            addresses = ["127.0.0.1"]
        else:
            try:
                ipaddress.ip_address(name.split("%")[0])
            except ValueError:
                raise socket.gaierror(
                    socket.EAI_NONAME, f"fake DNS: no record for {name}"
                ) from None
            addresses = [name]
        infos = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if ip.version == 4:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0))))
            else:
                infos.append(
                    (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port or 0), 0, 0))
                )
        return infos

    def loopback_connects(self) -> list[Any]:
        return [a for a in self.connects if _is_loopback(a)]


def _is_loopback(sockaddr: Any) -> bool:
    if not isinstance(sockaddr, tuple):
        return True  # AF_UNIX paths: local by definition
    try:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDNS]:
    dns = FakeDNS()
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        dns.connects.append(address)
        if not _is_loopback(address):
            raise AssertionError(f"test tried to connect to non-loopback {address!r}")
        real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield dns
