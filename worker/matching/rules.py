"""Watchlists -> one compiled matcher; MatchDocument -> WatchlistMatch, with reasons.

How it works (docs/rules.md has the user-facing rules):

1. Compile. Every term of every watchlist (entity names, aliases, weak
   aliases, context terms, keywords, exclusions, rule terms) is folded into
   the match view (`worker.matching.text`) and added to ONE Aho-Corasick automaton
   as " term " (or " prefix" for `withdraw*` and for Korean, whose particles
   attach to words). The surrounding spaces make every automaton hit a
   whole-word hit, so nothing has to be filtered for boundaries afterwards
   except wildcard ends; a side in a script written without spaces (Chinese,
   Japanese, Thai) has no space and no boundary. Spelling variants (plural
   and dotted forms) are extra keys pointing at the same term.
2. Scan. Each field of the document is folded once and run through the
   automaton once, as bytes (with a space added where such a script meets a
   Latin word, "はiPhone", and the spans mapped back). A hit is checked for
   case (acronyms, `=Exact` terms) and, for watchlists that keep diacritics,
   for marks, against the ORIGINAL text, then recorded per (watchlist, term).
3. Judge. `match` looks only at watchlists with a hit on a *trigger* term
   (one that can make it match: a name, alias or keyword, or for a rule, a
   term of its smallest required set), so that a common word used as context
   or as an optional rule term ("troops") does not wake up every watchlist
   that mentions it. Then: source filters, exclusions, weak aliases, the
   rule, min_mentions. The same code produces the reasons for `explain()`,
   which looks at every watchlist with any hit.

The Matcher is immutable after `compile_matcher`, so one instance can be shared
by threads.
"""

from __future__ import annotations

import functools
import gc
import importlib.resources
import itertools
import re
import unicodedata
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import ahocorasick_rs
import lark

from worker.config import WatchlistSpec
from worker.core.model import Hit, MatchDocument, WatchlistMatch
from worker.matching.text import (
    Folded,
    case_tokens,
    fold,
    fold_term,
    is_hangul,
    is_unspaced,
    mark_tokens,
    spaced_view,
)

__all__ = ["Explanation", "MatchOutcome", "Matcher", "Rejection", "RuleError", "compile_matcher"]

# Refuse inputs that would build an automaton too large for a worker, instead
# of running it out of memory. 100,000 ordinary terms are about 2 M characters.
MAX_TERM_CHARS = 300
MAX_TOTAL_CHARS = 8_000_000
DEFAULT_NEAR = 10
SNIPPET_BEFORE = 120
SNIPPET_AFTER = 200

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


class RuleError(ValueError):
    """A watchlist that cannot be compiled: names the watchlist, shows the text and a caret.

    `path` is the config item the error is about, inside the watchlist: ("rule",),
    ("keywords", 3), ("names", 2, "aliases", 0)...; empty for the watchlist as a whole.
    """

    def __init__(
        self,
        watchlist: str,
        message: str,
        text: str = "",
        pos: int | None = None,
        *,
        path: tuple[str | int, ...] = (),
    ):
        self.watchlist = watchlist
        self.message = message
        self.text = text
        self.pos = pos
        self.path = path
        lines = [f"watchlist {watchlist!r}: {message}"]
        if text:
            shown = text if len(text) <= 200 else text[:200] + "…"
            lines.append(f"    {shown}")
            if pos is not None and pos <= len(shown):
                lines.append("    " + " " * pos + "^")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Explanation:
    """Why one watchlist did or did not match one document."""

    watchlist: str
    matched: bool
    reasons: list[str]
    hits: tuple[Hit, ...] = ()


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


# --- compiled data -------------------------------------------------------------


class _Term(NamedTuple):
    text: str  # as configured
    role: Role
    entity: int | None  # index into the watchlist's entities


class _Ref(NamedTuple):  # a tuple: 100,000s are made per compile, 4x faster than a dataclass
    """One way an automaton key counts for a watchlist term, and what to check first."""

    wl: int
    term: int
    case: tuple[str | None, ...] | None  # exact spelling required per word (None: any case)
    marks: tuple[str, ...] | None  # words with diacritics, for watchlists that keep them
    prefix: bool  # wildcard: the last word only has to start with the term's


@dataclass(frozen=True, slots=True)
class _Entity:
    name: str
    has_context: bool


# Rule syntax tree. `src` is the node's text in the rule, for explanations.
@dataclass(frozen=True, slots=True)
class _Leaf:
    src: str
    terms: tuple[int, ...]  # watchlist term indexes; hits of any count
    entities: tuple[int, ...]  # entities: all their spellings, weak ones with context
    scope: frozenset[str]


@dataclass(frozen=True, slots=True)
class _And:
    src: str
    parts: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Or:
    src: str
    parts: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Not:
    src: str
    part: _Node


@dataclass(frozen=True, slots=True)
class _Near:
    src: str
    parts: tuple[_Node, ...]  # leaves or ORs of leaves
    distance: int


_Node = _Leaf | _And | _Or | _Not | _Near


@dataclass
class _Watchlist:
    spec: WatchlistSpec
    terms: list[_Term] = field(default_factory=list)
    entities: list[_Entity] = field(default_factory=list)
    rule: _Node | None = None
    # parts of the rule not under a NOT: the hits of a leaf are mentions, of a NEAR only
    # the occurrences in a close group (outermost NEARs; leaves under a NEAR are not listed)
    positive: tuple[_Leaf | _Near, ...] = ()
    sources: frozenset[str] = frozenset()
    exclude_sources: frozenset[str] = frozenset()


