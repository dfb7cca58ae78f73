"""Invisible format characters are taken out of everything newswatch renders.

Article titles and snippets are hostile input. Bidi overrides and isolates
(U+202A-202E, U+2066-2069) reorder what a reader sees, so a subject can show
"…gpj.exe" as "…exe.jpg" or hide a name; zero-width characters (U+200B-200F,
U+2060, U+FEFF, soft hyphen) make two different texts look the same; line and
paragraph separators (U+2028/2029) break lines where a header or a chat field
should have none. Every Unicode format character (category Cf, taken from the
`regex` module's Unicode tables, which follow the newest Unicode version) is
removed; the two separators become a space.

Kept, because they are part of correct writing and cannot reorder or hide text:

- ZWNJ (U+200C) and ZWJ (U+200D) between two letters or marks of the scripts that
  need them (Arabic and Persian, Syriac, the Indic scripts, Sinhala): "می‌خواهم"
  keeps its non-joiner;
- ZWJ between two emoji (family and profession sequences such as 👩‍💻);
- the tag characters (U+E0020-E007F) that spell a subdivision flag after 🏴.

Everywhere else ZWJ/ZWNJ are removed too ("Pay\u200dPal" reads "PayPal").
Pure and idempotent; `neutralise_spans` also moves highlight offsets.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import regex

__all__ = ["neutralise", "neutralise_spans", "percent_encode_format"]

_SUSPECT = regex.compile(r"[\p{Cf}\p{Zl}\p{Zp}]")
_SEPARATOR = regex.compile(r"[\p{Zl}\p{Zp}]")
_ZWNJ, _ZWJ = "\u200c", "\u200d"
_BLACK_FLAG = "\U0001f3f4"
_TAGS = range(0xE0020, 0xE0080)
# scripts whose orthography uses ZWNJ/ZWJ: Arabic (with supplements and presentation
# forms), Syriac, Thaana, Devanagari to Malayalam, Sinhala
_JOINING_SCRIPTS = (
    (0x0600, 0x08FF),
    (0x0900, 0x0DFF),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFC),
)
_EMOJI_PARTS = regex.compile(r"[\p{So}\p{Sk}\p{Emoji_Modifier}\uFE0F\u20E3]")


def _in_joining_script(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _JOINING_SCRIPTS)


def _emoji(ch: str) -> bool:
    return bool(_EMOJI_PARTS.match(ch)) and ord(ch) > 0x7F


def _keep(text: str, i: int) -> bool:
    """Whether the format character at `i` is one of the legitimate uses above."""
    ch = text[i]
    cp = ord(ch)
    if cp in _TAGS:
        j = i - 1
        while j >= 0 and ord(text[j]) in _TAGS:
            j -= 1
        return j >= 0 and text[j] == _BLACK_FLAG
    if ch not in (_ZWNJ, _ZWJ) or i == 0 or i + 1 >= len(text):
        return False
    before, after = text[i - 1], text[i + 1]
    if _in_joining_script(before) and _in_joining_script(after):
        return True
    return ch == _ZWJ and _emoji(before) and _emoji(after)


def neutralise(text: str) -> str:
    """`text` without invisible format characters (see the module docstring)."""
    return neutralise_spans(text, ())[0]


def neutralise_spans(
    text: str, spans: Sequence[tuple[int, int]]
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Like `neutralise`, with (start, end) offsets into `text` moved to the result."""
    if text.isascii() or not _SUSPECT.search(text):
        return text, tuple((s, e) for s, e in spans)
    out: list[str] = []
    removed: list[int] = []  # old offsets of the characters taken out, ascending
    last = 0
    for m in _SUSPECT.finditer(text):
        i = m.start()
        if _keep(text, i):
            continue
        out.append(text[last:i])
        if _SEPARATOR.match(text[i]):
            out.append(" ")
        else:
            removed.append(i)
        last = i + 1
    out.append(text[last:])

    def moved(p: int) -> int:
        p = min(max(p, 0), len(text))
        return p - bisect_left(removed, p)

    return "".join(out), tuple((moved(s), moved(e)) for s, e in spans)


def percent_encode_format(url: str) -> str:
    """A link with its invisible characters percent-encoded: the same link for a browser
    (which encodes them anyway), but nothing in it can reorder the text around it."""
    if url.isascii():
        return url
    return _SUSPECT.sub(lambda m: "".join(f"%{b:02X}" for b in m.group(0).encode()), url)
