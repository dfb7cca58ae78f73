"""User-supplied regular expressions, run in linear time.

A pattern from the config (a page source's `follow:`) meets text an attacker
chooses (the links on a page). Python's `re` backtracks: `(a+)+$` against a long
run of "a" takes exponential time while holding the interpreter lock, and every
other thread of the worker stops with it. Google RE2 (the `google-re2` wheel)
guarantees time linear in the text for every pattern it accepts, and refuses the
features that cannot have that guarantee (backreferences, lookaround): such a
pattern is refused when the config is checked, with RE2's reason.

Only this module imports `re2`; everything else sees `compile_pattern` and
`Pattern.search`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2

MAX_PATTERN_CHARS = 1000  # a `follow:` pattern is a path shape, not a program
# RE2 builds its automata within this budget and refuses a pattern that needs more
# (e.g. `(a{1000}){1000}`): a bounded cost per worker for every pattern.
MAX_PATTERN_MEMORY = 8 << 20


class PatternError(ValueError):
    """A pattern that is refused: not valid, or not runnable in linear time."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the reason goes into the exception, not to stderr
    options.max_mem = MAX_PATTERN_MEMORY
    return options


@dataclass(frozen=True)
class Pattern:
    """A compiled pattern; `search` is linear in the length of the text."""

    source: str
    _compiled: Any = field(repr=False, compare=False)

    def search(self, text: str) -> bool:
        return self._compiled.search(text) is not None


@lru_cache(maxsize=256)
def compile_pattern(source: str) -> Pattern:
    """Compile with RE2, or raise PatternError saying why the pattern is refused."""
    if len(source) > MAX_PATTERN_CHARS:
        raise PatternError(f"longer than {MAX_PATTERN_CHARS:,} characters")
    try:
        compiled = re2.compile(source, _options())
    except re2.error as exc:
        raise PatternError(_reason(source, exc)) from None
    return Pattern(source, compiled)


def _reason(source: str, exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    detail = str(detail)
    lookaround = any(s in source for s in ("(?=", "(?!", "(?<", "(?P="))
    unsupported = ("invalid escape sequence: \\" in detail and _has_backreference(source)) or (
        "invalid perl operator: (?" in detail and lookaround
    )
    if unsupported:
        return (
            f"{detail} (backreferences and lookaround are not supported: patterns run with "
            "RE2, which guarantees linear time)"
        )
    if detail == "invalid escape sequence: \\Z":
        return f"{detail} (RE2 writes the end of the text as \\z)"
    if "pattern too large" in detail:
        return f"{detail} (the pattern needs more than RE2's memory budget; simplify it)"
    return detail


def _has_backreference(source: str) -> bool:
    escaped = False
    for ch in source:
        if escaped:
            if ch.isdigit() and ch != "0":
                return True
            escaped = False
        elif ch == "\\":
            escaped = True
    return False
