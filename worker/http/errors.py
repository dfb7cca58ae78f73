"""FetchError, and how a requests/urllib3 failure is named after its real cause.

Every failed fetch is a `FetchError` with a `kind` the caller can act on (refused,
dns, tls, timeout, an HTTP status...), also when the failure happened while
fetching robots.txt; `outcome` is the label that sources and metrics record.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
from collections.abc import Iterator, Mapping
from typing import Literal

import requests
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from worker.core.errors import NewswatchError

ErrorKind = Literal[
    "refused",  # nothing listens on the port (or a firewall rejects)
    "dns",  # the host name does not resolve
    "tls",  # handshake or certificate failure
    "timeout",  # connect or read timeout, or the deadline passed
    "reset",  # the server closed or reset the connection mid-exchange
    "unreachable",  # no route to the network or host
    "connection",  # any other transport failure
    "bad_encoding",  # a compressed body that does not decompress
    "too_large",
    "blocked_address",
    "http_status",  # outcome http_<status>
    "too_many_redirects",
    "bad_scheme",
    "content_type",
    "robots_disallow",
    "invalid_url",
]

_PERMANENT_STATUSES = frozenset({404, 410})
_PERMANENT_KINDS = frozenset({"bad_scheme", "invalid_url", "blocked_address"})


class FetchError(NewswatchError):
    """A fetch that did not produce a usable response.

    `permanent` says retrying the same URL later is pointless (404, 410, a bad
    URL, a refused address); everything else may be retried, no sooner than
    `retry_after` seconds when the server said so (429/503). `status` and
    `headers` are the response's, for http_status errors.
    """

    kind: ErrorKind
    status: int | None
    headers: Mapping[str, str] | None
    url: str | None

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        permanent = kind in _PERMANENT_KINDS or status in _PERMANENT_STATUSES
        super().__init__(message, kind=kind, permanent=permanent, retry_after=retry_after)
        self.message = message
        self.url = url
        self.status = status
        self.headers = headers

    @property
    def outcome(self) -> str:
        """The label a source records and metrics count: the kind, with the status for
        HTTP errors (`http_503`); at most 900 distinct statuses, a bounded label set."""
        if self.kind == "http_status" and self.status is not None and 100 <= self.status <= 999:
            return f"http_{self.status}"
        return self.kind

    def __repr__(self) -> str:
        return f"FetchError(kind={self.kind!r}, status={self.status!r}, message={self.message!r})"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (args, .reason, __cause__, __context__)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [*current.args[:1], getattr(current, "reason", None)]
        inner += [current.__cause__, current.__context__]
        todo.extend(e for e in inner if isinstance(e, BaseException))


_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})
_RESET = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
)
_TLS = (ssl.SSLError, ssl.CertificateError, Urllib3SSLError, requests.exceptions.SSLError)


def transport_kind(exc: BaseException) -> ErrorKind:
    """The real cause of a transport failure, from the innermost errors requests and
    urllib3 wrap: a name that does not resolve, a refused connection, TLS, a timeout..."""
    causes = list(_causes(exc))

    def found(*types: type[BaseException]) -> bool:
        return any(isinstance(c, types) for c in causes)

    if found(NameResolutionError, socket.gaierror):
        return "dns"
    if found(ConnectionRefusedError):
        return "refused"
    # urllib3's NewConnectionError subclasses ConnectTimeoutError for history's sake:
    # only a real timeout counts (checked before TLS: a handshake that times out)
    if found(requests.Timeout, TimeoutError) or any(
        isinstance(c, Urllib3TimeoutError) and not isinstance(c, NewConnectionError) for c in causes
    ):
        return "timeout"
    if found(*_TLS):
        return "tls"
    if found(*_RESET):
        return "reset"
    if any(isinstance(c, OSError) and c.errno in _UNREACHABLE for c in causes):
        return "unreachable"
    return "connection"


def reason(exc: BaseException) -> str:
    """The innermost useful message of a wrapped requests/urllib3 error."""
    inner: BaseException | None = exc
    while inner is not None and inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    why = getattr(inner, "reason", None)
    return str(why or inner or exc)
