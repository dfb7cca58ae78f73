"""The matcher's public face: watchlists -> one compiled Matcher; documents -> matches.

How it works (docs/rules.md has the user-facing rules), one module per step:
`inputs` (what is compiled) -> `spelling` (term -> automaton keys) and `grammar`
(rule text -> `nodes`) -> `compiler` (one Aho-Corasick automaton, `compiled` watchlists)
-> `scanner` (a document's folded fields through the automaton) -> `evaluate` and
`judge` (match or not, with reasons) -> `explain` and `snippets` (what is shown).
Code inside the package imports from the module that owns a name; this one is for
callers outside it.
"""

from worker.core.watchlists import Entity, RuleError, Watchlist
from worker.matching.compiler import MAX_TOTAL_CHARS, compile_matcher
from worker.matching.explain import Explanation
from worker.matching.matcher import Matcher, MatchOutcome, Rejection
from worker.matching.spelling import MAX_TERM_CHARS

__all__ = [
    "MAX_TERM_CHARS",
    "MAX_TOTAL_CHARS",
    "Entity",
    "Explanation",
    "MatchOutcome",
    "Matcher",
    "Rejection",
    "RuleError",
    "Watchlist",
    "compile_matcher",
]
