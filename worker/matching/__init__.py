"""Matching: watchlists -> one compiled Matcher; documents -> matches.

How it works (docs/rules.md has the user-facing rules), one module per step:
`worker.core.watchlists` (what is compiled) -> `spelling` (term -> automaton keys) and
`grammar` (rule text -> `nodes`) -> `compiler` (one Aho-Corasick automaton, `compiled`
watchlists) -> `scanner` (a document's folded fields through the automaton) ->
`evaluate` and `judge` (match or not, with reasons) -> `explain` and `snippets` (what is
shown), behind `matcher.Matcher`. `applying` is the use case (a stored article's matches
and their deliveries); `dry_run` replays a config over stored history.
"""
