"""Reading YAML safely, with the line of every key.

A config file is input too: a worker reloads whatever is written there. The bounds here
keep a hostile or broken file from taking a worker's memory or time (documented in
docs/operations.md, "Bad config", and config/example.yaml).
"""

from __future__ import annotations

from typing import Any, Protocol

import yaml

MAX_CONFIG_BYTES = 16 * 1024 * 1024  # per file
MAX_DEPTH = 64  # nesting of lists and mappings; a real config uses about 6
# An alias repeats its anchor's whole subtree wherever it appears: nested aliases grow
# exponentially ("billion laughs"). Bounded per file, counted while composing, before
# anything is built.
MAX_ALIAS_VALUES = 100_000
MAX_ALIAS_CHARS = 10_000_000

# libyaml (PyYAML's C extension) composes a large file many times faster than the pure-Python
# reader: a config of 100,000 sources took ~20 s of CPU to compose in Python (docs/load.md,
# "A config of 100,000 sources"). The bounds and the duplicate keys are then checked on
# the composed nodes; a file that fails a bound, or that libyaml cannot read, is read again
# by the pure-Python reader, whose problems and lines are the ones reported. Without
# libyaml, the pure-Python reader alone.
LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))


class _Mark(Protocol):
    line: int  # 0-based


class _Refused(yaml.YAMLError):
    """A file the loader will not build; `line` (1-based, None if unknown) says where."""

    def __init__(self, mark: _Mark | None, message: str):
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader's composer with bounds on depth and on alias expansion, and a record of
    duplicate keys (YAML keeps the last silently; we refuse the file)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0
        self.open_anchors: set[str] = set()
        self.alias_values = 0
        self.alias_chars = 0
        self.sizes: dict[int, tuple[int, int]] = {}
        self.problems: list[tuple[int, str]] = []  # (line, message), the file goes on

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.open_anchors:
                raise _Refused(
                    event.start_mark,
                    f"alias *{event.anchor} is inside its own anchor: it would never end",
                )
            node = super().compose_node(parent, index)
            assert node is not None  # the stubs allow None; PyYAML always returns a node here
            values, chars = self._size(node)
            self.alias_values += values
            self.alias_chars += chars
            if self.alias_values > MAX_ALIAS_VALUES or self.alias_chars > MAX_ALIAS_CHARS:
                raise _Refused(
                    event.start_mark,
                    f"alias *{event.anchor} repeats {values:,} values ({chars:,} characters); "
                    f"the aliases of one file may repeat at most {MAX_ALIAS_VALUES:,} values "
                    f"and {MAX_ALIAS_CHARS:,} characters",
                )
            return node
        if self.depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        anchor = event.anchor if isinstance(event, yaml.NodeEvent) else None
        self.depth += 1
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            node = super().compose_node(parent, index)
            assert node is not None  # as above
            return node
        finally:
            self.depth -= 1
            if anchor is not None:
                self.open_anchors.discard(anchor)

    # types-PyYAML has `anchor` as a dict; PyYAML passes the event's anchor name
    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:  # type: ignore[override]
        node = super().compose_mapping_node(anchor)  # type: ignore[arg-type]
        first: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            line = key.start_mark.line + 1
            if not isinstance(key, yaml.ScalarNode):
                self.problems.append((line, "a key must be a plain value, not a list or mapping"))
                continue
            ident = (key.tag, key.value)
            if ident in first:
                self.problems.append(
                    (line, f"duplicate key {key.value!r} (first at line {first[ident]})")
                )
            else:
                first[ident] = line
        return node

    def _size(self, node: yaml.Node) -> tuple[int, int]:
        return _size(node, self.sizes)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


