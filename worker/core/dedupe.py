"""Near-duplicate detection: the same wire story lightly edited on several sites.

SimHash (Charikar) over word 2-shingles, 64 bits. Two texts are the same story
when their fingerprints differ in at most SAME_STORY_MAX_BITS bits; the figure
comes from the measurements in docs/extraction.md (bench/dedupe.py): 2-shingles
beat 1-, 3- and 4-shingles and a 1-bit MinHash of the same size.

Fingerprints are returned as *signed* 64-bit ints so that they fit a SQL
BIGINT column; `to_unsigned` gives the raw bit pattern back.

Candidate lookup without a full scan: the 64 bits are cut into BANDS bands of
8 bits; the store indexes "band:value" keys and confirms candidates with
`same_story`. A pigeonhole guarantee would need 13 bands of <5 bits (a third of
all rows as candidates), so this is probabilistic: measured, 97% of merged same-story
pairs share a band while ~4% of unrelated articles do (the candidates to check).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter

BITS = 64
SHINGLE_WORDS = 2
# Hamming distance at or under which two fingerprints are the same story:
# no unrelated pair in the measurement came closer than 14 bits.
SAME_STORY_MAX_BITS = 12
BANDS = 8

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


def same_story(fp_a: int, fp_b: int) -> bool:
    if fp_a == 0 or fp_b == 0:  # an empty text is nobody's duplicate
        return False
    return distance(fp_a, fp_b) <= SAME_STORY_MAX_BITS


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
    """Index keys ("band:value" hex); a pair within the threshold shares one."""
    u = to_unsigned(fp)
    return [f"{i}:{(u >> start) & ((1 << width) - 1):x}" for i, (start, width) in enumerate(_EDGES)]