# --- per-document scan state ------------------------------------------------------


@dataclass(slots=True)
class _Field:
    name: str  # title | lead | body | author | source | tag
    text: str  # original text of this field item
    base: int  # offset of this item in the field's text (authors/tags are joined by "\n")
    folded: Folded


@dataclass(frozen=True, slots=True)
class _Occ:
    """One checked occurrence of a term, in view coordinates of its field."""

    fld: _Field
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

    def to_hit(self, term: _Term, entity: str | None) -> Hit:
        a, b = self.span()
        return Hit(
            field=self.fld.name,
            start=self.fld.base + a,
            end=self.fld.base + b,
            text=self.fld.text[a:b],
            term=term.text,
            entity=entity,
        )


# --- term spelling -------------------------------------------------------------------


class _Variant(NamedTuple):
    key: str  # automaton key
    case: tuple[str | None, ...] | None
    marks: tuple[str, ...] | None
    prefix: bool


# In ASCII an acronym word (all caps, at most 4 long; see `_is_acronym`) has an upper
# case letter that no lower case letter follows; a term without one takes the fast
# path of `_variants`. (The converse need not hold: "NATOs" takes the full path, and
# is spelt out right there.) One search is a third of splitting the term into cased words.
_MAYBE_ACRONYM = re.compile(r"[A-Z](?![a-z])")
_new_tuple = tuple.__new__  # a NamedTuple's own __new__ is Python code: 2x slower per tuple


def _is_acronym(word: str) -> bool:
    return word.isalpha() and word.isupper() and len(word) <= 4


def _variants(
    raw: str, *, is_name: bool, acronyms: bool, keep_marks: bool
) -> tuple[tuple[_Variant, ...], str | None]:
    """The automaton keys for one configured term, or an error message.

    `=Term` asks for exact case; a trailing `*` is a wildcard suffix.
    """
    exact = raw.startswith("=")
    text = raw[1:] if exact else raw
    prefix = text.endswith("*")
    text = text.rstrip("*") if prefix else text
    if "*" in text:
        return (), f"'*' is only allowed at the end of a term: {raw!r}"
    if len(text) > MAX_TERM_CHARS:
        return (), f"term longer than {MAX_TERM_CHARS} characters: {text[:40]!r}…"
    if not (exact or keep_marks) and text.isascii() and _MAYBE_ACRONYM.search(text) is None:
        # the common case (no acronym, no exact case): the key, and a plural for names.
        # Letters, digits and spaces only (most terms): the view is the lower case
        # words, at half the cost of `fold_term`
        plain = text.replace(" ", "").isalnum()
        view = " ".join(text.lower().split()) if plain else fold_term(text)
        if not view:
            return (), f"term {raw!r} has no letters or digits"
        key = " " + view
        if prefix:
            return (_new_tuple(_Variant, (key, None, None, True)),), None
        if is_name:
            return (
                _new_tuple(_Variant, (key + " ", None, None, False)),
                _new_tuple(_Variant, (key + "s ", None, None, False)),
            ), None
        return (_new_tuple(_Variant, (key + " ", None, None, False)),), None
    lone_acronym = 1 < len(text) <= 4 and text.isascii() and text.isalpha() and text.isupper()
    if lone_acronym and not (exact or keep_marks or prefix):
        # "NATO", common in configs and 3x slower below: what the general path makes
        # of it (the key and the dotted spelling), spelt out
        return _lone_acronym(text, is_name=is_name, acronyms=acronyms), None
    cased = case_tokens(text)
    # ASCII: the view's words are the cased words in lower case (one pass saved per term)
    words = [c.lower() for c in cased] if text.isascii() else fold_term(text).split()
    if not words:
        return (), f"term {raw!r} has no letters or digits"
    # Scripts written without spaces match inside a run of letters; Korean attaches
    # particles to a word's end ("삼성전자는"), so a term ending in Hangul ends there
    unspaced_end = is_unspaced(words[-1][-1])
    prefix = prefix or is_hangul(words[-1][-1])
    if len(cased) != len(words):  # defensive: folding split a word differently
        cased = [w if exact else "" for w in words]
    marked = mark_tokens(text) if keep_marks else None
    acro = [_is_acronym(c) for c in cased]
    need: list[str | None] = [
        c if exact or (acronyms and a) else None for c, a in zip(cased, acro, strict=True)
    ]

    spellings: list[tuple[list[str], list[str | None], list[str] | None]] = [(words, need, marked)]
    # "US" also reads "U.S." (view "u s"): one word per letter, for each acronym word
    dotted = [i for i, c in enumerate(cased) if len(c) > 1 and acro[i]][:3]
    if prefix and dotted and dotted[-1] == len(cased) - 1:
        dotted.pop()
    if dotted:
        for choice in itertools.product((False, True), repeat=len(dotted)):
            if not any(choice):
                continue
            w2: list[str] = []
            c2: list[str | None] = []
            for i, (w, c) in enumerate(zip(words, cased, strict=True)):
                if i in dotted and choice[dotted.index(i)]:
                    w2 += [ch.lower() for ch in c]
                    c2 += [ch if need[i] else None for ch in c]
                else:
                    w2.append(w)
                    c2.append(need[i])
            spellings.append((w2, c2, None))
    if len(cased) > 1 and not prefix and all(len(c) == 1 and c.isupper() for c in cased):
        # "U.S." also reads "US"
        joined = "".join(cased)
        req = joined if exact or (acronyms and _is_acronym(joined)) else None
        spellings.append(([joined.lower()], [req], None))
    if is_name and not prefix and not unspaced_end:
        # names take a plural "s" (possessives need nothing: the apostrophe is a separator)
        for w, c, m in list(spellings):
            plural_c = [*c[:-1], c[-1] + "s" if c[-1] else None]
            plural_m = [*m[:-1], m[-1] + "s"] if m else None
            spellings.append(([*w[:-1], w[-1] + "s"], plural_c, plural_m))
    lead = "" if is_unspaced(words[0][0]) else " "
    end = "" if prefix or unspaced_end else " "
    out = tuple(
        _Variant(
            lead + " ".join(w) + end,
            tuple(c) if any(c) else None,
            tuple(m) if m else None,
            prefix,
        )
        for w, c, m in spellings
    )
    return out, None


