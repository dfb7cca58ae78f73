"""SMTP sender: one connection per batch, errors classified for the retry policy.

    sender = SmtpSender(config.smtp)
    with sender.session() as s:
        for msg in messages:
            try:
                s.send(msg)
            except MailError as err:
                ...  # err.permanent decides: give up, or retry later

The connection is opened on the first `send`, so every failure -- including
"the server is down" -- surfaces from `send` as a `MailError` for that message,
and the caller has one place to record it. Once connecting has failed, the rest
of the batch fails fast with the same error instead of waiting out a timeout
per message.

The password is never logged and never part of an error message or repr.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from worker.config import SmtpSpec
from worker.core.errors import NewswatchError

log = logging.getLogger(__name__)


class MailError(NewswatchError):
    """A failed send. `permanent` means retrying the same message cannot succeed.

    kind: connect | timeout | tls | auth | sender | recipient | data | disconnected | protocol
    """

    def __init__(self, kind: str, message: str, permanent: bool, code: int | None = None):
        super().__init__(f"{kind}: {message}", kind=kind, permanent=permanent)
        self.message = message
        self.code = code  # the SMTP reply code, when the server gave one


@dataclass(frozen=True)
class SendResult:
    message_id: str
    # Recipients the server refused while accepting others: {address: (code, reply)}.
    # The message went out, so this is reported, not raised (a retry would resend).
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


def _reply(code: int, raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return f"{code} {text}".strip()


def _by_code(kind: str, code: int, raw: bytes | str) -> MailError:
    # RFC 5321: 5yz is a permanent negative reply, 4yz transient.
    return MailError(kind, _reply(code, raw), permanent=500 <= code < 600, code=code)


def classify(exc: BaseException) -> MailError:
    """Map smtplib / socket / ssl exceptions to a MailError."""
    match exc:
        case MailError():
            return exc
        case smtplib.SMTPRecipientsRefused():
            # Every recipient refused. Permanent only if every refusal was a 5xx.
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{addr}: {_reply(c, m)}" for addr, (c, m) in exc.recipients.items())
            # (no recipients at all is a message that can never be delivered either)
            permanent = all(500 <= c < 600 for c in codes)
            return MailError(
                "recipient", detail or "no recipients", permanent, code=max(codes, default=None)
            )
        case smtplib.SMTPSenderRefused():
            return _by_code("sender", exc.smtp_code, exc.smtp_error)
        case smtplib.SMTPDataError():
            return _by_code("data", exc.smtp_code, exc.smtp_error)
        case smtplib.SMTPAuthenticationError():
            return _by_code("auth", exc.smtp_code, exc.smtp_error)
        case smtplib.SMTPConnectError():
            # A 4xx/5xx greeting is usually "busy" or a temporary block: retry.
            return MailError("connect", _reply(exc.smtp_code, exc.smtp_error), False, exc.smtp_code)
        case smtplib.SMTPNotSupportedError():
            # e.g. security: starttls against a server without STARTTLS: a config error
            return MailError("tls", str(exc), permanent=True)
        case smtplib.SMTPServerDisconnected() if isinstance(exc.__context__, TimeoutError):
            # smtplib reports a read timeout as "Connection unexpectedly closed: timed out"
            return MailError("timeout", str(exc), permanent=False)
        case smtplib.SMTPServerDisconnected():
            return MailError("disconnected", str(exc) or "server closed the connection", False)
        case smtplib.SMTPResponseException():
            return _by_code("protocol", exc.smtp_code, exc.smtp_error)
        case ssl.SSLCertVerificationError():
            # Retrying will not make the certificate valid; an operator must act.
            return MailError("tls", exc.verify_message or str(exc), permanent=True)
        case ssl.SSLError():
            return MailError("tls", str(exc), permanent=False)
        case TimeoutError():  # socket.timeout is an alias
            return MailError("timeout", str(exc) or "timed out", permanent=False)
        case ConnectionRefusedError():
            return MailError("connect", "connection refused", permanent=False)
        case socket.gaierror():
            return MailError("connect", f"cannot resolve host: {exc}", permanent=False)
        case OSError():
            return MailError("connect", str(exc) or type(exc).__name__, permanent=False)
        case smtplib.SMTPException():
            return MailError("protocol", str(exc), permanent=False)
    raise TypeError(f"not a mail error: {exc!r}") from exc


class SmtpSender:
    """Sends EmailMessages through one SMTP server described by an `SmtpSpec`."""

    def __init__(
        self,
        spec: SmtpSpec,
        *,
        ssl_context: ssl.SSLContext | None = None,
        helo_name: str | None = None,
    ):
        self.spec = spec
        # Tests and private CAs pass their own context; the default verifies
        # certificates and host names against the system store.
        self._ssl_context = ssl_context
        # The local host name without a DNS lookup (smtplib's default is getfqdn()).
        self.helo_name = helo_name or socket.gethostname() or "localhost"

    def __repr__(self) -> str:
        s = self.spec
        user = f", user={s.username!r}" if s.username else ""
        return f"SmtpSender({s.host}:{s.port}, {s.security}{user})"

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def connect(self) -> smtplib.SMTP:
        """Open, secure and authenticate a connection. Raises MailError."""
        s = self.spec
        conn: smtplib.SMTP | None = None
        try:
            if s.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    s.host,
                    s.port,
                    local_hostname=self.helo_name,
                    timeout=s.timeout,
                    context=self.ssl_context(),
                )
            else:
                conn = smtplib.SMTP(
                    s.host, s.port, local_hostname=self.helo_name, timeout=s.timeout
                )
            conn.ehlo()
            if s.security == "starttls":
                conn.starttls(context=self.ssl_context())
                conn.ehlo()  # capabilities change after STARTTLS (AUTH often appears only now)
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                try:
                    conn.login(s.username, password)
                except smtplib.SMTPNotSupportedError:
                    # No AUTH offered (often: only after STARTTLS): a config error.
                    raise MailError("auth", "server offers no AUTH", permanent=True) from None
                except smtplib.SMTPServerDisconnected:
                    raise  # a dropped connection, not a verdict on the credentials
                except smtplib.SMTPException as exc:
                    if isinstance(exc, smtplib.SMTPResponseException):
                        raise _by_code("auth", exc.smtp_code, exc.smtp_error) from None
                    # "No suitable authentication method found"
                    raise MailError("auth", str(exc), permanent=True) from None
            return conn
        except MailError:
            if conn is not None:
                _close(conn)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            if conn is not None:
                _close(conn)
            raise classify(exc) from None  # `from None`: the chain may hold the login call

    @contextmanager
    def session(self) -> Iterator[SmtpSession]:
        sess = SmtpSession(self)
        try:
            yield sess
        finally:
            sess.close()

    def send(self, msg: EmailMessage) -> SendResult:
        """Send one message on its own connection."""
        with self.session() as s:
            return s.send(msg)


class SmtpSession:
    """One (lazily opened) connection reused across a batch of messages."""

    def __init__(self, sender: SmtpSender):
        self._sender = sender
        self._conn: smtplib.SMTP | None = None
        self._connect_error: MailError | None = None
        self.connections = 0  # how many times this session connected

    def send(self, msg: EmailMessage) -> SendResult:
        conn = self._connection()
        if msg["Date"] is None:
            msg["Date"] = email.utils.formatdate(usegmt=True)
        if msg["Message-ID"] is None:
            msg["Message-ID"] = email.utils.make_msgid(domain="newswatch")
        try:
            refused = conn.send_message(msg, from_addr=self._sender.spec.sender)
        except (smtplib.SMTPException, OSError) as exc:
            err = classify(exc)
            if err.kind in ("disconnected", "timeout", "connect", "tls"):
                # The connection is unusable; the next message in the batch reconnects.
                self._drop()
            log.warning("smtp send failed: %s (permanent=%s)", err, err.permanent)
            raise err from None
        return SendResult(
            message_id=str(msg["Message-ID"]),
            refused={addr: (code, _reply(code, m)) for addr, (code, m) in refused.items()},
        )

    def _connection(self) -> smtplib.SMTP:
        if self._connect_error is not None:
            raise self._connect_error
        if self._conn is None:
            try:
                self._conn = self._sender.connect()
            except MailError as err:
                self._connect_error = err
                log.warning("smtp connect to %r failed: %s", self._sender, err)
                raise
            self.connections += 1
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            _close(self._conn)
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass  # the messages are sent; a failed goodbye changes nothing
            finally:
                _close(self._conn)
                self._conn = None


def _close(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):  # closing an already-broken socket
        conn.close()
