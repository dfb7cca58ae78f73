"""The Matcher: all watchlists of one config version, compiled; documents in, matches out.

`match` looks only at watchlists with a hit on a *trigger* term (one that can make it
match: a name, alias or keyword, or for a rule, a term of its smallest required set),
so that a common word used as context or as an optional rule term ("troops") does not
wake up every watchlist that mentions it. `explain` looks at every watchlist with any
hit. Immutable once built (`compiler.compile_matcher`): one instance can be shared by
threads.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from worker.core.model import MatchDocument, WatchlistMatch
from worker.matching.compiled import CompiledWatchlist, Ref
from worker.matching.explain import Explanation
from worker.matching.judge import judge
from worker.matching.scanner import Found, Occ, Scanner, spelling_ok
from worker.matching.snippets import to_match


@dataclass(frozen=True)
class Rejection:
    """A watchlist with a trigger term in the document that still did not match."""

    watchlist: str
    reasons: tuple[str, ...]  # the first reason that stopped it (source, exclude, rule, ...)


@dataclass(frozen=True)
class MatchOutcome:
    """`match` plus the watchlists it judged and turned down (the drop ledger's evidence)."""

    matches: list[WatchlistMatch]
    rejected: list[Rejection]


class Matcher:
    """All watchlists of one config version, compiled. Build once, match many."""

    def __init__(
        self,
        version: str,
        watchlists: list[CompiledWatchlist],
        scanner: Scanner,
        triggers: list[frozenset[int]],
    ) -> None:
        self.version = version
        self._watchlists = tuple(watchlists)
        self._scanner = scanner
        self._triggers = tuple(triggers)
        # per key, its refs on trigger terms (see `match`); filled as keys are hit
        self._trigger_refs: dict[int, tuple[Ref, ...]] = {}

    @property
    def watchlists(self) -> tuple[str, ...]:
        return tuple(w.spec.name for w in self._watchlists)

    def match(self, doc: MatchDocument) -> list[WatchlistMatch]:
        """The watchlists that match `doc`, in config order, with hits and a snippet."""
        return self._match(doc, None)

    def match_outcome(self, doc: MatchDocument) -> MatchOutcome:
        """`match`, and the watchlists judged and turned down on the way, with the reason
        each one stopped at: no more work than `match` (only the candidates are judged)."""
        rejected: list[Rejection] = []
        return MatchOutcome(self._match(doc, rejected), rejected)

    def _match(self, doc: MatchDocument, rejected: list[Rejection] | None) -> list[WatchlistMatch]:
        hits = self._scanner.hits(doc)
        if not hits:
            return []
        candidates = self._candidates(hits)
        if not candidates:
            return []
        found = self._scanner.collect(hits, candidates)
        out = []
        for wl_index in sorted(candidates):
            verdict = judge(self._watchlists[wl_index], found[wl_index], doc, explain=False)
            if verdict.matched:
                out.append(to_match(self._watchlists[wl_index], verdict.hits))
            elif rejected is not None:  # a false rule returns early, without a reason
                spec = self._watchlists[wl_index].spec
                reasons = tuple(verdict.reasons) or (f"rule not satisfied: {spec.rule}",)
                rejected.append(Rejection(spec.name, reasons))
        return out

    def _candidates(self, hits: list[tuple[int, Occ]]) -> set[int]:
        """The watchlists with a hit on a trigger term (one that can make them match).

        A common word used as context or as an optional rule term ("troops") is a key
        of hundreds of watchlists, and recording it for each of them was most of the
        per-document work. Only the candidates then collect all their terms.
        """
        refs_by_key = self._scanner.refs
        triggers = self._triggers
        trigger_refs = self._trigger_refs
        candidates: set[int] = set()
        for key_index, occ in hits:
            trig = trigger_refs.get(key_index)
            if trig is None:  # filled on first use; values are deterministic (thread-safe)
                trig = tuple(r for r in refs_by_key[key_index] if r.term in triggers[r.wl])
                trigger_refs[key_index] = trig
            for ref in trig:
                if ref.wl in candidates:
                    continue
                if (ref.case is not None or ref.marks is not None) and not spelling_ok(ref, occ):
                    continue
                candidates.add(ref.wl)
        return candidates

    def explain(
        self, doc: MatchDocument, watchlists: Collection[str] | None = None
    ) -> list[Explanation]:
        """Every watchlist that matched or nearly matched `doc` (any term found), and why;
        with `watchlists`, exactly those, found or not ("why didn't X match?")."""
        found = self._scan(doc)
        if watchlists is None:
            chosen = sorted(found)
        else:
            chosen = [i for i, w in enumerate(self._watchlists) if w.spec.name in watchlists]
        out = []
        for wl_index in chosen:
            wl = self._watchlists[wl_index]
            verdict = judge(wl, found.get(wl_index, {}), doc, explain=True)
            out.append(
                Explanation(wl.spec.name, verdict.matched, verdict.reasons, verdict.hit_objects(wl))
            )
        return out

    def _scan(self, doc: MatchDocument) -> Found:
        """Checked occurrences per (watchlist, term) of every watchlist with a hit."""
        return self._scanner.collect(self._scanner.hits(doc), None)
