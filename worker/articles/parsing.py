"""The parse stage's use case: turn one item into an article, a copy of one, or a new
version of one, and file the article under its story.

The item is claimed with a lease; the page fetch (full text) runs with no transaction
open; the article and the item's state are written in one transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy.orm import Session

from worker.articles import stories
from worker.articles.extract import extract_page
from worker.articles.normalize import build_article
from worker.core.backoff import backoff
from worker.core.errors import NewswatchError
from worker.core.model import Article
from worker.core.retention import item_identification
from worker.core.states import ItemOutcome, ItemState, RulesState, SourceKind
from worker.store import items
from worker.store import models as m
from worker.tracking import diskfull, ledger, metrics
from worker.tracking.failures import wait_for_disk
from worker.tracking.notices import collect

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)

# the errors an item may meet on purpose; anything else is a bug, recorded as `internal`
ITEM_ERRORS = (NewswatchError,)  # FetchError and ExtractionError among them


def parse_item(rt: Runtime, item_id: int, notices: list[str] | None = None) -> int | None:
    """Turn one item into an article (or find it is a copy of one). Returns the new
    article's id when rules should run on it.

    Whatever an attempt raises, the item fails alone: the error and its kind go on its
    row, it is retried with backoff, and after `max_attempts` (or at once, for an error
    that cannot go away) it is quarantined; the ids of notices raised are appended to
    `notices`."""
    claimed = _claim(rt, item_id, notices)
    if claimed is None:
        return None
    data, source_name, source_kind = claimed
    spec = rt.config.current().loaded.config.source(source_name)
    full_text = wants_full_text(source_kind, bool(spec and spec.full_text))
    robots = spec.respect_robots if spec else True
    url = data.get("url")
    try:
        article = _build_article(rt, data, source_name, full_text, robots)
        return _store_article(rt, item_id, article)
    except ITEM_ERRORS as exc:  # the page, its fetch or its extraction failed
        _attempt_failed(rt, item_id, url, exc, _permanent(exc), notices)
        return None
    except Exception as exc:  # a bug: recorded as `internal`, it fails this item alone too
        if ledger.error_kind(exc) == "time_limit":
            raise  # the task records it and keeps the lease (docs/operations.md)
        _attempt_failed(rt, item_id, url, exc, False, notices)
        return None


def _attempt_failed(
    rt: Runtime,
    item_id: int,
    url: str | None,
    exc: Exception,
    permanent: bool,
    notices: list[str] | None,
) -> None:
    if diskfull.is_disk_full(exc):
        wait_for_disk(rt, "item", item_id, exc, items.defer_item)
    else:
        _item_failed(rt, item_id, url, exc, permanent, notices)


def _claim(
    rt: Runtime, item_id: int, notices: list[str] | None
) -> tuple[dict[str, Any], str, str] | None:
    """Lease the item; its data and source's name and kind, or None when there is nothing
    to do (done, held elsewhere, or quarantined now after too many attempts)."""
    now = rt.now()
    with rt.store.session() as session:
        item = items.claim_item(session, item_id, now, rt.settings.lease_seconds)
        if item is None:
            return None
        if ledger.attempts_spent(rt, session, item, now, notices):
            return None
        src = items.source_name_kind(session, item.source_id)
        assert src is not None
        return dict(item.data), *src


def _permanent(exc: Exception) -> bool:
    """An error that cannot go away: the page is not an article, or the fetch error says so."""
    return isinstance(exc, NewswatchError) and exc.permanent


def _item_failed(
    rt: Runtime,
    item_id: int,
    url: str | None,
    exc: Exception,
    permanent: bool,
    notices: list[str] | None,
) -> None:
    """Record a failed attempt on the item; back off, or quarantine it when the error
    cannot go away (an extraction error, a permanent fetch error) or attempts are spent."""
    kind = ledger.error_kind(exc)
    now = rt.now()
    with rt.store.session() as session:
        item = items.get_item(session, item_id)
        if item is None or item.state != ItemState.PENDING:
            return
        item.error, item.error_kind = ledger.describe(exc), kind
        if permanent or item.attempts >= rt.settings.max_attempts:
            why = "permanent error" if permanent else f"after {item.attempts} attempts"
            reason = f"{why}: {item.error}"
            # an input error that cannot go away is the feed's content, not an incident
            notice = ledger.quarantine_item(rt, session, item, reason, now, notify=not permanent)
            collect(notices, notice)
        else:  # try again after a backoff; the sweep picks it up
            item.claimed_until = now + backoff(60, item.attempts)
    metrics.count_failure("item", kind)
    extra = {"item_id": item_id, "error_kind": kind}
    if kind == "internal":  # a bug: the traceback is what a developer needs
        log.error("item %s (%s): internal error", item_id, url, exc_info=exc, extra=extra)
    else:
        log.warning("item %s (%s): %s", item_id, url, exc, extra=extra)


def record_item_error(rt: Runtime, item_id: int, error: str, kind: str = "time_limit") -> None:
    """Note why an attempt gave up (e.g. its soft time limit) on a still-pending item.
    The lease stays: the sweep retries it after, and the claim counts the attempt."""
    with rt.store.session() as session:
        items.note_item_error(session, item_id, error[:2000], kind)
    log.warning("item %s: %s", item_id, error, extra={"item_id": item_id})


class PageFetcher(Protocol):
    """What fetches an item's page: the runtime's Fetcher (worker/http/fetcher.py)."""

    def get(self, url: str, *, expect: Literal["html"], respect_robots: bool) -> Any: ...


def wants_full_text(source_kind: str, full_text: bool) -> bool:
    """An item's article is its linked page (a listing page's, or `full_text: true`)."""
    return source_kind == SourceKind.PAGE or full_text


def _build_article(
    rt: Runtime, data: dict[str, Any], source_name: str, full_text: bool, respect_robots: bool
) -> Article:
    return item_article(rt.fetcher(), data, source_name, full_text, respect_robots)


def item_article(
    fetcher: PageFetcher,
    data: dict[str, Any],
    source_name: str,
    full_text: bool,
    respect_robots: bool,
) -> Article:
    """One item's article, as the parse stage builds it (also `newswatch match`)."""
    url = data.get("url")
    if not (full_text and url):
        return build_article(data, source_name)
    result = fetcher.get(url, expect="html", respect_robots=respect_robots)
    page = extract_page(result.body, result.url, result.headers.get("content-type"))
    return build_article(data, source_name, page, result.url)


