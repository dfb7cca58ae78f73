"""A match as it is stored and sent: hits, a snippet of plain text around the best
one, and where the hits are in the snippet."""

from __future__ import annotations

from worker.core.model import Hit, WatchlistMatch
from worker.matching.compiled import CompiledWatchlist
from worker.matching.scanner import Mention, to_hits

SNIPPET_BEFORE = 120
SNIPPET_AFTER = 200
_FLATTEN = str.maketrans({"\n": " ", "\r": " ", "\t": " ", "\u00a0": " "})


def to_match(wl: CompiledWatchlist, mentions: list[Mention]) -> WatchlistMatch:
    hits = to_hits(wl, mentions)
    snippet, highlights = _snippet(hits, mentions)
    names: dict[str, None] = {}
    for h in hits:
        names.setdefault(h.entity or h.term, None)
    return WatchlistMatch(
        watchlist=wl.spec.name,
        hits=hits,
        snippet=snippet,
        highlights=highlights,
        names=tuple(names),
    )


def _snippet(
    hits: tuple[Hit, ...], mentions: list[Mention]
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Plain text around the best hit (first in the body, else lead, else title)."""
    if not hits:
        return "", ()
    rank = {"body": 0, "lead": 1, "title": 2}
    best_i = min(range(len(hits)), key=lambda i: (rank.get(hits[i].field, 3), hits[i].start))
    best_fld = mentions[best_i][0].fld
    text, base = best_fld.text, best_fld.base
    a0, b0 = hits[best_i].start - base, hits[best_i].end - base
    a = max(0, a0 - SNIPPET_BEFORE)
    b = min(len(text), b0 + SNIPPET_AFTER)
    # cut at whitespace so the snippet does not start or end mid-word
    if a > 0:
        space = text.find(" ", a, a0)
        a = space + 1 if space >= 0 else a
    if b < len(text):
        space = text.rfind(" ", b0, b)
        b = space if space >= 0 else b
    # keep offsets: only replace line breaks and tabs one for one
    piece = text[a:b].translate(_FLATTEN)
    lead = "…" if a > 0 else ""
    tail = "…" if b < len(text) else ""
    highlights = []
    for h, (occ, _) in zip(hits, mentions, strict=True):
        if occ.fld is best_fld and a <= h.start - base and h.end - base <= b:
            highlights.append((h.start - base - a + len(lead), h.end - base - a + len(lead)))
    return lead + piece + tail, tuple(highlights)
