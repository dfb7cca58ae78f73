"""Operational notices the alerts stage raises itself: dead deliveries and batches, and
those the database and the live config show now (raised through worker/tracking/notices.py).

A notice is a delivery to the `notices:` channel, keyed by its incident so that each
incident notifies once (the (notice_key, channel) constraint decides). Every stage
that has something to say (a source disabled, an item quarantined, the watchdog, a
full disk, a dead delivery) calls `raise_notice`; `check_notices` raises those the
database and the live config show now.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from worker.alerts.digest import Notice
from worker.store import deliveries as store
from worker.store import models as m
from worker.tracking.notices import collect, raise_notice, step_failed

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)


def notice_of(d: m.Delivery) -> Notice:
    """The notice a notice delivery carries."""
    data = d.notice or {}
    return Notice(
        id=d.id,
        event=data.get("event", "notice"),
        title=data.get("title", "newswatch notice"),
        text=data.get("text", ""),
        at=d.created_at,
    )


# --- dead deliveries ----------------------------------------------------------------


def dead_batch_notice(
    rt: Runtime, session: Session, batch: m.DigestBatch, now: datetime
) -> str | None:
    notices = rt.config.current().loaded.config.notices
    if notices is None or not notices.delivery_dead:
        return None
    return raise_notice(
        rt,
        session,
        f"delivery_dead:batch:{batch.id}",
        "delivery_dead",
        f"digest to {batch.channel} is dead",
        f"Digest {batch.id} ({batch.size} alert(s)) to channel {batch.channel} gave up after "
        f"{batch.attempts} attempt(s): {batch.last_error}\n"
        f"Retry it with: newswatch deliveries retry {batch.id}",
        now,
    )


def dead_delivery_notice(
    rt: Runtime, session: Session, d: m.Delivery, now: datetime, stage: str | None
) -> str | None:
    notices = rt.config.current().loaded.config.notices
    if notices is None or not notices.delivery_dead:
        return None
    retry = f"Retry it with: newswatch deliveries retry {d.id}"
    if stage in ("load", "render") and d.match_id is not None:
        # The alert itself is broken, not the channel: one incident for the alert, however
        # many channels it was going to (each of its deliveries records the same reason).
        return raise_notice(
            rt,
            session,
            f"delivery_dead:match:{d.match_id}",
            "delivery_dead",
            f"an alert of {d.watchlist or 'a watchlist'} cannot be sent ({stage} failed)",
            f"Delivery {d.id} (match {d.match_id}) to channel {d.channel} gave up after "
            f"{d.attempts} attempt(s): {d.last_error}\nIts deliveries to other channels fail "
            f"the same way: `newswatch deliveries --dead` lists them.\n{retry}",
            now,
        )
    return raise_notice(
        rt,
        session,
        f"delivery_dead:{d.id}",
        "delivery_dead",
        f"delivery to {d.channel} is dead ({d.watchlist or d.kind})",
        f"Delivery {d.id} to channel {d.channel} gave up after {d.attempts} attempt(s): "
        f"{d.last_error}\n{retry}",
        now,
    )


# --- incidents shown by the database and the live config ------------------------------


def check_notices(rt: Runtime) -> list[str]:
    """Raise notices for incidents the database and the live config show now:
    sources failing for longer than `source_failing_after`, a refused config.

    Each kind of incident is checked on its own (its own transaction): one that
    fails is logged and counted, and the others are still checked.
    """
    active = rt.config.current()
    notices = active.loaded.config.notices
    if notices is None:
        return []
    out: list[str] = []
    for kind, check in (
        ("source_failing", _source_failing_notices),
        ("config_rejected", _config_rejected_notices),
        ("config_shrunk", _config_shrunk_notices),
    ):
        try:
            with rt.store.session() as session:
                out += check(rt, session, rt.now())
        except Exception as exc:
            step_failed(f"notices:{kind}", "check", exc)
    return out


def _source_failing_notices(rt: Runtime, session: Session, now: datetime) -> list[str]:
    notices = rt.config.current().loaded.config.notices
    assert notices is not None
    after = timedelta(seconds=notices.source_failing_after)
    out: list[str] = []
    for name, last_ok, created, error, failures in store.failing_sources(session):
        since = last_ok or created
        if since is None or now - since < after:
            continue
        if last_ok is None:
            title = f"source {name} never fetched successfully ({failing_for(now - since)})"
            body = f"Source {name} has never been fetched successfully since it was added at "
        else:
            title = f"source {name} failing for {failing_for(now - since)}"
            body = f"Source {name} has not been fetched successfully since "
        # the incident starts at the last success: a recovery and a new failure is a new one
        collect(
            out,
            raise_notice(
                rt,
                session,
                f"source_failing:{name}:{since.isoformat()}",
                "source_failing",
                title,
                f"{body}{since.isoformat()} ({failures} failure(s) in a row). Last error: {error}",
                now,
            ),
        )
    return out


def _config_rejected_notices(rt: Runtime, session: Session, now: datetime) -> list[str]:
    active = rt.config.current()
    notices = active.loaded.config.notices
    error = rt.config.last_error
    if not error or notices is None or not notices.config_rejected:
        return []
    digest = hashlib.sha256(error.encode()).hexdigest()[:16]
    out: list[str] = []
    collect(
        out,
        raise_notice(
            rt,
            session,
            f"config_rejected:{active.version}:{digest}",
            "config_rejected",
            rejected_title(error),
            f"A change to {rt.config.path} was refused; version {active.version} stays in "
            f"force.\n\n{error}",
            now,
        ),
    )
    return out


def failing_for(span: timedelta) -> str:
    """How long a source has failed, as read in a title: minutes under an hour ("45 min",
    never "0 h"), whole hours under two days, then days."""
    minutes = max(int(span.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.0f} h"
    return f"{minutes / 1440:.0f} days"


def rejected_title(error: str) -> str:
    """A refused config's title: its first problem, which names the file and line
    ("config rejected: config/newswatch.yaml:12: watchlists[x].notify: ...")."""
    first = error.strip().splitlines()[0] if error.strip() else "unknown problem"
    title = f"config rejected: {first}"
    if len(title) > 200:
        title = title[:199] + "…"
    return title


def _config_shrunk_notices(rt: Runtime, session: Session, now: datetime) -> list[str]:
    notices = rt.config.current().loaded.config.notices
    if notices is None or not notices.config_shrunk:
        return []
    out: list[str] = []
    for version, removed in rt.config.shrinks:
        collect(
            out,
            raise_notice(
                rt,
                session,
                f"config_shrunk:{version}",
                "config_shrunk",
                "config reload removed most sources or watchlists",
                f"Version {version} of {rt.config.path} is in force: {removed}. Monitoring of "
                "what was removed has stopped; restore the file if this was not meant.",
                now,
            ),
        )
    return out
