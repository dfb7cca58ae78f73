"""The detail panels of the Watchlist and Sources pages that need the config in force:
a watchlist's rule as configured, its near misses (the matcher's `explain` over the latest
stored articles), and each source's standing (removed from the config, switched off in
it, or by newswatch after errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy.orm import Session

from worker.core.model import MatchDocument
from worker.store import panels
from worker.store.status import source_state

if TYPE_CHECKING:
    from worker.bootstrap.config_in_force import ActiveConfig
    from worker.store.dashboard import SourceRow

NEAR_MISS_ARTICLES = 200  # the latest stored articles `explain` is run on, per page view


def rule_text(active: ActiveConfig | None, name: str) -> str | None:
    """The watchlist's entry in the config in force, as YAML (defaults left out); None
    when that config has no such watchlist (or none could be read)."""
    if active is None:
        return None
    for spec in active.loaded.config.watchlists:
        if spec.name == name:
            entry = spec.model_dump(mode="json", exclude_defaults=True)
            return yaml.safe_dump(entry, sort_keys=False, allow_unicode=True, width=88)
    return None


@dataclass(frozen=True)
class NearMiss:
    article_id: int
    created_at: datetime
    title: str
    url: str
    source: str
    found: list[str]  # the terms found, as written in the article
    reasons: list[str]  # why the rule did not match, in its own words


def near_misses(
    session: Session, active: ActiveConfig, name: str, *, scan: int = NEAR_MISS_ARTICLES
) -> list[NearMiss]:
    """Of the latest `scan` stored articles, those where a term of watchlist `name` was
    found but it did not match (what `newswatch match --explain` lists), newest first.
    Computed now with the config in force: nothing stores near misses."""
    out = []
    for recent in panels.latest_articles(session, limit=scan):
        doc = MatchDocument.from_article(recent.article)
        for e in active.matcher.explain(doc):
            if e.watchlist != name or e.matched:
                continue
            found = list(dict.fromkeys(h.text for h in e.hits))
            a = recent.article
            out.append(
                NearMiss(
                    recent.article_id, recent.created_at, a.title, a.url, a.source, found, e.reasons
                )
            )
    return out


def source_standing(
    rows: list[SourceRow], active: ActiveConfig | None
) -> dict[str, tuple[str, str]]:
    """Source name -> (state, what a person reads), `newswatch status`'s words."""
    configured = None
    if active is not None:
        configured = {s.name: s.enabled for s in active.loaded.config.sources}
    return {r.name: source_state(_as_status(r), configured) for r in rows}


def _as_status(row: SourceRow) -> dict[str, Any]:
    # the fields source_state reads (dataclasses.asdict deep-copies every field: slow for
    # hundreds of rows)
    fields = ("name", "enabled", "disabled_reason", "last_error", "last_error_kind")
    return {f: getattr(row, f) for f in fields}
