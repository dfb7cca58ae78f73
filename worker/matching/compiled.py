"""The compiled form of a watchlist: its terms, entities and rule, as the scan and the
judge read them. Built by `compiler`, immutable once a Matcher holds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from worker.core.watchlists import Watchlist
from worker.matching.nodes import Leaf, Near, Node

TEXT_FIELDS = frozenset({"title", "lead", "body"})
# What a field scope in a rule looks at. `body:` includes the lead: it is article text.
SCOPES: dict[str, frozenset[str]] = {
    "title": frozenset({"title"}),
    "lead": frozenset({"lead"}),
    "body": frozenset({"lead", "body"}),
    "text": TEXT_FIELDS,
    "author": frozenset({"author"}),
    "source": frozenset({"source"}),
    "tag": frozenset({"tag"}),
}

Role = Literal["name", "alias", "weak", "context", "keyword", "exclude", "rule"]
NAME_ROLES = frozenset({"name", "alias", "weak"})  # the roles that take a plural


class Term(NamedTuple):
    text: str  # as configured
    role: Role
    entity: int | None  # index into the watchlist's entities


class Ref(NamedTuple):  # a tuple: a compile makes one per key, by the 100,000
    """One way an automaton key counts for a watchlist term, and what to check first."""

    wl: int
    term: int
    case: tuple[str | None, ...] | None  # exact spelling required per word (None: any case)
    marks: tuple[str, ...] | None  # words with diacritics, for watchlists that keep them
    prefix: bool  # wildcard: the last word only has to start with the term's


@dataclass(frozen=True, slots=True)
class CompiledEntity:
    name: str
    has_context: bool


@dataclass
class CompiledWatchlist:
    spec: Watchlist
    terms: list[Term] = field(default_factory=list)
    entities: list[CompiledEntity] = field(default_factory=list)
    rule: Node | None = None
    # parts of the rule not under a NOT: the hits of a leaf are mentions, of a NEAR only
    # the occurrences in a close group (outermost NEARs; leaves under a NEAR are not listed)
    positive: tuple[Leaf | Near, ...] = ()
    sources: frozenset[str] = frozenset()
    exclude_sources: frozenset[str] = frozenset()
