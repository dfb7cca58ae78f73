"""Why a watchlist did or did not match, in the rule's and the config's own words."""

from __future__ import annotations

from dataclasses import dataclass

from worker.core.model import Hit
from worker.matching.compiled import CompiledWatchlist
from worker.matching.evaluate import Facts, holds
from worker.matching.nodes import And, Leaf, Near, Node, Not
from worker.matching.scanner import Mention


@dataclass(frozen=True)
class Explanation:
    """Why one watchlist did or did not match one document."""

    watchlist: str
    matched: bool
    reasons: list[str]
    hits: tuple[Hit, ...] = ()


def why_not(node: Node, facts: Facts) -> list[str]:
    """Why a rule (or part of it) is false, in the rule's own words."""
    if isinstance(node, And):
        return [r for p in node.parts if not holds(p, facts) for r in why_not(p, facts)]
    if isinstance(node, Not):
        return [f"rule says NOT {node.part.src}: found"]
    if isinstance(node, Near):
        if all(holds(p, facts) if not isinstance(p, Near) else True for p in node.parts):
            return [f"rule needs {node.src}: not within {node.distance} words"]
        return [f"rule needs {node.src}: not found"]
    if isinstance(node, Leaf) and any(
        facts.weak[ei] and not facts.confirmed[ei] for ei in node.entities
    ):
        return [f"rule needs {node.src}: only a weak alias, without context"]
    return [f"rule needs {node.src}: not found"]


def weak_alias_note(wl: CompiledWatchlist, facts: Facts, ei: int) -> str:
    """Entity `ei` was found only by weak aliases, which need context to count."""
    weak = sorted({wl.terms[ti].text for _, ti in facts.weak[ei]})
    need = "a context term or a strong alias" if wl.entities[ei].has_context else "a strong alias"
    return (
        f"weak alias {', '.join(weak)} of {wl.entities[ei].name!r} without context "
        f"(needs {need} in the article)"
    )


def summary(wl: CompiledWatchlist, mentions: list[Mention]) -> str:
    """Each term found, with its entity and how often: 'Tillerson' ×2, 'Rex' (Tillerson) ×1."""
    counts: dict[str, int] = {}
    for _, ti in mentions:
        term = wl.terms[ti]
        label = repr(term.text)
        if term.entity is not None and wl.entities[term.entity].name != term.text:
            label += f" ({wl.entities[term.entity].name})"
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{label} ×{n}" for label, n in counts.items())
