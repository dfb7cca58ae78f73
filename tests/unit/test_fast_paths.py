"""The matcher's fast paths give what the plain (reference) paths give, on varied text.

- folding: the charmap encoder (common non-ASCII characters in C) against the
  general path (a regex over the non-ASCII runs, one table lookup each);
- offsets: counting spaces against a map of every run of collapsed spaces;
- `match`: judging only the watchlists with a trigger hit against judging
  every watchlist with any hit.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right

import pytest

from worker.config import EntitySpec, WatchlistSpec
from worker.config.to_matching import to_watchlists
from worker.core.model import MatchDocument, WatchlistMatch
from worker.matching.compiler import compile_matcher
from worker.matching.judge import judge
from worker.matching.matcher import Matcher
from worker.matching.snippets import to_match
from worker.matching.text import Folded, _translate_reference, fold

PIECES = [
    "Hashd al-Sha’abi", "Hashd al-Sha'abi", "HASHD AL SHA‘ABI", "U.S.", "U.S.-led", "US", "us",
    "IS", "is", "crisis", "ISIS", "Tillerson's", "Tillerson’s", "PMF’s", "troops", "troop",
    "withdrawal", "withdrew", "Bāqerī", "Ba\u0304qeri\u0304", "Baqeri", "Søren", "Straße",
    "STRASSE", "Œuvre", "ﬁnal", "½", "Mobili\u00adzation", "Zoë", "Öztürk", "Fernández",
    "Kennedys", "Kennedy", "NATO", "N.A.T.O.", "G7", "G77", "Ирак", "“", "”", "—", "–", "‑",
    "\u00a0", "\u2009", ",", ".", ";", ":", "(", ")", "\n\n", "  ", "-", "'", "’", "=", "x",
    "Apple", "apple", "Popular", "Mobilization", "Forces", "PMF", "MeK", "MEK", "MKO", "ǰ",
    "ı", "ł", "Łódź", "ſ", "\u200b", "‹", "›",
]  # fmt: skip


def _random_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [rng.choice(PIECES) for _ in range(rng.randint(0, 30))]
        seps = [rng.choice([" ", " ", "", "  ", "\n", "-", "’", ". "]) for _ in parts]
        out.append("".join(p + s for p, s in zip(parts, seps, strict=True)))
    return out


_RUNS = re.compile(r"  +")


def _reference_fold(text: str) -> tuple[str, str, tuple[int, ...], tuple[int, ...]]:
    translated, at, shift = _translate_reference(text)
    padded = f" {translated} "
    return _RUNS.sub(" ", padded), padded, at, shift


def _reference_translated(folded: Folded, pos: int) -> int:
    """The view -> translated position by a map of every collapsed run (the old way)."""
    at: list[int] = []
    shift: list[int] = []
    removed = 0
    for m in _RUNS.finditer(folded._padded):
        start, end = m.span()
        at.append(start - removed + 1)
        removed += end - start - 1
        shift.append(removed)
    i = bisect_right(at, pos) - 1
    return pos + (shift[i] if i >= 0 else 0) - 1


@pytest.mark.parametrize("seed", range(5))
def test_fold_fast_path_equals_general_path(seed: int) -> None:
    for text in _random_texts(seed, 400):
        folded = fold(text)
        view, padded, at, shift = _reference_fold(text)
        assert folded.text == view, text
        assert folded._padded == padded, text
        assert (folded._char_at, folded._char_shift) == (at, shift), text


@pytest.mark.parametrize("seed", range(5))
def test_offsets_by_counting_equal_the_run_map(seed: int) -> None:
    rng = random.Random(seed)
    for text in _random_texts(100 + seed, 300):
        folded = fold(text)
        positions = list(range(len(folded.text) + 1))
        # in text order (counting resumes from the last position) and out of order
        for pos in positions + rng.sample(positions, len(positions)):
            assert folded._to_translated(pos) == _reference_translated(folded, pos), (text, pos)


def _watchlists() -> list[WatchlistSpec]:
    return [
        WatchlistSpec(
            name="pmf",
            names=(
                EntitySpec(
                    name="Popular Mobilization Forces",
                    aliases=("Hashd al-Sha'abi",),
                    weak_aliases=("PMF",),
                    context=("Iraq",),
                ),
            ),
            keywords=("withdraw*",),
            exclude=("football",),
        ),
        WatchlistSpec(name="us", keywords=("US troops", "=Apple")),
        WatchlistSpec(name="isis", keywords=("ISIS", "IS")),
        WatchlistSpec(
            name="people", names=(EntitySpec(name="Tillerson"), EntitySpec(name="Kennedy"))
        ),
        WatchlistSpec(name="baqeri", names=(EntitySpec(name="Bāqerī"),), fold_diacritics=False),
        WatchlistSpec(
            name="rule",
            keywords=("troops",),
            rule='"Hashd al-Sha’abi" AND (troops OR withdraw*) AND NOT title:football',
        ),
        WatchlistSpec(name="near", keywords=("MEK",), rule="MEK NEAR/3 (Søren OR NATO)"),
        WatchlistSpec(name="nato", keywords=("N.A.T.O.", "G7", "straße")),
    ]


def _reference_match(matcher: Matcher, doc: MatchDocument) -> list[WatchlistMatch]:
    """Every watchlist with any checked hit judged, none skipped for lack of a trigger."""
    found = matcher._scan(doc)
    out = []
    for wl_index in sorted(found):
        wl = matcher._watchlists[wl_index]
        verdict = judge(wl, found[wl_index], doc, explain=False)
        if verdict.matched:
            out.append(to_match(wl, verdict.hits))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_match_equals_judging_every_watchlist_with_a_hit(seed: int) -> None:
    matcher = compile_matcher(to_watchlists(_watchlists()))
    texts = _random_texts(200 + seed, 300)
    matched_any = 0
    for title, body in zip(texts[::2], texts[1::2], strict=True):
        doc = MatchDocument(title=title, body=body)
        matched = matcher.match(doc)
        assert matched == _reference_match(matcher, doc), (title, body)
        matched_any += bool(matched)
        for m in matched:
            for h in m.hits:
                text = title if h.field == "title" else body
                assert text[h.start : h.end] == h.text
    assert matched_any > 50  # the texts do exercise the matcher


@pytest.mark.parametrize("seed", range(4))
def test_near_by_windows_equals_checking_every_pair(seed: int) -> None:
    """NEAR looks only at a window of the other operand's occurrences: the same hits as
    checking every pair, on long random texts with many occurrences."""
    rng = random.Random(seed)
    vocab = ["alpha", "beta", "delta", "epsilon", "x", "y", "z", "w"]
    for _ in range(30):
        n = rng.randint(1, 6)
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 400))]
        body = " ".join(words)
        spec = WatchlistSpec(name="n", rule=f'(alpha OR "delta epsilon") NEAR/{n} beta')
        matches = compile_matcher(to_watchlists([spec])).match(MatchDocument(title="", body=body))
        left = [(i, i) for i, w in enumerate(words) if w == "alpha"]
        left += [
            (i, i + 1) for i in range(len(words) - 1) if words[i : i + 2] == ["delta", "epsilon"]
        ]
        right = [(i, i) for i, w in enumerate(words) if w == "beta"]
        expected: set[int] = set()
        for a in left:
            for b in right:
                gap = b[0] - a[1] - 1 if b[0] > a[1] else a[0] - b[1] - 1
                if gap < n:
                    expected.update(range(a[0], a[1] + 1), range(b[0], b[1] + 1))
        if not expected:
            assert matches == [], body
            continue
        [match] = matches
        got: set[int] = set()
        for h in match.hits:
            first = body.count(" ", 0, h.start)
            got.update(range(first, first + h.text.count(" ") + 1))
        assert got == expected, (n, body)
