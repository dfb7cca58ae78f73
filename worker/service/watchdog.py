"""The watchdog: notices when newswatch stops watching, and a heartbeat while it watches.

Run from the periodic outbox tick (`worker.service.outbox.tick`). Each condition is a query on
the database (the source of truth, whatever process did or did not do the work):

- `no_fetch`: sources are enabled, but none was fetched successfully within its own
  poll interval plus `notices.no_fetch_after`;
- `queue_stalled`: the oldest waiting work (a pending item, an article waiting for the
  rules, a delivery pending or due for a retry) has waited longer than
  `notices.queue_stalled_after`;
- `deliveries_stalled`: no alert was sent in the last `notices.deliveries_stalled_after`,
  although alerts made in its older half were meant to go out at once, and matches are
  still being made in its newer half.

A condition that begins to hold opens an incident (its `watchdog_state` row notes when):
one notice per incident, keyed by that moment, however many ticks see it; when it holds
no more the incident closes, and the next one is a new notice. Feed gaps (recorded by
the fetch step, worker/sources/gap_log.py) get one notice each from here too.

The heartbeat (`heartbeat:` in the config) is pinged after a healthy check: no condition
holds, every check ran, and some source has been fetched successfully. An unhealthy
check does not ping (or pings `fail_url`), so a dead-man's switch such as healthchecks.io
or Cronitor notices from outside when newswatch or its host is gone. At most one ping
per `heartbeat.every`, across all processes (a conditional update claims the slot).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from worker.bootstrap import Runtime
from worker.config import Config, HeartbeatSpec, NoticesSpec
from worker.core.durations import human as _ago
from worker.core.redact import redact_text, redact_url
from worker.store import incidents
from worker.store import status as status_queries
from worker.tracking import metrics
from worker.tracking.notices import raise_notice, step_failed

log = logging.getLogger(__name__)

GAP_NOTICE_WINDOW = timedelta(days=1)  # older gaps with no notice yet are left unnotified


@dataclass(frozen=True)
class Limits:
    no_fetch_after: int
    queue_stalled_after: int
    deliveries_stalled_after: int

    @classmethod
    def of(cls, notices: NoticesSpec | None) -> Limits:
        """The configured limits, or the documented defaults when there is no `notices:`
        (the heartbeat's health is judged by them too)."""
        fields = NoticesSpec.model_fields

        def pick(name: str) -> int:
            return int(getattr(notices, name) if notices else fields[name].default)

        return cls(
            pick("no_fetch_after"), pick("queue_stalled_after"), pick("deliveries_stalled_after")
        )


@dataclass(frozen=True)
class Finding:
    condition: str
    holds: bool
    title: str = ""
    text: str = ""


# --- the conditions ------------------------------------------------------------------


def check_no_fetch(session: Session, now: datetime, limits: Limits) -> Finding:
    after = timedelta(seconds=limits.no_fetch_after)
    newest = incidents.newest_success(session)
    if newest is not None and now - newest <= after:
        return Finding("no_fetch", False)  # the usual case, in one aggregate
    rows = incidents.enabled_schedules(session)
    if not rows:
        return Finding("no_fetch", False)
    for _name, ok_at, fetch_at, next_at, created, every in rows:
        interval = timedelta(seconds=every)
        if ok_at is not None and fetch_at == ok_at and next_at > ok_at:
            interval = max(interval, next_at - ok_at)  # stretched by the feed's own ttl
        if now - (ok_at or created) <= interval + after:
            return Finding("no_fetch", False)  # this one is still within its interval
    last = max(rows, key=lambda r: r[1] or r[4])
    since = last[1] or last[4]
    newest_text = (
        f"the newest success was {_ago(now - since)} ago ({since:%Y-%m-%d %H:%M} UTC, "
        f"source {last[0]})"
        if last[1]
        else "no source has ever been fetched successfully"
    )
    return Finding(
        "no_fetch",
        True,
        f"no source fetched successfully for {_ago(now - since)}",
        f"None of the {len(rows)} enabled source(s) has been fetched successfully within its "
        f"poll interval plus {_ago(after)}: {newest_text}. Check that beat and the fetch "
        "workers run (`newswatch health`), the network, and the errors in `newswatch status`.",
    )


oldest_waiting = status_queries.oldest_waiting


def check_queue(session: Session, now: datetime, limits: Limits) -> Finding:
    after = timedelta(seconds=limits.queue_stalled_after)
    waiting = {k: v for k, v in oldest_waiting(session, now).items() if v is not None}
    late = {k: now - v for k, v in waiting.items() if now - v > after}
    if not late:
        return Finding("queue_stalled", False)
    worst = max(late, key=lambda k: late[k])
    each = ", ".join(f"{k} {_ago(v)}" for k, v in sorted(late.items()))
    return Finding(
        "queue_stalled",
        True,
        f"work waiting for {_ago(late[worst])} (oldest: {worst})",
        f"The oldest waiting work is older than {_ago(after)}: {each}. Check that some worker "
        "consumes every queue (`newswatch health`) and the errors in `newswatch status`.",
    )


def check_deliveries(session: Session, now: datetime, limits: Limits) -> Finding:
    """No alert sent in the last window, although alerts made to go out at once (not held
    for a digest) in its older half are unsent (time enough to go out, or to fail all
    their attempts: a dead alert counts, the silence is what this tells) and matches are
    still being made in its newer half."""
    window = timedelta(seconds=limits.deliveries_stalled_after)
    start = now - window
    half = now - window / 2
    # by indexed columns first (match and delivery created_at): the usual answer is "no".
    # Matches still coming (in the newer half): one burst whose alerts failed is the
    # business of `delivery_dead`, not a stalled sender.
    if not incidents.matched_since(session, half):
        return Finding("deliveries_stalled", False)
    unsent = incidents.unsent_alerts(session, start, half)
    if not unsent or incidents.alert_sent_since(session, start):
        return Finding("deliveries_stalled", False)
    errors = incidents.recent_alert_errors(session, start)
    last = "; ".join(f"{c}: {e[:200]}" for c, e in errors) or "none recorded"
    return Finding(
        "deliveries_stalled",
        True,
        f"no alert sent for {_ago(window)} while matches are made",
        f"Watchlists matched articles in the last {_ago(window)}, but none of the {unsent} "
        f"alert(s) made then has been sent. Last errors: {last}. See `newswatch deliveries` "
        "and `newswatch health`.",
    )


CHECKS: tuple[tuple[str, Callable[[Session, datetime, Limits], Finding]], ...] = (
    ("no_fetch", check_no_fetch),
    ("queue_stalled", check_queue),
    ("deliveries_stalled", check_deliveries),
)


# --- the tick ---------------------------------------------------------------------


def tick(rt: Runtime) -> list[str]:
    """Check every condition (each on its own: one that fails is logged and counted, the
    others still run), raise notices for new incidents and gaps, ping the heartbeat.
    Returns the notice deliveries to enqueue."""
    config = rt.config.current().loaded.config
    limits = Limits.of(config.notices)
    now = rt.now()
    out: list[str] = []
    problems: list[str] = []
    for name, check in CHECKS:
        try:
            with rt.store.session() as session:
                finding = check(session, now, limits)
                out += _track(rt, session, config, finding, now)
        except Exception as exc:
            step_failed(f"watchdog:{name}", "check", exc)
            problems.append(f"{name} check failed")
            continue
        if finding.holds:
            problems.append(finding.title)
    try:
        with rt.store.session() as session:
            out += _gap_notices(rt, session, config, now)
    except Exception as exc:
        step_failed("watchdog:gaps", "notices", exc)
    if config.heartbeat is not None:
        try:
            if not problems and not _fetched_ever(rt):
                problems.append("no source fetched successfully yet")
            heartbeat(rt, config.heartbeat, problems, now)
        except Exception as exc:
            step_failed("watchdog:heartbeat", "ping", exc)
    return out


def _track(
    rt: Runtime, session: Session, config: Config, finding: Finding, now: datetime
) -> list[str]:
    """Open or close the condition's incident; notify once per incident."""
    if not finding.holds:  # the usual case: a read, and a write only to close
        opened = incidents.close_incident(session, finding.condition)
        if opened is not None:
            log.warning(
                "watchdog: %s cleared (open since %s)", finding.condition, opened.isoformat()
            )
        return []
    opened, new = incidents.open_incident(rt.store, session, finding.condition, now, finding.text)
    if new:
        _count_incident(finding.condition)
        log.error("watchdog: %s: %s", finding.title, finding.text)
    if config.notices is None:
        return []
    key = f"{finding.condition}:{opened.isoformat()}"  # the incident
    notice = raise_notice(
        rt,
        session,
        key,
        finding.condition,
        finding.title,
        f"{finding.text}\nSince {opened:%Y-%m-%d %H:%M} UTC.",
        now,
    )
    return [notice] if notice else []


def _gap_notices(rt: Runtime, session: Session, config: Config, now: datetime) -> list[str]:
    """One notice per gap recorded (and not notified yet) in the last day."""
    if config.notices is None or not config.notices.gaps:
        return []
    rows = incidents.gaps_to_notify(session, now - GAP_NOTICE_WINDOW)
    out: list[str] = []
    for gap, name, every in rows:
        notice = raise_notice(
            rt,
            session,
            f"source_gap:{gap.id}",
            "source_gap",
            f"source {name}: possible missed items",
            f"Source {name}: {gap.detail}.\nnewswatch cannot fetch what a feed no longer shows. "
            f"If this repeats, poll it more often (every: {_ago(timedelta(seconds=every))} now) "
            "or check for downtime around the last successful poll.",
            now,
        )
        gap.notified_at = now
        if notice:
            out.append(notice)
    return out


def _fetched_ever(rt: Runtime) -> bool:
    with rt.store.session() as session:
        return incidents.any_source_fetched(session)


# --- the heartbeat -----------------------------------------------------------------


def heartbeat(rt: Runtime, spec: HeartbeatSpec, problems: list[str], now: datetime) -> str:
    """Ping the heartbeat URL (or the fail URL when `problems`), at most once per `every`.
    Returns what happened: ok, fail, error, skipped (unhealthy, no fail URL), not_due."""
    healthy = not problems
    every = timedelta(seconds=spec.every)
    if not incidents.heartbeat_due(rt.store, now, every):
        return "not_due"  # not yet, or another process took this slot
    url = spec.url if healthy else spec.fail_url
    if url is None:
        _note_heartbeat(rt, f"not pinged at {now:%Y-%m-%d %H:%M:%S} UTC: {'; '.join(problems)}")
        return "skipped"
    target = url.get_secret_value()
    outcome = "ok" if healthy else "fail"
    try:
        fetcher = rt.fetcher()
        if spec.method == "post":
            body = {"status": outcome, "at": now.isoformat(), "problems": problems}
            fetcher.post_json(target, json.dumps(body).encode(), {})
        else:
            fetcher.get(target, expect="any", respect_robots=False)
    except Exception as exc:  # the ping failed: say why, without the secret URL
        reason = redact_text(f"{type(exc).__name__}: {exc}", [target])
        log.warning("heartbeat ping to %s failed: %s", redact_url(target), reason)
        _note_heartbeat(rt, f"ping failed at {now:%Y-%m-%d %H:%M:%S} UTC: {reason}")
        _count_heartbeat("error")
        return "error"
    what = "pinged" if healthy else f"pinged the fail URL ({'; '.join(problems)})"
    log.info("heartbeat: %s %s", what, redact_url(target))
    _note_heartbeat(rt, f"{what} at {now:%Y-%m-%d %H:%M:%S} UTC", pinged=now)
    _count_heartbeat(outcome)
    return outcome


def _note_heartbeat(rt: Runtime, detail: str, pinged: datetime | None = None) -> None:
    incidents.note_heartbeat(rt.store, redact_text(detail)[:2000], pinged)


# --- what status shows ---------------------------------------------------------------


def status(session: Session, now: datetime) -> dict[str, Any]:
    """Open incidents, the heartbeat's last word, and how long the oldest work waited."""
    conditions, hb = status_queries.watchdog_rows(session)
    return {
        "incidents": [
            {"condition": r.name, "since": r.opened_at, "detail": r.detail}
            for r in conditions
            if r.opened_at is not None
        ],
        "heartbeat": None if hb is None else {"last_ping": hb.checked_at, "last": hb.detail},
        "oldest_waiting_seconds": {
            k: round((now - v).total_seconds()) if v else None
            for k, v in oldest_waiting(session, now).items()
        },
    }


def _count_incident(condition: str) -> None:

    metrics.count_watchdog_incident(condition)


def _count_heartbeat(outcome: str) -> None:

    metrics.count_heartbeat(outcome)


__all__ = ["CHECKS", "Finding", "Limits", "heartbeat", "oldest_waiting", "status", "tick"]
