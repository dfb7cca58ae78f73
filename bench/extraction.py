"""Score newswatch's article extraction against trafilatura's, both benchmarks in one run.

    .venv/bin/python bench/extraction.py            # both extractors, both benchmarks
    .venv/bin/python bench/extraction.py --steps    # also: body tokens each cleanup step removes

1. **Body** on the article-extraction-benchmark (181 pages, /work/shared/data). Metric as
   published with the dataset (see /work/shared/data/README.md): \\w+ tokens, multisets of
   4-token shingles, per-page TP/FP/FN normalised by their sum, precision/recall = means
   over pages, F1 = 2PR/(P+R), accuracy = share of pages whose token list equals the truth's.
2. **Metadata** on readability-test-pages (130 pages with Readability.js's expected title,
   byline and publishedTime). Only fields the page's expectation gives are counted:
   - text is folded first: NFKC, case-folded, curly quotes and dashes made plain,
     whitespace collapsed;
   - *title*: right when equal, or when one contains the other (the README's rule), and
     our title is not empty;
   - *byline, containment* (the README's rule): the authors joined by ", " and the expected
     byline, one contains the other;
   - *byline, name set*: the expected byline with "By"/"Von"/"Par" dropped, split on
     ",", "&", " and ", "|", "·"; right when every expected name is matched by one of ours
     and every one of ours by an expected name (names match when equal or one contains
     the other, e.g. "Dr. Ann Lee" and "Ann Lee");
   - *date*: the same calendar day, read either in the expected time's own offset or in UTC.
   These pages have no body truth; as a sign of recall on pages nobody tuned against, the
   script prints how much of each extractor's body text (4-shingles, mean over pages) the
   other one holds.
3. **Speed**: pages per second of each extractor on each benchmark, in the same process;
   --repeat passes (default 3) alternate between the extractors and the fastest pass of
   each counts; time is the process's CPU time (time.process_time), since the machine is
   shared and wall-clock time there measures the neighbours (newswatch does its full pass, metadata
   included, on both benchmarks).

trafilatura runs with the settings the issue compares against: 2.3.1 defaults, comments off
(`extract(..., include_comments=False)` for the body, `bare_extraction(...,
with_metadata=True, include_comments=False)` for the metadata). Per-page disagreements go to
--out (default bench/out/extraction.txt, gitignored) for reading.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trafilatura

from worker.articles.extract import ExtractionError, extract_page

DATA = Path("/work/shared/data")
_TOKEN = re.compile(r"\w+")
# Readability's test pages were saved without their address; its tests use this one.
FAKE_URL = "http://fakehost/test/page.html"


@dataclass
class Meta:
    title: str = ""
    authors: list[str] = field(default_factory=list)
    published: str = ""  # ISO date or datetime as the extractor gives it, "" when none
    body: str = ""


# ------------------------------------------------------------------- body metric


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def shingles(toks: list[str], n: int = 4) -> Counter[tuple[str, ...]]:
    return Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def page_counts(pred: str, truth: str) -> tuple[float, float, float]:
    """Normalised (tp, fp, fn) for one page."""
    p, t = shingles(tokens(pred)), shingles(tokens(truth))
    tp = sum((p & t).values())
    fp = sum((p - t).values())
    fn = sum((t - p).values())
    total = tp + fp + fn
    if total == 0:
        return 0.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


def score(preds: dict[str, str], truth: dict[str, str]) -> dict[str, float]:
    precisions, recalls, exact = [], [], 0
    for key, gold in truth.items():
        pred = preds.get(key, "")
        tp, fp, fn = page_counts(pred, gold)
        if tp + fp > 0:
            precisions.append(tp / (tp + fp))
        if tp + fn > 0:
            recalls.append(tp / (tp + fn))
        exact += tokens(pred) == tokens(gold)
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"f1": f1, "precision": p, "recall": r, "accuracy": exact / len(truth)}


# ------------------------------------------------------------------- metadata rules

_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})
_BY = re.compile(r"^(?:by|von|par|por|door)[:\s]+", re.I)
_NAME_SPLIT = re.compile(r"\s*(?:,|&|\band\b|\||·|;)\s*", re.I)


def fold(text: str | None) -> str:
    text = unicodedata.normalize("NFKC", text or "").translate(_QUOTES).casefold()
    return " ".join(text.split())


def title_ok(pred: str, want: str) -> bool:
    p, w = fold(pred), fold(want)
    return bool(p) and (p == w or p in w or w in p)


def byline_contains(pred: list[str], want: str) -> bool:
    p, w = fold(", ".join(pred)), fold(want)
    return bool(p) and (p in w or w in p)


def names(byline: str) -> set[str]:
    parts = _NAME_SPLIT.split(_BY.sub("", fold(byline)))
    return {_BY.sub("", n).strip(" .-") for n in parts if n.strip(" .-")}


def byline_names_ok(pred: list[str], want: str) -> bool:
    ours = set().union(*(names(a) for a in pred)) if pred else set()
    theirs = names(want)

    def matched(n: str, pool: set[str]) -> bool:
        return any(n == m or n in m or m in n for m in pool)

    return (
        bool(ours)
        and all(matched(n, theirs) for n in ours)
        and all(matched(n, ours) for n in theirs)
    )


def _days(iso: str) -> set[date]:
    """The calendar day of an ISO date/datetime, in its own offset and in UTC."""
    try:
        dt = datetime.fromisoformat(iso.strip().replace("Z", "+00:00"))
    except ValueError:
        return set()
    days = {dt.date()}
    if dt.tzinfo is not None:
        days.add(dt.astimezone(UTC).date())
    return days


def date_ok(pred: str, want: str) -> bool:
    return bool(_days(pred) & _days(want))


# ------------------------------------------------------------------- extractors


def nw_body(html: bytes, url: str) -> str:
    try:
        return extract_page(html, url).body
    except ExtractionError:
        return ""


def tf_body(html: bytes, url: str) -> str:
    return trafilatura.extract(html, url=url, include_comments=False) or ""


def nw_meta(html: bytes, url: str) -> Meta:
    try:
        page = extract_page(html, url)
    except ExtractionError:
        return Meta()
    published = page.published.isoformat() if page.published else ""
    return Meta(page.title or "", list(page.authors), published, page.body)


def tf_meta(html: bytes, url: str) -> Meta:
    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False)
    if doc is None or isinstance(doc, dict):  # a dict only with as_dict=True
        return Meta()
    authors = [a.strip() for a in (doc.author or "").split(";") if a.strip()]
    return Meta(doc.title or "", authors, doc.date or "", doc.text or "")


BODY: dict[str, Callable[[bytes, str], str]] = {"newswatch": nw_body, "trafilatura": tf_body}
META: dict[str, Callable[[bytes, str], Meta]] = {"newswatch": nw_meta, "trafilatura": tf_meta}


# ------------------------------------------------------------------- loading


def load_body(dataset: Path) -> tuple[dict[str, bytes], dict[str, str], dict[str, str]]:
    gold = json.loads((dataset / "ground-truth.json").read_text(encoding="utf-8"))
    pages = {k: gzip.decompress((dataset / "html" / f"{k}.html.gz").read_bytes()) for k in gold}
    truth = {k: v["articleBody"] for k, v in gold.items()}
    urls = {k: v["url"] for k, v in gold.items()}
    return pages, truth, urls


def load_meta(root: Path) -> tuple[dict[str, bytes], dict[str, dict]]:
    pages, expected = {}, {}
    for d in sorted(p for p in root.iterdir() if (p / "source.html.gz").exists()):
        pages[d.name] = gzip.decompress((d / "source.html.gz").read_bytes())
        expected[d.name] = json.loads((d / "expected-metadata.json").read_text(encoding="utf-8"))
    return pages, expected


# ------------------------------------------------------------------- runs


def timed(
    fn: Callable, pages: dict[str, bytes], url_of: Callable[[str], str]
) -> tuple[dict, float]:
    start = time.process_time()
    out = {k: fn(html, url_of(k)) for k, html in pages.items()}
    return out, len(pages) / (time.process_time() - start)


def meta_score(preds: dict[str, Meta], expected: dict[str, dict]) -> dict[str, tuple[int, int]]:
    counts = {"title": [0, 0], "byline": [0, 0], "byline names": [0, 0], "date": [0, 0]}
    for key, exp in expected.items():
        got = preds[key]
        checks = []
        if exp.get("title"):
            checks.append(("title", title_ok(got.title, exp["title"])))
        if exp.get("byline"):
            checks.append(("byline", byline_contains(got.authors, exp["byline"])))
            checks.append(("byline names", byline_names_ok(got.authors, exp["byline"])))
        if exp.get("publishedTime"):
            checks.append(("date", date_ok(got.published, exp["publishedTime"])))
        for name, ok in checks:
            counts[name][0] += ok
            counts[name][1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def cross_cover(ours: dict[str, Meta], theirs: dict[str, Meta]) -> float:
    """Mean share of their body's 4-shingles that ours holds, over pages where theirs has
    text: on pages with no truth, how much of the other extractor's text we miss."""
    shares = []
    for key, other in theirs.items():
        t = shingles(tokens(other.body))
        if t:
            shares.append(sum((shingles(tokens(ours[key].body)) & t).values()) / sum(t.values()))
    return sum(shares) / len(shares) if shares else 0.0


