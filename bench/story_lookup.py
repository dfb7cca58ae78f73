"""The story lookup (near-duplicate search, worker/articles/stories.py `find_story` over
worker/store/items.py `StoryQueries`) with many stored articles, on PostgreSQL.

    .venv/bin/python bench/story_lookup.py --articles 100000 --days 10 \
        --baseline /path/to/an/older/checkout

Fills a throwaway database with `--articles` articles (fingerprints and band keys as the
parse task stores them) spread over `--days` days, so part of them are older than the
lookup's window (3 days), then times `find_story` for `--lookups` new articles, each in a
transaction rolled back. A third of the new articles are edited copies of stored ones
(bench/dedupe.py's `variant`), so the lookup has stories to find, and the bench checks
that every code measured files them under the same stories.

Text kinds (`--kind`): "template" is bench/load.py's simulated feed items (their
template words make fingerprints alike: the case the 100,000-source load run hit),
"corpus" draws words with the extraction benchmark's word frequencies, "same-topic" is a
word-bigram chain over similar real articles (bench/dedupe.py).

`--baseline PATH` runs the same lookups with the code of another checkout (a subprocess
with that checkout first on sys.path), alternating with this one, on the same database.
Prints wall milliseconds per lookup min / median / p95 / max, the candidate rows the
store returned and the texts compared, per code, and the load average.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASET = Path("/work/shared/data/article-extraction-benchmark")


def texts_of(kind: str, n: int, dataset: Path, rng: random.Random) -> list[tuple[str, str]]:
    from bench import dedupe as gen  # its generators

    if kind == "template":
        out = []
        for x in range(n):
            i, k = divmod(x, 7)
            words = " ".join(f"u{i}x{k}y{j}" for j in range(10))
            topic = "Weather update"
            out.append((f"{topic} {i}-{k}", f"{topic} report {words}"))
        return out
    gold = json.loads((dataset / "ground-truth.json").read_text(encoding="utf-8"))
    everything = [v["articleBody"] for v in gold.values()]
    sizes = gen.lengths([len(t.split()) for t in everything], rng, n)
    if kind == "corpus":
        counts = Counter(w for t in everything for w in t.split())
        vocab = list(counts)
        return list(gen.unigram_texts(vocab, [counts[w] for w in vocab], sizes, rng))
    long = [t for t in everything if len(t.split()) >= 150]
    (group,) = gen.topic_groups(long, 1, 6, rng)
    return list(gen.chain_texts(group, sizes, rng))


def fill(url: str, texts: list[tuple[str, str]], days: float) -> None:
    from sqlalchemy import insert, text

    from worker.articles import stories
    from worker.store import models as m
    from worker.store.db import Store
    from worker.store.models import utcnow

    store = Store(url)
    store.upgrade()
    now = utcnow()
    with multiprocessing.Pool() as pool:  # the pure-Python fingerprints are most of a fill
        fps = pool.map(_fingerprint, texts, chunksize=500)
    with store.session() as session:
        source = m.Source(name="bench", kind="feed", url="http://127.0.0.1:9/f", every_seconds=300)
        session.add(source)
        session.flush()
        step = timedelta(days=days) / len(texts)
        for at in range(0, len(texts), 5000):
            rows, bands = [], []
            for x, (title, body) in enumerate(texts[at : at + 5000], start=at):
                fp = fps[x]
                rows.append(
                    {
                        "id": x + 1,
                        "source_id": source.id,
                        "canonical_url": f"http://127.0.0.1:9/a/{x}",
                        "content_hash": f"{x:064x}",
                        "title": title,
                        "body": body,
                        "fingerprint": fp,
                        "story_id": x + 1,
                        "rules_state": "done",
                        "created_at": now - timedelta(days=days) + step * x,
                        "enqueued_at": now,
                    }
                )
                bands += [
                    {"band_key": k, "article_id": x + 1, "fingerprint": fp}
                    for k in stories.band_keys(fp)
                ]
            session.execute(insert(m.Article), rows)
            session.execute(insert(m.FingerprintBand), bands)
        session.execute(text("SELECT setval('article_id_seq', :n)"), {"n": len(texts) + 1})
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))  # as autovacuum would have, on a live database
    store.engine.dispose()


def _fingerprint(text: tuple[str, str]) -> int:
    from worker.articles import stories

    return stories.fingerprint(stories.article_text(*text))


def lookups(url: str, new: list[tuple[str, str]]) -> list[tuple[float, int, int, int]]:
    """(ms, candidate rows, texts read, story) per new article: this code's find_story."""
    from sqlalchemy.orm import Session

    from worker.articles import stories
    from worker.store import items
    from worker.store import models as m
    from worker.store.db import Store
    from worker.store.models import utcnow

    class Counted(items.StoryQueries):
        rows = reads = 0

        def candidates(self, *args, **kwargs):
            found = super().candidates(*args, **kwargs)
            Counted.rows += len(found)
            return found

        def text(self, article_id):
            Counted.reads += 1
            return super().text(article_id)

        def texts(self, ids):
            Counted.reads += len(ids)
            return super().texts(ids)

    store = Store(url)
    out = []
    with store.engine.connect() as conn:
        for x, (title, body) in enumerate(new):
            with Session(bind=conn) as session:
                now = utcnow()
                fp = stories.fingerprint(stories.article_text(title, body))
                row = m.Article(
                    source_id=1,
                    canonical_url=f"http://127.0.0.1:9/new/{x}",
                    content_hash=f"new{x:061x}",
                    title=title,
                    body=body,
                    fingerprint=fp,
                    created_at=now,
                    enqueued_at=now,
                )
                session.add(row)
                session.flush()
                Counted.rows = Counted.reads = 0
                started = time.perf_counter()
                story, _joined, _ev = stories.find_story(
                    Counted(session), row.id, fp, title, body, now
                )
                took = (time.perf_counter() - started) * 1000
                out.append((took, Counted.rows, Counted.reads, story if story != row.id else 0))
                session.rollback()
    store.engine.dispose()
    return out


