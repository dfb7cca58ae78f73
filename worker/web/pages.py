"""One function per page: the request's arguments in, a template and what it shows out.

Each page reads in one transaction through worker/store/dashboard.py; nothing here
writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from worker.config import ConfigError, parse_interval
from worker.store import dashboard
from worker.store.db import Store
from worker.web.format import segments

ALERTS_LIMIT = 100
CHART_DAYS = 30
VERSIONS_DAYS = 90  # the Config page's versions, as recorded on the matches of this span


@dataclass
class Data:
    """What the pages read: the database, the config file, the time."""

    store: Store
    config_path: Path
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


Page = tuple[str, dict[str, Any]]


def parse_since(value: str, now: datetime) -> datetime | None:
    """'1d', '12h', '30m' before now, or an ISO date or time (UTC); None when blank.
    Raises ValueError for anything else."""
    value = value.strip()
    if not value:
        return None
    try:
        return now - timedelta(seconds=parse_interval(value))
    except (ConfigError, ValueError):
        pass
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def alerts(data: Data, args: Mapping[str, str]) -> Page:
    watchlist, source = args.get("watchlist", ""), args.get("source", "")
    since_text, problem = args.get("since", ""), None
    try:
        since = parse_since(since_text, data.clock())
    except ValueError:
        since, problem = None, f"since: {since_text!r} is neither a span (1d, 12h) nor a date"
    with data.store.session() as s:
        rows = dashboard.alerts(
            s, watchlist=watchlist or None, source=source or None, since=since, limit=ALERTS_LIMIT
        )
        choices = {"watchlists": dashboard.watchlist_names(s), "sources": dashboard.source_names(s)}
    shown = [(row, segments(row.snippet, row.highlights)) for row in rows]
    filters = {"watchlist": watchlist, "source": source, "since": since_text}
    context = {"alerts": shown, "filters": filters, "problem": problem, "limit": ALERTS_LIMIT}
    return "alerts.html", context | choices


def sources(data: Data, args: Mapping[str, str]) -> Page:
    with data.store.session() as s:
        rows = dashboard.sources(s)
    return "sources.html", {"sources": rows, "now": data.clock()}


def deliveries(data: Data, args: Mapping[str, str]) -> Page:
    with data.store.session() as s:
        by_state = dashboard.deliveries(s)
    return "deliveries.html", {"by_state": by_state}


def config(data: Data, args: Mapping[str, str]) -> Page:
    from worker.bootstrap.config_in_force import compile_config

    with data.store.session() as s:
        versions = dashboard.config_versions(s, data.clock() - timedelta(days=VERSIONS_DAYS))
        rejected = dashboard.last_rejected_edit(s)
    file: dict[str, Any] = {"path": str(data.config_path), "version": None, "problems": []}
    try:
        file["modified"] = datetime.fromtimestamp(data.config_path.stat().st_mtime, UTC)
        file["version"] = compile_config(data.config_path).version
    except ConfigError as exc:
        file["problems"] = [str(p) for p in exc.problems]
    except OSError as exc:
        file["problems"] = [f"cannot read it: {exc.strerror}"]
    file["loaded"] = data.clock()
    context = {
        "file": file,
        "versions": versions,
        "rejected": rejected,
        "versions_days": VERSIONS_DAYS,
    }
    return "config.html", context


def watchlist(data: Data, args: Mapping[str, str], name: str) -> Page:
    now = data.clock()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight - timedelta(days=CHART_DAYS - 1)
    with data.store.session() as s:
        per_day = dict(dashboard.mentions_per_day(s, name, start))
        recent = dashboard.alerts(s, watchlist=name, limit=20)
    days = [(start + timedelta(days=i)).date().isoformat() for i in range(CHART_DAYS)]
    counts = [per_day.get(d, 0) for d in days]
    # seconds since the epoch at midnight UTC of each day: uPlot's x axis
    xs = [int(datetime.fromisoformat(d).replace(tzinfo=UTC).timestamp()) for d in days]
    chart = json.dumps({"x": xs, "y": counts, "label": f"{name}: mentions per day"})
    chart = chart.replace("<", "\\u003c")  # inside <script>: no "</script>" can end it
    shown = [(row, segments(row.snippet, row.highlights)) for row in recent]
    context = {
        "name": name,
        "chart": chart,
        "total": sum(counts),
        "days": list(zip(days, counts, strict=True)),
        "alerts": shown,
    }
    return "watchlist.html", context


def watchlists(data: Data, args: Mapping[str, str]) -> Page:
    since = data.clock() - timedelta(days=CHART_DAYS)
    with data.store.session() as s:
        rows = dashboard.watchlists_since(s, since)
    return "watchlists.html", {"watchlists": rows, "days": CHART_DAYS}


VIEWS: dict[str, Callable[..., Page]] = {
    "alerts": alerts,
    "sources": sources,
    "deliveries": deliveries,
    "config": config,
    "watchlists": watchlists,
    "watchlist": watchlist,
}