def _lone_acronym(text: str, *, is_name: bool, acronyms: bool) -> tuple[_Variant, ...]:
    """`_variants` of an ASCII all-caps word of 2 to 4 letters: "NATO", "N.A.T.O." (the
    view "n a t o"), and for names their plurals; case-exact if `acronyms`."""
    low = text.lower()
    dotted = " ".join(low)
    if not acronyms:
        keys = [f" {low} ", f" {dotted} "]
        if is_name:
            keys += [f" {low}s ", f" {dotted}s "]
        return tuple(_new_tuple(_Variant, (k, None, None, False)) for k in keys)
    letters = tuple(text)
    out = [
        _new_tuple(_Variant, (f" {low} ", (text,), None, False)),
        _new_tuple(_Variant, (f" {dotted} ", letters, None, False)),
    ]
    if is_name:
        out += [
            _new_tuple(_Variant, (f" {low}s ", (text + "s",), None, False)),
            _new_tuple(_Variant, (f" {dotted}s ", (*letters[:-1], letters[-1] + "s"), None, False)),
        ]
    return tuple(out)


def _check_case(words: list[str], need: tuple[str | None, ...], prefix: bool) -> bool:
    if len(words) != len(need):
        return False
    last = len(words) - 1
    for i, (w, n) in enumerate(zip(words, need, strict=True)):
        if n is None:
            continue
        if prefix and i == last:
            if not w.startswith(n):
                return False
        elif w != n:
            return False
    return True


# --- the rule parser -------------------------------------------------------------------


@functools.cache
def _parser() -> lark.Lark:
    grammar = importlib.resources.files("worker.matching").joinpath("rule_grammar.lark").read_text()
    return lark.Lark(
        grammar, parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=False
    )


_RULE = ("rule",)  # RuleError.path of an error in the rule


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


def _parse_rule(name: str, rule: str) -> lark.Tree:
    if not rule.strip():
        raise RuleError(name, "empty rule", rule, 0, path=_RULE)
    bad = _unbalanced(rule)
    if bad:
        raise RuleError(name, bad[1], rule, bad[0], path=_RULE)
    try:
        return _parser().parse(rule)
    except lark.exceptions.UnexpectedEOF:
        raise RuleError(name, "the rule ends too early", rule, len(rule), path=_RULE) from None
    except lark.exceptions.UnexpectedInput as exc:
        pos = exc.pos_in_stream if exc.pos_in_stream is not None else 0
        token = getattr(exc, "token", None)
        if token is not None and token.type == "$END":
            raise RuleError(name, "the rule ends too early", rule, len(rule), path=_RULE) from None
        what = repr(str(token)) if token is not None else repr(rule[pos : pos + 1])
        kind = token.type if token is not None else ""
        if kind in ("_AND", "_OR", "NEAR"):
            msg = f"unexpected {what}: a term or '(' must come before it"
        elif kind == "_NOT":
            msg = f"unexpected {what}: write 'AND NOT' or 'OR NOT'"
        elif kind in ("LPAR", "PHRASE", "FIELD"):
            msg = f"unexpected {what}: put AND, OR or NEAR/n between two terms"
        else:
            msg = f"unexpected {what}"
        raise RuleError(name, msg, rule, pos, path=_RULE) from None


