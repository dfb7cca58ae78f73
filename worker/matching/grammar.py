"""Rule text -> rule syntax tree (`nodes`), with errors that point at the rule.

The grammar is rule_grammar.lark; docs/rules.md has the language for users.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable

import lark
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken

from worker.core.watchlists import RuleError
from worker.matching.compiled import SCOPES, CompiledWatchlist
from worker.matching.nodes import And, Leaf, Near, Node, Not, Or, positional
from worker.matching.text import fold_term

DEFAULT_NEAR = 10
RULE_PATH = ("rule",)  # RuleError.path of an error in the rule


@functools.cache
def _parser() -> lark.Lark:
    grammar = importlib.resources.files("worker.matching").joinpath("rule_grammar.lark").read_text()
    return lark.Lark(
        grammar, parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=False
    )


def _unbalanced(rule: str) -> tuple[int, str] | None:
    """Position and message of the first unbalanced parenthesis (outside quotes)."""
    stack: list[int] = []
    quote: str | None = None
    for i, ch in enumerate(rule):
        if quote:
            if ch == quote:
                quote = None
        elif ch in '"“':
            quote = "”" if ch == "“" else '"'
        elif ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                return i, "unbalanced parentheses: ')' without '('"
            stack.pop()
    if quote:
        return rule.rindex('"' if quote == '"' else "“"), "unterminated quoted phrase"
    if stack:
        return stack[-1], "unbalanced parentheses: '(' is never closed"
    return None


def parse_rule(name: str, rule: str) -> lark.Tree:
    """The lark tree of watchlist `name`'s rule; RuleError with a caret if it is not one."""
    if not rule.strip():
        raise RuleError(name, "empty rule", rule, 0, path=RULE_PATH)
    bad = _unbalanced(rule)
    if bad:
        raise RuleError(name, bad[1], rule, bad[0], path=RULE_PATH)
    try:
        return _parser().parse(rule)
    except UnexpectedEOF:
        raise RuleError(name, "the rule ends too early", rule, len(rule), path=RULE_PATH) from None
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            raise RuleError(
                name, "the rule ends too early", rule, len(rule), path=RULE_PATH
            ) from None
        pos = exc.pos_in_stream if exc.pos_in_stream is not None else 0
        raise RuleError(name, _unexpected(exc.token), rule, pos, path=RULE_PATH) from None
    except UnexpectedInput as exc:  # UnexpectedCharacters: no token starts with this one
        pos = exc.pos_in_stream if exc.pos_in_stream is not None else 0
        raise RuleError(
            name, f"unexpected {rule[pos : pos + 1]!r}", rule, pos, path=RULE_PATH
        ) from None


def _unexpected(token: lark.Token) -> str:
    """What to say about a token in the wrong place, with how to fix the rule."""
    what = repr(str(token))
    if token.type in ("_AND", "_OR", "NEAR"):
        return f"unexpected {what}: a term or '(' must come before it"
    if token.type == "_NOT":
        return f"unexpected {what}: write 'AND NOT' or 'OR NOT'"
    if token.type in ("LPAR", "PHRASE", "FIELD"):
        return f"unexpected {what}: put AND, OR or NEAR/n between two terms"
    return f"unexpected {what}"


