"""Measure near-duplicate merging (worker.articles.stories): today's fingerprint-only decision
side by side with the verified one (`compare`), on pairs built from real articles.

    .venv/bin/pip install numpy   # bench only: all-pairs Hamming distances
    .venv/bin/python bench/dedupe.py --dataset /work/shared/data/article-extraction-benchmark

Same-story pairs, from each real article body of 150 words or more:
- "bench edits": three "other site" copies, each with its own furniture lines and small
  edits (a few words changed, a sentence dropped, a wire dateline, the last paragraph cut),
  all pairs of the four; the set behind the recall of 0.884 measured for the old code.
- "wire edits": the article with a headline against one copy per edit the issue names (a
  changed headline, an added paragraph, a different lead, a trimmed ending) and one with all
  four together.

Unrelated pairs:
- every pair of different real articles (few, but real; some from the same site);
- generated texts, all pairs within each kind: "random" (words drawn with the corpus's
  word frequencies), "stopword-heavy" (mostly the commonest words) and "same-topic"
  (a word-bigram chain trained on one small group of similar real articles, so both texts
  share names, phrases and house style). "stopword-heavy" draws 70% of its words from the
100 commonest (34% in the real articles). A third of the generated texts are feed-summary
  length (30-150 words), the rest have the real articles' lengths (up to 1,000 words).

A pair is a false merge when the decision calls it the same story. The verified decision
only reads the shingles of fingerprint-close pairs (it cannot merge any other), so the
all-pairs scan finds those and `compare` decides them: P(false merge) = P(fp-close) *
P(verify passes | fp-close), and with no false merge among n pairs the one-sided 95%
Clopper-Pearson upper bound is 1 - 0.05**(1/n) (about 3/n). The pairs share texts, so they
are not independent trials; the bound is the usual one, not an exact one.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.articles import stories as dedupe

HEADERS = [
    "Share on Facebook Share on Twitter Email",
    "Updated 2 hours ago | 3 min read",
    "Advertisement",
    "Listen to this article",
    "Follow us on Twitter for the latest news",
]
FOOTERS = [
    "Sign up for our morning newsletter and get the news in your inbox.",
    "Copyright 2019 The Associated Press. All rights reserved. This material may not be "
    "published, broadcast, rewritten or redistributed.",
    "Related: Markets rally as investors shrug off trade worries",
    "Read more: What we know so far",
    "Reporting by Staff; Editing by Desk Editor",
]
DATELINES = ["WASHINGTON (Reuters) -", "LONDON (AP) —", "(CNN)", "NEW YORK, Nov 19 (Reuters) -"]
SWAPS = ["said", "told", "reported", "added", "noted", "stated", "the", "a", "its", "their"]

Text = tuple[str, str]  # (title, body)


def old_same_story(fp_a: int, fp_b: int) -> bool:
    """Today's decision, kept for comparison: fingerprints at most 12 bits apart."""
    return fp_a != 0 and fp_b != 0 and dedupe.distance(fp_a, fp_b) <= 12


def new_same_story(a: Text, b: Text, fp_a: int, fp_b: int) -> bool:
    return dedupe.compare(a[0], a[1], b[0], b[1], fp_a, fp_b).same_story


def fp_of(t: Text) -> int:
    return dedupe.fingerprint(dedupe.article_text(*t))


def upper95(k: int, n: int) -> float:
    """One-sided 95% Clopper-Pearson upper bound on a rate seen k times in n trials."""
    if n == 0:
        return 1.0
    if k == 0:
        return 1 - 0.05 ** (1 / n)
    if k >= n:
        return 1.0

    def cdf(p: float) -> float:  # P(X <= k), summed in log space
        lp, lq = math.log(p), math.log1p(-p)
        terms = [
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
            for i in range(k + 1)
        ]
        top = max(terms)
        return math.exp(top) * sum(math.exp(t - top) for t in terms)

    lo, hi = k / n, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 0.05 else (lo, mid)
    return hi


# --- same-story pairs ----------------------------------------------------------------