class _RuleBuilder:
    """lark tree -> _Node, registering rule terms in the watchlist as it goes."""

    def __init__(self, compiler: _Compiler, wl_index: int, rule: str) -> None:
        self.c = compiler
        self.wl_index = wl_index
        self.wl = compiler.watchlists[wl_index]
        self.rule = rule
        # every spelling of every entity -> the entity, so rule words can name them
        self.entity_keys: dict[str, int] = {}
        for ei, e in enumerate(self.wl.spec.names):
            for spelling in (e.name, *e.aliases, *e.weak_aliases):
                self.entity_keys.setdefault(fold_term(spelling), ei)

    def error(self, message: str, pos: int) -> RuleError:
        return RuleError(self.wl.spec.name, message, self.rule, pos, path=_RULE)

    def src(self, tree: lark.Tree | lark.Token) -> str:
        if isinstance(tree, lark.Token):
            return str(tree)
        return self.rule[tree.meta.start_pos : tree.meta.end_pos]

    def pos(self, tree: lark.Tree | lark.Token) -> int:
        if isinstance(tree, lark.Token):
            return tree.start_pos or 0
        return tree.meta.start_pos

    def build(self, tree: lark.Tree | lark.Token, scope: frozenset[str]) -> _Node:
        if isinstance(tree, lark.Token):  # a single-word `words` collapsed by `?`
            return self.leaf(str(tree), self.pos(tree), scope)
        kind = tree.data
        if kind == "or_expr":
            return _Or(self.src(tree), tuple(self.build(t, scope) for t in tree.children))
        if kind == "and_expr":
            return _And(self.src(tree), tuple(self.build(t, scope) for t in tree.children))
        if kind == "not_":
            return _Not(self.src(tree), self.build(tree.children[0], scope))
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

    def near(self, tree: lark.Tree, scope: frozenset[str]) -> _Near:
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
            if not _positional(operand):
                raise self.error(
                    "NEAR works on terms, phrases or ORs of them, not AND/NOT", self.pos(child)
                )
        return _Near(self.src(tree), tuple(operands), distances[0])

    def leaf(self, text: str, pos: int, scope: frozenset[str], src: str | None = None) -> _Leaf:
        src = src or text
        if text in ("@names", "@keywords"):
            return self.group(text, scope)
        folded = fold_term(text.lstrip("=").rstrip("*"))
        if not text.startswith("=") and not text.endswith("*") and folded in self.entity_keys:
            return _Leaf(src, (), (self.entity_keys[folded],), scope)
        try:
            index = self.c.add_term(self.wl_index, text, "rule", None)
        except RuleError as exc:
            raise self.error(exc.message, pos) from None
        return _Leaf(src, (index,), (), scope)

    def group(self, text: str, scope: frozenset[str]) -> _Leaf:
        if text == "@keywords":
            terms = tuple(i for i, t in enumerate(self.wl.terms) if t.role == "keyword")
            if not terms:
                raise self.error("@keywords: this watchlist has no keywords", 0)
            return _Leaf(text, terms, (), scope)
        if not self.wl.entities:
            raise self.error("@names: this watchlist has no names", 0)
        return _Leaf(text, (), tuple(range(len(self.wl.entities))), scope)


def _positional(node: _Node) -> bool:
    if isinstance(node, _Leaf):
        return True
    if isinstance(node, _Or | _Near):
        return all(_positional(p) for p in node.parts)
    return False


def _positive_parts(node: _Node, negated: bool = False) -> Iterable[_Leaf | _Near]:
    """Leaves and outermost NEARs not under a NOT: where the rule's hits come from."""
    if isinstance(node, _Leaf | _Near):
        if not negated:
            yield node
    elif isinstance(node, _Not):
        yield from _positive_parts(node.part, not negated)
    else:
        for p in node.parts:
            yield from _positive_parts(p, negated)


def _leaves(node: _Node) -> Iterable[_Leaf]:
    """Every leaf under `node` (for a NEAR: its terms; NEAR takes no NOT or AND)."""
    if isinstance(node, _Leaf):
        yield node
    elif isinstance(node, _Not):
        yield from _leaves(node.part)
    else:
        for p in node.parts:
            yield from _leaves(p)


def _can_match_nothing(node: _Node) -> bool:
    """True if the rule is satisfied by an article that mentions none of its terms."""
    if isinstance(node, _Leaf):
        return False
    if isinstance(node, _Not):
        return not _can_match_nothing(node.part)
    if isinstance(node, _And):
        return all(_can_match_nothing(p) for p in node.parts)
    if isinstance(node, _Or):
        return any(_can_match_nothing(p) for p in node.parts)
    return False  # NEAR needs hits


# --- compilation -------------------------------------------------------------------------


_NAME_ROLES = frozenset({"name", "alias", "weak"})  # the roles that take a plural


class _Compiler:
    def __init__(self) -> None:
        self.watchlists: list[_Watchlist] = []
        # a defaultdict: one C-level lookup per ref instead of get + store/append
        self.keys: defaultdict[str, list[_Ref]] = defaultdict(list)
        # the same term is often in many watchlists: spell it out once per config.
        # One dict per (is_name, exact_case_acronyms, fold_diacritics), keyed by the
        # term, chosen once per watchlist: no key tuple to build per term
        self.spelled: dict[
            tuple[bool, bool, bool], dict[str, tuple[tuple[_Variant, ...], str | None]]
        ] = {}
        self.total_chars = 0

    def spellings(
        self, is_name: bool, spec: WatchlistSpec
    ) -> dict[str, tuple[tuple[_Variant, ...], str | None]]:
        """The cache of spelt-out terms for one role kind of one watchlist's settings."""
        how = (is_name, spec.exact_case_acronyms, spec.fold_diacritics)
        cache = self.spelled.get(how)
        if cache is None:
            cache = self.spelled[how] = {}
        return cache

    def add_term(self, wl_index: int, raw: str, role: Role, entity: int | None) -> int:
        spec = self.watchlists[wl_index].spec
        return self._add(wl_index, raw, role, entity, self.spellings(role in _NAME_ROLES, spec))

    def _add(
        self,
        wl_index: int,
        raw: str,
        role: Role,
        entity: int | None,
        cache: dict[str, tuple[tuple[_Variant, ...], str | None]],
    ) -> int:
        wl = self.watchlists[wl_index]
        cached = cache.get(raw)
        if cached is None:
            spec = wl.spec
            cached = cache[raw] = _variants(
                raw,
                is_name=role in _NAME_ROLES,
                acronyms=spec.exact_case_acronyms,
                keep_marks=not spec.fold_diacritics,
            )
        variants, problem = cached
        if problem:
            raise RuleError(wl.spec.name, problem)
        terms = wl.terms
        index = len(terms)
        terms.append(_new_tuple(_Term, (raw, role, entity)))
        keys = self.keys
        chars = 0
        for key, case, marks, prefix in variants:
            chars += len(key)
            keys[key].append(_new_tuple(_Ref, (wl_index, index, case, marks, prefix)))
        self.total_chars += chars
        if self.total_chars > MAX_TOTAL_CHARS:
            raise RuleError(
                wl.spec.name,
                f"the watchlists hold more than {MAX_TOTAL_CHARS:,} characters of terms; "
                "split them across fewer, more specific terms",
            )
        return index

    def add_watchlist(self, spec: WatchlistSpec) -> None:
        wl_index = len(self.watchlists)
        wl = _Watchlist(
            spec,
            sources=frozenset(s.casefold() for s in spec.sources),
            exclude_sources=frozenset(s.casefold() for s in spec.exclude_sources),
        )
        self.watchlists.append(wl)
        if not (spec.names or spec.keywords or spec.rule):
            raise RuleError(spec.name, "nothing to watch: give names, keywords or a rule")
        for entity in spec.names:
            wl.entities.append(_Entity(entity.name, bool(entity.context)))
        names = self.spellings(True, spec)
        others = self.spellings(False, spec)
        add = self._add
        for raw, role, ei, path in _config_terms(spec):
            try:
                add(wl_index, raw, role, ei, names if role in _NAME_ROLES else others)
            except RuleError as exc:
                if self.total_chars <= MAX_TOTAL_CHARS:  # about this term, not the total size
                    exc.path = path
                raise
        if spec.rule is not None:
            tree = _parse_rule(spec.name, spec.rule)
            node = _RuleBuilder(self, wl_index, spec.rule).build(tree, TEXT_FIELDS)
            if _can_match_nothing(node):
                raise RuleError(
                    spec.name,
                    "the rule is true for an article that mentions none of its terms; "
                    "add a term that must be present",
                    spec.rule,
                    0,
                    path=_RULE,
                )
            wl.rule = node
            wl.positive = tuple(_positive_parts(node))


