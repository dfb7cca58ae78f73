"""Operator checks that need the network: is each SMTP server and webhook host reachable?

Used by `newswatch check-config --connect` (problems, exit 1) and at worker
start-up (warnings). Messages name the channel and `host:port` only: never a
password, and never a webhook's path or query, which often carry a token.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from urllib.parse import urlsplit

from worker.config import Config, SmtpSpec


def reachability_problems(config: Config, timeout: float = 3.0) -> list[str]:
    problems: list[str] = []
    smtp_users: dict[tuple[str, int, str], list[str]] = {}
    smtp_specs: dict[tuple[str, int, str], tuple[str, SmtpSpec]] = {}
    for ch in config.channels:
        if ch.kind == "email":
            spec, key = (ch.smtp, f"channels[{ch.name}].smtp") if ch.smtp else (config.smtp, "smtp")
            ident: tuple[str, int, str] = (spec.host, spec.port, spec.security)
            smtp_users.setdefault(ident, []).append(ch.name)
            smtp_specs.setdefault(ident, (key, spec))
        elif ch.kind == "webhook" and ch.webhook:
            parts = urlsplit(ch.webhook)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            error = _tcp_error(host, port, timeout)
            if error:
                problems.append(
                    f"channels[{ch.name}].webhook: cannot connect to {host}:{port}: {error}"
                )
    for ident, (key, spec) in smtp_specs.items():
        error = _smtp_error(spec, timeout)
        if error:
            users = ", ".join(smtp_users[ident])
            problems.append(
                f"{key}: SMTP server {spec.host}:{spec.port} unreachable "
                f"(used by channel {users}): {error}"
            )
    return problems


def _tcp_error(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return _reason(exc)


def _smtp_error(spec: SmtpSpec, timeout: float) -> str | None:
    """Connect and say EHLO (TLS included for `ssl`); no login, nothing sent."""
    try:
        if spec.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                spec.host, spec.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(spec.host, spec.port, timeout=timeout)
        try:
            code, _ = client.ehlo()
            if code >= 400:
                return f"EHLO refused ({code})"
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    except (smtplib.SMTPException, OSError) as exc:
        return _reason(exc)
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
