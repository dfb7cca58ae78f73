"""The changed-feed path in one process, without Celery: CPU-ms per step, and a profile.

    .venv/bin/python bench/changed_path.py --polls 40            # the figures
    .venv/bin/python bench/changed_path.py --polls 40 --profile  # and cProfile's top costs

A local feed server (127.0.0.1) answers each poll of the feed with one new item at the
top (the feed lists the latest `--items`), like bench/polls.py's "changed" mode. The
steps run directly (tests/helpers/pipeline.py's runtime, SQLite in a temporary folder):
fetch_source (fetch, feed parse, store items), parse_item, apply_rules, per new item.
Mode `full-text` sets `full_text: true`: each new item's page is fetched and extracted.

What this leaves out on purpose is what bench/polls.py measures on top: Celery, Redis,
the dispatch. Printed: CPU-ms per poll for each step (this thread's CPU: the server's
thread is left out), median (and min) of `--polls`, and the wall-ms of the three steps
(the database's own work and its commits' waits show there, not in the CPU).

`--postgres ADMIN_URL` runs on a throwaway PostgreSQL database instead of SQLite. To
measure another checkout's code, run a copy of this file placed in that checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.httpserver import RecordedRequest, serve  # noqa: E402
from tests.helpers.pipeline import Clock, make_runtime  # noqa: E402
from tests.helpers.servers import throwaway_database  # noqa: E402
from worker.articles import parsing  # noqa: E402
from worker.matching import applying  # noqa: E402
from worker.sources import polling  # noqa: E402

PAGE = """<html><head><title>Weather update {k}</title></head><body><nav>Home</nav>
<article><h1>Weather update {k}</h1><p>{words}</p><p>Officials said more details would
follow later in the week, and that talks would continue in the capital.</p></article>
<footer>Copyright Example</footer></body></html>"""


class Feed:
    """One feed whose version goes up by one on every request."""

    def __init__(self, items: int) -> None:
        self.items = items
        self.version = 0
        self.base = ""

    def answer(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        self.version += 1
        out = []
        for k in range(self.version, max(self.version - self.items, 0), -1):
            link = f"{self.base}/item/{k}"
            words = " ".join(f"w{k}y{j}" for j in range(10))
            out.append(
                f"<item><title>Weather update {k}</title><link>{link}</link><guid>{link}</guid>"
                f"<description>Weather report {words}</description>"
                f"<pubDate>Mon, 07 Dec 2026 03:{k % 60:02d}:00 GMT</pubDate></item>"
            )
        body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{"".join(out)}'
        return 200, {"Content-Type": "application/rss+xml"}, (body + "</channel></rss>").encode()

    @staticmethod
    def page(request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        k = request.path.rsplit("/", 1)[-1]
        words = " ".join(f"w{k}y{j} storm" for j in range(60))
        return 200, {"Content-Type": "text/html"}, PAGE.format(k=k, words=words).encode()


def config(url: str, full_text: bool) -> str:
    return f"""
sources:
  - {{name: wire, feed: '{url}', every: 5m, full_text: {str(full_text).lower()}}}
watchlists:
  - {{name: never, keywords: [Zephyr], notify: [archive]}}
channels:
  - {{name: archive, file: '{{data}}/alerts.jsonl'}}
fetch:
  allow_networks: [127.0.0.0/8]
  min_interval: 0  # one host polled back to back: no politeness pause in the wall time
"""


def timed(fn: Callable[[], Any], into: list[float]) -> Any:
    t0 = time.thread_time()
    out = fn()
    into.append(1000 * (time.thread_time() - t0))
    return out


def run(
    polls: int, items: int, full_text: bool, profile: cProfile.Profile | None, postgres: str | None
) -> dict[str, list[float]]:
    feed = Feed(items)
    steps: dict[str, list[float]] = {"fetch_source": [], "parse_item": [], "apply_rules": []}
    counted: list[int] = []  # SQL statements per poll, all three steps
    walls: list[float] = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(serve())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        url = f"sqlite:///{tmp}/nw.db"
        if postgres:
            url = stack.enter_context(throwaway_database(postgres, prefix="nw_bench"))
        feed.base = server.url("")
        server.routes["/feed.xml"] = feed.answer
        for k in range(polls + items + 2):
            server.routes[f"/item/{k}"] = Feed.page
        text = config(server.url("/feed.xml"), full_text).replace("{data}", tmp)
        clock = Clock()
        rt = make_runtime(Path(tmp), url, text, clock)
        stack.callback(rt.store.engine.dispose)
        statements = [0]

        @event.listens_for(rt.store.engine, "before_cursor_execute")
        def _count(*_args: Any) -> None:
            statements[0] += 1

        for n in range(polls + 1):  # the first poll (all items new) is not measured
            clock.advance(600)
            (source_id,) = polling.dispatch_due(rt)
            statements[0] = 0
            if profile is not None and n:
                profile.enable()
            fetch: list[float] = []
            started = time.perf_counter()
            item_ids = timed(lambda: polling.fetch_source(rt, source_id), fetch)  # noqa: B023
            parse: list[float] = []
            rules: list[float] = []
            for item_id in item_ids:
                article = timed(lambda: parsing.parse_item(rt, item_id), parse)  # noqa: B023
                if article is not None:
                    timed(lambda: applying.apply_rules(rt, article), rules)  # noqa: B023
            wall = 1000 * (time.perf_counter() - started)
            if profile is not None:
                profile.disable()
            if n:
                walls.append(wall)
                assert len(item_ids) == 1, f"poll {n}: {len(item_ids)} new items, not one"
                counted.append(statements[0])
                steps["fetch_source"] += fetch
                steps["parse_item"].append(sum(parse))
                steps["apply_rules"].append(sum(rules))
    steps["statements"] = [float(c) for c in counted]
    steps["wall"] = walls
    return steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--polls", type=int, default=40)
    p.add_argument("--items", type=int, default=5, help="items the feed lists")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--postgres", metavar="ADMIN_URL", help="a PostgreSQL server, not SQLite")
    p.add_argument("--modes", default="changed,full-text")
    args = p.parse_args(argv)
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}; {args.items} items in the feed")
    for mode in args.modes.split(","):
        profile = cProfile.Profile() if args.profile else None
        steps = run(args.polls, args.items, mode == "full-text", profile, args.postgres)
        per_poll = statistics.median(steps.pop("statements"))
        wall = statistics.median(steps.pop("wall"))
        totals = [sum(t) for t in zip(*steps.values(), strict=True)]
        parts = ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in steps.items())
        print(
            f"{mode}: {statistics.median(totals):.2f} CPU-ms per poll with one new item, "
            f"min {min(totals):.2f} ({parts}); {per_poll:.0f} SQL statements; "
            f"wall {wall:.2f} ms"
        )
        if profile is not None:
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