def _config_terms(
    spec: WatchlistSpec,
) -> Iterator[tuple[str, Role, int | None, tuple[str | int, ...]]]:
    """(term, role, entity, place in the config) of every term of a watchlist but the rule's,
    in the order they are compiled."""
    for ei, e in enumerate(spec.names):
        yield e.name, "name", ei, ("names", ei, "name")
        for k, t in enumerate(e.aliases):
            yield t, "alias", ei, ("names", ei, "aliases", k)
        for k, t in enumerate(e.weak_aliases):
            yield t, "weak", ei, ("names", ei, "weak_aliases", k)
        for k, t in enumerate(e.context):
            yield t, "context", ei, ("names", ei, "context", k)
    for k, t in enumerate(spec.keywords):
        yield t, "keyword", None, ("keywords", k)
    for k, t in enumerate(spec.exclude):
        yield t, "exclude", None, ("exclude", k)


def _raw_size(spec: WatchlistSpec) -> int:
    """Characters of terms in a watchlist; raises on one absurdly long term."""
    terms = [*spec.keywords, *spec.exclude]
    for e in spec.names:
        terms += [e.name, *e.aliases, *e.weak_aliases, *e.context]
    longest = max(terms, key=len, default="")
    if len(longest) > MAX_TERM_CHARS * 2:  # `*` and `=` aside, _variants says it precisely
        path = next(p for t, _, _, p in _config_terms(spec) if t is longest)
        raise RuleError(
            spec.name,
            f"term longer than {MAX_TERM_CHARS} characters: {longest[:40]!r}…",
            path=path,
        )
    return sum(map(len, terms)) + len(spec.rule or "")


def compile_matcher(watchlists: Sequence[WatchlistSpec], version: str = "") -> Matcher:
    """Compile every watchlist into one matcher. Raises RuleError naming the watchlist."""
    # 100,000 terms make about a million small objects, none of them in a cycle:
    # the cyclic collector would run hundreds of times for nothing (half the time)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(watchlists, version)
    finally:
        if gc_was_enabled:
            gc.enable()


def _compile(watchlists: Sequence[WatchlistSpec], version: str) -> Matcher:
    compiler = _Compiler()
    total = 0
    for spec in watchlists:
        total += _raw_size(spec)
        if total > MAX_TOTAL_CHARS:  # checked up front: refusing must be quick too
            raise RuleError(
                spec.name,
                f"the watchlists hold more than {MAX_TOTAL_CHARS:,} characters of terms; "
                "split them across fewer, more specific terms",
            )
    for spec in watchlists:
        compiler.add_watchlist(spec)
    # sorted: neighbouring keys share their trie path, which halves the build time
    keys = sorted(compiler.keys)
    refs = [compiler.keys[k] for k in keys]
    automaton = None
    if keys:
        # Rust aho-corasick: measured 2x pyahocorasick's scan at 100,000 terms and
        # ten times faster to build (docs/rules.md). Standard match kind with
        # overlapping search reports every key at every place, like pyahocorasick.iter.
        # On bytes: the view is ASCII for Latin text, and the str API's conversions
        # cost a third of the scan.
        automaton = ahocorasick_rs.BytesAhoCorasick(
            [k.encode() for k in keys],
            matchkind=ahocorasick_rs.MatchKind.Standard,
        )  # the implementation it picks was the fastest here; DFA took 5x the memory
    triggers = [_triggers(wl) for wl in compiler.watchlists]
    return Matcher(version, compiler.watchlists, automaton, keys, refs, triggers)


def _entity_terms(wl: _Watchlist, ei: int) -> Iterable[int]:
    for ti, t in enumerate(wl.terms):
        if t.entity == ei and t.role in ("name", "alias", "weak"):
            yield ti


