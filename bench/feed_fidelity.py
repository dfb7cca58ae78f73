"""Does fastfeedparser read feeds as feedparser does? Field by field, per entry.

    .venv/bin/pip install fastfeedparser   # not a dependency: only this script needs it
    .venv/bin/python bench/feed_fidelity.py --feedparser-repo /path/to/feedparser.git

The feeds: feedparser's own test feeds (its repository's tests/ folder, read in place
with `git show` from a clone or mirror, never copied here) and ours (tests/data/feeds).
Each feed is parsed by both; entries are paired by position and compared on what
newswatch reads of an entry (worker/sources/feeds.py): title, link, id, published,
updated, summary, content, authors, tags, enclosures. Text is compared as newswatch
stores it (markup reduced to text, spaces tidied), dates as UTC instants.

Printed: per field, how many entry pairs agree (a field both leave empty agrees), the
feeds one parser read and the other did not, the time per feed of each parser, and
the first `--show` disagreements of each field.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import feedparser  # noqa: E402
from dateutil import parser as dateparser  # noqa: E402

from worker.sources.feeds import html_to_text  # noqa: E402

FIELDS = (
    "title",
    "link",
    "id",
    "published",
    "updated",
    "summary",
    "content",
    "authors",
    "tags",
    "enclosures",
)
FEED_SUFFIXES = (".xml", ".rdf", ".atom", ".rss")


def git_feeds(repo: Path) -> Iterator[tuple[str, bytes]]:
    """feedparser's test feeds, read from its git directory (HEAD) as they are."""
    names = subprocess.run(
        ["git", "--git-dir", str(repo), "ls-tree", "-r", "--name-only", "HEAD", "tests"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in names:
        if name.endswith(FEED_SUFFIXES) and "/http/" not in name:
            body = subprocess.run(
                ["git", "--git-dir", str(repo), "show", f"HEAD:{name}"],
                check=True,
                capture_output=True,
            ).stdout
            yield f"feedparser:{name}", body


def our_feeds() -> Iterator[tuple[str, bytes]]:
    for path in sorted((REPO / "tests" / "data" / "feeds").iterdir()):
        if path.suffix in FEED_SUFFIXES:
            yield f"ours:{path.name}", path.read_bytes()


def _text(value: Any) -> str:
    return html_to_text(value) if isinstance(value, str) else ""


def _date(entry: Any, name: str) -> datetime | None:
    parsed = entry.get(f"{name}_parsed") if isinstance(entry, dict) else None
    if parsed:  # feedparser: a UTC struct_time
        try:
            y, mo, d, h, mi, sec = tuple(parsed)[:6]
            return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
        except (TypeError, ValueError):
            return None
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    try:  # fastfeedparser: an ISO 8601 string
        dt = dateparser.isoparse(value)
    except (ValueError, OverflowError):
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)


def view(entry: Any) -> dict[str, Any]:
    """What newswatch reads of one entry, in comparable form."""
    get = entry.get
    content = get("content") or []
    return {
        "title": _text(get("title")),
        "link": get("link") or "",
        "id": get("id") or "",
        "published": _date(entry, "published"),
        "updated": _date(entry, "updated"),
        "summary": _text(get("summary")),
        "content": _text(content[0].get("value")) if content else "",
        "authors": sorted(a.get("name") or "" for a in get("authors") or [] if a),
        "tags": sorted(t.get("term") or "" for t in get("tags") or [] if t),
        "enclosures": sorted(e.get("href") or e.get("url") or "" for e in get("enclosures") or []),
    }


def read(parse: Callable[[bytes], Any], body: bytes) -> tuple[list[Any] | None, float]:
    t0 = time.perf_counter()
    try:
        entries = list(parse(body).get("entries") or [])
    except Exception:  # a parser that raises did not read the feed
        entries = None
    return entries, time.perf_counter() - t0


def compare(feeds: list[tuple[str, bytes]], show: int) -> None:
    import fastfeedparser

    agree: Counter[str] = Counter()
    pairs = 0
    differ: dict[str, list[str]] = defaultdict(list)
    only: Counter[str] = Counter()
    times = {"feedparser": 0.0, "fastfeedparser": 0.0}
    for name, body in feeds:
        slow, t_slow = read(feedparser.parse, body)
        fast, t_fast = read(fastfeedparser.parse, body)
        times["feedparser"] += t_slow
        times["fastfeedparser"] += t_fast
        if not slow and not fast:
            continue
        if not fast:
            only["feedparser only (fastfeedparser: no entries or an error)"] += 1
            continue
        if not slow:
            only["fastfeedparser only"] += 1
            continue
        if len(slow) != len(fast):
            only["entry counts differ"] += 1
        for n, (a, b) in enumerate(zip(slow, fast, strict=False)):
            pairs += 1
            va, vb = view(a), view(b)
            for f in FIELDS:
                if va[f] == vb[f]:
                    agree[f] += 1
                else:
                    differ[f].append(f"{name} #{n}: feedparser {va[f]!r:.90} | fast {vb[f]!r:.90}")
    print(f"{len(feeds)} feeds, {pairs} entry pairs compared")
    for k, v in only.items():
        print(f"  {k}: {v} feeds")
    for k, secs in times.items():
        print(f"  {k}: {1000 * secs / max(len(feeds), 1):.2f} ms per feed")
    print("| field | agree | disagree |")
    print("|---|---|---|")
    for f in FIELDS:
        print(f"| {f} | {agree[f]} ({100 * agree[f] / max(pairs, 1):.1f}%) | {len(differ[f])} |")
    for f in FIELDS:
        for line in differ[f][:show]:
            print(f"  [{f}] {line}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--feedparser-repo", type=Path, help="a clone's git directory")
    p.add_argument("--show", type=int, default=4, help="disagreements listed per field")
    args = p.parse_args(argv)
    feeds = list(our_feeds())
    if args.feedparser_repo:
        feeds += list(git_feeds(args.feedparser_repo))
    compare(feeds, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
