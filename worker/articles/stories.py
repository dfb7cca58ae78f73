"""Near-duplicate detection: the same wire story lightly edited on several sites.

Two steps, because a merge hides an article from the alerts:

1. Candidates: SimHash (Charikar) over word 2-shingles, 64 bits. Fingerprints at
   most CANDIDATE_MAX_BITS bits apart may be the same story (`candidate`).
   Alone this merged unrelated articles (about 1e-6 per pair: 64 bits leave
   room for chance), so it only picks which stored articles to read.
2. Verification (`compare`): the share of the shorter text's word 4-shingles
   found in the other text, an exact measure on the two texts. Only a candidate
   that also shares at least MIN_SHINGLE_OVERLAP is the same story.

The figures behind both thresholds are in docs/extraction.md (bench/dedupe.py).

Fingerprints are returned as *signed* 64-bit ints so that they fit a SQL
BIGINT column; `to_unsigned` gives the raw bit pattern back.

Candidate lookup without a full scan: the 64 bits are cut into BANDS bands of
8 bits, and again at an offset of 4 bits; the store indexes the 16 "band:value"
keys with each fingerprint, and returns the band-sharing articles of the window
within CANDIDATE_MAX_BITS, closest first (the distance taken in the database, so
that the ~7% of articles sharing a key by chance never leave it); `compare` reads
the closest few. A pigeonhole guarantee at 16 bits would need 17 bands of under 4
bits (most rows as candidates), so this is probabilistic: docs/extraction.md has the
share of merged same-story pairs it finds and of unrelated pairs it nominates.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

BITS = 64
SHINGLE_WORDS = 2
# Hamming distance at or under which two fingerprints are a candidate pair, to verify.
# 12 bits when the fingerprint decided alone; with the verification, 16 finds more
# edited copies (a rewritten lead, a trimmed ending) and still merges no unrelated pair.
CANDIDATE_MAX_BITS = 16
BANDS = 8
# Verification: word 4-shingles (3 let stopword runs like "one of the" count;
# 5 lose more to each edited word). Same-story candidates shared more than 0.5 of the
# shorter text's shingles, unrelated ones at most 0.31 (docs/extraction.md).
OVERLAP_SHINGLE_WORDS = 4
MIN_SHINGLE_OVERLAP = 0.5

# how far back an article looks for its story: the copies of a story come within days
NEAR_DUP_WINDOW = timedelta(days=3)

_WORD = re.compile(r"\w+")
_MASK = (1 << BITS) - 1


def to_signed(fp: int) -> int:
    fp &= _MASK
    return fp - (1 << BITS) if fp >= 1 << (BITS - 1) else fp


def to_unsigned(fp: int) -> int:
    return fp & _MASK


def _words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def _hash64(token: str) -> int:
    # blake2b, not hash(): fingerprints must be stable across processes and runs.
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "big")


def fingerprint(text: str) -> int:
    """64-bit SimHash of `text` as a signed int (0 for text without words)."""
    words = _words(text)
    if not words:
        return 0
    n = min(SHINGLE_WORDS, len(words))
    shingles = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    weights = [0] * BITS
    for shingle, count in shingles.items():
        h = _hash64(shingle)
        for bit in range(BITS):
            weights[bit] += count if h >> bit & 1 else -count
    fp = 0
    for bit, w in enumerate(weights):
        if w > 0:
            fp |= 1 << bit
    return to_signed(fp)


def distance(fp_a: int, fp_b: int) -> int:
    return (to_unsigned(fp_a) ^ to_unsigned(fp_b)).bit_count()


def candidate(fp_a: int, fp_b: int) -> bool:
    """Close enough fingerprints to read both texts (`compare`); not a decision alone."""
    if fp_a == 0 or fp_b == 0:  # an empty text is nobody's duplicate
        return False
    return distance(fp_a, fp_b) <= CANDIDATE_MAX_BITS


def _band_edges() -> list[tuple[int, int]]:
    size, extra = divmod(BITS, BANDS)
    edges, start = [], 0
    for i in range(BANDS):
        width = size + (1 if i < extra else 0)
        edges.append((start, width))
        start += width
    return edges


_EDGES = _band_edges()


def band_keys(fp: int) -> list[str]:
    """Index keys ("band:value" hex): the BANDS aligned bands, then BANDS more of the
    fingerprint rotated by half a band (keys BANDS..2*BANDS-1), so that differing bits
    that straddle band edges leave a clean window more often."""
    u = to_unsigned(fp)
    half = _EDGES[0][1] // 2
    rotated = ((u >> half) | (u << (BITS - half))) & _MASK
    return [
        f"{i + k * BANDS}:{(v >> start) & ((1 << width) - 1):x}"
        for k, v in enumerate((u, rotated))
        for i, (start, width) in enumerate(_EDGES)
    ]


def article_text(title: str, body: str) -> str:
    """The text an article is fingerprinted and compared on."""
    return f"{title}\n{body}"


def shingles(text: str, n: int = OVERLAP_SHINGLE_WORDS) -> set[str]:
    """The distinct word n-shingles of `text` (one shingle if it has fewer than n words)."""
    words = _words(text)
    if len(words) <= n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def shingle_overlap(a: Set[str], b: Set[str]) -> float:
    """Share of the smaller set found in the other: a trimmed or padded copy stays high."""
    if not a or not b:
        return 0.0
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return len(small & large) / len(small)


def _title_similarity(title_a: str, title_b: str) -> float:
    a, b = set(_words(title_a)), set(_words(title_b))
    return len(a & b) / len(a | b) if a and b else 0.0


@dataclass(frozen=True)
class Evidence:
    """Why two articles are, or are not, the same story."""

    distance_bits: int
    shingle_overlap: float
    title_similarity: float  # shown, not decisive: sites rewrite the headlines of wire copy
    same_story: bool

    def __str__(self) -> str:
        verdict = "same story" if self.same_story else "different stories"
        return (
            f"{verdict}: fingerprints {self.distance_bits} bits apart "
            f"(candidate at <= {CANDIDATE_MAX_BITS}), {self.shingle_overlap:.2f} of word "
            f"{OVERLAP_SHINGLE_WORDS}-shingles shared (same at >= {MIN_SHINGLE_OVERLAP}), "
            f"titles {self.title_similarity:.2f} alike"
        )


def compare(
    title_a: str,
    body_a: str,
    title_b: str,
    body_b: str,
    fp_a: int | None = None,
    fp_b: int | None = None,
) -> Evidence:
    """Decide whether two articles are the same story, with the evidence.

    `fp_a`/`fp_b` are the stored fingerprints of `article_text(title, body)`, computed
    when not given. Both tests must pass: close fingerprints and shared shingles.
    """
    if fp_a is None:
        fp_a = fingerprint(article_text(title_a, body_a))
    return _evidence(title_a, shingles(article_text(title_a, body_a)), fp_a, title_b, body_b, fp_b)


def _evidence(
    title_a: str, shingles_a: Set[str], fp_a: int, title_b: str, body_b: str, fp_b: int | None
) -> Evidence:
    """`compare`, with article a's shingles already taken (a lookup compares one new
    article with several stored ones)."""
    if fp_b is None:
        fp_b = fingerprint(article_text(title_b, body_b))
    overlap = shingle_overlap(shingles_a, shingles(article_text(title_b, body_b)))
    return Evidence(
        distance_bits=distance(fp_a, fp_b),
        shingle_overlap=round(overlap, 4),
        title_similarity=round(_title_similarity(title_a, title_b), 4),
        same_story=candidate(fp_a, fp_b) and overlap >= MIN_SHINGLE_OVERLAP,
    )


class StoryText:
    """One article's text, for comparing it with many others: the fingerprint taken once,
    the shingles only when a close fingerprint needs them (`same_story`)."""

    def __init__(self, title: str, body: str) -> None:
        self.text = article_text(title, body)
        self.fp = fingerprint(self.text) if body else 0  # no body: its own story
        self._shingles: set[str] | None = None

    @property
    def shingles(self) -> set[str]:
        if self._shingles is None:
            self._shingles = shingles(self.text)
        return self._shingles

    def same_story(self, other: StoryText) -> bool:
        """`compare(...).same_story`, the cheap test first."""
        return (
            candidate(self.fp, other.fp)
            and shingle_overlap(self.shingles, other.shingles) >= MIN_SHINGLE_OVERLAP
        )


# --- the lookup, over the store's queries ------------------------------------------------


class StoredArticle(Protocol):
    id: int
    story_id: int | None
    title: str
    body: str
    fingerprint: int | None


class StoryLookup(Protocol):
    """What story lookup reads from the store (worker/store/items.py: StoryQueries)."""

    def candidates(
        self, keys: Iterable[str], article_id: int, since: datetime, fp: int, max_bits: int
    ) -> list[tuple[int, int | None, int | None]]: ...

    def texts(self, ids: Iterable[int]) -> Mapping[int, tuple[str, str, int | None]]: ...

    def article(self, article_id: int) -> StoredArticle | None: ...

    def earlier_in_story(self, story_id: int, before_id: int) -> Iterable[StoredArticle]: ...


# texts read per query while verifying candidates, closest first: the first is usually it
TEXTS_PER_READ = 16


def find_story(
    lookup: StoryLookup, article_id: int, fp: int, title: str, body: str, now: datetime
) -> tuple[int, int | None, Evidence | None]:
    """The story of the closest earlier article verified as the same story, or a new story
    (this article's id); with that article and the evidence. Close fingerprints only
    nominate: a merge hides this article's alerts, so `compare` reads both texts (of the
    few close candidates) first."""
    if fp == 0:
        return article_id, None, None
    found = lookup.candidates(
        band_keys(fp), article_id, now - NEAR_DUP_WINDOW, fp, CANDIDATE_MAX_BITS
    )
    close = sorted(
        (distance(fp, cand_fp), cand_id, story_id)
        for cand_id, cand_fp, story_id in found
        if cand_fp is not None and candidate(fp, cand_fp)
    )
    mine = shingles(article_text(title, body))
    for at in range(0, len(close), TEXTS_PER_READ):
        chunk = close[at : at + TEXTS_PER_READ]
        texts = lookup.texts([cand_id for _bits, cand_id, _story in chunk])
        for _bits, cand_id, story_id in chunk:
            cand_title, cand_body, cand_fp = texts[cand_id]
            evidence = _evidence(title, mine, fp, cand_title, cand_body, cand_fp)
            if evidence.same_story:
                return story_id or cand_id, cand_id, evidence
    return article_id, None, None


def story_evidence(lookup: StoryLookup, article_id: int) -> tuple[int, Evidence] | None:
    """For an article filed under an earlier article's story: the earlier article of that
    story closest to it and the evidence of the decision (for "why" output); None when the
    article started its own story."""
    row = lookup.article(article_id)
    if row is None or row.story_id in (None, row.id):
        return None
    best: tuple[int, Evidence] | None = None
    for other in lookup.earlier_in_story(row.story_id, row.id):
        ev = compare(
            row.title, row.body, other.title, other.body, row.fingerprint, other.fingerprint
        )
        if best is None or (ev.same_story, ev.shingle_overlap) > (
            best[1].same_story,
            best[1].shingle_overlap,
        ):
            best = (other.id, ev)
    return best
