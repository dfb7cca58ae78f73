"""The drop ledger: what became of every item, and the terminal states of failing work.

Every item ends with an `outcome` and a readable `outcome_detail` (the evidence),
written in the same transaction as the state change it follows from:

| outcome | set by | detail |
|---|---|---|
| `matched` | rules | the watchlists that alerted |
| `story_duplicate` | rules | the story, and the watchlists its first article already alerted |
| `excluded` | rules | per watchlist with terms found, what stopped it (exclude, source, rule) |
| `no_match` | rules | no watchlist term that could trigger was found |
| `duplicate` | parse | same canonical URL / content hash as article N |
| `refused` | fetch | why the entry could not be read (`item.error`) |
| `quarantined` | parse or rules | the attempt count and the last error |

`None` means still on its way (pending, or parsed and waiting for the rules).

Failures. A parse or rules attempt that raises anything is recorded on its row with
its class and a kind (`error_kind`: a fetch error kind, `extraction`, `time_limit`,
`internal` for anything unforeseen, i.e. a bug, or `killed` when no attempt came back
at all), retried with backoff up to
`NEWSWATCH_MAX_ATTEMPTS`, then quarantined: counted (`newswatch_quarantined_total`)
and announced by an operational notice, one per source and hour for items and one
per error kind and hour for articles, so that a bug that fails every row sends one
notice an hour, not thousands (`newswatch status` has the counts). An input error
that cannot go away (a page without an article, a 404) quarantines its item at the
first attempt, counted but without a notice: that is the feed's content, not a fault.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from worker.core.clean import clean_text
from worker.core.errors import NewswatchError
from worker.core.redact import redact_text
from worker.core.states import ItemOutcome, ItemState, MatchState, RulesState
from worker.store import models as m
from worker.store import outcomes, status
from worker.tracking import metrics
from worker.tracking.notices import collect, raise_notice

if TYPE_CHECKING:
    from worker.bootstrap import Runtime
    from worker.matching.matcher import Rejection

log = logging.getLogger(__name__)

PENDING = status.PENDING  # shown for items still on their way (outcome not yet recorded)
MAX_DETAIL = outcomes.MAX_DETAIL


def describe(exc: BaseException) -> str:
    """The error as recorded on a row: its class and message."""
    text = "over the soft time limit" if error_kind(exc) == "time_limit" else str(exc)
    # an exception's text may quote the input (NUL, controls): cleaned like every stored
    # text, and any URL in it cut to scheme and host (a URL may carry a token)
    text = redact_text(clean_text(text))
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:MAX_DETAIL]


def error_kind(exc: BaseException) -> str:
    """Classify an exception: the error kinds we raise ourselves, else `internal`."""
    if isinstance(exc, NewswatchError):  # FetchError, ExtractionError, ...
        return str(exc.kind)
    if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's; the core never imports it
        return "time_limit"
    return "internal"


outcome_of = status.outcome_of


def _hour(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H")


# --- rules -----------------------------------------------------------------------------


def record_rules_outcome(
    session: Session,
    article_id: int,
    story_id: int | None,
    matched: Sequence[str],
    rejected: Sequence[Rejection],
    watchlists: int,
    version: str,
) -> tuple[str, str]:
    """Write the rules step's outcome on every item parsed into the article, from the
    match rows stored for the `matched` watchlists (so a redelivered task that found
    them already written gives the same answer). Returns (outcome, detail)."""
    rows = outcomes.match_states(session, article_id, matched)
    alerted = [w for w, state in rows if state == MatchState.ALERTED]
    repeats = [w for w, state in rows if state != MatchState.ALERTED]
    story = story_id or article_id
    if alerted:
        outcome, detail = ItemOutcome.MATCHED, "alerted " + ", ".join(alerted)
        if repeats:
            detail += f"; story {story} had already alerted " + ", ".join(repeats)
    elif repeats:
        outcome = ItemOutcome.STORY_DUPLICATE
        firsts = outcomes.first_alerts(session, story, repeats)
        evidence = ", ".join(
            f"{w} by article {a} (match {mid})" for w, a, mid in sorted(firsts, key=str)
        )
        detail = f"story {story} (first article {story}) had already alerted {evidence}"
    elif rejected:
        outcome = ItemOutcome.EXCLUDED
        detail = "; ".join(f"{r.watchlist}: {r.reasons[0]}" for r in rejected)
    else:
        outcome = ItemOutcome.NO_MATCH
        detail = f"no term of the {watchlists} watchlist(s) of config {version} found"
    set_article_outcome(session, article_id, outcome, detail)
    return outcome, detail


set_article_outcome = outcomes.set_article_outcome


def duplicate_detail(session: Session, article_id: int | None, url: str, content_hash: str) -> str:
    """Which constraint made an item a copy of an existing article."""
    row = outcomes.article_identity(session, article_id)
    if row is not None and row[0] == url:
        return f"same canonical URL as article {article_id}: {url}"[:MAX_DETAIL]
    if row is not None and row[1] == content_hash:
        return f"same content hash as article {article_id} ({content_hash[:16]}…)"
    return f"same canonical URL or content hash as article {article_id}"


# --- terminal states -----------------------------------------------------------------


def quarantine_item(
    rt: Runtime, session: Session, item: m.Item, reason: str, now: datetime, *, notify: bool = True
) -> str | None:
    """Put an item in its terminal failed state, on its row, counted and (unless
    `notify` is false) announced. Returns the notice delivery's id (to enqueue after
    the commit) when one is new."""

    item.state, item.claimed_until = ItemState.FAILED, None
    item.outcome, item.outcome_detail = ItemOutcome.QUARANTINED, reason[:MAX_DETAIL]
    source = outcomes.source_name(session, item.source_id) or "?"
    item.error_kind = item.error_kind or "killed"  # no attempt came back to say
    metrics.count_quarantined("item", item.error_kind)
    log.error(
        "item %s quarantined: %s",
        item.id,
        reason,
        extra={"item_id": item.id, "source_id": item.source_id, "event": "item_quarantined"},
    )
    if not notify:
        return None
    return raise_notice(
        rt,
        session,
        f"item_quarantined:{source}:{_hour(now)}",
        "item_quarantined",
        f"item from {source} quarantined",
        f"Item {item.id} of source {source} ({item.url or item.entry_key}) was quarantined: "
        f"{reason}\nSee `newswatch why {item.id}`. Further items of {source} quarantined "
        "within this hour raise no other notice; `newswatch status` counts them.",
        now,
    )


def quarantine_article(
    rt: Runtime, session: Session, article: m.Article, reason: str, now: datetime
) -> str | None:
    """Put an article whose rules keep failing in its terminal state (`rules_state`
    failed); its items record the outcome. Returns a new notice's id, if any."""

    article.rules_state, article.claimed_until = RulesState.FAILED, None
    kind = article.error_kind = article.error_kind or "killed"  # no attempt came back to say
    set_article_outcome(session, article.id, ItemOutcome.QUARANTINED, f"rules failed: {reason}")
    metrics.count_quarantined("article", kind)
    log.error(
        "article %s quarantined (rules): %s",
        article.id,
        reason,
        extra={"article_id": article.id, "event": "article_quarantined"},
    )
    return raise_notice(
        rt,
        session,
        f"rules_failed:{kind}:{_hour(now)}",
        "rules_failed",
        f"watchlist rules failed on an article ({kind})",
        f"The rules could not be applied to article {article.id} ({article.canonical_url}): "
        f"{reason}\nNo alert was sent for it. See `newswatch why {article.canonical_url}`. "
        f"Further articles failing with a {kind} error within this hour raise no other "
        "notice; `newswatch status` counts them.",
        now,
    )


NO_ATTEMPT = "no attempt finished (worker killed or over its time limit)"


def attempts_spent(
    rt: Runtime,
    session: Session,
    row: m.Item | m.Article,
    now: datetime,
    notices: list[str] | None,
) -> bool:
    """At claim time: True when the row (an item or an article) has had its last attempt,
    and then it is quarantined here, its notice's id added to `notices`. With no error
    recorded, no attempt came back at all (worker killed, hard time limit)."""
    if row.attempts <= rt.settings.max_attempts:
        return False
    row.error = f"quarantined after {row.attempts - 1} attempts: {row.error or NO_ATTEMPT}"[:2000]
    if isinstance(row, m.Item):
        notice = quarantine_item(rt, session, row, row.error, now)
    else:
        notice = quarantine_article(rt, session, row, row.error, now)
    collect(notices, notice)
    return True
