"""Term spelling: one configured term -> the automaton keys it is found by.

A key is the term in the match view (`worker.matching.text`) between spaces, " term ",
so that every automaton hit is a whole-word hit; " prefix" for `withdraw*` and for
Korean, whose particles attach to words; no space on a side in a script written
without spaces. Spelling variants (plural and dotted forms) are extra keys.
"""

from __future__ import annotations

import itertools
import re
from typing import NamedTuple

from worker.matching.text import case_tokens, fold_term, is_hangul, is_unspaced, mark_tokens

# Refuse a term that would make an automaton key too large for a worker.
MAX_TERM_CHARS = 300


class Variant(NamedTuple):
    key: str  # automaton key
    case: tuple[str | None, ...] | None
    marks: tuple[str, ...] | None
    prefix: bool


# words, exact spelling needed per word (None: any case), words with their diacritics
_Spelling = tuple[list[str], list[str | None], list[str] | None]
Variants = tuple[tuple[Variant, ...], str | None]  # the keys, or an error message

# In ASCII an acronym word (all caps, at most 4 long; see `is_acronym`) has an upper
# case letter that no lower case letter follows; a term without one takes the fast
# path of `variants`. (The converse need not hold: "NATOs" takes the full path, and
# is spelt out right there.) One search is a third of splitting the term into cased words.
_MAYBE_ACRONYM = re.compile(r"[A-Z](?![a-z])")
new_tuple = tuple.__new__  # a NamedTuple's own __new__ is Python code: 2x slower per tuple


def is_acronym(word: str) -> bool:
    return word.isalpha() and word.isupper() and len(word) <= 4


def variants(raw: str, *, is_name: bool, acronyms: bool, keep_marks: bool) -> Variants:
    """The automaton keys for one configured term, or an error message.

    `=Term` asks for exact case; a trailing `*` is a wildcard suffix.
    """
    exact = raw.startswith("=")
    text = raw[1:] if exact else raw
    prefix = text.endswith("*")
    text = text.rstrip("*") if prefix else text
    if "*" in text:
        return (), f"'*' is only allowed at the end of a term: {raw!r}"
    if len(text) > MAX_TERM_CHARS:
        return (), f"term longer than {MAX_TERM_CHARS} characters: {text[:40]!r}…"
    if not (exact or keep_marks) and text.isascii() and _MAYBE_ACRONYM.search(text) is None:
        return _plain(raw, text, prefix=prefix, is_name=is_name)
    lone_acronym = 1 < len(text) <= 4 and text.isascii() and text.isalpha() and text.isupper()
    if lone_acronym and not (exact or keep_marks or prefix):
        # "NATO", common in configs and 3x slower below: what the general path makes
        # of it (the key and the dotted spelling), spelt out
        return _lone_acronym(text, is_name=is_name, acronyms=acronyms), None
    return _general(
        raw,
        text,
        exact=exact,
        prefix=prefix,
        is_name=is_name,
        acronyms=acronyms,
        keep_marks=keep_marks,
    )


def _plain(raw: str, text: str, *, prefix: bool, is_name: bool) -> Variants:
    """The common case (no acronym, no exact case): the key, and a plural for names."""
    # Letters, digits and spaces only (most terms): the view is the lower case
    # words, at half the cost of `fold_term`
    plain = text.replace(" ", "").isalnum()
    view = " ".join(text.lower().split()) if plain else fold_term(text)
    if not view:
        return (), f"term {raw!r} has no letters or digits"
    key = " " + view
    if prefix:
        return (new_tuple(Variant, (key, None, None, True)),), None
    if is_name:
        return (
            new_tuple(Variant, (key + " ", None, None, False)),
            new_tuple(Variant, (key + "s ", None, None, False)),
        ), None
    return (new_tuple(Variant, (key + " ", None, None, False)),), None


