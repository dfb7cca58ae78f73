"""`newswatch web`: the read-only dashboard (worker/web/)."""

from __future__ import annotations

import argparse
import sys

from worker.cli.context import Context, paths

TOKEN_ENV = "NEWSWATCH_WEB_TOKEN"


def add_web(add) -> None:
    p = add("web", cmd_web, "the read-only dashboard: alerts, sources, deliveries, config")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free)")


def cmd_web(args: argparse.Namespace, ctx: Context) -> int:
    from worker.web.pages import Data
    from worker.web.serve import make, refusal

    token = ctx.env.get(TOKEN_ENV) or None
    if (reason := refusal(args.host, token)) is not None:
        print(reason, file=sys.stderr)
        return 2
    store = ctx.migrated_store()
    server = make(Data(store, ctx.settings.config_path), args.host, args.port, token)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"newswatch web: http://{host}:{server.server_port}/ ({paths(ctx.settings)})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