def variant(text: str, rng: random.Random) -> str:
    paragraphs = [p for p in text.split("\n") if p.strip()]
    if len(paragraphs) > 4 and rng.random() < 0.5:
        paragraphs = paragraphs[:-1]  # cut for length
    sentences = re.split(r"(?<=[.!?])\s+", "\n".join(paragraphs))
    if len(sentences) > 8:
        del sentences[rng.randrange(len(sentences))]  # one sentence dropped
    words = " ".join(sentences).split(" ")
    for _ in range(max(2, len(words) // 60)):  # ~1.5% of the words edited
        words[rng.randrange(len(words))] = rng.choice(SWAPS)
    body = " ".join(words)
    if rng.random() < 0.5:
        body = f"{rng.choice(DATELINES)} {body}"
    head = rng.sample(HEADERS, rng.randint(1, 3))
    foot = rng.sample(FOOTERS, rng.randint(1, 3))
    return "\n\n".join([*head, body, *foot])


def headline(text: str, rng: random.Random) -> str:
    """A headline-sized run of the article's own words."""
    words = text.split()
    start = rng.randrange(max(1, len(words) - 10))
    return " ".join(words[start : start + rng.randint(6, 12)])


def paragraph_of(text: str, rng: random.Random, words: int = 60) -> str:
    w = text.split()
    start = rng.randrange(max(1, len(w) - words))
    return " ".join(w[start : start + words])


def wire_edits(texts: list[str], rng: random.Random) -> dict[str, list[tuple[Text, Text]]]:
    """Original (with a headline) against each edit the issue names, and all of them."""
    kinds: dict[str, list[tuple[Text, Text]]] = defaultdict(list)
    for i, text in enumerate(texts):
        others = texts[:i] + texts[i + 1 :]
        paras = [p for p in text.split("\n") if p.strip()]
        title = headline(text, rng)
        new_title = headline(rng.choice(others), rng)  # shares nothing with the old one
        # a local paragraph (another article's words) in the middle
        added = list(paras)
        added.insert(len(paras) // 2, paragraph_of(rng.choice(others), rng))
        # a rewritten first paragraph (or first 40 words when there is one paragraph)
        if len(paras) > 1:
            lead = [paragraph_of(rng.choice(others), rng, len(paras[0].split())), *paras[1:]]
        else:
            lead = [paragraph_of(rng.choice(others), rng, 40), " ".join(text.split()[40:])]
        words = text.split()
        trimmed = " ".join(words[: max(40, int(len(words) * 0.6))])  # the last 40% cut
        edits = {
            "changed headline": (new_title, text),
            "added paragraph": (title, "\n".join(added)),
            "different lead": (title, "\n".join(lead)),
            "trimmed ending": (title, trimmed),
        }
        allw = " ".join(lead).split()
        allw.insert(len(allw) // 2, paragraph_of(rng.choice(others), rng))
        edits["all four"] = (new_title, " ".join(allw[: max(40, int(len(allw) * 0.6))]))
        for kind, copy in edits.items():
            kinds[kind].append(((title, text), copy))
    return kinds


# --- unrelated texts -------------------------------------------------------------------


SHIFTS = np.arange(64, dtype=np.uint64)


def np_fingerprint(t: Text) -> int:
    """dedupe.fingerprint with the 64-bit loop in numpy, unsigned (checked against it)."""
    words = dedupe._words(dedupe.article_text(*t))
    if not words:
        return 0
    n = min(dedupe.SHINGLE_WORDS, len(words))
    counts = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    h = np.fromiter((dedupe._hash64(s) for s in counts), dtype=np.uint64, count=len(counts))
    c = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    bits = ((h[:, None] >> SHIFTS) & np.uint64(1)).astype(np.int64)
    weights = c @ (2 * bits - 1)
    return sum(1 << int(b) for b in np.flatnonzero(weights > 0))


def lengths(real: list[int], rng: random.Random, n: int) -> list[int]:
    return [
        rng.randint(30, 150) if rng.random() < 1 / 3 else min(rng.choice(real), 1000)
        for _ in range(n)
    ]


def unigram_texts(
    vocab: list[str], weights: list[float], sizes: list[int], rng: random.Random
) -> Iterable[Text]:
    cum = list(itertools.accumulate(weights))
    for size in sizes:
        words = rng.choices(vocab, cum_weights=cum, k=size + rng.randint(6, 12))
        yield " ".join(words[size:]), " ".join(words[:size])


def stopword_texts(counts: Counter[str], sizes: list[int], rng: random.Random) -> Iterable[Text]:
    common = counts.most_common(100)
    cw = list(itertools.accumulate(c for _, c in common))
    cv = [w for w, _ in common]
    vocab, freq = zip(*counts.items(), strict=True)
    aw = list(itertools.accumulate(freq))
    for size in sizes:
        total = size + rng.randint(6, 12)
        common_words = rng.choices(cv, cum_weights=cw, k=total)
        other_words = rng.choices(vocab, cum_weights=aw, k=total)
        words = [
            c if rng.random() < 0.7 else o for c, o in zip(common_words, other_words, strict=True)
        ]
        yield " ".join(words[size:]), " ".join(words[:size])


def chain_texts(group: list[str], sizes: list[int], rng: random.Random) -> Iterable[Text]:
    """Word-bigram chain over a group of articles: same names, phrases and style."""
    words = [w for text in group for w in text.split()]
    follow: dict[str, list[str]] = defaultdict(list)
    for a, b in itertools.pairwise(words):
        follow[a].append(b)
    for size in sizes:
        out = [rng.choice(words)]
        while len(out) < size + 10:
            nxt = follow.get(out[-1])
            out.append(rng.choice(nxt) if nxt else rng.choice(words))
        yield " ".join(out[size:]), " ".join(out[:size])


def topic_groups(texts: list[str], k: int, size: int, rng: random.Random) -> list[list[str]]:
    """k groups of `size` similar articles: a seed and its nearest by content words."""
    bags = [Counter(dedupe._words(t)) for t in texts]
    df = Counter(w for b in bags for w in b)
    common = {w for w, _ in df.most_common(150)}
    vecs = [{w: c for w, c in b.items() if w not in common} for b in bags]
    norms = [math.sqrt(sum(c * c for c in v.values())) or 1.0 for v in vecs]

    def cos(i: int, j: int) -> float:
        a, b = vecs[i], vecs[j]
        return sum(c * b.get(w, 0) for w, c in a.items()) / (norms[i] * norms[j])

    groups = []
    for seed in rng.sample(range(len(texts)), k):
        near = sorted((j for j in range(len(texts)) if j != seed), key=lambda j: -cos(seed, j))
        groups.append([texts[j] for j in [seed, *near[: size - 1]]])
    return groups


def close_pairs(fps: np.ndarray, k: int) -> list[tuple[int, int, int]]:
    """All (i, j, bits), i < j, whose fingerprints are at most k bits apart."""
    out = []
    for i in range(len(fps) - 1):
        d = np.bitwise_count(fps[i + 1 :] ^ fps[i])
        out += [(i, i + 1 + int(j), int(d[j])) for j in np.flatnonzero(d <= k)]
    return out


def signed(u: int) -> int:
    return dedupe.to_signed(u)


class Tally:
    def __init__(self) -> None:
        self.rows: list[tuple[str, int, int, int, int, float]] = []

    def run(self, kind: str, texts: list[Text]) -> None:
        t0 = time.monotonic()
        fps = np.fromiter((np_fingerprint(t) for t in texts), dtype=np.uint64, count=len(texts))
        for i in range(0, len(texts), max(1, len(texts) // 50)):  # the numpy copy is exact
            assert signed(int(fps[i])) == fp_of(texts[i]), kind
        near = close_pairs(fps, max(12, dedupe.CANDIDATE_MAX_BITS))
        old = sum(bits <= 12 for _, _, bits in near)
        close = [(i, j) for i, j, bits in near if bits <= dedupe.CANDIDATE_MAX_BITS]

        # compare() on these pairs, with each text's shingles read once (a few texts are in
        # many close pairs); checked against compare() itself on every 50th pair
        @functools.lru_cache(maxsize=8192)
        def sh(i: int) -> frozenset[str]:
            return frozenset(dedupe.shingles(dedupe.article_text(*texts[i])))

        merged, top = 0, 0.0
        for x, (i, j) in enumerate(close):
            overlap = dedupe.shingle_overlap(sh(i), sh(j))
            same = overlap >= dedupe.MIN_SHINGLE_OVERLAP  # a close pair is a candidate
            if x % 50 == 0:
                ev = dedupe.compare(*texts[i], *texts[j], signed(int(fps[i])), signed(int(fps[j])))
                assert (ev.same_story, ev.shingle_overlap) == (same, round(overlap, 4)), kind
            merged += same
            top = max(top, overlap)
        n = len(texts) * (len(texts) - 1) // 2
        self.rows.append((kind, n, old, len(close), merged, top))
        print(f"  {kind}: {len(texts)} texts, {time.monotonic() - t0:.0f} s", file=sys.stderr)

    def print(self) -> None:
        k = dedupe.CANDIDATE_MAX_BITS
        print(
            f"{'unrelated pairs':<16}{'pairs':>13}  {'old: fp <= 12 bits merged':<30}"
            f"{f'fp <= {k} bits':>13}  {'verify passes':<24}{'new: verified merged':<24}"
            "max overlap"
        )
        for kind, n, old, close, merged, top in [*self.rows, self.total()]:
            print(
                f"{kind:<16}{n:>13,}  {old:>6} = {old / n:.1e} (<= {upper95(old, n):.1e})"
                f"{close:>13,}  {merged:>3} (<= {upper95(merged, close):.1e} of them)"
                f"    {merged:>3} = {merged / n:.0e} (<= {upper95(merged, n):.1e})"
                f"    {top:.2f}"
            )

    def total(self) -> tuple[str, int, int, int, int, float]:
        rows = self.rows
        return (
            "all generated",
            sum(r[1] for r in rows),
            sum(r[2] for r in rows),
            sum(r[3] for r in rows),
            sum(r[4] for r in rows),
            max(r[5] for r in rows),
        )


def evidence(pairs: list[tuple[Text, Text]]) -> list[dedupe.Evidence]:
    return [dedupe.compare(*a, *b, fp_of(a), fp_of(b)) for a, b in pairs]


# The regression pair of tests/data/dedupe_close_unrelated.json: short, stopword-heavy
# feed items that both name a watched organisation (tests/integration/test_stories.py).
PAIR_WORDS = (
    "the of and to a in that is for on it with as was at by this be from are or an but not "
    "they their we he she has had have will would said after over more than about new two "
    "year people city government police report officials week state plan group court local"
)


def find_close_pair(seed: int = 10) -> dict[str, dict[str, str]]:
    """The first pair, in a fixed order, of unrelated texts within CANDIDATE_MAX_BITS."""
    rng = random.Random(seed)
    seen: list[tuple[int, Text]] = []
    while True:
        title = " ".join(rng.choices(PAIR_WORDS.split(), k=8)).capitalize()
        words = rng.choices(PAIR_WORDS.split(), k=50)
        sentences = [" ".join(words[i : i + 10]).capitalize() for i in range(0, 50, 10)]
        at = rng.randrange(len(sentences))
        sentences[at] += " the Popular Mobilization Forces"
        body = ". ".join(sentences) + "."
        fp = fp_of((title, body))
        for other_fp, other in seen:
            if dedupe.candidate(fp, other_fp):
                return {
                    "a": {"title": other[0], "body": other[1]},
                    "b": {"title": title, "body": body},
                }
        seen.append((fp, (title, body)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path)
    parser.add_argument(
        "--texts",
        type=int,
        default=26_000,
        help="generated texts per kind (all pairs: 26,000 give 3.4e8 pairs, bound < 1e-8)",
    )
    parser.add_argument(
        "--close-pair", type=Path, help="write the regression pair (JSON) to this file and stop"
    )
    args = parser.parse_args(argv)
    if args.close_pair:
        args.close_pair.write_text(json.dumps(find_close_pair(), indent=1) + "\n")
        return 0
    t0 = time.monotonic()
    if args.dataset is None:
        parser.error("--dataset is required")
    gold = json.loads((args.dataset / "ground-truth.json").read_text(encoding="utf-8"))
    everything = [v["articleBody"] for v in gold.values()]
    items = [
        (v["articleBody"], urlsplit(v["url"]).hostname or "")
        for v in gold.values()
        if len(v["articleBody"].split()) >= 150
    ]
    texts = [t for t, _ in items]

    # same story
    rng = random.Random(20171130)
    bench_pairs: list[tuple[Text, Text]] = []
    for text in texts:
        copies = [variant(text, rng) for _ in range(3)]
        bench_pairs += [(("", a), ("", b)) for a, b in itertools.combinations([text, *copies], 2)]
    wire = wire_edits(texts, random.Random(7))
    print(f"{len(texts)} real articles of 150 words or more (of {len(everything)})")
    print()
    positives = {"bench edits": bench_pairs, **wire}
    evs = {name: evidence(pairs) for name, pairs in positives.items()}
    print(f"{'same-story pairs':<20}{'pairs':>6}  {'old recall':>10}  {'new recall':>10}")
    for name, ev in evs.items():
        old = sum(e.distance_bits <= 12 for e in ev) / len(ev)  # = old_same_story
        new = sum(e.same_story for e in ev) / len(ev)
        print(f"{name:<20}{len(ev):>6}  {old:>10.3f}  {new:>10.3f}")

    # where the threshold sits: shingle overlap of same-story pairs against fingerprint-close
    # and all real unrelated pairs
    pos_overlap = sorted(e.shingle_overlap for ev in evs.values() for e in ev)
    sets = [dedupe.shingles(dedupe.article_text("", t)) for t in texts]
    real_overlap = [
        dedupe.shingle_overlap(sets[i], sets[j])
        for i, j in itertools.combinations(range(len(texts)), 2)
    ]
    fps = [fp_of(("", t)) for t in texts]
    pairs = list(itertools.combinations(range(len(items)), 2))
    same_site = [(i, j) for i, j in pairs if items[i][1] == items[j][1]]
    print()
    print(
        f"shingle overlap (word {dedupe.OVERLAP_SHINGLE_WORDS}-shingles), same story: min "
        f"{pos_overlap[0]:.2f}, 1st percentile {pos_overlap[len(pos_overlap) // 100]:.2f}; "
        f"real unrelated pairs: max {max(real_overlap):.2f} "
        f"(threshold {dedupe.MIN_SHINGLE_OVERLAP})"
    )
    old_real = sum(old_same_story(fps[i], fps[j]) for i, j in pairs)
    # the new decision can only merge a fingerprint-close pair: compare() decides those
    new_real = sum(
        new_same_story(("", texts[i]), ("", texts[j]), fps[i], fps[j])
        for i, j in pairs
        if old_same_story(fps[i], fps[j])
    )
    print(
        f"real unrelated pairs: {len(pairs)} ({len(same_site)} same-site); false merges: "
        f"old {old_real}, new {new_real}; fingerprint distance min "
        f"{min(dedupe.distance(fps[i], fps[j]) for i, j in pairs)}"
    )

    # with the verification, the candidate threshold is a recall/cost choice: at k bits
    print()
    print(f"{'verified, candidates at k bits':<32}" + "".join(f"{k:>7}" for k in range(12, 21, 2)))
    dist = [dedupe.distance(fps[i], fps[j]) for i, j in pairs]
    for name in ("bench edits", "trimmed ending", "all four"):
        row = [
            sum(
                e.distance_bits <= k and e.shingle_overlap >= dedupe.MIN_SHINGLE_OVERLAP
                for e in evs[name]
            )
            / len(evs[name])
            for k in range(12, 21, 2)
        ]
        print(f"{'recall, ' + name:<32}" + "".join(f"{r:>7.3f}" for r in row))
    for label, verify in (
        ("real false merges, fp only", False),
        ("real false merges, verified", True),
    ):
        row = [
            sum(
                d <= k and (not verify or o >= dedupe.MIN_SHINGLE_OVERLAP)
                for d, o in zip(dist, real_overlap, strict=True)
            )
            for k in range(12, 21, 2)
        ]
        print(f"{label:<32}" + "".join(f"{r:>7d}" for r in row))

    # generated unrelated pairs, all pairs per kind
    rng = random.Random(20240229)
    real_lengths = [len(t.split()) for t in everything]
    counts = Counter(w for t in everything for w in t.split())
    vocab = list(counts)
    print(file=sys.stderr)
    tally = Tally()
    sizes = lengths(real_lengths, rng, args.texts)
    tally.run("random", list(unigram_texts(vocab, [counts[w] for w in vocab], sizes, rng)))
    tally.run("stopword-heavy", list(stopword_texts(counts, sizes, rng)))
    (group,) = topic_groups(texts, 1, 6, rng)
    tally.run("same-topic", list(chain_texts(group, sizes, rng)))
    print()
    tally.print()

    # the band index: how many same-story pairs it finds at all
    merged = [pair for pair, e in zip(bench_pairs, evs["bench edits"], strict=True) if e.same_story]
    shared = sum(
        bool(set(dedupe.band_keys(fp_of(a))) & set(dedupe.band_keys(fp_of(b)))) for a, b in merged
    )
    keys = [set(dedupe.band_keys(f)) for f in fps]
    nominated = sum(bool(keys[i] & keys[j]) for i, j in pairs)
    print()
    print(
        f"band index: {shared / max(len(merged), 1):.3f} of the bench-edit pairs merged share a "
        f"band key, so end-to-end recall there is {shared / len(bench_pairs):.3f}; "
        f"{nominated / len(pairs):.3f} of real unrelated pairs share one (candidates to check)"
    )
    print(f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
