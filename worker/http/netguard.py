"""The SSRF guard: newswatch only talks to public addresses unless told otherwise.

Feed, page and webhook URLs come from config files and from links inside
fetched pages, so a hostile page could point us at `http://169.254.169.254/`
(cloud metadata), at the Redis next door, or at a name that resolves to one of
those. The check must happen on the address we actually connect to, at connect
time: checking a URL's host name up front and connecting later lets a DNS
rebinding answer slip through. So the connection classes below resolve the name
themselves, drop every resolved address that is not public (refusing when
none is left), and connect to the very address they checked. TLS keeps using
the host name (SNI, certificate, Host header), because urllib3 still believes
it is talking to that host.

Every request of a `requests.Session` with `GuardedAdapter` mounted goes through
this path, redirects included (each hop opens or reuses a connection from the
pool of its own host, and new connections are checked).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from worker.core.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Written out rather than left to `ipaddress.is_global` alone: its tables have
# changed between Python versions, and multicast counts as "global" there.
_BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches localhost on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",
        "::1/128",
        "::/96",  # IPv4-compatible (deprecated) forms
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, ...)
        "2001:db8::/32",
        "fc00::/7",  # unique local, includes fd00::/8 and fd00:ec2::254 (AWS metadata)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")

# Legacy IPv4 spellings that inet_aton (and so most resolvers) accept:
# 2130706433, 0x7f000001, 017700000001, 127.1, 0x7f.0.0.1 ...
_LEGACY_IPV4 = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$", re.I)


class BlockedAddressError(PermanentError):
    """A host resolved to an address the guard refuses.

    Deliberately not an OSError: urllib3 and requests would wrap an OSError
    into a retryable connection error, and a refusal is not worth retrying.
    """

    kind = "blocked_address"

    def __init__(self, host: str, address: str, reason: str | None = None) -> None:
        self.host = host
        self.address = address
        shown = host if host == address else f"{host} ({address})"
        reason = reason or "not a public address (add it to fetch.allow_networks to allow it)"
        super().__init__(f"refusing to connect to {shown}: {reason}")


@dataclass(frozen=True)
class AllowList:
    """The operator's exceptions: networks (CIDR or single addresses) and host names.

    A host name entry `intranet.example` allows exactly that name; `.corp.example`
    allows every name under corp.example. Names are matched before resolving,
    networks after.
    """

    networks: tuple[IPNetwork, ...] = ()
    hosts: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        return _parse_allow_list(tuple(entries))

    def allows_host(self, host: str) -> bool:
        host = _normalize_host(host)
        return host in self.hosts or any(host.endswith(s) for s in self.suffixes)

    def allows_address(self, ip: IPAddress) -> bool:
        candidates = [ip, *_embedded_ipv4(ip)]
        return any(
            c in net for c in candidates for net in self.networks if c.version == net.version
        )


@lru_cache(maxsize=64)
def _parse_allow_list(entries: tuple[str, ...]) -> AllowList:
    networks: list[IPNetwork] = []
    hosts: list[str] = []
    suffixes: list[str] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        name = _normalize_host(entry)
        if name.startswith("*."):
            name = name[1:]
        (suffixes if name.startswith(".") else hosts).append(name)
    return AllowList(tuple(networks), tuple(hosts), tuple(suffixes))


def _normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64).

    `::ffff:127.0.0.1` reaches 127.0.0.1 on a dual-stack socket, so each must be
    judged like the IPv4 address inside it.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _is_public(ip: IPAddress) -> bool:
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip.is_link_local:
        return False
    if ip.is_loopback or ip.is_private or not ip.is_global:
        return False
    return not any(ip in net for net in _BLOCKED_NETWORKS if net.version == ip.version)


def is_allowed_address(ip: str | IPAddress, allow_networks: Iterable[str] | AllowList = ()) -> bool:
    """May newswatch connect to this address?

    Public unicast addresses: yes. Loopback, private, link-local (metadata),
    CGNAT, multicast, unspecified, reserved and documentation ranges, and IPv6
    forms embedding any of those: only if the allow-list covers them. Host-name
    entries of the allow-list play no part here (see `AddressGuard.resolve`).
    """
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    allow = (
        allow_networks if isinstance(allow_networks, AllowList) else AllowList.parse(allow_networks)
    )
    if allow.allows_address(addr):
        return True
    # IPv6 scope ids (fe80::1%eth0) do not change the verdict
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        addr = ipaddress.IPv6Address(addr.compressed.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket: judge that address
        return _is_public(addr.ipv4_mapped)
    return _is_public(addr) and all(_is_public(v4) for v4 in _embedded_ipv4(addr))


AddrInfo = tuple[
    int, int, int, str, Any
]  # as socket.getaddrinfo: family, type, proto, canonname, sockaddr


class AddressGuard:
    """Resolves a host name and refuses it unless every address is allowed."""

    def __init__(self, allow_networks: Iterable[str] = ()) -> None:
        self.allow = AllowList.parse(allow_networks)

    def resolve(self, host: str, port: int) -> list[AddrInfo]:
        """The allowed addresses of `host`, to connect to in order.

        Every resolved address is checked and only allowed ones are returned,
        so a name answering with both a public and a private address is only
        ever reached on the public one. Raises BlockedAddressError when none is
        allowed, socket.gaierror when the name does not resolve.
        """
        name = _normalize_host(host)
        infos = _resolve(name, port)
        if self.allow.allows_host(name):
            return infos
        allowed = [i for i in infos if is_allowed_address(str(i[4][0]), self.allow)]
        if not allowed:
            raise BlockedAddressError(name, str(infos[0][4][0]) if infos else name)
        return allowed


def _resolve(name: str, port: int) -> list[AddrInfo]:
    literal = _literal_address(name)
    if literal is not None:
        return [_addrinfo(literal, port)]
    if name == "localhost" or name.endswith(".localhost"):
        # RFC 6761: always loopback, never sent to a DNS server
        return [_addrinfo(ipaddress.ip_address(a), port) for a in ("127.0.0.1", "::1")]
    return list(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM))


def _literal_address(name: str) -> IPAddress | None:
    """An address written in the URL, in any spelling; never asks DNS."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            # looks numeric but is not an address: fail like a resolver would,
            # without letting it fall through to a DNS query
            raise socket.gaierror(socket.EAI_NONAME, f"invalid address {name!r}") from None
    return None