def _required(wl: _Watchlist, node: _Node) -> frozenset[int] | None:
    """Terms of which at least one must be found for `node` to be true (None: cannot tell).

    A superset is always safe; it only has to be small for `match` to skip
    the watchlists that a common word like "troops" touches but cannot satisfy.
    """
    if isinstance(node, _Leaf):
        terms = set(node.terms)
        for ei in node.entities:
            terms.update(_entity_terms(wl, ei))
        return frozenset(terms)
    if isinstance(node, _Not):
        return None
    parts = [_required(wl, p) for p in node.parts]
    if isinstance(node, _Or):
        if any(p is None for p in parts):
            return None
        return frozenset().union(*parts)  # type: ignore[arg-type]
    known = [p for p in parts if p is not None]  # AND, NEAR: every part must hold
    return min(known, key=len) if known else None


def _triggers(wl: _Watchlist) -> frozenset[int]:
    """Terms that can make this watchlist match; without one found it is not judged."""
    if wl.rule is not None:
        required = _required(wl, wl.rule)
        if required is not None:
            return required
        return frozenset(range(len(wl.terms)))
    return frozenset(
        ti for ti, t in enumerate(wl.terms) if t.role in ("name", "alias", "weak", "keyword")
    )


# --- matching ----------------------------------------------------------------------------


_Found = dict[int, dict[int, list[_Occ]]]  # watchlist -> term -> occurrences


class Matcher:
    """All watchlists of one config version, compiled. Build once, match many."""

    def __init__(
        self,
        version: str,
        watchlists: list[_Watchlist],
        automaton: ahocorasick_rs.BytesAhoCorasick | None,
        keys: list[str],
        refs: list[list[_Ref]],
        triggers: list[frozenset[int]],
    ) -> None:
        self.version = version
        self._watchlists = tuple(watchlists)
        self._automaton = automaton
        self._refs = tuple(refs)
        self._triggers = tuple(triggers)
        # where a hit's term starts and ends inside the key (see `_key_shape`), for the
        # keys that are not " term " (wildcards, scripts without spaces): few, and
        # building a shape for each of 100,000s of keys cost a tenth of the build
        self._shape = {
            i: _key_shape(k, refs[i][0].prefix)
            for i, k in enumerate(keys)
            if not (k.startswith(" ") and k.endswith(" "))
        }
        # per key, its refs on trigger terms (see `match`); filled as keys are hit
        self._trigger_refs: dict[int, tuple[_Ref, ...]] = {}

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
        hits = self._hits(doc)
        if not hits:
            return []
        # First the watchlists with a hit on a trigger term (one that can make it match):
        # a common word used as context or as an optional rule term ("troops") is a key
        # of hundreds of watchlists, and recording it for each of them was most of the
        # per-document work. Only the candidates then collect all their terms.
        refs_by_key = self._refs
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
                if (ref.case is not None or ref.marks is not None) and not _spelling_ok(ref, occ):
                    continue
                candidates.add(ref.wl)
        if not candidates:
            return []
        found = self._collect(hits, candidates)
        out = []
        for wl_index in sorted(candidates):
            verdict = _judge(self._watchlists[wl_index], found[wl_index], doc, explain=False)
            if verdict.matched:
                out.append(_to_match(self._watchlists[wl_index], verdict.hits))
            elif rejected is not None:  # a false rule returns early, without a reason
                spec = self._watchlists[wl_index].spec
                reasons = tuple(verdict.reasons) or (f"rule not satisfied: {spec.rule}",)
                rejected.append(Rejection(spec.name, reasons))
        return out

    def explain(self, doc: MatchDocument) -> list[Explanation]:
        """Every watchlist that matched or nearly matched `doc` (any term found), and why."""
        found = self._scan(doc)
        out = []
        for wl_index in sorted(found):
            wl = self._watchlists[wl_index]
            verdict = _judge(wl, found[wl_index], doc, explain=True)
            out.append(
                Explanation(wl.spec.name, verdict.matched, verdict.reasons, verdict.hit_objects(wl))
            )
        return out

    # -- scanning --

    def _scan(self, doc: MatchDocument) -> _Found:
        return self._collect(self._hits(doc), None)

    def _hits(self, doc: MatchDocument) -> list[tuple[int, _Occ]]:
        """(automaton key, occurrence) of every key found in `doc`, in text order."""
        out: list[tuple[int, _Occ]] = []
        if self._automaton is None:
            return out
        for name, text, base in _field_items(doc):
            if text:
                self._scan_field(_Field(name, text, base, fold(text)), out)
        return out

    def _scan_field(self, fld: _Field, out: list[tuple[int, _Occ]]) -> None:
        view = fld.folded.text
        # a space where Chinese, Japanese or Thai meets Latin ("アップルはiPhone")
        spaced = None if view.isascii() else spaced_view(view)
        scanned = spaced[0] if spaced else view
        find = self._automaton.find_matches_as_indexes  # type: ignore[union-attr]
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
        out.extend((key_index, _Occ(fld, a, b)) for key_index, a, b in spans)

    def _collect(self, hits: list[tuple[int, _Occ]], only: set[int] | None) -> _Found:
        """Checked occurrences per (watchlist, term); only for the watchlists in `only`."""
        found: _Found = {}
        refs_by_key = self._refs
        for key_index, occ in hits:
            for ref in refs_by_key[key_index]:
                if only is not None and ref.wl not in only:
                    continue
                if (ref.case is not None or ref.marks is not None) and not _spelling_ok(ref, occ):
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