class RuleBuilder:
    """lark tree -> Node, registering rule terms in the watchlist as it goes.

    `add_term` registers one rule term in the watchlist and returns its index (raising
    RuleError if it cannot be spelt out).
    """

    def __init__(self, wl: CompiledWatchlist, rule: str, add_term: Callable[[str], int]) -> None:
        self.wl = wl
        self.rule = rule
        self.add_term = add_term
        # every spelling of every entity -> the entity, so rule words can name them
        self.entity_keys: dict[str, int] = {}
        for ei, e in enumerate(wl.spec.names):
            for spelling in (e.name, *e.aliases, *e.weak_aliases):
                self.entity_keys.setdefault(fold_term(spelling), ei)

    def error(self, message: str, pos: int) -> RuleError:
        return RuleError(self.wl.spec.name, message, self.rule, pos, path=RULE_PATH)

    def src(self, tree: lark.Tree | lark.Token) -> str:
        if isinstance(tree, lark.Token):
            return str(tree)
        return self.rule[tree.meta.start_pos : tree.meta.end_pos]

    def pos(self, tree: lark.Tree | lark.Token) -> int:
        if isinstance(tree, lark.Token):
            return tree.start_pos or 0
        return tree.meta.start_pos

    def build(self, tree: lark.Tree | lark.Token, scope: frozenset[str]) -> Node:
        if isinstance(tree, lark.Token):  # a single-word `words` collapsed by `?`
            return self.leaf(str(tree), self.pos(tree), scope)
        kind = tree.data
        if kind == "or_expr":
            return Or(self.src(tree), tuple(self.build(t, scope) for t in tree.children))
        if kind == "and_expr":
            return And(self.src(tree), tuple(self.build(t, scope) for t in tree.children))
        if kind == "not_":
            return Not(self.src(tree), self.build(tree.children[0], scope))
        if kind == "near_expr":
            return self.near(tree, scope)
        if kind == "scoped":
            fld_token, inner = tree.children
            fname = str(fld_token)[:-1].lower()
            if fname not in SCOPES:
                known = ", ".join(SCOPES)
                raise self.error(f"unknown field {fname!r} (fields: {known})", self.pos(fld_token))
            return self.build(inner, SCOPES[fname])
        if kind == "phrase":
            token = tree.children[0]
            return self.leaf(str(token)[1:-1], self.pos(token) + 1, scope, src=self.src(tree))
        if kind == "words":
            text = " ".join(str(t) for t in tree.children)
            return self.leaf(text, self.pos(tree), scope, src=self.src(tree))
        raise self.error(f"unexpected {kind}", self.pos(tree))  # pragma: no cover - grammar bug

    def near(self, tree: lark.Tree, scope: frozenset[str]) -> Near:
        children = tree.children
        operands = [self.build(t, scope) for t in children[0::2]]
        operators = children[1::2]
        distances = []
        for op in operators:
            text = str(op)
            n = int(text.split("/", 1)[1]) if "/" in text else DEFAULT_NEAR
            if n < 1:
                raise self.error("NEAR/n needs n of at least 1", self.pos(op))
            distances.append(n)
        if len(set(distances)) > 1:
            raise self.error("a chain of NEAR needs one distance; use parentheses", self.pos(tree))
        for operand, child in zip(operands, children[0::2], strict=True):
            if not positional(operand):
                raise self.error(
                    "NEAR works on terms, phrases or ORs of them, not AND/NOT", self.pos(child)
                )
        return Near(self.src(tree), tuple(operands), distances[0])

    def leaf(self, text: str, pos: int, scope: frozenset[str], src: str | None = None) -> Leaf:
        src = src or text
        if text in ("@names", "@keywords"):
            return self.group(text, scope)
        folded = fold_term(text.lstrip("=").rstrip("*"))
        if not text.startswith("=") and not text.endswith("*") and folded in self.entity_keys:
            return Leaf(src, (), (self.entity_keys[folded],), scope)
        try:
            index = self.add_term(text)
        except RuleError as exc:
            raise self.error(exc.message, pos) from None
        return Leaf(src, (index,), (), scope)

    def group(self, text: str, scope: frozenset[str]) -> Leaf:
        if text == "@keywords":
            terms = tuple(i for i, t in enumerate(self.wl.terms) if t.role == "keyword")
            if not terms:
                raise self.error("@keywords: this watchlist has no keywords", 0)
            return Leaf(text, terms, (), scope)
        if not self.wl.entities:
            raise self.error("@names: this watchlist has no names", 0)
        return Leaf(text, (), tuple(range(len(self.wl.entities))), scope)
