"""Bytes per article in the database, with the text kept and after retention cleared it.

    .venv/bin/python bench/storage.py --articles 300

Feeds like a full-content news feed (a ~400-character summary and ~4 KB of HTML
content per entry; one in ten matches a watchlist with a webhook channel) go through
the real pipeline (tests/helpers/pipeline.py, in process, a controlled clock) into a
fresh SQLite file. It prints the bytes of used pages per article (page_count minus the
free list, over the empty schema) while the text is kept, then after the clock moves
past `retention.article_text` and pruning clears it, and what one item row and one
article row hold on average.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from tests.helpers.httpserver import serve
from tests.helpers.pipeline import Clock, make_runtime, run_all
from worker.store import models as m

WORDS = [
    "government",
    "minister",
    "forces",
    "militia",
    "border",
    "talks",
    "agreement",
    "security",
    "council",
    "report",
    "officials",
    "province",
    "capital",
    "parliament",
    "election",
    "economy",
    "crisis",
    "troops",
    "withdrawal",
    "ceasefire",
    "negotiations",
    "regional",
    "spokesman",
    "statement",
    "sources",
    "according",
    "week",
    "city",
]


def entry_xml(site, n: int, rng: random.Random) -> str:
    def text(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words))

    hit = " Alpha" if n % 10 == 0 else ""
    paragraphs = "".join(f"<p>{text(60)}.</p>" for _ in range(9))  # ~4 KB of HTML
    return (
        f"<item><title>Report {n}: {text(8)}{hit}</title><link>{site.url(f'/a/{n}')}</link>"
        f"<guid>{site.url(f'/a/{n}')}</guid><description>{text(55)}</description>"
        f"<content:encoded><![CDATA[{paragraphs}]]></content:encoded></item>"
    )


def feed(items: list[str]) -> str:
    return (
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>T</title>'
        + "".join(items)
        + "</channel></rss>"
    )


def used_bytes(rt) -> int:
    with rt.store.engine.connect() as conn:
        page = conn.exec_driver_sql("PRAGMA page_size").scalar()
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar()
    return (pages - free) * page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--tables", action="store_true", help="pages per table and index")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp, serve() as site:
        site.add("/hook", b"", status=204)
        config = f"""
sources:
  - name: wire
    feed: {site.url("/feed.xml")}
    every: 1m
watchlists:
  - name: alpha
    keywords: [Alpha]
    notify: [hook]
channels:
  - name: hook
    webhook: {site.url("/hook")}
fetch:
  allow_networks: [127.0.0.0/8]
"""
        clock = Clock()
        rt = make_runtime(Path(tmp), f"sqlite:///{tmp}/bench.db", config, clock)
        empty = used_bytes(rt)
        items = [entry_xml(site, n, rng) for n in range(args.articles)]
        for start in range(0, args.articles, 50):
            site.add(
                "/feed.xml", feed(items[start : start + 50]),
                headers={"Content-Type": "application/rss+xml"},
            )  # fmt: skip
            clock.advance(61)
            run_all(rt)
        with rt.store.session() as s:
            n = s.scalar(select(func.count()).select_from(m.Article)) or 0
            item_json = s.scalar(select(func.avg(func.length(func.json(m.Item.data)))))
            body = s.scalar(select(func.avg(func.length(m.Article.body))))
        kept = (used_bytes(rt) - empty) / n
        print(f"{n} articles; per article, all rows of every kind included:")
        print(
            f"  text kept:    {kept:8.0f} bytes  (item data {item_json:.0f} chars, body {body:.0f})"
        )
        try:
            from worker.service import retention
        except ImportError:  # the code before retention: nothing is ever cleared
            return
        clock.advance(rt.config.current().loaded.config.retention.article_text + 3600)
        retention.prune(rt)
        cleared = (used_bytes(rt) - empty) / n
        print(f"  text cleared: {cleared:8.0f} bytes  (title, link, hash, dates, matches kept)")
        if args.tables:
            with rt.store.engine.connect() as conn:
                for row in conn.exec_driver_sql(
                    "SELECT name, count(*), sum(pgsize), sum(unused) FROM dbstat "
                    "GROUP BY name ORDER BY 3 DESC"
                ):
                    print("   ", *row)


if __name__ == "__main__":
    main()
