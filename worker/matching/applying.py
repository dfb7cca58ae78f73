"""The rules stage's use case: match one article against the current watchlists and
write its matches, their deliveries and the items' outcome in one transaction."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from worker.alerts.planning import plan_deliveries
from worker.core.backoff import backoff
from worker.core.model import Article, MatchDocument, WatchlistMatch
from worker.core.states import MatchState, RulesState
from worker.store import items, matches, sources
from worker.store import models as m
from worker.tracking import diskfull, ledger, metrics
from worker.tracking.failures import wait_for_disk
from worker.tracking.notices import collect

if TYPE_CHECKING:
    from worker.bootstrap import Runtime
    from worker.bootstrap.config_in_force import ActiveConfig

log = logging.getLogger(__name__)


def apply_rules(rt: Runtime, article_id: int) -> list[str]:
    """Match one article against the current watchlists; write matches, their
    deliveries and the items' outcome in one transaction. Returns the delivery ids
    to send (and of notices raised).

    Whatever an attempt raises, the article fails alone: the error goes on its row, it
    is retried with backoff and, after `max_attempts`, quarantined (`rules_state`
    failed) with a notice."""
    now = rt.now()
    active = rt.config.current()
    notices: list[str] = []
    article = _claim(rt, article_id, now, notices)
    if article is None:
        return notices
    try:
        return _apply_rules(rt, article_id, article, active, now)
    except Exception as exc:  # any class: a bug (`internal`) fails this article alone too
        if diskfull.is_disk_full(exc):
            wait_for_disk(rt, "article", article_id, exc, items.defer_article)
            return []
        return _rules_failed(rt, article_id, exc)


def _claim(rt: Runtime, article_id: int, now: datetime, notices: list[str]) -> Article | None:
    """Lease the article and read it; None when there is nothing to do (done, held
    elsewhere, or quarantined now after too many attempts: its notice in `notices`)."""
    with rt.store.session() as session:
        row = items.claim_article(session, article_id, now, rt.settings.lease_seconds)
        if row is None:
            return None
        if ledger.attempts_spent(rt, session, row, now, notices):
            return None
        source_name = sources.name_of(session, row.source_id) or ""
        return items.article_from_row(row, source_name)


def _apply_rules(
    rt: Runtime, article_id: int, article: Article, active: ActiveConfig, now: datetime
) -> list[str]:
    config = active.loaded.config
    result = active.matcher.match_outcome(MatchDocument.from_article(article))
    found = result.matches
    delivery_ids: list[str] = []
    with rt.store.session() as session:
        story_id = None
        if found:  # most articles match nothing: their row is not read at all
            row = items.get_article(session, article_id)
            assert row is not None
            story_id = row.story_id
            for wm in found:
                delivery_ids += _record_match(rt, session, row, wm, active, now)
        # unless a new version of the text came meanwhile: its rules run again on that
        if items.finish_rules(session, article_id, article.content_hash):
            ledger.record_rules_outcome(
                session,
                article_id,
                story_id,
                [wm.watchlist for wm in found],
                result.rejected,
                len(config.watchlists),
                active.version,
            )
    if found:
        log.info("article %s matched %s", article_id, ", ".join(w.watchlist for w in found))
    return delivery_ids


def _record_match(
    rt: Runtime,
    session: Session,
    row: m.Article,
    wm: WatchlistMatch,
    active: ActiveConfig,
    now: datetime,
) -> list[str]:
    """Store one watchlist's match and plan its deliveries; [] when a redelivered task
    finds this watchlist already matched this article."""
    match_row = matches.insert_match(session, row, wm, active.version, now)
    if match_row is None:
        return []
    # only the first copy of a story alerts: it claims the (watchlist, story) pair
    first = matches.claim_story(session, wm.watchlist, row.story_id or row.id, match_row.id)
    if not first:
        match_row.state = MatchState.DUPLICATE
    # the outbox decides per channel: now, into a digest, or (for a repeat
    # of the story) an update only where the channel asks for one
    return plan_deliveries(
        session, active.loaded.config, match_row, wm, update_of_story=not first, now=now
    )


def note_error(rt: Runtime, article_id: int, error: str) -> None:
    """Note why an attempt gave up past this module (the task saw it raise) on an article
    whose rules are still pending; its lease stays, the sweep retries it."""
    with rt.store.session() as session:
        items.note_article_error(session, article_id, error[:2000], "internal")


def _rules_failed(rt: Runtime, article_id: int, exc: Exception) -> list[str]:
    """Record a failed rules attempt on the article; back off, or quarantine it."""
    kind = ledger.error_kind(exc)
    now = rt.now()
    notices: list[str] = []
    with rt.store.session() as session:
        row = items.get_article(session, article_id)
        if row is None or row.rules_state != RulesState.PENDING:
            return []
        row.error, row.error_kind = ledger.describe(exc), kind
        if row.attempts >= rt.settings.max_attempts:
            reason = f"after {row.attempts} attempts: {row.error}"
            collect(notices, ledger.quarantine_article(rt, session, row, reason, now))
        else:  # try again after a backoff; the sweep picks it up
            row.claimed_until = now + backoff(60, row.attempts)
    metrics.count_failure("article", kind)
    log.error(
        "article %s: rules failed (%s)",
        article_id,
        kind,
        exc_info=exc,
        extra={"article_id": article_id, "error_kind": kind},
    )
    return notices