_WORD_END = 1  # the term ends where the view's word does (wildcards, Korean)


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


def _spelling_ok(ref: _Ref, occ: _Occ) -> bool:
    a, b = occ.span()
    original = occ.fld.text[a:b]
    if ref.case is not None and not _check_case(case_tokens(original), ref.case, ref.prefix):
        return False
    if ref.marks is not None:
        words = mark_tokens(original)
        if ref.prefix:
            return len(words) == len(ref.marks) and _check_case(words, ref.marks, True)
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


# --- judging -------------------------------------------------------------------------------


@dataclass
class _Verdict:
    matched: bool
    reasons: list[str]
    hits: list[tuple[_Occ, int]]  # (occurrence, term index)

    def hit_objects(self, wl: _Watchlist) -> tuple[Hit, ...]:
        return _hits(wl, self.hits)


def _hits(wl: _Watchlist, pairs: list[tuple[_Occ, int]]) -> tuple[Hit, ...]:
    out = []
    for occ, ti in pairs:
        term = wl.terms[ti]
        entity = wl.entities[term.entity].name if term.entity is not None else None
        out.append(occ.to_hit(term, entity))
    return tuple(out)


class _Facts:
    """What was found for one watchlist in one document, ready for rule evaluation."""

    def __init__(self, wl: _Watchlist, by_term: dict[int, list[_Occ]]) -> None:
        self.wl = wl
        self.by_term = by_term
        n = len(wl.entities)
        self.strong: list[list[tuple[_Occ, int]]] = [[] for _ in range(n)]
        self.weak: list[list[tuple[_Occ, int]]] = [[] for _ in range(n)]
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
        self.near: dict[int, list[_Span]] = {}  # id(_Near node) -> its close groups

    def entity_occs(self, ei: int, scope: frozenset[str]) -> list[tuple[_Occ, int]]:
        pairs = [p for p in self.strong[ei] if p[0].fld.name in scope]
        if self.confirmed[ei]:
            pairs += [p for p in self.weak[ei] if p[0].fld.name in scope]
        return pairs

    def leaf_occs(self, leaf: _Leaf) -> list[tuple[_Occ, int]]:
        pairs = [p for ei in leaf.entities for p in self.entity_occs(ei, leaf.scope)]
        pairs += [
            (o, ti)
            for ti in leaf.terms
            for o in self.by_term.get(ti, ())
            if o.fld.name in leaf.scope
        ]
        return pairs

    def role_occs(self, role: Role) -> list[tuple[_Occ, int]]:
        return [
            (o, ti)
            for ti, occs in self.by_term.items()
            if self.wl.terms[ti].role == role
            for o in occs
            if o.fld.name in TEXT_FIELDS
        ]


def _judge(
    wl: _Watchlist, by_term: dict[int, list[_Occ]], doc: MatchDocument, *, explain: bool
) -> _Verdict:
    spec = wl.spec
    facts = _Facts(wl, by_term)
    reasons: list[str] = []  # each one alone stops the match
    notes: list[str] = []  # shown by explain, but no reason not to match
    source = doc.source.casefold()
    if wl.sources and source not in wl.sources:
        reasons.append(f"source {doc.source!r} is not one of {', '.join(spec.sources)}")
    if source and source in wl.exclude_sources:
        reasons.append(f"source {doc.source!r} is excluded")
    excluded = facts.role_occs("exclude")
    if excluded:
        terms = sorted({wl.terms[ti].text for _, ti in excluded})
        reasons.append("excluded by " + ", ".join(repr(t) for t in terms))
    if reasons and not explain:
        return _Verdict(False, reasons, [])

    mentions: list[tuple[_Occ, int]] = []
    for ei in range(len(wl.entities)):
        if not (facts.strong[ei] or facts.weak[ei]):
            continue  # most entities of a watchlist are absent from any one article
        mentions += facts.entity_occs(ei, TEXT_FIELDS)
        if explain and facts.weak[ei] and not facts.confirmed[ei]:
            weak = sorted({wl.terms[ti].text for _, ti in facts.weak[ei]})
            need = (
                "a context term or a strong alias"
                if wl.entities[ei].has_context
                else ("a strong alias")
            )
            notes.append(
                f"weak alias {', '.join(weak)} of {wl.entities[ei].name!r} without context "
                f"(needs {need} in the article)"
            )
    mentions += facts.role_occs("keyword")

    if wl.rule is not None:
        rule_ok = _eval(wl.rule, facts)
        if not rule_ok:
            if not explain:
                return _Verdict(False, reasons, [])
            reasons.extend(_why_not(wl.rule, facts))
        for part in wl.positive:
            if isinstance(part, _Near) and rule_ok:  # only the occurrences close enough
                mentions += [p for span in _near_spans(part, facts) for p in span.occs]
            elif isinstance(part, _Near):  # a near miss: show where each side was found
                mentions += [p for leaf in _leaves(part) for p in facts.leaf_occs(leaf)]
            else:
                mentions += facts.leaf_occs(part)
    elif not mentions:
        reasons.append("no name or keyword found (only terms that do not trigger alone)")

    mentions = _dedupe(mentions)
    if len(mentions) < spec.min_mentions and (mentions or wl.rule is None):
        reasons.append(f"{len(mentions)} mention(s); min_mentions is {spec.min_mentions}")
    elif not mentions and not reasons:
        reasons.append("nothing to report")  # pragma: no cover - rules always need a hit
    matched = not reasons
    if matched and explain:
        reasons.append("matched: " + _summary(wl, mentions))
    return _Verdict(matched, reasons + notes, mentions)