def _general(
    raw: str,
    text: str,
    *,
    exact: bool,
    prefix: bool,
    is_name: bool,
    acronyms: bool,
    keep_marks: bool,
) -> Variants:
    """Any term: cased words checked for case and marks, acronyms also dotted."""
    cased = case_tokens(text)
    # ASCII: the view's words are the cased words in lower case (one pass saved per term)
    words = [c.lower() for c in cased] if text.isascii() else fold_term(text).split()
    if not words:
        return (), f"term {raw!r} has no letters or digits"
    # Scripts written without spaces match inside a run of letters; Korean attaches
    # particles to a word's end ("삼성전자는"), so a term ending in Hangul ends there
    unspaced_end = is_unspaced(words[-1][-1])
    prefix = prefix or is_hangul(words[-1][-1])
    if len(cased) != len(words):  # defensive: folding split a word differently
        cased = [w if exact else "" for w in words]
    marked = mark_tokens(text) if keep_marks else None
    acro = [is_acronym(c) for c in cased]
    need: list[str | None] = [
        c if exact or (acronyms and a) else None for c, a in zip(cased, acro, strict=True)
    ]
    spellings: list[_Spelling] = [(words, need, marked)]
    spellings += _dotted(words, cased, need, acro, prefix=prefix)
    if len(cased) > 1 and not prefix and all(len(c) == 1 and c.isupper() for c in cased):
        # "U.S." also reads "US"
        joined = "".join(cased)
        req = joined if exact or (acronyms and is_acronym(joined)) else None
        spellings.append(([joined.lower()], [req], None))
    if is_name and not prefix and not unspaced_end:
        spellings += _plurals(spellings)
    lead = "" if is_unspaced(words[0][0]) else " "
    end = "" if prefix or unspaced_end else " "
    out = tuple(
        Variant(
            lead + " ".join(w) + end, tuple(c) if any(c) else None, tuple(m) if m else None, prefix
        )
        for w, c, m in spellings
    )
    return out, None


def _dotted(
    words: list[str],
    cased: list[str],
    need: list[str | None],
    acro: list[bool],
    *,
    prefix: bool,
) -> list[_Spelling]:
    """Acronym words ("US") also read dotted ("U.S.", view "u s"): one word per letter."""
    dotted = [i for i, c in enumerate(cased) if len(c) > 1 and acro[i]][:3]
    if prefix and dotted and dotted[-1] == len(cased) - 1:
        dotted.pop()
    out: list[_Spelling] = []
    if not dotted:
        return out
    for choice in itertools.product((False, True), repeat=len(dotted)):
        if not any(choice):
            continue
        w2: list[str] = []
        c2: list[str | None] = []
        for i, (w, c) in enumerate(zip(words, cased, strict=True)):
            if i in dotted and choice[dotted.index(i)]:
                w2 += [ch.lower() for ch in c]
                c2 += [ch if need[i] else None for ch in c]
            else:
                w2.append(w)
                c2.append(need[i])
        out.append((w2, c2, None))
    return out


def _plurals(spellings: list[_Spelling]) -> list[_Spelling]:
    """Names take a plural "s" (possessives need nothing: the apostrophe is a separator)."""
    out: list[_Spelling] = []
    for w, c, m in spellings:
        plural_c = [*c[:-1], c[-1] + "s" if c[-1] else None]
        plural_m = [*m[:-1], m[-1] + "s"] if m else None
        out.append(([*w[:-1], w[-1] + "s"], plural_c, plural_m))
    return out


def _lone_acronym(text: str, *, is_name: bool, acronyms: bool) -> tuple[Variant, ...]:
    """`variants` of an ASCII all-caps word of 2 to 4 letters: "NATO", "N.A.T.O." (the
    view "n a t o"), and for names their plurals; case-exact if `acronyms`."""
    low = text.lower()
    dotted = " ".join(low)
    if not acronyms:
        keys = [f" {low} ", f" {dotted} "]
        if is_name:
            keys += [f" {low}s ", f" {dotted}s "]
        return tuple(new_tuple(Variant, (k, None, None, False)) for k in keys)
    letters = tuple(text)
    out = [
        new_tuple(Variant, (f" {low} ", (text,), None, False)),
        new_tuple(Variant, (f" {dotted} ", letters, None, False)),
    ]
    if is_name:
        out += [
            new_tuple(Variant, (f" {low}s ", (text + "s",), None, False)),
            new_tuple(Variant, (f" {dotted}s ", (*letters[:-1], letters[-1] + "s"), None, False)),
        ]
    return tuple(out)


def check_case(words: list[str], need: tuple[str | None, ...], prefix: bool) -> bool:
    """The words of a hit spelt as a term requires (`need`: per word, None for any)."""
    if len(words) != len(need):
        return False
    last = len(words) - 1
    for i, (w, n) in enumerate(zip(words, need, strict=True)):
        if n is None:
            continue
        if prefix and i == last:
            if not w.startswith(n):
                return False
        elif w != n:
            return False
    return True