def body_disagreements(preds: dict[str, dict[str, str]], truth: dict[str, str]) -> list[str]:
    """Pages where either extractor scores under 0.95 precision or recall, worst first."""
    rows = []
    for key, gold in truth.items():
        per = {}
        for name, p in preds.items():
            tp, fp, fn = page_counts(p[key], gold)
            per[name] = (tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0)
        if min(min(v) for v in per.values()) < 0.95:
            rows.append((min(min(v) for v in per.values()), key, per))
    out = []
    for _, key, per in sorted(rows):
        cols = "  ".join(f"{n} P {p:.2f} R {r:.2f}" for n, (p, r) in per.items())
        out.append(f"body {key}  {cols}")
        for name, p in preds.items():
            missed = _missed_text(p[key], truth[key])
            extra = _missed_text(truth[key], p[key])
            if missed:
                out.append(f"    {name} missed: {missed}")
            if extra:
                out.append(f"    {name} extra:  {extra}")
    return out


def _missed_text(pred: str, gold: str, limit: int = 300) -> str:
    """Runs of gold tokens that are not in pred, as text (first `limit` characters)."""
    have = set(shingles(tokens(pred)))
    toks = tokens(gold)
    runs: list[str] = []
    cur: list[str] = []
    for i in range(len(toks) - 3):
        if tuple(toks[i : i + 4]) in have:
            if cur:
                runs.append(" ".join(cur))
                cur = []
        else:
            cur.append(toks[i])
    if cur:
        runs.append(" ".join(cur))
    return " | ".join(runs)[:limit]


