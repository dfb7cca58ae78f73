"""The commands that mend: `sources`, `endpoints` and `deliveries` (list what was switched
off or gave up, put it back), and `db upgrade`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from worker.cli.context import Context, redact
from worker.config import load_config
from worker.store.db import Store


def cmd_endpoints(args: argparse.Namespace, ctx: Context) -> int:
    """List webhook endpoints switched off by a 410, or switch a channel's one on again."""
    from worker.alerts import admin

    store = ctx.migrated_store()
    if args.action == "enable":
        config = load_config(ctx.settings.config_path).config
        channel = next((c for c in config.channels if c.name == args.channel), None)
        if channel is None or channel.webhook is None:
            names = ", ".join(sorted(c.name for c in config.channels if c.webhook)) or "none"
            print(
                f"newswatch: no webhook channel named {args.channel!r}; known: {names}",
                file=sys.stderr,
            )
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
    from worker.store import status

    store = ctx.migrated_store()
    if args.action == "enable":
        config = load_config(ctx.settings.config_path, ctx.env).config
        spec = next((s for s in config.sources if s.name == args.name), None)
        with store.session() as session:
            known = {s["name"] for s in status.sources(session)}
            known |= {s.name for s in config.sources}
            if args.name not in known:
                names = ", ".join(sorted(known)) or "none"
                print(f"newswatch: no source named {args.name!r}; known: {names}", file=sys.stderr)
                return 1
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
    store = ctx.migrated_store()  # no config needed: this works on the rows alone
    if args.action == "retry":
        return _retry(store, args.id.strip().lower())
    return _list_deliveries(store, args)


def _retry(store: Store, given: str) -> int:
    """Retry the one delivery or digest batch whose id is (or starts with) `given`."""
    from worker.alerts import admin
    from worker.store import deliveries

    with store.session() as session:
        ids = deliveries.ids_starting(session, given, limit=MAX_SHOWN + 1) if given else []
    if len(ids) != 1:
        if not ids:
            print(
                f"newswatch: no delivery or digest batch id starts with {given!r}", file=sys.stderr
            )
        else:
            more = ", ..." if len(ids) > MAX_SHOWN else ""
            print(
                f"newswatch: {given!r} is ambiguous: it starts the ids of "
                f"{', '.join(ids[:MAX_SHOWN])}{more}; give more of the id",
                file=sys.stderr,
            )
        return 1
    result = admin.retry(store, ids[0], datetime.now(UTC))
    if result is None:
        print(f"newswatch: {ids[0]} is not dead or failed: nothing to retry", file=sys.stderr)
        return 1
    print(f"{result.kind} {result.id}: {result.previous_state} -> queued again")
    return 0


MAX_SHOWN = 10  # ids named in an "ambiguous" error
WAITING = ("pending", "failed")  # the states whose next attempt is a time to show


def _list_deliveries(store: Store, args: argparse.Namespace) -> int:
    from worker.alerts import admin
    from worker.store import deliveries

    states = ("dead",) if args.dead else tuple(args.state or ())
    rows = admin.list_deliveries(store, states=states, limit=args.limit)
    with store.session() as session:
        times = deliveries.attempt_times(session, [r["id"] for r in rows])
    for r in rows:
        last, due = times.get(r["id"], (None, None))
        r["last_attempt_at"] = last
        r["next_attempt_at"] = due if r["state"] in WAITING else None
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
        print(
            f"    created {_when(r['created_at'])}, last attempt {_when(r['last_attempt_at'])}"
            f", next attempt {_next(r)}"
        )
        if r["last_error"] and r["state"] != "sent":
            print(f"    last error: {r['last_error'][:200]}")
    if not rows:
        print("no deliveries")
    return 0


def _when(at: datetime | None) -> str:
    return "never" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _next(row: dict) -> str:
    if row["state"] == "batched":
        return f"with its digest ({row['batch']})"
    if row["next_attempt_at"] is None:
        return "none"  # sent, or given up (`deliveries retry ID` sends it again)
    return _when(row["next_attempt_at"])


def cmd_db_upgrade(args: argparse.Namespace, ctx: Context) -> int:
    ctx.store().upgrade()
    print(f"database at {redact(ctx.settings.database_url)} is up to date")
    return 0
