"""Text folding for matching, with a map back to the original offsets.

The matcher never looks at raw article text. It looks at a *match view*:

- every character is decomposed (NFKD, which also applies the compatibility
  mappings of NFKC: ligatures, full-width forms, superscripts), case-folded,
  and stripped of combining marks (diacritics);
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

__all__ = [
    "Folded",
    "case_tokens",
    "fold",
    "fold_term",
    "mark_tokens",
]

# Character categories dropped from the view: non-spacing and enclosing marks
# (diacritics once decomposed) and format characters (soft hyphen, ZWJ, BOM).
_DROP = frozenset({"Mn", "Me", "Cf"})
# Spacing combining marks are part of words in Indic scripts: keep them.
_WORD_MARK = frozenset({"Mc"})


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
        if c.isalnum() or cat in _WORD_MARK or (keep_marks and cat in ("Mn", "Me")):
            out.append(c)
        elif cat in _DROP:
            continue
        else:
            out.append(" ")
    return "".join(out)


def _ascii_table(*, casefold: bool) -> dict[int, str]:
    return {
        i: (chr(i).lower() if casefold else chr(i)) if chr(i).isalnum() else " " for i in range(128)
    }


class _Table(dict[int, str]):
    """A `str.translate` table that learns characters the first time it sees them.

    Filled explicitly by `learn` before translating (translate itself cannot
    call back into Python cheaply). Values are deterministic, so concurrent
    fills from several threads are harmless.
    """

    def __init__(self, *, casefold: bool, keep_marks: bool) -> None:
        super().__init__(_ascii_table(casefold=casefold))
        self.casefold = casefold
        self.keep_marks = keep_marks
        self.irregular: set[str] = set()  # chars that do not map to exactly one char

    def learn(self, text: str) -> None:
        for ch in set(text):
            if ord(ch) in self:
                continue
            mapped = _map_char(ch, casefold=self.casefold, keep_marks=self.keep_marks)
            if len(mapped) != 1:
                self.irregular.add(ch)
            self[ord(ch)] = mapped


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

    __slots__ = ("_char_at", "_char_shift", "_padded", "text")

    def __init__(
        self, text: str, padded: str, char_at: tuple[int, ...], char_shift: tuple[int, ...]
    ) -> None:
        self.text = text  # the view: " word word ... word "
        self._padded = padded  # before collapsing spaces
        self._char_at = char_at  # translated positions where the char shift changes
        self._char_shift = char_shift

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
        nonspace = pos - view.count(" ", 0, pos)  # same count before `tpos` in padded
        t = nonspace
        spaces = padded.count(" ", 0, t)
        while nonspace + spaces != t:
            nxt = nonspace + spaces
            spaces += padded.count(" ", t, nxt)
            t = nxt
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


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _translate_non_ascii(text: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Translate `text` and build the char-layer breaks.

    News text is mostly ASCII with a few curly quotes, dashes and accented
    names, and `str.translate` is slow on non-ASCII strings (about 20 MB/s).
    So only the non-ASCII runs go through the table here; the rest is then
    ASCII and takes the fast path.
    """
    pieces: list[str] = []
    at: list[int] = []
    shift: list[int] = []
    delta = 0  # original index - translated index, from the current position on
    done = 0
    for m in _NON_ASCII.finditer(text):
        run = m.group()
        _VIEW.learn(run)
        mapped = run.translate(_VIEW)
        pieces.append(text[done : m.start()].translate(_VIEW_ASCII))  # ASCII: fast path
        pieces.append(mapped)
        done = m.end()
        if _VIEW.irregular.isdisjoint(run):
            continue  # one char each (quotes, dashes, accented letters): no breaks
        for offset, ch in enumerate(run):
            k = len(_VIEW[ord(ch)])
            if k == 1:
                continue
            j = m.start() + offset - delta  # where this char's output starts
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
    pieces.append(text[done:].translate(_VIEW_ASCII))
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
_VIEW.learn(_COMMON)
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
    _VIEW.learn(run)
    mapped = run.translate(_VIEW)
    if not mapped.isascii():
        raise _NotLatin
    if not _VIEW.irregular.isdisjoint(run):
        _irregular_runs.runs.append((exc.start, run))
    return mapped, exc.end


codecs.register_error("newswatch-fold", _fold_run)


def _translate_latin(text: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Translate text whose non-ASCII characters all fold to ASCII (most news).

    Raises _NotLatin otherwise. Same result as `_translate_non_ascii`.
    """
    _irregular_runs.runs = runs = []
    encoded = codecs.charmap_encode(text, "newswatch-fold", _FOLD_MAP)[0]
    translated = encoded.translate(_VIEW_BYTES).decode("ascii")
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
                for t in range(1, k):
                    at.append(j + t)
                    shift.append(delta - t)
                delta -= k - 1
    return translated, tuple(at), tuple(shift)


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
            translated, char_at, char_shift = _translate_non_ascii(text)
    padded = f" {translated} "
    return Folded(_RUNS.sub(" ", padded), padded, char_at, char_shift)


def fold_term(term: str) -> str:
    """The view of a configured term, without padding: 'Hashd al-Sha’abi' -> 'hashd al sha abi'."""
    if not term.isascii():
        _VIEW.learn(term)
    return " ".join(term.translate(_VIEW).split())


def case_tokens(text: str) -> list[str]:
    """Words of `text` as the view splits them, but with their case kept (diacritics dropped)."""
    if not text.isascii():
        _CASE.learn(text)
    return text.translate(_CASE).split()


def mark_tokens(text: str) -> list[str]:
    """Words of `text` as the view splits them, case-folded but with diacritics kept.

    Both sides are decomposed, so precomposed and combining spellings compare equal.
    """
    if not text.isascii():
        _MARKS.learn(text)
    return text.translate(_MARKS).split()