# --- storing the article ---------------------------------------------------------------


def _store_article(rt: Runtime, item_id: int, article: Article) -> int | None:
    now = rt.now()
    fp = stories.fingerprint(f"{article.title}\n{article.body}") if article.body else None
    with rt.store.session() as session:
        item = items.get_item(session, item_id)
        assert item is not None
        article_id = _file_article(session, item, article, fp, now)
        # its article keeps the text, once; set last, so it rides on the item's one UPDATE
        item.data = item_identification(item.data)
        return article_id


def _file_article(
    session: Session, item: m.Item, article: Article, fp: int | None, now: datetime
) -> int | None:
    """The article of this item: a new version of its entry's, a copy of a stored one, or
    a new one filed under its story. Returns the article id when rules should run."""
    updated = _update_changed_article(session, item, article, fp, now)
    if updated is not None:
        return updated or None
    existing = items.copy_of(session, article.url, article.content_hash)
    article_id = None
    if existing is None:
        article_id = items.add_article(session, item.source_id, article, fp, now)
        if article_id is None:  # a concurrent copy won the race: the constraint decides
            existing = items.copy_of(session, article.url, article.content_hash)
    if article_id is None:
        _settle_duplicate(session, item, existing, article)
        return None
    story = _find_story(session, article_id, fp, article, now) if fp is not None else article_id
    items.set_story(session, article_id, story)
    _parsed(session, item, article_id, fp)
    item.error_kind = None  # the outcome follows when the rules have run
    return article_id


def _parsed(session: Session, item: m.Item, article_id: int, fp: int | None) -> None:
    """The item's article is stored (new, or its text changed): its story bands, and the
    item parsed, its claim and error cleared."""
    if fp is not None:
        items.add_bands(session, article_id, fp, stories.band_keys(fp))
    item.state, item.article_id, item.claimed_until, item.error = (
        ItemState.PARSED,
        article_id,
        None,
        None,
    )


def _settle_duplicate(
    session: Session, item: m.Item, article_id: int | None, article: Article
) -> None:
    """The item is a copy of a stored article (same canonical URL or same text)."""
    item.state, item.article_id, item.claimed_until = ItemState.DUPLICATE, article_id, None
    item.outcome = ItemOutcome.DUPLICATE
    item.outcome_detail = ledger.duplicate_detail(
        session, article_id, article.url, article.content_hash
    )


def _update_changed_article(
    session: Session, item: m.Item, article: Article, fp: int | None, now: datetime
) -> int | None:
    """A new version of an entry whose article (same canonical URL) now reads differently:
    the article takes the new text and goes back to the rules, so a watchlist that matches
    only the new text alerts; the (watchlist, article) constraint keeps the others from
    alerting twice. Only a version of the same entry (same source, same identity) updates;
    the same URL from another entry or source stays a duplicate. Returns the article id
    to run rules on, 0 when the item is settled otherwise (an older version, or text
    another article already has), None when this is not an update."""
    identity = (item.data or {}).get("identity")
    if not identity:
        return None  # a listed link, or an item stored before versions existed
    row = items.at_url_for_update(session, article.url)
    if row is None or row.content_hash == article.content_hash:
        return None
    if items.earlier_version(session, item, row.id, identity) is None:
        return None  # the same URL from another entry or source: a copy
    newer = items.newer_parsed(session, row.id, item.id)
    other = items.with_text(session, article.content_hash)
    if newer is not None or other is not None:  # a later version already won, or a copy
        _settle_duplicate(session, item, other or row.id, article)
        return 0
    _take_new_text(row, article, fp, now)
    items.drop_bands(session, row.id)
    _parsed(session, item, row.id, fp)
    log.info("article %s changed (item %s): rules run again", row.id, item.id)
    return row.id


def _take_new_text(row: m.Article, article: Article, fp: int | None, now: datetime) -> None:
    """The stored article becomes the new version, its rules pending again."""
    row.title, row.body, row.lead = article.title, article.body, article.lead
    row.authors, row.tags = list(article.authors), list(article.tags)
    row.content_hash, row.fingerprint = article.content_hash, fp
    row.published_at = row.published_at or article.published
    row.modified_at = article.modified or row.modified_at
    row.language, row.image_url = article.language or row.language, article.image_url
    row.rules_state, row.enqueued_at, row.claimed_until, row.error = (
        RulesState.PENDING,
        now,
        None,
        None,
    )


def _find_story(session: Session, article_id: int, fp: int, article: Article, now: datetime) -> int:
    """The story this article joins (worker/articles/stories.py decides), or its own."""
    lookup = items.StoryQueries(session)
    story, joined, evidence = stories.find_story(
        lookup, article_id, fp, article.title, article.body, now
    )
    if joined is not None:
        log.info("article %s joins story of article %s: %s", article_id, joined, evidence)
    return story


def story_evidence(session: Session, article_id: int) -> tuple[int, stories.Evidence] | None:
    """Why an article was filed under an earlier article's story (see stories.py)."""
    return stories.story_evidence(items.StoryQueries(session), article_id)