def _addrinfo(ip: IPAddress, port: int) -> AddrInfo:
    if ip.version == 4:
        return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(ip), port))
    scope = int(ip.scope_id) if ip.scope_id and ip.scope_id.isdigit() else 0
    plain = ip.compressed.split("%")[0]
    return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (plain, port, 0, scope))


# --- urllib3 / requests plumbing ----------------------------------------------

# Called with every socket a guarded connection uses for a request, new or
# reused from the pool. The fetcher sets it to arm its overall deadline.
socket_hook: ContextVar[Callable[[socket.socket], None] | None] = ContextVar(
    "newswatch_socket_hook", default=None
)


def _notify_socket(sock: socket.socket | None) -> None:
    hook = socket_hook.get()
    if hook is not None and sock is not None:
        hook(sock)


class _GuardedConnectionMixin:
    """Replaces urllib3's connect step: resolve, check, connect to the checked address."""

    guard: AddressGuard  # set on the per-adapter subclass
    host: str
    port: int
    timeout: Any
    socket_options: Any
    source_address: Any
    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        try:
            infos = self.guard.resolve(self.host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        last_error: OSError | None = None
        for family, socktype, proto, _, sockaddr in infos:
            try:
                sock = self._connect_to(family, socktype, proto, sockaddr)
                # before any TLS handshake, so that a server dripping its
                # handshake is cut at the deadline too
                _notify_socket(sock)
                return sock
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from exc
            except OSError as exc:
                last_error = exc
        raise NewConnectionError(
            self,  # type: ignore[arg-type]
            f"Failed to establish a new connection: {last_error}",
        ) from last_error  # the fetcher names the cause (refused, unreachable) from it

    def _connect_to(self, family: int, socktype: int, proto: int, sockaddr: Any) -> socket.socket:
        sock = socket.socket(family, socktype, proto)
        try:
            for option in self.socket_options or ():
                sock.setsockopt(*option)
            if self.timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(self.timeout)
            if self.source_address:
                sock.bind(self.source_address)
            sock.connect(sockaddr)
        except BaseException:
            sock.close()
            raise
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _notify_socket(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _notify_socket(self.sock)  # a connection reused from the pool
        super().request(*args, **kwargs)  # type: ignore[misc]


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedAdapter(HTTPAdapter):
    """A requests transport whose every connection goes through an AddressGuard.

    Proxies are refused: through a proxy, the proxy resolves the name and the
    guard would only ever see the proxy's address.
    """

    # so that a pickled and restored adapter is still guarded (a tuple: the stubs make
    # it an instance attribute, so it cannot be annotated as a ClassVar here)
    __attrs__ = (*HTTPAdapter.__attrs__, "guard")

    def __init__(self, guard: AddressGuard, **kwargs: Any) -> None:
        self.guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_conn = type(
            "BoundGuardedHTTPConnection", (GuardedHTTPConnection,), {"guard": self.guard}
        )
        https_conn = type(
            "BoundGuardedHTTPSConnection", (GuardedHTTPSConnection,), {"guard": self.guard}
        )
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type(
                "GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}
            ),
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise BlockedAddressError(proxy, proxy, "proxies are not supported by the guarded fetcher")


def resolve_addresses(host: str, timeout: float) -> list[str]:
    """The addresses `host` resolves to, waiting at most `timeout` seconds: getaddrinfo
    has no timeout of its own, so it runs in a daemon thread, left behind when late (it
    keeps no process alive). Raises socket.gaierror (or another OSError) when the name
    does not resolve, TimeoutError when no answer came in time."""
    import threading

    answer: list[list[AddrInfo]] = []
    failure: list[OSError] = []

    def ask() -> None:
        try:
            answer.append(_resolve(_normalize_host(host), 0))
        except OSError as exc:
            failure.append(exc)

    thread = threading.Thread(target=ask, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if failure:
        raise failure[0]
    if not answer:
        raise TimeoutError(f"no answer within {timeout:g} s")
    return list(dict.fromkeys(str(info[4][0]) for info in answer[0]))
