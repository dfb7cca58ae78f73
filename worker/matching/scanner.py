"""Scan: a document's fields, folded once, through the one automaton of all terms.

Each field is folded into the match view (`worker.matching.text`) and run through the
automaton once, as bytes (with a space added where a script written without spaces
meets a Latin word, "はiPhone", and the spans mapped back). A hit is checked for case
(acronyms, `=Exact` terms) and, for watchlists that keep diacritics, for marks, against
the ORIGINAL text, then recorded per (watchlist, term).
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick_rs

from worker.core.model import Hit, MatchDocument
from worker.matching.compiled import CompiledWatchlist, Ref, Term
from worker.matching.spelling import check_case
from worker.matching.text import Folded, case_tokens, fold, mark_tokens, spaced_view


@dataclass(slots=True)
class Field:
    name: str  # title | lead | body | author | source | tag
    text: str  # original text of this field item
    base: int  # offset of this item in the field's text (authors/tags are joined by "\n")
    folded: Folded


@dataclass(frozen=True, slots=True)
class Occ:
    """One checked occurrence of a term, in view coordinates of its field."""

    fld: Field
    start: int
    end: int

    def span(self) -> tuple[int, int]:
        """The occurrence in the original field text, with what belongs to its last word."""
        a, b = self.fld.folded.original_span(self.start, self.end)
        text = self.fld.text
        # combining marks after the last letter were dropped from the view but are part of it
        while b < len(text) and unicodedata.combining(text[b]):
            b += 1
        # "U.S." ends with its period (the view reads "u s"); "U.S-led" has none to take
        if b < len(text) and text[b] == "." and b - a >= 3 and text[b - 2] == ".":
            b += 1
        return a, b

    def to_hit(self, term: Term, entity: str | None) -> Hit:
        a, b = self.span()
        return Hit(
            field=self.fld.name,
            start=self.fld.base + a,
            end=self.fld.base + b,
            text=self.fld.text[a:b],
            term=term.text,
            entity=entity,
        )


Mention = tuple[Occ, int]  # (occurrence, term index)
Found = dict[int, dict[int, list[Occ]]]  # watchlist -> term -> occurrences


def to_hits(wl: CompiledWatchlist, pairs: list[Mention]) -> tuple[Hit, ...]:
    out = []
    for occ, ti in pairs:
        term = wl.terms[ti]
        entity = wl.entities[term.entity].name if term.entity is not None else None
        out.append(occ.to_hit(term, entity))
    return tuple(out)


_WORD_END = 1  # the term ends where the view's word does (wildcards, Korean)


class Scanner:
    """The automaton and, per key, the watchlist terms it stands for."""

    def __init__(
        self,
        automaton: ahocorasick_rs.BytesAhoCorasick | None,
        keys: list[str],
        refs: list[list[Ref]],
    ) -> None:
        self.automaton = automaton
        self.refs = tuple(refs)
        # where a hit's term starts and ends inside the key (see `_key_shape`), for the
        # keys that are not " term " (wildcards, scripts without spaces): few, and
        # building a shape for each of 100,000s of keys cost a tenth of the build
        self._shape = {
            i: _key_shape(k, refs[i][0].prefix)
            for i, k in enumerate(keys)
            if not (k.startswith(" ") and k.endswith(" "))
        }

    def hits(self, doc: MatchDocument) -> list[tuple[int, Occ]]:
        """(automaton key, occurrence) of every key found in `doc`, in text order."""
        out: list[tuple[int, Occ]] = []
        if self.automaton is None:
            return out
        for name, text, base in _field_items(doc):
            if text:
                self._scan_field(Field(name, text, base, fold(text)), out)
        return out

    def _scan_field(self, fld: Field, out: list[tuple[int, Occ]]) -> None:
        view = fld.folded.text
        # a space where Chinese, Japanese or Thai meets Latin ("アップルはiPhone")
        spaced = None if view.isascii() else spaced_view(view)
        scanned = spaced[0] if spaced else view
        find = self.automaton.find_matches_as_indexes  # type: ignore[union-attr]
        if scanned.isascii():
            hits = find(scanned.encode("ascii"), overlapping=True)
        else:
            data = scanned.encode()
            hits = _char_offsets(data, find(data, overlapping=True))
        shape = self._shape
        spans: list[tuple[int, int, int]] = []
        for key_index, start, stop in hits:
            odd = shape.get(key_index)
            if odd is None:  # " term ": the term is inside the spaces
                spans.append((key_index, start + 1, stop - 1))
                continue
            lead, end_at = odd
            end = scanned.find(" ", stop) if end_at == _WORD_END else stop + end_at
            spans.append((key_index, start + lead, end))
        if spaced:
            spans = _unspace(spans, spaced[1])
        out.extend((key_index, Occ(fld, a, b)) for key_index, a, b in spans)

    def collect(self, hits: list[tuple[int, Occ]], only: set[int] | None) -> Found:
        """Checked occurrences per (watchlist, term); only for the watchlists in `only`."""
        found: Found = {}
        refs_by_key = self.refs
        for key_index, occ in hits:
            for ref in refs_by_key[key_index]:
                if only is not None and ref.wl not in only:
                    continue
                if (ref.case is not None or ref.marks is not None) and not spelling_ok(ref, occ):
                    continue
                by_term = found.get(ref.wl)
                if by_term is None:
                    by_term = found[ref.wl] = {}
                occs = by_term.get(ref.term)
                if occs is None:
                    by_term[ref.term] = [occ]
                else:
                    occs.append(occ)
        return found


def _key_shape(key: str, prefix: bool) -> tuple[int, int]:
    """(start of the term in the key, where it ends: `_WORD_END`, or offset from the key's end).

    Keys are " term " (a whole word), " prefix" (wildcard, Korean), or open on a
    side that ends in a script written without spaces ("外交部", "ภาษา").
    """
    lead = 1 if key.startswith(" ") else 0
    if key.endswith(" "):
        return lead, -1
    return lead, _WORD_END if prefix else 0


def _char_offsets(data: bytes, hits: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Byte offsets of hits in UTF-8 `data` -> character offsets, decoding each stretch once."""
    to_char: dict[int, int] = {}
    byte = char = 0
    for pos in sorted({p for _, a, b in hits for p in (a, b)}):
        char += len(data[byte:pos].decode())
        byte = pos
        to_char[pos] = char
    return [(k, to_char[a], to_char[b]) for k, a, b in hits]


def _unspace(spans: list[tuple[int, int, int]], places: list[int]) -> list[tuple[int, int, int]]:
    """Spans in a `spaced_view` -> spans in the view (the added spaces taken out)."""
    added = [p + k for k, p in enumerate(places)]  # where each added space is
    return [(k, a - bisect_left(added, a), b - bisect_left(added, b)) for k, a, b in spans]


def spelling_ok(ref: Ref, occ: Occ) -> bool:
    """The occurrence is spelt as the term asks: case per word, and diacritics if kept."""
    a, b = occ.span()
    original = occ.fld.text[a:b]
    if ref.case is not None and not check_case(case_tokens(original), ref.case, ref.prefix):
        return False
    if ref.marks is not None:
        words = mark_tokens(original)
        if ref.prefix:
            return len(words) == len(ref.marks) and check_case(words, ref.marks, True)
        return tuple(words) == ref.marks
    return True


def _field_items(doc: MatchDocument) -> Iterable[tuple[str, str, int]]:
    """(field, text, offset in the field's text); authors and tags are joined by newlines."""
    yield "title", doc.title, 0
    yield "lead", doc.lead, 0
    yield "body", doc.body, 0
    yield "source", doc.source, 0
    for name, items in (("author", doc.authors), ("tag", doc.tags)):
        base = 0
        for item in items:
            yield name, item, base
            base += len(item) + 1