def _dedupe(pairs: list[tuple[_Occ, int]]) -> list[tuple[_Occ, int]]:
    """One hit per place in the text (the first term that claimed it), in text order."""
    seen: dict[tuple[int, int, int], tuple[_Occ, int]] = {}
    for occ, ti in pairs:
        seen.setdefault((id(occ.fld), occ.start, occ.end), (occ, ti))
    order = {"title": 0, "lead": 1, "body": 2, "author": 3, "source": 4, "tag": 5}
    return sorted(seen.values(), key=lambda p: (order[p[0].fld.name], p[0].fld.base, p[0].start))


def _summary(wl: _Watchlist, mentions: list[tuple[_Occ, int]]) -> str:
    counts: dict[str, int] = {}
    for _, ti in mentions:
        term = wl.terms[ti]
        label = repr(term.text)
        if term.entity is not None and wl.entities[term.entity].name != term.text:
            label += f" ({wl.entities[term.entity].name})"
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{label} ×{n}" for label, n in counts.items())


# --- rule evaluation ----------------------------------------------------------------------


def _eval(node: _Node, facts: _Facts) -> bool:
    if isinstance(node, _Leaf):
        return bool(facts.leaf_occs(node))
    if isinstance(node, _And):
        return all(_eval(p, facts) for p in node.parts)
    if isinstance(node, _Or):
        return any(_eval(p, facts) for p in node.parts)
    if isinstance(node, _Not):
        return not _eval(node.part, facts)
    return bool(_near_spans(node, facts))


class _Span(NamedTuple):
    """Words `first`..`last` of one field item, and the occurrences that make them up."""

    fld: int  # id of the _Field
    first: int
    last: int
    occs: tuple[tuple[_Occ, int], ...]  # (occurrence, term index)


def _positions(node: _Node, facts: _Facts) -> list[_Span]:
    """Every occurrence (or close group, for a NEAR) under a positional node, as a span."""
    if isinstance(node, _Near):
        return _near_spans(node, facts)
    if isinstance(node, _Or):
        return [s for p in node.parts for s in _positions(p, facts)]
    assert isinstance(node, _Leaf)
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
        out.append(_Span(id(occ.fld), first, last, (pair,)))
    return out


# Close groups kept per NEAR. Groups are pairs of occurrences, so a page of one long
# clause without spaces (Chinese without punctuation) repeating both terms would make
# every pair a group; the first 10,000 are plenty to decide and to show.
MAX_NEAR_GROUPS = 10_000


def _near_spans(node: _Near, facts: _Facts) -> list[_Span]:
    """The close groups of a NEAR: one occurrence of each operand, each operand close
    enough to the group of the ones before it. Their occurrences are the NEAR's hits."""
    cached = facts.near.get(id(node))
    if cached is not None:
        return cached
    spans = _positions(node.parts[0], facts)
    distance = node.distance
    for part in node.parts[1:]:
        others = _positions(part, facts)
        # look only at the others that can be close: sorted by start, a window found by
        # bisection (every pair was quadratic: 20,000 x 20,000 on a hostile page)
        starts = sorted((s.fld, s.first, i) for i, s in enumerate(others))
        longest = max((s.last - s.first for s in others), default=0)
        joined: list[_Span] = []
        for s1 in spans:
            if len(joined) >= MAX_NEAR_GROUPS:
                break  # a page that is one long clause of both terms: enough to show
            lo = bisect_left(starts, (s1.fld, s1.first - distance - longest))
            hi = bisect_left(starts, (s1.fld, s1.last + distance + 1))
            for i in sorted(i for _, _, i in starts[lo:hi]):  # in the others' order
                s2 = others[i]
                gap = s2.first - s1.last - 1 if s2.first > s1.last else s1.first - s2.last - 1
                if gap < node.distance:
                    joined.append(
                        _Span(
                            s1.fld,
                            min(s1.first, s2.first),
                            max(s1.last, s2.last),
                            s1.occs + s2.occs,
                        )
                    )
        spans = joined
        if not spans:
            break
    facts.near[id(node)] = spans
    return spans


def _why_not(node: _Node, facts: _Facts) -> list[str]:
    """Why a rule (or part of it) is false, in the rule's own words."""
    if isinstance(node, _And):
        return [r for p in node.parts if not _eval(p, facts) for r in _why_not(p, facts)]
    if isinstance(node, _Not):
        return [f"rule says NOT {node.part.src}: found"]
    if isinstance(node, _Near):
        if all(_eval(p, facts) if not isinstance(p, _Near) else True for p in node.parts):
            return [f"rule needs {node.src}: not within {node.distance} words"]
        return [f"rule needs {node.src}: not found"]
    if isinstance(node, _Leaf) and any(
        facts.weak[ei] and not facts.confirmed[ei] for ei in node.entities
    ):
        return [f"rule needs {node.src}: only a weak alias, without context"]
    return [f"rule needs {node.src}: not found"]


# --- snippets ---------------------------------------------------------------------------------


def _to_match(wl: _Watchlist, mentions: list[tuple[_Occ, int]]) -> WatchlistMatch:
    hits = _hits(wl, mentions)
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
    hits: tuple[Hit, ...], mentions: list[tuple[_Occ, int]]
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


_FLATTEN = str.maketrans({"\n": " ", "\r": " ", "\t": " ", "\u00a0": " "})