def meta_disagreements(preds: dict[str, dict[str, Meta]], expected: dict[str, dict]) -> list[str]:
    out = []
    rules = {
        "title": ("title", lambda m, w: title_ok(m.title, w), lambda m: m.title),
        "byline": ("byline", lambda m, w: byline_names_ok(m.authors, w), lambda m: m.authors),
        "date": ("publishedTime", lambda m, w: date_ok(m.published, w), lambda m: m.published),
    }
    for key, exp in expected.items():
        for name, (field_, ok, shown) in rules.items():
            want = exp.get(field_)
            if not want:
                continue
            marks = {n: ok(p[key], want) for n, p in preds.items()}
            if all(marks.values()):
                continue
            got = "  ".join(
                f"{n}{'' if marks[n] else ' WRONG'}: {shown(p[key])!r}" for n, p in preds.items()
            )
            out.append(f"{name} {key}  expected {want!r}\n    {got}")
    return out


def run(args: argparse.Namespace) -> list[str]:
    names_ = [n for n in BODY if args.only in (None, n)]
    pages, truth, urls = load_body(args.dataset)
    mpages, expected = load_meta(args.readability)
    print(
        f"{len(pages)} body pages from {args.dataset}; "
        f"{len(mpages)} metadata pages from {args.readability}"
    )
    body_preds, meta_preds = {}, {}
    body_rate: dict[str, float] = {}
    meta_rate: dict[str, float] = {}
    # The machine is shared: CPU time, passes alternating, the best pass counts.
    for _ in range(args.repeat):
        for name in names_:
            body_preds[name], rate = timed(BODY[name], pages, urls.__getitem__)
            body_rate[name] = max(rate, body_rate.get(name, 0.0))
            meta_preds[name], rate = timed(META[name], mpages, lambda _k: FAKE_URL)
            meta_rate[name] = max(rate, meta_rate.get(name, 0.0))
    for name in names_:
        s = score(body_preds[name], truth)
        m = meta_score(meta_preds[name], expected)
        print(
            f"{name:<12} body F1 {s['f1']:.3f}  P {s['precision']:.3f}  R {s['recall']:.3f}  "
            f"accuracy {s['accuracy']:.3f}  {body_rate[name]:.1f} pages/s"
        )
        print(
            f"{'':<12} "
            + "  ".join(f"{k} {a}/{b}" for k, (a, b) in m.items())
            + f"  {meta_rate[name]:.1f} pages/s"
        )
    if len(names_) == 2:
        nw, tf = meta_preds["newswatch"], meta_preds["trafilatura"]
        print(
            f"readability pages (no body truth): newswatch holds {cross_cover(nw, tf):.3f} of "
            f"trafilatura's body shingles, trafilatura {cross_cover(tf, nw):.3f} of newswatch's"
        )
        ratio = body_rate["newswatch"] / body_rate["trafilatura"]
        print(
            f"speed newswatch / trafilatura: body {ratio:.2f}x, metadata "
            f"{meta_rate['newswatch'] / meta_rate['trafilatura']:.2f}x"
        )
    return body_disagreements(body_preds, truth) + meta_disagreements(meta_preds, expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DATA / "article-extraction-benchmark")
    parser.add_argument("--readability", type=Path, default=DATA / "readability-test-pages")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "out" / "extraction.txt"
    )
    parser.add_argument("--only", choices=list(BODY), default=None)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best counts")
    parser.add_argument(
        "--steps", action="store_true", help="body tokens each cleanup step removes"
    )
    args = parser.parse_args(argv)
    lines = run(args)
    if args.steps:
        from bench.extraction_steps import report_steps

        report_steps(args.dataset)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} disagreement lines in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
