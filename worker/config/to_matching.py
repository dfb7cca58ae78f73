"""Config specs -> the matcher's own inputs (worker.core.watchlists).

The matcher knows nothing of pydantic or the config file; this is the one place the
validated config is turned into what it compiles.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.config import EntitySpec, WatchlistSpec
from worker.core.watchlists import Entity, Watchlist


def to_entity(spec: EntitySpec) -> Entity:
    return Entity(
        name=spec.name,
        aliases=tuple(spec.aliases),
        weak_aliases=tuple(spec.weak_aliases),
        context=tuple(spec.context),
    )


def to_watchlist(spec: WatchlistSpec) -> Watchlist:
    return Watchlist(
        name=spec.name,
        names=tuple(to_entity(e) for e in spec.names),
        keywords=tuple(spec.keywords),
        rule=spec.rule,
        exclude=tuple(spec.exclude),
        sources=tuple(spec.sources),
        exclude_sources=tuple(spec.exclude_sources),
        min_mentions=spec.min_mentions,
        fold_diacritics=spec.fold_diacritics,
        exact_case_acronyms=spec.exact_case_acronyms,
    )


def to_watchlists(specs: Iterable[WatchlistSpec]) -> list[Watchlist]:
    """Every watchlist of a config, in config order (RuleError names them by name)."""
    return [to_watchlist(s) for s in specs]
