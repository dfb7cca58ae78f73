"""Rule evaluation: what one watchlist found in one document, and whether its rule holds.

`Facts` gathers the occurrences per entity and term (weak aliases counting only with
context or a strong spelling); `holds` evaluates a rule node on them; `near_spans`
finds the close groups of a NEAR, which are also its hits.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

from worker.matching.compiled import TEXT_FIELDS, CompiledWatchlist, Role
from worker.matching.nodes import And, Leaf, Near, Node, Not, Or
from worker.matching.scanner import Mention, Occ

# Close groups kept per NEAR. Groups are pairs of occurrences, so a page of one long
# clause without spaces (Chinese without punctuation) repeating both terms would make
# every pair a group; the first 10,000 are plenty to decide and to show.
MAX_NEAR_GROUPS = 10_000


class Span(NamedTuple):
    """Words `first`..`last` of one field item, and the occurrences that make them up."""

    fld: int  # id of the Field
    first: int
    last: int
    occs: tuple[Mention, ...]


class Facts:
    """What was found for one watchlist in one document, ready for rule evaluation."""

    def __init__(self, wl: CompiledWatchlist, by_term: dict[int, list[Occ]]) -> None:
        self.wl = wl
        self.by_term = by_term
        n = len(wl.entities)
        self.strong: list[list[Mention]] = [[] for _ in range(n)]
        self.weak: list[list[Mention]] = [[] for _ in range(n)]
        self.context = [False] * n
        for ti, occs in by_term.items():
            term = wl.terms[ti]
            if term.entity is None:
                continue
            text_occs = [(o, ti) for o in occs if o.fld.name in TEXT_FIELDS]
            if term.role in ("name", "alias"):
                self.strong[term.entity].extend((o, ti) for o in occs)
            elif term.role == "weak":
                self.weak[term.entity].extend((o, ti) for o in occs)
            elif term.role == "context" and text_occs:
                self.context[term.entity] = True
        # a weak alias counts when the article also has context or a strong spelling
        self.confirmed = [
            self.context[i] or any(o.fld.name in TEXT_FIELDS for o, _ in self.strong[i])
            for i in range(n)
        ]
        self.near: dict[int, list[Span]] = {}  # id(Near node) -> its close groups

    def entity_occs(self, ei: int, scope: frozenset[str]) -> list[Mention]:
        pairs = [p for p in self.strong[ei] if p[0].fld.name in scope]
        if self.confirmed[ei]:
            pairs += [p for p in self.weak[ei] if p[0].fld.name in scope]
        return pairs

    def leaf_occs(self, leaf: Leaf) -> list[Mention]:
        pairs = [p for ei in leaf.entities for p in self.entity_occs(ei, leaf.scope)]
        pairs += [
            (o, ti)
            for ti in leaf.terms
            for o in self.by_term.get(ti, ())
            if o.fld.name in leaf.scope
        ]
        return pairs

    def role_occs(self, role: Role) -> list[Mention]:
        return [
            (o, ti)
            for ti, occs in self.by_term.items()
            if self.wl.terms[ti].role == role
            for o in occs
            if o.fld.name in TEXT_FIELDS
        ]


def holds(node: Node, facts: Facts) -> bool:
    """True if the rule (or part of one) `node` is satisfied by `facts`."""
    if isinstance(node, Leaf):
        return bool(facts.leaf_occs(node))
    if isinstance(node, And):
        return all(holds(p, facts) for p in node.parts)
    if isinstance(node, Or):
        return any(holds(p, facts) for p in node.parts)
    if isinstance(node, Not):
        return not holds(node.part, facts)
    return bool(near_spans(node, facts))


def _positions(node: Node, facts: Facts) -> list[Span]:
    """Every occurrence (or close group, for a NEAR) under a positional node, as a span."""
    if isinstance(node, Near):
        return near_spans(node, facts)
    if isinstance(node, Or):
        return [s for p in node.parts for s in _positions(p, facts)]
    assert isinstance(node, Leaf)
    pairs = facts.leaf_occs(node)
    # word numbers by counting spaces, each field once, in text order (counting from
    # the start for every occurrence was quadratic on a long page full of hits)
    word_at: dict[tuple[int, int], int] = {}
    counted: dict[int, tuple[int, int]] = {}  # field -> (position, spaces before it)
    for occ, _ in sorted(pairs, key=lambda p: (id(p[0].fld), p[0].start)):
        pos, spaces = counted.get(id(occ.fld), (0, 0))
        spaces += occ.fld.folded.text.count(" ", pos, occ.start)
        counted[id(occ.fld)] = (occ.start, spaces)
        word_at[id(occ.fld), occ.start] = spaces - 1
    out = []
    for pair in pairs:
        occ = pair[0]
        first = word_at[id(occ.fld), occ.start]
        last = first + occ.fld.folded.text.count(" ", occ.start, occ.end)
        out.append(Span(id(occ.fld), first, last, (pair,)))
    return out


def near_spans(node: Near, facts: Facts) -> list[Span]:
    """The close groups of a NEAR: one occurrence of each operand, each operand close
    enough to the group of the ones before it. Their occurrences are the NEAR's hits."""
    cached = facts.near.get(id(node))
    if cached is not None:
        return cached
    spans = _positions(node.parts[0], facts)
    for part in node.parts[1:]:
        spans = _join_close(spans, _positions(part, facts), node.distance)
        if not spans:
            break
    facts.near[id(node)] = spans
    return spans


def _join_close(spans: list[Span], others: list[Span], distance: int) -> list[Span]:
    """Every span of `spans` joined with each of `others` fewer than `distance` words away."""
    # look only at the others that can be close: sorted by start, a window found by
    # bisection (every pair was quadratic: 20,000 x 20,000 on a hostile page)
    starts = sorted((s.fld, s.first, i) for i, s in enumerate(others))
    longest = max((s.last - s.first for s in others), default=0)
    joined: list[Span] = []
    for s1 in spans:
        if len(joined) >= MAX_NEAR_GROUPS:
            break  # a page that is one long clause of both terms: enough to show
        lo = bisect_left(starts, (s1.fld, s1.first - distance - longest))
        hi = bisect_left(starts, (s1.fld, s1.last + distance + 1))
        for i in sorted(i for _, _, i in starts[lo:hi]):  # in the others' order
            s2 = others[i]
            gap = s2.first - s1.last - 1 if s2.first > s1.last else s1.first - s2.last - 1
            if gap < distance:
                joined.append(
                    Span(s1.fld, min(s1.first, s2.first), max(s1.last, s2.last), s1.occs + s2.occs)
                )
    return joined
