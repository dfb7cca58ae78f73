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
from typing import TYPE_CHECKING, Any

from worker.config import ConfigError, parse_interval
from worker.store import dashboard, panels, status
from worker.store.db import Store
from worker.web import panels as config_panels
from worker.web.format import segments

if TYPE_CHECKING:
    from worker.bootstrap.config_in_force import ActiveConfig, LiveConfig

ALERTS_LIMIT = 100
CHART_DAYS = 30
SPARK_DAYS = 7  # the Sources page's items per day (the query reads every item of the span)
GAPS_SHOWN = 20  # the Sources page's newest gap records, each with what it was
OTHER_SOURCES = 5  # per alert: the other sources of its story shown
TOGETHER_MATCHES = 500  # the Watchlist page's co-occurrence: its latest matches looked at
VERSIONS_DAYS = 90  # the Config page's versions, as recorded on the matches of this span


@dataclass
class Data:
    """What the pages read: the database, the config file, the time."""

    store: Store
    config_path: Path
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # the config in force for this process, as the service's own processes hold it: the
    # last good version is kept through a refused edit (made on first use when None)
    live: LiveConfig | None = None

    def active(self) -> ActiveConfig | None:
        """The config in force; None while no version of the file was ever valid here."""
        from worker.bootstrap.config_in_force import LiveConfig

        if self.live is None:
            try:
                self.live = LiveConfig(self.config_path)
            except (ConfigError, OSError):
                return None
        return self.live.current()


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
        others = other_sources(s, rows)
    shown = [(row, segments(row.snippet, row.highlights), others[row.match_id]) for row in rows]
    filters = {"watchlist": watchlist, "source": source, "since": since_text}
    context = {"alerts": shown, "filters": filters, "problem": problem, "limit": ALERTS_LIMIT}
    return "alerts.html", context | choices


def other_sources(session: Any, rows: list[dashboard.AlertRow]) -> dict[int, list[panels.Copy]]:
    """match id -> the story's copies from other sources than the match's own (the
    first of each source), at most OTHER_SOURCES."""
    story_of = {r.match_id: r.story_id or r.article_id for r in rows}
    copies = panels.story_copies(session, story_of.values())
    out = {}
    for row in rows:
        seen: set[str] = {row.source}
        picked: list[Any] = []
        for c in copies.get(story_of[row.match_id], ()):
            if c.source not in seen and len(picked) < OTHER_SOURCES:
                seen.add(c.source)
                picked.append(c)
        out[row.match_id] = picked
    return out


def sources(data: Data, args: Mapping[str, str]) -> Page:
    now = data.clock()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=SPARK_DAYS - 1)
    with data.store.session() as s:
        rows = dashboard.sources(s)
        gaps = panels.gaps_by_source(s)
        recent_gaps = status.recent_gaps(s, limit=GAPS_SHOWN)
        per_day = panels.items_per_day(s, start)
    days = [(start + timedelta(days=i)).date().isoformat() for i in range(SPARK_DAYS)]
    xs = [int(datetime.fromisoformat(d).replace(tzinfo=UTC).timestamp()) for d in days]
    spark = {r.name: [per_day.get(r.id, {}).get(d, 0) for d in days] for r in rows}
    # the numbers under each sparkline, written here: a jinja2 filter per row costs more
    counts = {name: (sum(c), ", ".join(map(str, c))) for name, c in spark.items()}
    chart = json.dumps({"x": xs, "series": spark}).replace("<", "\\u003c")
    context = {
        "sources": rows,
        "now": now,
        "standing": config_panels.source_standing(rows, data.active()),
        "gaps": {r.name: gaps.get(r.id) for r in rows},
        "recent_gaps": recent_gaps,
        "spark": counts,
        "spark_chart": chart,
        "spark_days": SPARK_DAYS,
    }
    return "sources.html", context


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
        others = other_sources(s, recent)
        together = panels.matched_together(s, name, limit=TOGETHER_MATCHES)
        active = data.active()
        near = config_panels.near_misses(s, active, name) if active is not None else None
    days = [(start + timedelta(days=i)).date().isoformat() for i in range(CHART_DAYS)]
    counts = [per_day.get(d, 0) for d in days]
    # seconds since the epoch at midnight UTC of each day: uPlot's x axis
    xs = [int(datetime.fromisoformat(d).replace(tzinfo=UTC).timestamp()) for d in days]
    chart = json.dumps({"x": xs, "y": counts, "label": f"{name}: mentions per day"})
    chart = chart.replace("<", "\\u003c")  # inside <script>: no "</script>" can end it
    shown = [(row, segments(row.snippet, row.highlights), others[row.match_id]) for row in recent]
    context = {
        "name": name,
        "chart": chart,
        "total": sum(counts),
        "days": list(zip(days, counts, strict=True)),
        "alerts": shown,
        "rule": config_panels.rule_text(active, name),
        "config_read": active is not None,
        "together": together,
        "near_misses": near,
        "near_scan": config_panels.NEAR_MISS_ARTICLES,
    }
    return "watchlist.html", context


def watchlists(data: Data, args: Mapping[str, str]) -> Page:
    since = data.clock() - timedelta(days=CHART_DAYS)
    with data.store.session() as s:
        rows = dashboard.watchlists_since(s, since)
    # the config's watchlists that did not match in the span, so each page can be reached
    active = data.active()
    configured = [w.name for w in active.loaded.config.watchlists] if active else []
    seen = {r.name for r in rows}
    quiet = [name for name in configured if name not in seen]
    return "watchlists.html", {"watchlists": rows, "quiet": quiet, "days": CHART_DAYS}


VIEWS: dict[str, Callable[..., Page]] = {
    "alerts": alerts,
    "sources": sources,
    "deliveries": deliveries,
    "config": config,
    "watchlists": watchlists,
    "watchlist": watchlist,
}
