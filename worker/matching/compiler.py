"""Compile: watchlists -> one Matcher (one Aho-Corasick automaton of every term).

Every term of every watchlist (entity names, aliases, weak aliases, context terms,
keywords, exclusions, rule terms) is spelt out into automaton keys (`spelling`) and
added to ONE automaton; each key points back at the (watchlist, term) pairs it
stands for. Rules are parsed (`grammar`) and their terms added the same way.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

import ahocorasick_rs

from worker.core.watchlists import RuleError, Watchlist
from worker.matching.compiled import (
    NAME_ROLES,
    TEXT_FIELDS,
    CompiledEntity,
    CompiledWatchlist,
    Ref,
    Role,
    Term,
)
from worker.matching.grammar import RULE_PATH, RuleBuilder, parse_rule
from worker.matching.matcher import Matcher
from worker.matching.nodes import Leaf, Node, Not, Or, can_match_nothing, positive_parts
from worker.matching.scanner import Scanner
from worker.matching.spelling import MAX_TERM_CHARS, Variants, new_tuple, variants

# Refuse inputs that would build an automaton too large for a worker, instead
# of running it out of memory. 100,000 ordinary terms are about 2 M characters.
MAX_TOTAL_CHARS = 8_000_000
_TOO_MANY_CHARS = (
    f"the watchlists hold more than {MAX_TOTAL_CHARS:,} characters of terms; "
    "split them across fewer, more specific terms"
)


class Compiler:
    def __init__(self) -> None:
        self.watchlists: list[CompiledWatchlist] = []
        # a defaultdict: one C-level lookup per ref instead of get + store/append
        self.keys: defaultdict[str, list[Ref]] = defaultdict(list)
        # the same term is often in many watchlists: spell it out once per config.
        # One dict per (is_name, exact_case_acronyms, fold_diacritics), keyed by the
        # term, chosen once per watchlist: no key tuple to build per term
        self.spelled: dict[tuple[bool, bool, bool], dict[str, Variants]] = {}
        self.total_chars = 0

    def spellings(self, is_name: bool, spec: Watchlist) -> dict[str, Variants]:
        """The cache of spelt-out terms for one role kind of one watchlist's settings."""
        how = (is_name, spec.exact_case_acronyms, spec.fold_diacritics)
        cache = self.spelled.get(how)
        if cache is None:
            cache = self.spelled[how] = {}
        return cache

    def add_term(self, wl_index: int, raw: str, role: Role, entity: int | None) -> int:
        spec = self.watchlists[wl_index].spec
        return self._add(wl_index, raw, role, entity, self.spellings(role in NAME_ROLES, spec))

    def _add(
        self,
        wl_index: int,
        raw: str,
        role: Role,
        entity: int | None,
        cache: dict[str, Variants],
    ) -> int:
        wl = self.watchlists[wl_index]
        cached = cache.get(raw)
        if cached is None:
            spec = wl.spec
            cached = cache[raw] = variants(
                raw,
                is_name=role in NAME_ROLES,
                acronyms=spec.exact_case_acronyms,
                keep_marks=not spec.fold_diacritics,
            )
        keys_of_term, problem = cached
        if problem:
            raise RuleError(wl.spec.name, problem)
        terms = wl.terms
        index = len(terms)
        terms.append(new_tuple(Term, (raw, role, entity)))
        keys = self.keys
        chars = 0
        for key, case, marks, prefix in keys_of_term:
            chars += len(key)
            keys[key].append(new_tuple(Ref, (wl_index, index, case, marks, prefix)))
        self.total_chars += chars
        if self.total_chars > MAX_TOTAL_CHARS:
            raise RuleError(wl.spec.name, _TOO_MANY_CHARS)
        return index

    def add_watchlist(self, spec: Watchlist) -> None:
        wl_index = len(self.watchlists)
        wl = CompiledWatchlist(
            spec,
            sources=frozenset(s.casefold() for s in spec.sources),
            exclude_sources=frozenset(s.casefold() for s in spec.exclude_sources),
        )
        self.watchlists.append(wl)
        if not (spec.names or spec.keywords or spec.rule):
            raise RuleError(spec.name, "nothing to watch: give names, keywords or a rule")
        for entity in spec.names:
            wl.entities.append(CompiledEntity(entity.name, bool(entity.context)))
        names = self.spellings(True, spec)
        others = self.spellings(False, spec)
        add = self._add
        for raw, role, ei, path in _config_terms(spec):
            try:
                add(wl_index, raw, role, ei, names if role in NAME_ROLES else others)
            except RuleError as exc:
                if self.total_chars <= MAX_TOTAL_CHARS:  # about this term, not the total size
                    exc.path = path
                raise
        if spec.rule is not None:
            self._add_rule(wl_index, spec.rule)

    def _add_rule(self, wl_index: int, rule: str) -> None:
        wl = self.watchlists[wl_index]
        tree = parse_rule(wl.spec.name, rule)
        builder = RuleBuilder(wl, rule, lambda text: self.add_term(wl_index, text, "rule", None))
        node = builder.build(tree, TEXT_FIELDS)
        if can_match_nothing(node):
            raise RuleError(
                wl.spec.name,
                "the rule is true for an article that mentions none of its terms; "
                "add a term that must be present",
                rule,
                0,
                path=RULE_PATH,
            )
        wl.rule = node
        wl.positive = tuple(positive_parts(node))


