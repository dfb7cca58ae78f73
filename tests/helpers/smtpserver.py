"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd in a thread).

    with SmtpTestServer() as server:            # or the `smtp_server` fixture
        spec = server.spec()                     # an SmtpSpec pointing at it
        ...
        server.messages[0]                       # email.message.EmailMessage
        server.envelopes[0].rcpt_tos
        server.connections                       # TCP connections accepted

    server.stop(); server.start()                # down and up again, same port
    server.reject_rcpt["nobody@example.org"] = "550 5.1.1 no such user"
    server.data_reply = "451 4.3.0 try later"    # answer DATA with this instead of 250

Optional STARTTLS (`tls="starttls"`), implicit TLS (`tls="ssl"`) with a
self-signed certificate made on the spot, and AUTH (`auth=("user", "pass")`).
`server.client_ssl_context()` trusts that certificate.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from worker.config import SmtpSpec

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    login: str | None  # the AUTH user, if the client authenticated
    tls: bool  # whether the message came over an encrypted connection

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class _Handler:
    server: SmtpTestServer

    async def handle_RCPT(
        self, srv: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.server.reject_rcpt.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, srv: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.data_reply:
            return self.server.data_reply
        login = session.auth_data.login.decode() if session.auth_data else None
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        with self.server._lock:
            self.server.received.append(
                Received(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    content=content,
                    login=login,
                    tls=srv.transport.get_extra_info("sslcontext") is not None
                    if srv.transport
                    else False,
                )
            )
        return "250 Message accepted"


class _CountingController(Controller):
    """Counts connections: aiosmtpd builds one SMTP protocol object per connection."""

    def __init__(self, owner: SmtpTestServer, *args: Any, **kwargs: Any):
        self._owner = owner
        super().__init__(*args, **kwargs)

    def factory(self) -> SMTP:
        with self._owner._lock:
            self._owner.connections += 1
        with warnings.catch_warnings():
            # "AUTH without TLS" is deliberate in tls="none" tests
            warnings.simplefilter("ignore", UserWarning)
            return super().factory()


@dataclass
class SmtpTestServer:
    tls: Literal["none", "starttls", "ssl"] = "none"
    auth: tuple[str, str] | None = None  # required credentials (user, password)
    port: int = 0  # 0: pick a free port once; restarts keep it
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    reject_rcpt: dict[str, str] = field(default_factory=dict)  # address -> "550 ..." reply
    data_reply: str | None = None  # e.g. "451 4.3.0 try later"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _controller: Controller | None = field(default=None, repr=False)
    _certdir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    _cert: Path | None = field(default=None, repr=False)

    # -- lifecycle --

    def start(self) -> SmtpTestServer:
        if self._controller is not None:
            return self
        if not self.port:
            self.port = _free_port()
        kwargs: dict[str, Any] = {"server_hostname": "localhost", "ready_timeout": 5.0}
        if self.tls == "starttls":
            kwargs.update(tls_context=self._server_ssl_context(), require_starttls=True)
        elif self.tls == "ssl":
            kwargs.update(ssl_context=self._server_ssl_context())
        if self.auth:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # Implicit TLS is invisible to aiosmtpd's check, and a test that
                # asks for no TLS at all means it: only STARTTLS needs enforcing.
                auth_require_tls=self.tls == "starttls",
            )
        controller = _CountingController(
            self, _Handler(self), hostname=HOST, port=self.port, **kwargs
        )
        controller.start()
        with self._lock:
            # Controller.start() makes one connection of its own to check the
            # server is up; it is not the client's.
            self.connections = 0
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def close(self) -> None:
        self.stop()
        if self._certdir is not None:
            self._certdir.cleanup()
            self._certdir = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._controller is not None

    # -- what arrived --

    @property
    def envelopes(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.envelopes]

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.connections = 0
            self.reject_rcpt.clear()
            self.data_reply = None

    # -- client side --

    def spec(self, **overrides: Any) -> SmtpSpec:
        """An SmtpSpec that reaches this server with its security and credentials."""
        values: dict[str, Any] = {
            "host": HOST,
            "port": self.port,
            "security": self.tls,
            "sender": "newswatch@example.org",
            "timeout": 5.0,
        }
        if self.auth:
            values.update(username=self.auth[0], password=SecretStr(self.auth[1]))
        values.update(overrides)
        return SmtpSpec(**values)

    def client_ssl_context(self) -> ssl.SSLContext:
        """Verifies this server's self-signed certificate (host name 127.0.0.1)."""
        cert, _ = self._ensure_cert()
        return ssl.create_default_context(cafile=str(cert))

    # -- internals --

    def _authenticate(
        self, srv: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.auth is not None
            and (data.login.decode(), data.password.decode()) == self.auth
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def _server_ssl_context(self) -> ssl.SSLContext:
        cert, key = self._ensure_cert()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        return ctx

    def _ensure_cert(self) -> tuple[Path, Path]:
        if self._cert is None:
            self._certdir = tempfile.TemporaryDirectory(prefix="nw-smtp-cert-")
            self._cert = make_self_signed_cert(Path(self._certdir.name))
        return self._cert, self._cert.with_suffix(".key")


def make_self_signed_cert(directory: Path) -> Path:
    """Write cert.pem and cert.key for localhost / 127.0.0.1; return the cert path."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert_path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --- pytest fixtures (import them into a test module or conftest) ----------------


@pytest.fixture
def make_smtp_server() -> Iterator[Callable[..., SmtpTestServer]]:
    """Factory: `make_smtp_server(tls="starttls", auth=("u", "p"))`; all stopped after the test."""
    servers: list[SmtpTestServer] = []

    def make(**kwargs: Any) -> SmtpTestServer:
        server = SmtpTestServer(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def smtp_server(make_smtp_server: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    """A plain SMTP server (no TLS, no AUTH) on 127.0.0.1."""
    return make_smtp_server()
