"""What the matcher compiles: watchlists as plain values, and the error a bad one raises.

The config stage maps its validated specs into these (worker/config/to_matching.py);
the matcher depends on nothing of the config. Field names follow the config file's,
so `RuleError.path` names the same item in both.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.core.errors import InputError


@dataclass(frozen=True, slots=True)
class Entity:
    """A person or organisation: a name and the other ways it is written."""

    name: str
    aliases: tuple[str, ...] = ()  # strong: trigger alone
    weak_aliases: tuple[str, ...] = ()  # trigger only with context or a strong alias
    context: tuple[str, ...] = ()  # terms that make weak aliases count


@dataclass(frozen=True, slots=True)
class Watchlist:
    name: str
    names: tuple[Entity, ...] = ()
    keywords: tuple[str, ...] = ()
    rule: str | None = None  # boolean rule over names and keywords (docs/rules.md)
    exclude: tuple[str, ...] = ()  # any of these in the article suppresses the match
    sources: tuple[str, ...] = ()  # only these sources (empty: all)
    exclude_sources: tuple[str, ...] = ()
    min_mentions: int = 1
    fold_diacritics: bool = True
    exact_case_acronyms: bool = True  # all-caps tokens of up to 4 letters match case-exactly


class RuleError(InputError):
    """A watchlist that cannot be compiled: names the watchlist, shows the text and a caret.

    `path` is the config item the error is about, inside the watchlist: ("rule",),
    ("keywords", 3), ("names", 2, "aliases", 0)...; empty for the watchlist as a whole.
    """

    kind = "rule"

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
