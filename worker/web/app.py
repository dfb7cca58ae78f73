"""The dashboard's WSGI application: routes, the access token, static files, headers.

Read-only: every route answers GET (and HEAD) alone. Pages are rendered on the server
from jinja2 templates (worker/web/templates/); the one script is the chart library
shipped in worker/web/static/ with the package, so nothing is loaded from elsewhere
(the Content-Security-Policy below says so to the browser too).
"""

from __future__ import annotations

import hmac
import mimetypes
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from worker.web import pages
from worker.web.format import FILTERS

TOKEN_COOKIE = "newswatch_token"
TOKEN_HEADER = "X-Newswatch-Token"
SECURITY_HEADERS = {
    # no script, style, image, font or connection from anywhere but this server
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

URLS = Map(
    [
        Rule("/", endpoint="alerts"),
        Rule("/alerts", endpoint="alerts"),
        Rule("/sources", endpoint="sources"),
        Rule("/deliveries", endpoint="deliveries"),
        Rule("/config", endpoint="config"),
        Rule("/watchlists", endpoint="watchlists"),
        Rule("/watchlists/<name>", endpoint="watchlist"),
        Rule("/static/<name>", endpoint="static"),
    ],
    strict_slashes=False,
)


class Dashboard:
    """The WSGI app: `Dashboard(data, token)(environ, start_response)`."""

    def __init__(self, data: pages.Data, token: str | None = None) -> None:
        self.data = data
        self.token = token or None
        self.templates = Environment(
            loader=PackageLoader("worker.web", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(FILTERS)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        response = self.respond(request)
        response.headers.update(SECURITY_HEADERS)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response("read-only\n", status=405, headers={"Allow": "GET, HEAD"})
        if not self.allowed(request):
            return Response(
                "newswatch web: an access token is needed (NEWSWATCH_WEB_TOKEN): send it as "
                f"the {TOKEN_HEADER} header, an Authorization: Bearer header, or ?token=\n",
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="newswatch"'},
            )
        try:
            endpoint, args = URLS.bind_to_environ(request.environ).match()
        except HTTPException as exc:
            return exc.get_response()
        if endpoint == "static":
            return static_file(args["name"])
        view = pages.VIEWS[endpoint]
        template, context = view(self.data, request.args, **args)
        html = self.templates.get_template(template).render(page=endpoint, **context)
        response = Response(html, mimetype="text/html")
        if self.token and request.args.get("token"):
            # a link followed with ?token= keeps working as the reader clicks on
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    def allowed(self, request: Request) -> bool:
        if self.token is None:
            return True
        auth = request.headers.get("Authorization", "")
        offered = [
            request.headers.get(TOKEN_HEADER),
            auth[7:] if auth.startswith("Bearer ") else None,
            request.args.get("token"),
            request.cookies.get(TOKEN_COOKIE),
        ]
        return any(
            o is not None and hmac.compare_digest(o.encode(), self.token.encode()) for o in offered
        )


def static_file(name: str) -> Response:
    folder = resources.files("worker.web") / "static"
    path = folder / name
    if "/" in name or name.startswith(".") or not path.is_file():
        return NotFound().get_response()
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(path.read_bytes(), mimetype=mimetype)
