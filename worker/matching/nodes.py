"""The rule syntax tree, and what the compiler and the judge ask of its shape.

`src` on every node is the node's text in the rule, for explanations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Leaf:
    src: str
    terms: tuple[int, ...]  # watchlist term indexes; hits of any count
    entities: tuple[int, ...]  # entities: all their spellings, weak ones with context
    scope: frozenset[str]


@dataclass(frozen=True, slots=True)
class And:
    src: str
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    src: str
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    src: str
    part: Node


@dataclass(frozen=True, slots=True)
class Near:
    src: str
    parts: tuple[Node, ...]  # leaves or ORs of leaves
    distance: int


Node = Leaf | And | Or | Not | Near


def positional(node: Node) -> bool:
    """True if the node has places in the text (a NEAR operand): leaves, ORs and NEARs of them."""
    if isinstance(node, Leaf):
        return True
    if isinstance(node, Or | Near):
        return all(positional(p) for p in node.parts)
    return False


def positive_parts(node: Node, negated: bool = False) -> Iterable[Leaf | Near]:
    """Leaves and outermost NEARs not under a NOT: where the rule's hits come from."""
    if isinstance(node, Leaf | Near):
        if not negated:
            yield node
    elif isinstance(node, Not):
        yield from positive_parts(node.part, not negated)
    else:
        for p in node.parts:
            yield from positive_parts(p, negated)


def leaves(node: Node) -> Iterable[Leaf]:
    """Every leaf under `node` (for a NEAR: its terms; NEAR takes no NOT or AND)."""
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Not):
        yield from leaves(node.part)
    else:
        for p in node.parts:
            yield from leaves(p)


def can_match_nothing(node: Node) -> bool:
    """True if the rule is satisfied by an article that mentions none of its terms."""
    if isinstance(node, Leaf):
        return False
    if isinstance(node, Not):
        return not can_match_nothing(node.part)
    if isinstance(node, And):
        return all(can_match_nothing(p) for p in node.parts)
    if isinstance(node, Or):
        return any(can_match_nothing(p) for p in node.parts)
    return False  # NEAR needs hits