class _Builder:
    """Python values from a composed YAML node, remembering each key's line.

    A value YAML cannot construct (`2024-13-45` read as a date, an unknown `!tag`) is a
    problem at its line, not an exception."""

    def __init__(self) -> None:
        self.lines: dict[tuple, int] = {}
        self.problems: list[tuple[int, str]] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: tuple = ()) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            merged: list[yaml.Node] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    merged.append(value_node)
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # refused by the loader
                key = self.scalar(key_node)
                if isinstance(key, list | dict | set):
                    continue
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*path, key))
            for source in merged:  # `<<: *defaults`: keys written here win
                self._merge(out, source, path)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*path, i)) for i, v in enumerate(node.value)]
        return self.scalar(node)

    def _merge(self, out: dict, source: yaml.Node, path: tuple) -> None:
        sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
        for one in sources:
            if not isinstance(one, yaml.MappingNode):
                self.problems.append((one.start_mark.line + 1, "'<<' merges only mappings"))
                continue
            outer, self.lines = self.lines, {}
            try:
                values = self.build(one, path)
            finally:
                inner, self.lines = self.lines, outer
            added = {key for key in values if key not in out}
            for key in added:
                out[key] = values[key]
            depth = len(path)
            for p, line in inner.items():  # lines of the merged keys: where they are written
                if len(p) > depth and p[depth] in added:
                    self.lines.setdefault(p, line)

    def scalar(self, node: yaml.Node) -> Any:
        if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value  # what the constructor would return, without its bookkeeping
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
                problem = exc.problem
            else:
                problem = str(exc)
            self.problems.append((node.start_mark.line + 1, f"cannot read this value: {problem}"))
            return node.value  # the problem is reported once, not again as a wrong type


def _compose(text: str) -> tuple[yaml.Node | None, list[tuple[int, str]]]:
    """The file's node tree and the problems met composing it (line, message); raises
    _Refused for a file past a bound, or yaml's error for one that is not YAML."""
    if LIBYAML:
        try:
            node = yaml.compose(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            pass  # read again below, for the pure-Python reader's words and line
        else:
            problems = _checked(node, anchors="&" in text)
            if problems is not None:
                return node, problems
    return _compose_pure(text)


def _compose_pure(text: str) -> tuple[yaml.Node | None, list[tuple[int, str]]]:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node(), loader.problems
    finally:
        loader.dispose()


class _Bound(Exception):
    """A bound crossed in a tree libyaml composed: the file is read again by the pure reader."""


def _checked(root: yaml.Node | None, anchors: bool) -> list[tuple[int, str]] | None:
    """The problems _BoundedLoader records (duplicate keys, keys that are not plain
    values) for a tree libyaml composed; None when it crosses a bound _BoundedLoader
    refuses (depth, alias expansion, an alias inside its own anchor).

    libyaml composes an alias as its anchor's node itself: a node met again is an alias.
    Without an `&` in the file there is none, and scalars need no record of being seen."""
    if root is None:
        return []
    checker = _Checker(anchors)
    try:
        checker.visit(root, 1)
    except _Bound:
        return None
    return checker.problems


class _Checker:
    def __init__(self, anchors: bool):
        self.anchors = anchors
        self.problems: list[tuple[int, str]] = []
        self.seen: set[int] = set()
        self.open: set[int] = set()
        self.sizes: dict[int, tuple[int, int]] = {}
        self.alias_values = self.alias_chars = 0

    def child(self, node: yaml.Node, depth: int) -> None:
        if self.anchors and id(node) in self.seen:
            self.again(node)
        elif not isinstance(node, yaml.ScalarNode):
            self.visit(node, depth)
        elif self.anchors:
            self.seen.add(id(node))

    def again(self, node: yaml.Node) -> None:
        if id(node) in self.open:
            raise _Bound
        values, chars = _size(node, self.sizes)
        self.alias_values += values
        self.alias_chars += chars
        if self.alias_values > MAX_ALIAS_VALUES or self.alias_chars > MAX_ALIAS_CHARS:
            raise _Bound

    def visit(self, node: yaml.Node, depth: int) -> None:
        if self.anchors:
            self.seen.add(id(node))
            self.open.add(id(node))
        if depth >= MAX_DEPTH and node.value:  # its children would be too deep
            raise _Bound
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                self.child(key, depth + 1)
                line = key.start_mark.line + 1
                if not isinstance(key, yaml.ScalarNode):
                    self.problems.append(
                        (line, "a key must be a plain value, not a list or mapping")
                    )
                elif (ident := (key.tag, key.value)) in first:
                    self.problems.append(
                        (line, f"duplicate key {key.value!r} (first at line {first[ident]})")
                    )
                else:
                    first[ident] = line
                self.child(value, depth + 1)
        elif not isinstance(node, yaml.ScalarNode):
            for item in node.value:
                self.child(item, depth + 1)
        if self.anchors:
            self.open.discard(id(node))


def _size(node: yaml.Node, sizes: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(values, characters) the node stands for with every alias in it expanded;
    memoized, so a shared subtree is measured once."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if isinstance(node, yaml.ScalarNode):
        size = (1, len(node.value))
    else:
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
        )
        values, chars = 1, 0
        for child in children:
            v, c = _size(child, sizes)
            values, chars = values + v, chars + c
        size = (values, chars)
    sizes[id(node)] = size
    return size
