"""`newswatch matches`: what matched, newest first, with the snippet each alert showed."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker.cli.context import Context, require_database, setup_logging

if TYPE_CHECKING:
    from worker.store.dashboard import AlertRow

BOLD, PLAIN = "\033[1m", "\033[0m"


def add_matches(add: Any) -> None:
    """Register `newswatch matches` (worker/cli/parser.py)."""
    p = add("matches", cmd_matches, "what matched, newest first, with snippets and links")
    p.add_argument("--since", default="1d", help="matched within this (default 1d)")
    p.add_argument("--watchlist", help="only this watchlist's matches")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true")


def cmd_matches(args: argparse.Namespace, ctx: Context) -> int:
    from worker.matching.dry_run import parse_since
    from worker.store import dashboard

    setup_logging("WARNING")
    try:
        since = parse_since(args.since, datetime.now(UTC))
    except ValueError as exc:
        print(f"newswatch: matches: --since: {exc}", file=sys.stderr)
        return 2
    require_database(ctx.settings)
    with ctx.migrated_store().session() as session:
        found = dashboard.alerts(session, watchlist=args.watchlist, since=since, limit=args.limit)
        rows = [_as_dict(r) for r in found]
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2, default=_iso)
        print()
        return 0
    print(to_text(rows, since, args.watchlist, color=sys.stdout.isatty()))
    return 0


def to_text(rows: list[dict[str, Any]], since: datetime, watchlist: str | None, color: bool) -> str:
    scope = f" for watchlist {watchlist}" if watchlist else ""
    lines = [f"{len(rows)} match(es){scope} since {since:%Y-%m-%d %H:%M} UTC, newest first"]
    for r in rows:
        dup = "  (same story as an earlier alert)" if r["state"] == "duplicate" else ""
        lines.append(
            f"{r['matched_at']:%Y-%m-%d %H:%M} UTC  [{r['watchlist']}]  {r['title']}  "
            f"({r['source'] or 'unknown source'}){dup}"
        )
        lines.append(f"    {highlighted(r['snippet'], r['highlights'], color)}")
        lines.append(f"    {r['url']}")
    return "\n".join(lines)


def highlighted(snippet: str, spans: list[list[int]], color: bool) -> str:
    """The snippet with its stored highlights marked: bold on a terminal, else **…**."""
    # imported here: the parser imports this module in every `newswatch` process, and the
    # renderer (regex, the model) is only for this command (docs/load.md, "Memory at idle")
    from worker.alerts.render import split_highlights

    start_mark, end_mark = (BOLD, PLAIN) if color else ("**", "**")
    out = [
        f"{start_mark}{s.text}{end_mark}" if s.hit else s.text
        for s in split_highlights(snippet, spans)
    ]
    return " ".join("".join(out).split())


def _as_dict(row: AlertRow) -> dict[str, Any]:
    return {
        "id": row.match_id,
        "watchlist": row.watchlist,
        "state": row.state,
        "matched_at": row.created_at,
        "published": row.published_at,
        "title": row.title,
        "source": row.source,
        "url": row.url,
        "snippet": row.snippet,
        "highlights": [list(h) for h in row.highlights],
        "article_id": row.article_id,
        "story_id": row.story_id,
    }


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
