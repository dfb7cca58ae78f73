"""Text folding for matching, with a map back to the original offsets.

The matcher never looks at raw article text. It looks at a *match view*:

- every character is decomposed (NFKD, which also applies the compatibility
  mappings of NFKC: ligatures, full-width forms, superscripts), case-folded,
  and stripped of diacritics (Latin, Greek and Cyrillic accents, Arabic vowel
  signs, Hebrew points), then recomposed (Hangul syllables, voiced kana); the
  marks of other scripts (Thai vowels, Devanagari virama) are parts of words;
- every character that is not a letter or digit (spaces of every kind,
  quotes and apostrophes straight or curly, dashes and hyphens, punctuation)
  becomes one ASCII space, and format characters (soft hyphen, zero-width
  joiners) disappear;
- runs of spaces collapse to one, and the view starts and ends with a space.

So "Hashd al-Sha’abi", "HASHD AL SHA'ABI" and "Hashd al‑Sha‘abi" all read
" hashd al sha abi ". Words are then exactly the runs between spaces, which is
what makes whole-word matching a plain substring search for " term ".

Speed matters (this runs on every field of every article), so the work is
done by `str.translate` with a per-character table, filled lazily the first
time a character is seen. Decomposing character by character is the same as
normalizing the whole text except for the order of stacked combining marks,
which the view drops anyway; it also means no whole-text NFKC pass is ever
needed. ASCII text (most English news) takes a fast path whose offset map is
the identity apart from collapsed spaces.
"""

from __future__ import annotations

import codecs
import re
import threading
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable

__all__ = [
    "Folded",
    "case_tokens",
    "fold",
    "fold_term",
    "is_hangul",
    "is_unspaced",
    "mark_tokens",
    "spaced_view",
]

# Character categories dropped from the view: non-spacing and enclosing marks
# (diacritics once decomposed) and format characters (soft hyphen, ZWJ, BOM).
_DROP = frozenset({"Mn", "Me", "Cf"})
# Spacing combining marks are part of words in Indic scripts: keep them.
_WORD_MARK = frozenset({"Mc"})
# Only these non-spacing marks are diacritics to fold away: the combining accents of
# Latin, Greek and Cyrillic, Arabic vowel signs and Hebrew points (both optional in
# print). The other scripts' marks are letters' parts: Thai vowels and tone marks,
# Devanagari virama, kana voicing ("が" is not "か").
_DIACRITICS = (
    (0x0300, 0x036F),
    (0x0483, 0x0489),
    (0x0591, 0x05C7),
    (0x064B, 0x065F),
    (0x0670, 0x0670),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE20, 0xFE2F),
)


def _is_diacritic(c: str) -> bool:
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in _DIACRITICS)


