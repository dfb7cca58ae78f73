"""Judge: one watchlist's hits in one document -> matched or not, the mentions, reasons.

Source filters, exclusions, weak aliases, the rule, min_mentions, in that order. The
same code gives `explain()` its reasons: with `explain` it carries on past the first
reason that stops the match and adds notes.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.core.model import Hit, MatchDocument
from worker.matching.compiled import TEXT_FIELDS, CompiledWatchlist
from worker.matching.evaluate import Facts, holds, near_spans
from worker.matching.explain import summary, weak_alias_note, why_not
from worker.matching.nodes import Near, leaves
from worker.matching.scanner import Mention, Occ, to_hits

_FIELD_ORDER = {"title": 0, "lead": 1, "body": 2, "author": 3, "source": 4, "tag": 5}


@dataclass
class Verdict:
    matched: bool
    reasons: list[str]
    hits: list[Mention]

    def hit_objects(self, wl: CompiledWatchlist) -> tuple[Hit, ...]:
        return to_hits(wl, self.hits)


def judge(
    wl: CompiledWatchlist, by_term: dict[int, list[Occ]], doc: MatchDocument, *, explain: bool
) -> Verdict:
    facts = Facts(wl, by_term)
    reasons = _stopped(wl, facts, doc)  # each one alone stops the match
    if reasons and not explain:
        return Verdict(False, reasons, [])
    notes: list[str] = []  # shown by explain, but no reason not to match
    mentions = _mentions(wl, facts, notes if explain else None)
    if wl.rule is not None:
        rule_ok = holds(wl.rule, facts)
        if not rule_ok:
            if not explain:
                return Verdict(False, reasons, [])
            reasons.extend(why_not(wl.rule, facts))
        mentions += _rule_mentions(wl, facts, rule_ok)
    elif not mentions:
        reasons.append("no name or keyword found (only terms that do not trigger alone)")

    mentions = _dedupe(mentions)
    min_mentions = wl.spec.min_mentions
    if len(mentions) < min_mentions and (mentions or wl.rule is None):
        reasons.append(f"{len(mentions)} mention(s); min_mentions is {min_mentions}")
    elif not mentions and not reasons:
        reasons.append("nothing to report")  # pragma: no cover - rules always need a hit
    matched = not reasons
    if matched and explain:
        reasons.append("matched: " + summary(wl, mentions))
    return Verdict(matched, reasons + notes, mentions)


def _stopped(wl: CompiledWatchlist, facts: Facts, doc: MatchDocument) -> list[str]:
    """The source filters and exclusions that stop the match, whatever was found."""
    reasons: list[str] = []
    source = doc.source.casefold()
    if wl.sources and source not in wl.sources:
        reasons.append(f"source {doc.source!r} is not one of {', '.join(wl.spec.sources)}")
    if source and source in wl.exclude_sources:
        reasons.append(f"source {doc.source!r} is excluded")
    excluded = facts.role_occs("exclude")
    if excluded:
        terms = sorted({wl.terms[ti].text for _, ti in excluded})
        reasons.append("excluded by " + ", ".join(repr(t) for t in terms))
    return reasons


def _mentions(wl: CompiledWatchlist, facts: Facts, notes: list[str] | None) -> list[Mention]:
    """Names (weak aliases with context only) and keywords in the article's text; a note
    per entity found only by weak aliases if `notes` is given."""
    mentions: list[Mention] = []
    for ei in range(len(wl.entities)):
        if not (facts.strong[ei] or facts.weak[ei]):
            continue  # most entities of a watchlist are absent from any one article
        mentions += facts.entity_occs(ei, TEXT_FIELDS)
        if notes is not None and facts.weak[ei] and not facts.confirmed[ei]:
            notes.append(weak_alias_note(wl, facts, ei))
    mentions += facts.role_occs("keyword")
    return mentions


def _rule_mentions(wl: CompiledWatchlist, facts: Facts, rule_ok: bool) -> list[Mention]:
    """The hits of the rule's positive parts (for a NEAR that holds, only the close ones)."""
    mentions: list[Mention] = []
    for part in wl.positive:
        if isinstance(part, Near) and rule_ok:  # only the occurrences close enough
            mentions += [p for span in near_spans(part, facts) for p in span.occs]
        elif isinstance(part, Near):  # a near miss: show where each side was found
            mentions += [p for leaf in leaves(part) for p in facts.leaf_occs(leaf)]
        else:
            mentions += facts.leaf_occs(part)
    return mentions


def _dedupe(pairs: list[Mention]) -> list[Mention]:
    """One hit per place in the text (the first term that claimed it), in text order."""
    seen: dict[tuple[int, int, int], Mention] = {}
    for occ, ti in pairs:
        seen.setdefault((id(occ.fld), occ.start, occ.end), (occ, ti))
    order = _FIELD_ORDER
    return sorted(seen.values(), key=lambda p: (order[p[0].fld.name], p[0].fld.base, p[0].start))