def run_code(repo: Path, url: str, new: list[tuple[str, str]]) -> list[tuple[float, int, int, int]]:
    """`lookups` with the code of `repo`, in a subprocess."""
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]);"
        "import story_lookup as b; new = json.load(sys.stdin);"
        "print(json.dumps(b.lookups(sys.argv[3], [tuple(t) for t in new])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(repo), str(REPO / "bench"), url],
        input=json.dumps(new),
        capture_output=True,
        text=True,
        check=True,
    )
    return [tuple(r) for r in json.loads(done.stdout)]


def summary(rows: list[tuple[float, int, int, int]]) -> str:
    ms = sorted(r[0] for r in rows)
    p95 = ms[int(len(ms) * 0.95)]
    return (
        f"{ms[0]:7.2f} / {statistics.median(ms):7.2f} / {p95:7.2f} / {ms[-1]:8.2f} ms;"
        f" candidate rows {statistics.mean(r[1] for r in rows):8.1f},"
        f" texts read {statistics.mean(r[2] for r in rows):6.1f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--articles", type=int, default=100_000)
    p.add_argument("--days", type=float, default=10, help="stored articles spread over")
    p.add_argument("--lookups", type=int, default=150)
    p.add_argument("--kind", choices=["template", "corpus", "same-topic"], default="corpus")
    p.add_argument("--rounds", type=int, default=2, help="alternations of the codes")
    p.add_argument("--baseline", type=Path, help="a checkout whose code to measure too")
    p.add_argument("--dataset", type=Path, default=DATASET)
    p.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    from bench.dedupe import variant
    from tests.helpers.servers import throwaway_database

    rng = random.Random(20261207)
    texts = texts_of(args.kind, args.articles + args.lookups, args.dataset, rng)
    stored, fresh = texts[: args.articles], texts[args.articles :]
    # a third: edited copies of articles stored inside the window (the newest 3 days)
    recent = max(1, int(args.articles * min(1.0, 3 / args.days)))
    new = [
        ("", variant(f"{stored[-rng.randrange(1, recent)][1]}", rng)) if x % 3 == 0 else t
        for x, t in enumerate(fresh)
    ]
    codes = {"this code": REPO, **({"baseline": args.baseline} if args.baseline else {})}
    results: dict[str, list[tuple[float, int, int, int]]] = {name: [] for name in codes}
    with throwaway_database(args.postgres, prefix="nw_bench_story") as url:
        t0 = time.monotonic()
        fill(url, stored, args.days)
        print(f"filled {args.articles} articles in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        for _ in range(args.rounds):
            for name, repo in codes.items():
                results[name] += run_code(repo, url, new)
    stories_found = {name: [r[3] for r in rows] for name, rows in results.items()}
    print(
        f"{args.articles} articles ({args.kind}) over {args.days:g} days, {len(new)} lookups"
        f" x {args.rounds} rounds, a third of them copies; load"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for name, rows in results.items():
        joined = sum(1 for s in stories_found[name] if s) / args.rounds
        print(f"{name:>10}: {summary(rows)}; joined a story {joined:.0f} of {len(new)}")
    if args.baseline:
        mine, base = stories_found["this code"], stories_found["baseline"]
        differ = [(a, b) for a, b in zip(mine, base, strict=True) if a != b]
        print(
            f"filed differently: {len(differ)} lookups (this code joined a story the baseline"
            f" did not: {sum(1 for a, b in differ if a and not b)}; the reverse:"
            f" {sum(1 for a, b in differ if b and not a)})"
        )


if __name__ == "__main__":
    main()