# Latin letters with strokes and ligature letters do not decompose in Unicode;
# folding diacritics treats them like their base letters ("Søren" = "Soren").
_STROKES = {"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}


def _map_char(ch: str, *, casefold: bool, keep_marks: bool) -> str:
    """What one character becomes in a view (possibly several characters, or none)."""
    if not keep_marks and casefold and ch.casefold() in _STROKES:
        return _STROKES[ch.casefold()]
    text = unicodedata.normalize("NFKD", ch)
    if casefold:
        # casefold can produce characters that decompose further ("ǰ"), hence twice
        text = unicodedata.normalize("NFKD", text.casefold())
    out: list[str] = []
    for c in text:
        cat = unicodedata.category(c)
        part_of_word = cat in _WORD_MARK or (cat == "Mn" and not _is_diacritic(c))
        if c.isalnum() or part_of_word or (keep_marks and cat in ("Mn", "Me")):
            out.append(c)
        elif cat in _DROP:
            continue
        else:
            out.append(" ")
    mapped = "".join(out)
    if keep_marks or mapped.isascii():
        return mapped
    # Recompose what decomposing split but is one letter: a Hangul syllable (its jamo)
    # and a voiced kana, so one character still maps to one (no offset-map entry each).
    return unicodedata.normalize("NFC", mapped)


def _ascii_table(*, casefold: bool) -> dict[int, str]:
    return {
        i: (chr(i).lower() if casefold else chr(i)) if chr(i).isalnum() else " " for i in range(128)
    }


class _Table(dict[int, str]):
    """A `str.translate` table that learns each character the first time it is asked for.

    `str.translate` looks characters up with `mapping[code]`, so `__missing__`
    runs once per new character and the answer is stored; known characters
    cost a plain dict lookup. Values are deterministic, so concurrent fills
    from several threads are harmless.
    """

    def __init__(self, *, casefold: bool, keep_marks: bool) -> None:
        super().__init__(_ascii_table(casefold=casefold))
        self.casefold = casefold
        self.keep_marks = keep_marks
        self.irregular: set[str] = set()  # chars that do not map to exactly one char
        self._irregular_re: tuple[int, re.Pattern[str]] = (0, re.compile("(?!)"))
        # new characters are rare: a lock there keeps `irregular` whole for other threads
        self._lock = threading.Lock()

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        mapped = _map_char(ch, casefold=self.casefold, keep_marks=self.keep_marks)
        with self._lock:
            if len(mapped) != 1:
                self.irregular.add(ch)
            self[code] = mapped
        return mapped

    def irregular_runs(self) -> re.Pattern[str]:
        """A regex for runs of the irregular characters learnt so far."""
        known, pattern = self._irregular_re
        if known != len(self.irregular):
            with self._lock:
                chars = sorted(self.irregular)
            pattern = re.compile("[" + "".join(re.escape(c) for c in chars) + "]+")
            self._irregular_re = (len(chars), pattern)
        return pattern


_VIEW = _Table(casefold=True, keep_marks=False)
_VIEW_ASCII = _ascii_table(casefold=True)  # kept separate: enables CPython's ASCII fast path
_CASE = _Table(casefold=False, keep_marks=False)
_MARKS = _Table(casefold=True, keep_marks=True)

_RUNS = re.compile(r"  +")


class Folded:
    """The match view of one text and the way back to the original offsets.

    Two layers: translate (one original char -> 0..n view chars), a sorted
    list of break positions and the cumulative shift from there on; and space
    collapsing, undone by counting spaces when an offset is asked for (most
    texts are scanned, few report hits).
    """

    __slots__ = ("_char_at", "_char_shift", "_last", "_padded", "text")

    def __init__(
        self, text: str, padded: str, char_at: tuple[int, ...], char_shift: tuple[int, ...]
    ) -> None:
        self.text = text  # the view: " word word ... word "
        self._padded = padded  # before collapsing spaces
        self._char_at = char_at  # translated positions where the char shift changes
        self._char_shift = char_shift
        # the last position asked for, its spaces before it, and the fixed point found
        # with its spaces: hits are asked for in text order, so counting resumes there
        # (from the start each time, 20,000 hits in a 1 MB page took 16 s)
        self._last = (0, 0, 0, 0)

    def _to_translated(self, pos: int) -> int:
        """View position -> position in the translated text (before collapsing spaces).

        Collapsing only removes spaces, so both texts have the same non-space
        characters in the same order. A non-space view position is the
        translated position with as many non-spaces before it; a space is the
        first space of its run. Found by counting spaces in C (`str.count`):
        t = n + spaces before t is a fixed point reached from below in a few
        steps, each covering only the spaces the previous one found. No
        per-run map is built: that cost a Python loop over every run of
        spaces of a field that had a hit.
        """
        view = self.text
        padded = self._padded
        if pos >= len(view):  # past the end: every removed space is before it
            return pos + len(padded) - len(view) - 1
        last_pos, last_vspaces, t, spaces = self._last
        if pos < last_pos:  # asked out of order: count from the start
            last_pos = last_vspaces = t = spaces = 0
        vspaces = last_vspaces + view.count(" ", last_pos, pos)
        nonspace = pos - vspaces  # same count before `tpos` in padded
        # the fixed point only grows with `nonspace`, so the last one is a start from below
        if t < nonspace:
            spaces += padded.count(" ", t, nonspace)
            t = nonspace
        while nonspace + spaces != t:
            nxt = nonspace + spaces
            spaces += padded.count(" ", t, nxt)
            t = nxt
        self._last = (pos, vspaces, t, spaces)
        # t: the smallest padded position with `nonspace` non-spaces before it
        if view[pos] != " ":
            end = len(padded)
            while t < end and padded[t] == " ":
                t += 1
        return t - 1  # minus 1: the view was padded with a leading space before collapsing

    def _to_original(self, tpos: int) -> int:
        i = bisect_right(self._char_at, tpos) - 1
        return tpos + (self._char_shift[i] if i >= 0 else 0)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """View span [start, end) (no padding spaces) -> span in the original text."""
        first = self._to_original(self._to_translated(start))
        last = self._to_original(self._to_translated(end - 1))
        return first, last + 1


def _breaks(runs: Iterable[tuple[int, str]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The char-layer breaks for the runs (start, text) that hold irregular characters."""
    at: list[int] = []
    shift: list[int] = []
    delta = 0  # original index - translated index, from the current position on
    for start, run in runs:
        for offset, ch in enumerate(run):
            k = len(_VIEW[ord(ch)])
            if k == 1:
                continue
            j = start + offset - delta  # where this char's output starts
            if k == 0:
                delta += 1
                at.append(j)
                shift.append(delta)
            else:
                # every output char maps back to the same original char
                for t in range(1, k):
                    at.append(j + t)
                    shift.append(delta - t)
                delta -= k - 1
    return tuple(at), tuple(shift)


def _translate_whole(text: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Translate text in other scripts (Cyrillic, Greek, Arabic, CJK, Hangul, Thai...).

    One `str.translate` over the whole text (about 20 M characters/s) and a
    regex for the few irregular characters (ligatures, "ß", dropped marks).
    Going run by run costs a Python step per
    word in these scripts: 1-5 MB/s on the benchmark's Russian, Korean and
    Japanese pages.
    """
    translated = text.translate(_VIEW)  # learns new characters first: irregular is complete
    at, shift = _breaks((m.start(), m.group()) for m in _VIEW.irregular_runs().finditer(text))
    return translated, at, shift


def _translate_reference(text: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Character by character: the slow, plainly right path.

    The fast paths (`_translate_latin`, `_translate_whole`) are tested to give
    exactly what this gives.
    """
    pieces: list[str] = []
    at: list[int] = []
    shift: list[int] = []
    n = 0  # translated length so far: original i starts at translated n
    for i, ch in enumerate(text):
        mapped = _VIEW[ord(ch)]
        k = len(mapped)
        if k == 0:  # dropped: from here on the translated text is one more behind
            at.append(n)
            shift.append(i + 1 - n)
        for t in range(1, k):  # expanded: every output char maps back to this one
            at.append(n + t)
            shift.append(i - n - t)
        pieces.append(mapped)
        n += k
    return "".join(pieces), tuple(at), tuple(shift)


def _common_non_ascii() -> str:
    """128 non-ASCII characters of Latin news whose view is one ASCII character.

    Dashes, curly quotes, special spaces first, then Latin-1 and Latin
    Extended-A letters (é, ü, ø, ā, š...), while bytes 128-255 last.
    """
    wanted = [
        *range(0x2010, 0x2020),  # dashes, curly quotes
        *range(0x2000, 0x200B),  # spaces
        *(0x202F, 0x2032, 0x2033, 0x2039, 0x203A, 0x2022),
        *range(0xA0, 0x100),  # Latin-1
        *range(0x100, 0x180),  # Latin Extended-A
    ]
    chosen = []
    for cp in wanted:
        view = _map_char(chr(cp), casefold=True, keep_marks=False)
        if len(view) == 1 and view.isascii():
            chosen.append(chr(cp))
    return "".join(chosen[:128])


_COMMON = _common_non_ascii()
# Encoding with a charmap codec runs in C: ASCII is itself, each common character one
# byte of 128-255, and only the other runs reach the `newswatch-fold` handler. Calling
# the handler for every curly quote and dash was most of the folding time.
_FOLD_MAP = codecs.charmap_build("".join(map(chr, range(128))) + _COMMON)
_COMMON.translate(_VIEW)  # learn them
# The view as a bytes table (ASCII, then the common characters): `bytes.translate`
# runs at about 1 GB/s.
_VIEW_BYTES = bytes(ord(_VIEW_ASCII[i]) for i in range(128)) + bytes(
    ord(_VIEW[ord(ch)]) for ch in _COMMON
).ljust(128, b" ")


class _NotLatin(Exception):
    """A non-ASCII run folds to non-ASCII letters (Greek, Cyrillic, Arabic...)."""


_irregular_runs = threading.local()


def _fold_run(exc: UnicodeError) -> tuple[str, int]:
    """`encode` error handler: the view of one maximal run of non-ASCII characters.

    The encoder finds the runs in C, far faster than a regex over the text
    (which ran at under 40 MB/s on news with curly quotes). Runs whose chars
    do not map one to one are remembered for the offset map.
    """
    assert isinstance(exc, UnicodeEncodeError)
    run = exc.object[exc.start : exc.end]
    mapped = run.translate(_VIEW)
    if not mapped.isascii():
        raise _NotLatin
    if not _VIEW.irregular.isdisjoint(run):
        _irregular_runs.runs.append((exc.start, run))
    return mapped, exc.end


codecs.register_error("newswatch-fold", _fold_run)


def _translate_latin(text: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Translate text whose non-ASCII characters all fold to ASCII (most news).

    Raises _NotLatin otherwise. Same result as `_translate_reference`.
    """
    runs: list[tuple[int, str]] = []
    _irregular_runs.runs = runs
    encoded = codecs.charmap_encode(text, "newswatch-fold", _FOLD_MAP)[0]
    translated = encoded.translate(_VIEW_BYTES).decode("ascii")
    at, shift = _breaks(runs)
    return translated, at, shift


def fold(text: str) -> Folded:
    """The match view of `text` with its offset map (see the module docstring)."""
    if text.isascii():
        translated = text.translate(_VIEW_ASCII)
        char_at: tuple[int, ...] = ()
        char_shift: tuple[int, ...] = ()
    else:
        try:
            translated, char_at, char_shift = _translate_latin(text)
        except _NotLatin:
            translated, char_at, char_shift = _translate_whole(text)
    padded = f" {translated} "
    return Folded(_RUNS.sub(" ", padded), padded, char_at, char_shift)


def fold_term(term: str) -> str:
    """The view of a configured term, without padding: 'Hashd al-Sha’abi' -> 'hashd al sha abi'."""
    return " ".join(term.translate(_VIEW).split())


def case_tokens(text: str) -> list[str]:
    """Words of `text` as the view splits them, but with their case kept (diacritics dropped)."""
    return text.translate(_CASE).split()


def mark_tokens(text: str) -> list[str]:
    """Words of `text` as the view splits them, case-folded but with diacritics kept.

    Both sides are decomposed, so precomposed and combining spellings compare equal.
    """
    return text.translate(_MARKS).split()


# --- scripts written without spaces ----------------------------------------------------

# Han, kana, Thai, Lao, Myanmar, Khmer: no spaces between words, so a term in them
# has no word boundary to check (see docs/rules.md).
_UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3040-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
)
_UNSPACED_CHAR = re.compile(f"[{_UNSPACED}]")
_HANGUL_CHAR = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_UNSPACED_RUN = re.compile(f"[{_UNSPACED}]+")


def is_unspaced(ch: str) -> bool:
    """Is `ch` a letter of a script written without spaces between words?"""
    return _UNSPACED_CHAR.match(ch) is not None


def is_hangul(ch: str) -> bool:
    return _HANGUL_CHAR.match(ch) is not None


def spaced_view(view: str) -> tuple[str, list[int]] | None:
    """`view` with a space where a script without spaces meets another ("はiphone").

    Returns the spaced view and where the spaces went (view positions, sorted),
    or None when there is no such place. "アップルはiPhone" then holds the
    word "iphone" for a term to match whole.
    """
    if view.isascii():
        return None
    places = []
    # the ends of each run of such letters that touch another word (a view starts and
    # ends with a space, so both neighbours exist); runs are long, so this is quick
    for m in _UNSPACED_RUN.finditer(view):
        start, end = m.span()
        if view[start - 1] != " ":
            places.append(start)
        if view[end] != " ":
            places.append(end)
    if not places:
        return None
    pieces = []
    done = 0
    for p in places:
        pieces.append(view[done:p])
        done = p
    pieces.append(view[done:])
    return " ".join(pieces), places
