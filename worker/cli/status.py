"""The commands that show what newswatch did: `status`, `why`, and the `metrics` exporter."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from worker.cli.context import Context, paths, redact, setup_logging


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    from worker.alerts.admin import STATES
    from worker.cli.views import status_report
    from worker.service.retention import format_storage, storage_report
    from worker.store.status import source_state

    settings, store = ctx.settings, ctx.migrated_store()
    report = status_report(store)
    configured = _configured_sources(ctx)
    for source in report["sources"]:
        source["state"], source["state_detail"] = source_state(source, configured)
    report["paths"] = {
        "config": str(settings.config_path),
        "database": redact(settings.database_url),
        "data_folder": str(settings.data_dir),
    }
    # every delivery state shows, zero or not: "0 dead" is an answer too
    report["deliveries"] = {state: 0 for state in STATES} | report["deliveries"]
    report["storage"] = storage_report(store)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
    else:
        print(paths(settings))
        print(_format_status(report))
        print(format_storage(report["storage"]))
    return 0


def _when(at: datetime | str | None) -> str:
    """A stored time as one column ("2026-12-06 21:05:03 UTC"); `format(datetime, "<25")`
    would give the spec to strftime and print "<25"."""
    if at is None:
        return "never"
    if isinstance(at, str):
        return at
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


ROW_TEXT = 120  # an error or a reason in a status row, at most (`why` shows it whole)


def _clip(text: str, width: int = ROW_TEXT) -> str:
    """One line of at most `width` characters, an ellipsis where it was cut."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _configured_sources(ctx: Context) -> dict[str, bool] | None:
    """Name -> enabled of the sources the config lists; None when it cannot be read (then
    a source switched off by the config cannot be told from one removed from it)."""
    from worker.config import ConfigError, load_config

    try:
        config = load_config(ctx.settings.config_path, ctx.env).config
    except (ConfigError, OSError):
        return None
    return {s.name: s.enabled for s in config.sources}


def _source_line(s: dict[str, Any]) -> str:
    polled = s["enabled"] and not s["disabled_reason"]
    next_poll = _when(s["next_fetch_at"]) if polled else "-"
    return (
        f"  {s['name']:<24} last fetch {_when(s['last_fetch_at']):<23}  "
        f"next poll {next_poll:<23}  items {s['items_seen']:<6} "
        f"failures {s['consecutive_failures']:<3} {_clip(s['state_detail'])}"
    )


def _format_status(report: dict[str, Any]) -> str:
    lines = ["sources:"]
    lines += [_source_line(s) for s in report["sources"]]
    lines += _format_watchdog(report)
    outcomes = ", ".join(f"{k} {v}" for k, v in report["outcomes"].items())
    lines.append(f"item outcomes: {outcomes}")
    for key in ("items", "articles", "matches", "deliveries"):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report[key].items())) or "none"
        lines.append(f"{key}: {counts}")
    return "\n".join(lines)


def _format_watchdog(report: dict[str, Any]) -> list[str]:
    """Feed gaps, open watchdog incidents and the heartbeat (docs/operations.md)."""
    lines = []
    gaps = report.get("gaps") or []
    if gaps:
        lines.append("gaps (possible missed items):")
        for g in gaps:
            lines.append(
                f"  {g['source']:<24} {g['detected_at']:%Y-%m-%d %H:%M} UTC  {g['detail']}"
            )
    else:
        lines.append("gaps: none")
    wd = report.get("watchdog") or {}
    for inc in wd.get("incidents", []):
        since = inc["since"]
        lines.append(
            f"WATCHDOG {inc['condition']} since {since:%Y-%m-%d %H:%M} UTC: {inc['detail']}"
        )
    if not wd.get("incidents"):
        lines.append("watchdog: no condition holds")
    waiting = wd.get("oldest_waiting_seconds") or {}
    shown = ", ".join(f"{k} {v}s" for k, v in waiting.items() if v is not None) or "nothing waits"
    lines.append(f"oldest waiting work: {shown}")
    hb = wd.get("heartbeat")
    if hb is not None:
        last = hb["last_ping"]
        when = f"{last:%Y-%m-%d %H:%M:%S} UTC" if last else "never"
        lines.append(f"heartbeat: last ping {when}; {hb['last'] or ''}".rstrip("; "))
    return lines


def cmd_why(args: argparse.Namespace, ctx: Context) -> int:
    """What happened to one item (or every item of a URL), and why."""
    from worker.cli.views import why_report

    # no config needed: this works on the rows alone
    report = why_report(ctx.migrated_store(), args.item)
    if args.json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2, default=str)
        print()
    else:
        print(_format_why(report))
    if not report["items"]:
        print(f"newswatch: no item with id or URL {args.item!r}", file=sys.stderr)
        return 1
    return 0


def _format_why(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for it in report["items"]:
        lines.append(f"item {it['id']} from source {it['source']} ({it['source_url']})")
        lines.append(f"  entry key: {it['entry_key']}")
        if it["url"] and it["url"] != it["entry_key"]:
            lines.append(f"  url:       {it['url']}")
        lines.append(f"  state:     {it['state']} after {it['attempts']} attempt(s)")
        lines.append(f"  OUTCOME:   {it['outcome']}: {it['outcome_detail'] or ''}")
        if it["error"]:
            lines.append(f"  error:     ({it['error_kind'] or '?'}) {it['error']}")
        art = it["article"]
        if art is not None:
            lines.append(f"  article {art['id']} ({art['role']}): {art['title'][:100]}")
            lines.append(f"    {art['canonical_url']}")
            if art.get("text_pruned"):
                lines.append(f"    text pruned on {art['text_pruned']} (retention)")
            rules = f"    rules: {art['rules_state']} after {art['attempts']} attempt(s)"
            if art["error"]:
                rules += f"; error ({art['error_kind'] or '?'}): {art['error']}"
            lines.append(rules)
            story = it["story"]
            others = [a["id"] for a in story["articles"] if a["id"] != art["id"]]
            lines.append(
                f"  story {story['id']} (first article {story['first_article']}), "
                f"other articles: {', '.join(map(str, others)) or 'none'}"
            )
            if story["near_duplicate"]:
                evidence = ", ".join(f"{k} {v}" for k, v in story["near_duplicate"].items())
                lines.append(f"    near-duplicate evidence: {evidence}")
        for mt in it["matches"]:
            line = f"  watchlist {mt['watchlist']}: {mt['state']}"
            if mt["first_alert"]:
                fa = mt["first_alert"]
                line += f" (story alerted by article {fa['article_id']}, match {fa['match_id']})"
            lines.append(line)
            for d in mt["deliveries"]:
                text = (
                    f"    -> {d['channel']}: {d['state']} ({d['kind']}, {d['route']}), "
                    f"{d['attempts']} attempt(s)"
                )
                if d["last_error"] and d["state"] != "sent":
                    text += f", last error: {d['last_error'][:200]}"
                lines.append(text)
        lines.append("")
    return "\n".join(lines).rstrip()


def cmd_metrics(args: argparse.Namespace, ctx: Context) -> int:
    """Serve Prometheus metrics on http://HOST:PORT/metrics."""
    from worker.service.observability import serve_metrics

    settings = ctx.settings
    setup_logging(settings.log_level, settings.log_format)
    serve_metrics(settings, args.host, args.port)
    return 0
