"""The commands that mend: `sources`, `endpoints` and `deliveries` (list what was switched
off or gave up, put it back), and `db upgrade`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from worker.cli.context import Context, redact
from worker.config import load_config


def cmd_endpoints(args: argparse.Namespace, ctx: Context) -> int:
    """List webhook endpoints switched off by a 410, or switch a channel's one on again."""
    from worker.alerts import admin

    store = ctx.migrated_store()
    if args.action == "enable":
        config = load_config(ctx.settings.config_path).config
        channel = next((c for c in config.channels if c.name == args.channel), None)
        if channel is None or channel.webhook is None:
            print(f"newswatch: no webhook channel named {args.channel!r}", file=sys.stderr)
            return 1
        if not admin.enable_endpoint(store, channel.webhook):
            print(f"channel {args.channel}: its endpoint is not disabled")
            return 0
        print(f"channel {args.channel}: endpoint enabled; `newswatch deliveries retry ID` resends")
        return 0
    rows = admin.disabled_endpoints(store)
    for r in rows:
        print(f"{r['channel']:<24} disabled {r['disabled_at']:%Y-%m-%d %H:%M} UTC: {r['reason']}")
    if not rows:
        print("no disabled endpoints")
    return 0


def cmd_sources(args: argparse.Namespace, ctx: Context) -> int:
    """List sources disabled after permanent errors, or poll one of them again."""
    from worker.sources import polling

    store = ctx.migrated_store()
    if args.action == "enable":
        config = load_config(ctx.settings.config_path).config
        spec = next((s for s in config.sources if s.name == args.name), None)
        with store.session() as session:
            enabled = polling.enable_source(session, args.name, spec, datetime.now(UTC))
        if not enabled:
            print(f"source {args.name}: not disabled by newswatch (see `newswatch status`)")
            return 0
        if spec is None or not spec.enabled:
            print(f"source {args.name}: record cleared; the config does not enable it")
            return 0
        print(f"source {args.name}: enabled; polled again from now")
        return 0
    with store.session() as session:
        rows = [(r.name, r.url, r.disabled_reason) for r in polling.disabled_sources(session)]
    for name, url, reason in rows:
        print(f"{name:<24} {url}\n    {reason}")
    if not rows:
        print("no disabled sources")
    return 0


def cmd_deliveries(args: argparse.Namespace, ctx: Context) -> int:
    """List deliveries (newest first), or put a dead/failed one back to pending."""
    from worker.alerts import admin

    store = ctx.migrated_store()  # no config needed: this works on the rows alone
    if args.action == "retry":
        result = admin.retry(store, args.id, datetime.now(UTC))
        if result is None:
            print(f"newswatch: nothing dead or failed with id {args.id!r}", file=sys.stderr)
            return 1
        print(f"{result.kind} {result.id}: {result.previous_state} -> queued again")
        return 0
    states = ("dead",) if args.dead else tuple(args.state or ())
    rows = admin.list_deliveries(store, states=states, limit=args.limit)
    if args.json:
        json.dump(rows, sys.stdout, indent=2, default=str)
        print()
        return 0
    for r in rows:
        what = r["title"] or ""
        print(
            f"{r['id']}  {r['state']:<8} {r['kind']:<6} {r['channel']:<16} "
            f"{r['watchlist'] or '-':<16} attempts {r['attempts']:<2} {what[:60]}"
        )
        if r["last_error"] and r["state"] != "sent":
            print(f"    last error: {r['last_error'][:200]}")
    if not rows:
        print("no deliveries")
    return 0


def cmd_db_upgrade(args: argparse.Namespace, ctx: Context) -> int:
    ctx.store().upgrade()
    print(f"database at {redact(ctx.settings.database_url)} is up to date")
    return 0
