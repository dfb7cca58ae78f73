"""Score titles, bylines and published dates on the readability test pages, newswatch
against trafilatura in one run, and write every disagreement to a file for reading.

    .venv/bin/python bench/metadata_eval.py \\
        --dataset /work/shared/data/readability-test-pages --out /tmp/metadata-disagreements.txt

Scoring as in /work/shared/data/README.md: a title is right when it equals the expected
one, or one contains the other, after folding case, quotes and spaces; a byline when one
contains the other (authors joined with ", "); a date when it falls on the same calendar
day as `publishedTime` (its written day or its UTC day), counted only where one is given.
The pages carry no URL: each is given its own canonical / og:url, as a crawler would know.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lxml.html
import trafilatura

from worker.articles.extract import ExtractionError, extract_page

_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"'})


@dataclass
class Found:
    title: str = ""
    byline: str = ""
    date: str = ""  # YYYY-MM-DD (UTC) or ""


Runner = Callable[[bytes, str], Found]


def fold(text: str | None) -> str:
    return re.sub(r"\s+", " ", (text or "").translate(_QUOTES)).strip().lower()


def contains_either(pred: str | None, gold: str | None) -> bool:
    p, g = fold(pred), fold(gold)
    return bool(p and g) and (p == g or p in g or g in p)


def gold_days(published: str) -> set[str]:
    days = {published[:10]}
    try:
        dt = datetime.fromisoformat(published.replace("Z", "+00:00"))
    except ValueError:
        return days
    if dt.tzinfo is not None:
        days.add(dt.astimezone(UTC).date().isoformat())
    return days


def page_url(html: bytes) -> str:
    try:
        tree = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return ""
    for xpath in ('//link[@rel="canonical"]/@href', '//meta[@property="og:url"]/@content'):
        found = cast("list[str]", tree.xpath(xpath))  # an attribute path: strings
        hits = [h for h in found if h.startswith("http")]
        if hits:
            return hits[0]
    return ""


def run_newswatch(html: bytes, url: str) -> Found:
    try:
        page = extract_page(html, url)
    except ExtractionError:
        return Found()
    day = page.published.astimezone(UTC).date().isoformat() if page.published else ""
    return Found(page.title, ", ".join(page.authors), day)


def run_trafilatura(html: bytes, url: str) -> Found:
    doc = trafilatura.bare_extraction(html, url=url or None, with_metadata=True)
    if doc is None or isinstance(doc, dict):  # a dict only with as_dict=True
        return Found()
    return Found(doc.title or "", (doc.author or "").replace("; ", ", "), doc.date or "")


def load(dataset: Path) -> dict[str, tuple[bytes, dict]]:
    pages = {}
    for d in sorted(p for p in dataset.iterdir() if (p / "expected-metadata.json").exists()):
        html = gzip.decompress((d / "source.html.gz").read_bytes())
        pages[d.name] = (html, json.loads((d / "expected-metadata.json").read_text("utf-8")))
    return pages


def evaluate(name: str, fn: Runner, pages, urls, out: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    found = {k: fn(html, urls[k]) for k, (html, _) in pages.items()}
    ms = (time.perf_counter() - start) * 1000 / len(pages)
    hits = {"title": [0, 0], "byline": [0, 0], "date": [0, 0]}
    for k, (_, gold) in sorted(pages.items()):
        f = found[k]
        checks = [
            ("title", gold.get("title"), f.title, contains_either),
            ("byline", gold.get("byline"), f.byline, contains_either),
            ("date", gold.get("publishedTime"), f.date, lambda p, g: p in gold_days(g)),
        ]
        for field, want, got, ok in checks:
            if not want:
                continue
            hits[field][1] += 1
            if ok(got, want):
                hits[field][0] += 1
            else:
                out.append(f"{name}\t{k}\t{field}\twant {want!r}\tgot {got!r}")
    print(
        f"{name:<12} titles {hits['title'][0]}/{hits['title'][1]}  "
        f"bylines {hits['byline'][0]}/{hits['byline'][1]}  "
        f"dates {hits['date'][0]}/{hits['date'][1]}  {ms:.1f} ms/page"
    )
    return {f: h[0] for f, h in hits.items()} | {"ms_per_page": ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/metadata-disagreements.txt"))
    parser.add_argument("--only", choices=["newswatch", "trafilatura"], default=None)
    args = parser.parse_args(argv)
    pages = load(args.dataset)
    urls = {k: page_url(html) for k, (html, _) in pages.items()}
    print(f"{len(pages)} pages from {args.dataset}")
    out: list[str] = []
    for name, fn in {"newswatch": run_newswatch, "trafilatura": run_trafilatura}.items():
        if args.only in (None, name):
            evaluate(name, fn, pages, urls, out)
    args.out.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"{len(out)} disagreements written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
