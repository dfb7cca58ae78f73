"""Server time of each dashboard page on a large history in PostgreSQL, and on a small one.

    .venv/bin/python bench/dashboard.py                      # 1,000,000 articles, 100,000 matches
    .venv/bin/python bench/dashboard.py --articles 2000 --matches 200 --runs 3

For each size it creates a throwaway database on the server of --admin-url (made from
its `postgres` database and dropped at the end unless --keep), migrates it with
Store.upgrade(), and fills it by bulk SQL (INSERT ... SELECT generate_series) with rows
shaped like a real history: ~500 sources (some disabled, some failing, gap records), one
item per article, articles over 90 days, matches of ~20 watchlists (a few busy, most
quiet) with snippets and highlights, deliveries per match on 2-3 channels (sent, pending,
failed with a next attempt, dead with a reason), and notices (a rejected config among
them). Then VACUUM ANALYZE.

It times each page through the WSGI app `newswatch web` serves (worker.web.app.Dashboard,
called in process with werkzeug's test client: the whole server-side render, SQL and
template, without the socket): one warm-up, then --runs runs; median and p95 in ms.
The small database (--baseline-articles) is measured in the same run so the scaling
shows. Exits 1 if any page answered other than 200.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, event, text
from werkzeug.test import Client

from tests.helpers.servers import throwaway_database
from worker.store.db import Store
from worker.web.app import Dashboard
from worker.web.pages import Data

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SOURCES = 500
WATCHLISTS = 20
CHANNELS = ("hook", "mail", "chat")  # every match: hook and mail; one in two: chat too
DAYS = 90
BUDGET_MS = 200.0

CONFIG = """
sources:
  - name: source-001
    feed: https://news1.example/feed.xml
    every: 10m
watchlists:
{watchlists}
channels:
  - name: hook
    file: alerts.jsonl
  - name: mail
    file: mail.jsonl
  - name: chat
    file: chat.jsonl
