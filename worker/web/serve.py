"""The dashboard's HTTP server: a threaded WSGI server, and the rule that it listens
beyond this machine only with an access token."""

from __future__ import annotations

import ipaddress

from werkzeug.serving import BaseWSGIServer, make_server

from worker.web.app import Dashboard
from worker.web.pages import Data


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def refusal(host: str, token: str | None) -> str | None:
    """Why the dashboard must not listen on `host`, or None when it may."""
    if is_loopback(host) or token:
        return None
    return (
        f"newswatch web: refusing to listen on {host} without an access token: set "
        "NEWSWATCH_WEB_TOKEN (readers then send it as the X-Newswatch-Token header, "
        "Authorization: Bearer, or ?token=), or listen on 127.0.0.1"
    )


def make(data: Data, host: str, port: int, token: str | None) -> BaseWSGIServer:
    """The server, bound (port 0: a free one, `server.server_port`), not yet serving."""
    if (reason := refusal(host, token)) is not None:
        raise PermissionError(reason)
    return make_server(host, port, Dashboard(data, token), threaded=True)
