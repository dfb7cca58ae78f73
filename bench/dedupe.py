"""Measure near-duplicate merging (worker.core.dedupe) on pairs built from real articles.

    .venv/bin/python bench/dedupe.py --dataset /work/shared/data/article-extraction-benchmark

Positives: each article body (>= 150 words) against three "other site" copies
of it, each with its own furniture lines and small edits (a few words changed,
a sentence dropped, a wire dateline added, the last paragraph cut), i.e. the
same wire story lightly edited. Negatives: every pair of different articles,
and separately the pairs from the same site (same topic and house style).
Prints precision/recall of `same_story` per Hamming threshold.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.core import dedupe

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


def rates(pos: list[int], neg: list[int], k: int) -> tuple[float, float]:
    tp = sum(d <= k for d in pos)
    fp = sum(d <= k for d in neg)
    precision = tp / (tp + fp) if tp + fp else 1.0
    return precision, tp / len(pos)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    args = parser.parse_args(argv)
    gold = json.loads((args.dataset / "ground-truth.json").read_text(encoding="utf-8"))
    items = [
        (v["articleBody"], urlsplit(v["url"]).hostname or "")
        for v in gold.values()
        if len(v["articleBody"].split()) >= 150
    ]
    rng = random.Random(20171130)
    pos_fps: list[tuple[int, int]] = []
    for text, _host in items:
        copies = [variant(text, rng) for _ in range(3)]
        group = [dedupe.fingerprint(c) for c in [text, *copies]]
        pos_fps += list(itertools.combinations(group, 2))
    pos = [dedupe.distance(a, b) for a, b in pos_fps]
    fps = [(dedupe.fingerprint(t), h) for t, h in items]
    neg = [dedupe.distance(a, b) for (a, _), (b, _) in itertools.combinations(fps, 2)]
    same_site = [
        dedupe.distance(a, b) for (a, ha), (b, hb) in itertools.combinations(fps, 2) if ha == hb
    ]
    print(f"{len(items)} articles, {len(pos)} same-story pairs, {len(neg)} different-story pairs")
    print(f"({len(same_site)} of them same-site); same-story distance max {max(pos)}, ")
    print(f"different-story distance min {min(neg)} (same-site min {min(same_site, default=64)})")
    print(" k  precision  recall   same-site FP")
    for k in range(0, 25, 2):
        p, r = rates(pos, neg, k)
        ss = sum(d <= k for d in same_site)
        mark = " <- SAME_STORY_MAX_BITS" if k == dedupe.SAME_STORY_MAX_BITS else ""
        print(f"{k:2d}  {p:9.4f}  {r:6.4f}   {ss:4d}{mark}")
    k = dedupe.SAME_STORY_MAX_BITS
    p, r = rates(pos, neg, k)
    fp_rate = sum(d <= k for d in neg) / len(neg)
    print(f"chosen k={k}: precision {p:.4f} recall {r:.4f} false-merge rate {fp_rate:.5f}")
    shared = [bool(set(dedupe.band_keys(a)) & set(dedupe.band_keys(b))) for a, b in pos_fps]
    merged = [s for s, (a, b) in zip(shared, pos_fps, strict=True) if dedupe.same_story(a, b)]
    neg_shared = sum(
        bool(set(dedupe.band_keys(a)) & set(dedupe.band_keys(b)))
        for (a, _), (b, _) in itertools.combinations(fps, 2)
    )
    print(
        f"band index: {sum(merged) / max(len(merged), 1):.3f} of merged same-story pairs and "
        f"{sum(shared) / len(shared):.3f} of all same-story pairs share a band key; "
        f"{neg_shared / len(neg):.4f} of different-story pairs do (candidates to confirm)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