"""


def config_text() -> str:
    """The watchlists of the matches; watchlist-00's rule finds a term in every article
    and never holds, so its page lists a near miss for each article it looks at (the
    most that page renders)."""
    watchlists = "".join(
        f"  - name: watchlist-{w:02d}\n    keywords: [term {w}]\n    notify: [hook, mail]\n"
        for w in range(1, WATCHLISTS)
    )
    busiest = (
        '  - name: watchlist-00\n    rule: \'"border talks" AND "term 0"\'\n'
        "    notify: [hook, mail]\n"
    )
    return CONFIG.format(watchlists=busiest + watchlists)


# Each statement runs in one session after `setseed`, with :now (naive UTC), :n articles,
# :m matches, :s sources. Times run oldest (id 1) to newest (id n) over DAYS days.
FILL = [
    # sources: one in 50 switched off (and why), one in 20 failing, every one polled
    """
    INSERT INTO source (id, name, kind, url, every_seconds, enabled, next_fetch_at,
        last_fetch_at, last_success_at, last_error, last_error_kind, consecutive_failures,
        permanent_failures, disabled_reason, items_seen, created_at)
    SELECT g, 'source-' || lpad(g::text, 3, '0'),
        CASE WHEN g % 10 = 0 THEN 'page' ELSE 'feed' END,
        'https://news' || g || '.example/feed.xml', 300 * (1 + g % 4), g % 50 <> 0,
        :now + make_interval(secs => 300 * (1 + g % 4) - g % 300),
        :now - make_interval(secs => g % 300),
        CASE WHEN g % 20 = 0 THEN :now - interval '2 days'
            ELSE :now - make_interval(secs => g % 300) END,
        CASE WHEN g % 20 = 0
            THEN 'HTTP 503 Service Unavailable from https://news' || g || '.example/feed.xml' END,
        CASE WHEN g % 20 = 0 THEN 'http_5xx' END,
        CASE WHEN g % 20 = 0 THEN 40 ELSE 0 END, 0,
        CASE WHEN g % 50 = 0 THEN 'switched off after 40 failures in a row' END,
        0, :now - interval '120 days'
    FROM generate_series(1, :s) g
    """,
    # articles: sources by a skewed draw (a few busy ones, a long tail of quiet ones);
    # one in five a further copy of an earlier story
    """
    INSERT INTO article (id, source_id, canonical_url, content_hash, title, body, lead,
        authors, tags, published_at, language, fingerprint, story_id, rules_state, attempts,
        enqueued_at, created_at)
    SELECT g, src, 'https://news' || src || '.example/a/' || g, md5(g::text),
        'Report ' || g || ': officials ' || substr(md5(g::text), 1, 8) || ' talks in the capital',
        repeat(md5(g::text) || ' government forces border talks ', 6),
        'Officials said talks would continue ' || g, '[]', '[]', t - interval '5 minutes',
        'en', (hashtext(g::text))::bigint, CASE WHEN g % 5 = 0 AND g > 10 THEN g - 7 ELSE g END,
        'done', 1, t, t
    FROM (
        SELECT g, 1 + floor(:s * power(random(), 2))::int AS src,
            :now - make_interval(secs => (:n - g)::float8 * (86400 * """
    + str(DAYS)
    + """) / :n) AS t
        FROM generate_series(1, :n) g
    ) x
    """,
    """
    INSERT INTO item (id, source_id, entry_key, url, data, state, attempts, enqueued_at,
        article_id, outcome, created_at)
    SELECT a.id, a.source_id, a.canonical_url, a.canonical_url,
        json_build_object('title', a.title, 'link', a.canonical_url), 'parsed', 1,
        a.created_at, a.id, 'no_match', a.created_at
    FROM article a
    """,
    # matches: m articles spread over the whole history, watchlists by a skewed draw
    # (watchlist-00 the busiest); one in ten a further copy of a story already alerted
    """
    INSERT INTO match (id, watchlist, article_id, story_id, config_version, hits, names,
        snippet, highlights, state, created_at)
    SELECT k, 'watchlist-' || lpad(floor(:w * power(random(), 2))::int::text, 2, '0'),
        a.id, a.story_id, 'v' || (1 + k * 6 / :m),
        '[{"term": "term", "field": "body", "count": 2}]', '["Term"]',
        'Officials said the term was discussed at length in the capital on ' || a.id
            || ', as talks went on between the parties and their envoys.',
        '[[14, 18]]', CASE WHEN k % 10 = 0 THEN 'duplicate' ELSE 'alerted' END,
        a.created_at + interval '1 minute'
    FROM generate_series(1, :m) k
    JOIN article a ON a.id = 1 + (k - 1) * (:n / :m) + (k * 37) % (:n / :m)
    """,
    """
    UPDATE item SET outcome = CASE WHEN m.state = 'alerted' THEN 'matched'
        ELSE 'story_duplicate' END
    FROM match m WHERE item.article_id = m.article_id
    """,
    """
    INSERT INTO story_alert (watchlist, story_id, match_id)
    SELECT DISTINCT ON (watchlist, story_id) watchlist, story_id, id FROM match
    WHERE state = 'alerted' ORDER BY watchlist, story_id, id
    """,
    # deliveries of the alerted matches: the last half hour's pending, 1 in 200 failed
    # (retrying), 1 in 100 dead; the rest sent
    """
    INSERT INTO delivery (id, match_id, channel, state, kind, watchlist, route, attempts,
        next_attempt_at, enqueued_at, last_error, sent_at, created_at)
    SELECT gen_random_uuid()::text, m.id, c.channel, st, 'alert', m.watchlist, 'immediate',
        CASE st WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 3 ELSE 8 END,
        CASE st WHEN 'failed' THEN :now + make_interval(secs => 60 + m.id % 3600)
            ELSE m.created_at END,
        m.created_at,
        CASE st WHEN 'failed' THEN 'HTTP 502 Bad Gateway' WHEN 'dead'
            THEN 'HTTP 400 Bad Request: the endpoint refused the payload' END,
        CASE WHEN st = 'sent' THEN m.created_at + interval '2 seconds' END, m.created_at
    FROM match m
    CROSS JOIN LATERAL (VALUES ('hook'), ('mail'), ('chat')) AS c(channel)
    CROSS JOIN LATERAL (SELECT CASE
        WHEN m.created_at > :now - interval '30 minutes' THEN 'pending'
        WHEN random() < 0.005 AND c.channel IS NOT NULL THEN 'failed'  -- per channel
        WHEN random() < 0.01 AND c.channel IS NOT NULL THEN 'dead'
        ELSE 'sent' END AS st) s
    WHERE m.state = 'alerted' AND (c.channel <> 'chat' OR m.id % 2 = 0)
    """,
    # notices: a source failing now and then, and a rejected config edit every ten days,
    # each to one channel
    """
    INSERT INTO delivery (id, match_id, channel, state, kind, route, notice_key, notice,
        attempts, next_attempt_at, enqueued_at, sent_at, created_at)
    SELECT gen_random_uuid()::text, NULL, 'hook', 'sent', 'notice', 'immediate',
        CASE WHEN g % 20 = 0 THEN 'config_rejected:' || md5(g::text)
            ELSE 'source_failing:source-' || lpad((1 + g % :s)::text, 3, '0') || ':' || g END,
        json_build_object('event', 'notice',
            'title', CASE WHEN g % 20 = 0 THEN 'config rejected: newswatch.yaml'
                ELSE 'source failing: source-' || lpad((1 + g % :s)::text, 3, '0') END,
            'text', 'line 12: expected <block end>, but found ''?'''),
        1, t, t, t, t
    FROM (SELECT g, :now - make_interval(secs => g * 43200) AS t
          FROM generate_series(1, 2 * :days) g) x
    """,
    """
    INSERT INTO source_gap (source_id, detected_at, basis, visible, last_seen_at,
        oldest_visible_at, previous_poll_at, detail)
    SELECT 1 + g % :s, :now - make_interval(secs => g * 3000), 'dates', 20,
        :now - make_interval(secs => g * 3000 + 7200),
        :now - make_interval(secs => g * 3000 + 3600),
        :now - make_interval(secs => g * 3000 + 600), 'the feed moved past everything seen'
    FROM generate_series(1, 2000) g
    """,
    """
    UPDATE source SET items_seen = c.n FROM (
        SELECT source_id, count(*) AS n FROM item GROUP BY source_id) c
    WHERE source.id = c.source_id
    """,
    "SELECT setval(pg_get_serial_sequence('source', 'id'), :s)",
    "SELECT setval(pg_get_serial_sequence('article', 'id'), :n)",
    "SELECT setval(pg_get_serial_sequence('item', 'id'), :n)",
    "SELECT setval(pg_get_serial_sequence('match', 'id'), :m)",
]


def fill(url: str, articles: int, matches: int, now: datetime) -> dict[str, int]:
    """Bulk rows into the migrated database at `url`, then ANALYZE: rows per table."""
    engine = create_engine(url)
    params = {
        "now": now.replace(tzinfo=None),
        "n": articles,
        "m": min(matches, articles),
        "s": SOURCES,
        "w": WATCHLISTS,
        "days": DAYS,
    }
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(0.42)"))
        for statement in FILL:
            names = {k: v for k, v in params.items() if f":{k}" in statement}
            conn.execute(text(statement), names)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # VACUUM too: a history months old has been vacuumed by autovacuum, so its
        # visibility map lets the planner read an index alone (Index Only Scan)
        conn.execute(text("VACUUM ANALYZE"))
        tables = ["source", "article", "item", "match", "delivery", "source_gap"]
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}
    engine.dispose()
    return counts


def pages(busiest: str, quietest: str, busy: str, quiet: str) -> list[tuple[str, str]]:
    """(label, path) of every page with the common filters: the watchlists and the sources
    with the most and the fewest matches."""
    return [
        ("Alerts", "/alerts"),
        ("Alerts, busiest watchlist", f"/alerts?watchlist={quote(busiest)}"),
        ("Alerts, quietest watchlist", f"/alerts?watchlist={quote(quietest)}"),
        ("Alerts, busiest source", f"/alerts?source={quote(busy)}"),
        ("Alerts, quietest source", f"/alerts?source={quote(quiet)}"),
        ("Alerts, since 1d", "/alerts?since=1d"),
        ("Watchlist page, busiest", f"/watchlists/{quote(busiest)}"),
        ("Watchlist page, quietest", f"/watchlists/{quote(quietest)}"),
        ("Watchlists", "/watchlists"),
        ("Sources", "/sources"),
        ("Deliveries", "/deliveries"),
        ("Config", "/config"),
    ]


@dataclass
class Timing:
    label: str
    path: str
    status: int
    median_ms: float
    p95_ms: float


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


RANKED_WATCHLISTS = "SELECT watchlist FROM match GROUP BY watchlist ORDER BY count(*) DESC"
# the busiest source, and one with a single match: the filter with the fewest rows to show
RANKED_SOURCES = (
    "SELECT s.name FROM source s JOIN article a ON a.source_id = s.id "
    "JOIN match m ON m.article_id = a.id GROUP BY s.name ORDER BY count(*) DESC, s.name"
)


def time_pages(url: str, config: Path, runs: int) -> list[Timing]:
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            watchlists = list(conn.execute(text(RANKED_WATCHLISTS)).scalars())
            sources = list(conn.execute(text(RANKED_SOURCES)).scalars())
        client = Client(Dashboard(Data(store, config)))
        out = []
        for label, path in pages(watchlists[0], watchlists[-1], sources[0], sources[-1]):
            status = client.get(path).status_code  # warm-up
            spent = []
            for _ in range(runs):
                started = time.perf_counter()
                response = client.get(path)
                spent.append((time.perf_counter() - started) * 1000)
                status = status if status != 200 else response.status_code
            out.append(Timing(label, path, status, statistics.median(spent), p95(spent)))
        return out
    finally:
        store.engine.dispose()


def explain(url: str, config: Path, path: str) -> None:
    """EXPLAIN ANALYZE of each statement the page at `path` runs, to stderr."""
    store = Store(url)
    seen: list[tuple[str, Any]] = []  # (statement, the driver's parameters)

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    Client(Dashboard(Data(store, config))).get(path)
    event.remove(store.engine, "before_cursor_execute", record)
    with store.engine.connect() as conn:
        cursor = conn.connection.cursor()
        for statement, parameters in seen:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            shown = str(parameters)[:200]
            print(f"--- {path}\n{statement}\n{shown}\n{plan}\n", file=sys.stderr)
    store.engine.dispose()


@contextlib.contextmanager
def database(admin_url: str, keep: bool) -> Iterator[str]:
    if not keep:
        with throwaway_database(admin_url, prefix="nw_bench") as url:
            yield url
        return
    name = f"nw_bench_{int(time.time())}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    print(f"keeping database {url}", file=sys.stderr)
    yield url


def measure(
    admin_url: str, articles: int, matches: int, runs: int, keep: bool, explained: list[str]
) -> list[Timing]:
    with database(admin_url, keep) as url:
        Store(url).upgrade()
        started = time.monotonic()
        counts = fill(url, articles, matches, datetime.now(UTC))
        took = time.monotonic() - started
        shown = ", ".join(f"{t} {n:,}" for t, n in counts.items())
        print(f"filled in {took:.0f} s: {shown}", file=sys.stderr)
        return measure_filled(url, runs, explained)


def measure_filled(url: str, runs: int, explained: list[str]) -> list[Timing]:
    """The pages of a filled database (migrated first: a kept one gets new indexes)."""
    Store(url).upgrade()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "newswatch.yaml"
        config.write_text(config_text())
        timings = time_pages(url, config, runs)
        for path in explained:
            explain(url, config, path)
        return timings


def table(results: list[tuple[str, list[Timing]]]) -> str:
    head = "| Page | " + " | ".join(f"{size}: median / p95 (ms)" for size, _ in results)
    lines = [head + " | Status |", "|---" * (len(results) + 2) + "|"]
    for i, last in enumerate(results[-1][1]):  # the paths (names picked) of the largest
        cells = [f"{timings[i].median_ms:.1f} / {timings[i].p95_ms:.1f}" for _, timings in results]
        statuses = {timings[i].status for _, timings in results}
        status = ", ".join(str(s) for s in sorted(statuses))
        lines.append(f"| {last.label} (`{last.path}`) | " + " | ".join(cells) + f" | {status} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--matches", type=int, default=100_000)
    parser.add_argument("--baseline-articles", type=int, default=10_000, help="0: none")
    parser.add_argument("--baseline-matches", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--admin-url", default=os.environ.get("NEWSWATCH_BENCH_PG", ADMIN_URL))
    parser.add_argument("--keep", action="store_true", help="keep the databases made")
    parser.add_argument(
        "--explain",
        action="append",
        default=[],
        metavar="PATH",
        help="EXPLAIN ANALYZE the queries of this page (large size; repeatable)",
    )
    parser.add_argument(
        "--reuse", metavar="URL", help="measure a database kept by --keep instead of filling"
    )
    args = parser.parse_args()
    if args.reuse:
        timings = measure_filled(args.reuse, args.runs, args.explain)
        print(table([(args.reuse.rsplit("/", 1)[-1], timings)]))
        return 0
    sizes = [(args.articles, args.matches)]
    if args.baseline_articles:
        sizes.insert(0, (args.baseline_articles, args.baseline_matches))
    results = []
    for articles, matches in sizes:
        explained = args.explain if (articles, matches) == sizes[-1] else []
        timings = measure(args.admin_url, articles, matches, args.runs, args.keep, explained)
        results.append((f"{articles:,} articles / {matches:,} matches", timings))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {args.runs} runs")
    print(table(results))
    slow = [t.label for _, ts in results for t in ts if t.median_ms > BUDGET_MS]
    if slow:
        print(f"over {BUDGET_MS:.0f} ms (median): {', '.join(slow)}")
    bad = [f"{t.path} {t.status}" for _, ts in results for t in ts if t.status != 200]
    if bad:
        print(f"pages not answering 200: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