def _config_terms(
    spec: Watchlist,
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


def _raw_size(spec: Watchlist) -> int:
    """Characters of terms in a watchlist; raises on one absurdly long term."""
    terms = [*spec.keywords, *spec.exclude]
    for e in spec.names:
        terms += [e.name, *e.aliases, *e.weak_aliases, *e.context]
    longest = max(terms, key=len, default="")
    if len(longest) > MAX_TERM_CHARS * 2:  # `*` and `=` aside, `variants` says it precisely
        path = next(p for t, _, _, p in _config_terms(spec) if t is longest)
        raise RuleError(
            spec.name,
            f"term longer than {MAX_TERM_CHARS} characters: {longest[:40]!r}…",
            path=path,
        )
    return sum(map(len, terms)) + len(spec.rule or "")


def compile_matcher(watchlists: Sequence[Watchlist], version: str = "") -> Matcher:
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


def _compile(watchlists: Sequence[Watchlist], version: str) -> Matcher:
    compiler = Compiler()
    total = 0
    for spec in watchlists:
        total += _raw_size(spec)
        if total > MAX_TOTAL_CHARS:  # checked up front: refusing must be quick too
            raise RuleError(spec.name, _TOO_MANY_CHARS)
    for spec in watchlists:
        compiler.add_watchlist(spec)
    # sorted: neighbouring keys share their trie path, which halves the build time
    keys = sorted(compiler.keys)
    refs = [compiler.keys[k] for k in keys]
    automaton = None
    if keys:
        # Rust aho-corasick, on bytes (the view is ASCII for Latin text): the choice and
        # its figures are in docs/rules.md. The standard match kind with overlapping
        # search reports every key at every place; its default implementation, not a
        # DFA, which needs several times the memory.
        automaton = ahocorasick_rs.BytesAhoCorasick(
            [k.encode() for k in keys],
            matchkind=ahocorasick_rs.MatchKind.Standard,
        )
    triggers = [_triggers(wl) for wl in compiler.watchlists]
    return Matcher(version, compiler.watchlists, Scanner(automaton, keys, refs), triggers)


def _entity_terms(wl: CompiledWatchlist, ei: int) -> Iterable[int]:
    for ti, t in enumerate(wl.terms):
        if t.entity == ei and t.role in NAME_ROLES:
            yield ti


def _required(wl: CompiledWatchlist, node: Node) -> frozenset[int] | None:
    """Terms of which at least one must be found for `node` to be true (None: cannot tell).

    A superset is always safe; it only has to be small for `match` to skip
    the watchlists that a common word like "troops" touches but cannot satisfy.
    """
    if isinstance(node, Leaf):
        terms = set(node.terms)
        for ei in node.entities:
            terms.update(_entity_terms(wl, ei))
        return frozenset(terms)
    if isinstance(node, Not):
        return None
    parts = [_required(wl, p) for p in node.parts]
    if isinstance(node, Or):
        if any(p is None for p in parts):
            return None
        return frozenset().union(*parts)  # type: ignore[arg-type]
    known = [p for p in parts if p is not None]  # AND, NEAR: every part must hold
    return min(known, key=len) if known else None


def _triggers(wl: CompiledWatchlist) -> frozenset[int]:
    """Terms that can make this watchlist match; without one found it is not judged."""
    if wl.rule is not None:
        required = _required(wl, wl.rule)
        if required is not None:
            return required
        return frozenset(range(len(wl.terms)))
    return frozenset(
        ti for ti, t in enumerate(wl.terms) if t.role in ("name", "alias", "weak", "keyword")
    )
