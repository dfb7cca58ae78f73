"""Polls in batches: beat sends one fetch message per group of due sources, and the task
fetches the group's sources at once on a few threads (more while exchanges are slow), so
the common poll (a 304) costs its HTTP exchange and a share of one task, one read and
one write.

Each source keeps its own claim and its own outcome: the batch reads the claimed rows
in one query, runs each source's HTTP exchange through the same fetcher as a single
poll (politeness, robots.txt, the SSRF guard, deadlines and size caps included), and
records each outcome as its exchange ends: 304s gathered into one transaction (written
within HOLD_SECONDS), a changed source through the single poll's path
(`polling.record_fetched`, committed at once; its new item ids gathered with the other
sources' and sent on within HOLD_SECONDS, so a batch's new items go in a few messages,
not one per source), a failed one on its own row.
One source failing never fails another, and a slow one holds up no other. A worker
killed mid-batch loses only the polls not yet recorded: their claims expire and the
next dispatch claims those sources again.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from worker.config import SourceSpec
from worker.http.fetcher import FetchResult
from worker.sources import polling, schedule
from worker.store import sources

if TYPE_CHECKING:
    from worker.bootstrap import Runtime

log = logging.getLogger(__name__)


# claims per dispatch (one a tick): 500 polls/s at the 10 s tick, above the 333/s of
# 100,000 sources every 5 minutes; the cap keeps a start-up's backlog in the database
# (claimed as threads free up) rather than in the queue, where leases would run out
DISPATCH_LIMIT = 5000


def dispatch_batches(
    rt: Runtime, limit: int = DISPATCH_LIMIT, ahead: float = 0.0
) -> list[tuple[list[int], float]]:
    """Claim the sources due within `ahead` seconds, grouped into fetch batches: (source
    ids, seconds until the batch's last source is due)."""
    plan = polling.dispatch_plan(rt, limit, ahead)
    return schedule.batches(plan, rt.settings.fetch_batch_size, rt.settings.fetch_batch_span)


@dataclass
class _Fetched:
    """One source's HTTP exchange: its result, or what it raised."""

    src: polling.Claimed
    spec: SourceSpec | None
    started: datetime
    result: FetchResult | None = None
    error: Exception | None = None


NewItems = Callable[[list[int]], None]
# a 304 waits at most this long for others to share its transaction, and new item ids
# for others to share their parse message: a batch whose exchanges end together writes
# once and sends once, and a slow source holds up no other's outcome
HOLD_SECONDS = 0.5
# A batch's exchanges spread to one more thread each time this long passes with none of
# them ending. Threads pay off while exchanges wait on the network; on fast answers (a 304
# in a millisecond) they only contend for the GIL: 8 threads a batch cost 1.1 CPU-ms more
# per poll than one (bench/polls.py, 600 local feeds). So a batch settles near latency /
# RAMP_SECONDS threads, at most fetch_batch_threads.
RAMP_SECONDS = 0.02


def fetch_batch(
    rt: Runtime,
    source_ids: list[int],
    notices: list[str] | None = None,
    on_items: NewItems | None = None,
) -> list[int]:
    """Poll a batch of claimed sources; the new item ids of all of them. Each source's
    outcome is recorded as soon as its exchange ends (304s gathered for up to
    HOLD_SECONDS), and `on_items` gets changed sources' new item ids once they are
    committed (gathered for up to HOLD_SECONDS), so a slow source delays no other, nor is
    a killed batch's finished work lost (ids not sent yet are pending rows: the sweep).
    Notices raised on the way (a source disabled) go to `notices`."""
    new_ids: list[int] = []

    def found(ids: list[int]) -> None:
        new_ids.extend(ids)
        if ids and on_items is not None:
            on_items(ids)

    try:
        claimed = polling.claimed_sources(rt, source_ids)
    except Exception as exc:  # the batch's read failed: each source tries alone, fails alone
        log.warning(
            "fetch batch: reading %d sources failed, polling one by one: %s", len(source_ids), exc
        )
        for source_id in source_ids:
            found(polling.fetch_source(rt, source_id, notices))
        return new_ids
    config = rt.config.current().loaded.config
    fetched = [_Fetched(src, config.source(src.ref.name), rt.now()) for src in claimed]
    recorder = _Recorder(rt, notices, found)
    threads = min(len(fetched), rt.settings.fetch_batch_threads)
    if threads <= 1:
        for one in fetched:
            _exchange(rt, one)
            recorder.add(one)
            recorder.flush_due()
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="newswatch-fetch") as pool:
            _exchange_spreading(rt, pool, threads, fetched, recorder)
    recorder.flush()
    return new_ids


def _exchange_spreading(
    rt: Runtime,
    pool: ThreadPoolExecutor,
    threads: int,
    fetched: list[_Fetched],
    recorder: _Recorder,
) -> None:
    """Run the exchanges on one thread, and on one more each time RAMP_SECONDS pass with
    none ending, up to `threads`; each ended exchange hands its thread the next one. The
    pool makes a thread only when none is idle, so fast exchanges keep to one or two."""
    waiting = deque(fetched)
    running: dict[Future[None], _Fetched] = {}

    def start_next() -> None:
        if waiting:
            one = waiting.popleft()
            running[pool.submit(_exchange, rt, one)] = one

    start_next()
    while running:
        can_grow = bool(waiting) and len(running) < threads
        ended, _ = wait(
            running,
            timeout=RAMP_SECONDS if can_grow else HOLD_SECONDS,
            return_when=FIRST_COMPLETED,
        )
        for future in ended:
            recorder.add(running.pop(future))
            start_next()
        if not ended and can_grow:
            start_next()
        recorder.flush_due()


def _exchange(rt: Runtime, one: _Fetched) -> None:
    """The HTTP exchange alone (no database): whatever it raises is kept for its source."""
    one.started = rt.now()
    try:
        one.result = polling.fetch(rt, one.src, one.spec)
    except Exception as exc:
        one.error = exc


class _Recorder:
    """Records each source's outcome as it comes: a failure or a changed feed at once, on
    its own row; 304s gathered into one transaction, written within HOLD_SECONDS."""

    def __init__(self, rt: Runtime, notices: list[str] | None, found: NewItems) -> None:
        self.rt, self.notices, self.found = rt, notices, found
        self.unchanged: list[tuple[_Fetched, dict[str, Any], float]] = []
        self.since = 0.0
        self.new_ids: list[int] = []
        self.new_since = 0.0

    def add(self, one: _Fetched) -> None:
        rt = self.rt
        try:
            if one.error is not None:
                _record_error(rt, one, self.notices)
            elif one.result is not None and one.result.not_modified:
                values, interval = polling.not_modified_values(
                    rt, one.src, one.spec, one.result, one.started
                )
                if not self.unchanged:
                    self.since = time.monotonic()
                self.unchanged.append((one, values, interval))
            elif one.result is not None:
                ids = polling.record_fetched(
                    rt, one.src, one.spec, one.result, one.started, self.notices
                )
                if ids and not self.new_ids:
                    self.new_since = time.monotonic()
                self.new_ids += ids
        except Exception as exc:  # a bug or an input nobody foresaw: this source fails alone
            polling.fail_alone(rt, one.src.ref.id, exc, one.started, self.notices)

    def flush_due(self) -> None:
        now = time.monotonic()
        if self.new_ids and now - self.new_since >= HOLD_SECONDS:
            self._send_new()
        if self.unchanged and now - self.since >= HOLD_SECONDS:
            _record_unchanged(self.rt, self.unchanged, self.notices)
            self.unchanged = []

    def flush(self) -> None:
        self._send_new()
        _record_unchanged(self.rt, self.unchanged, self.notices)
        self.unchanged = []

    def _send_new(self) -> None:
        ids, self.new_ids = self.new_ids, []
        self.found(ids)


def _record_error(rt: Runtime, one: _Fetched, notices: list[str] | None) -> None:
    assert one.error is not None
    if not isinstance(one.error, polling.POLL_ERRORS):
        raise one.error  # recorded as internal by the caller, as a single poll's would be
    failure = polling.failure_of(one.error)
    polling.record_fetch_failure(rt, one.src.ref, one.spec, failure, one.started, notices)


def _record_unchanged(
    rt: Runtime, unchanged: list[tuple[_Fetched, dict[str, Any], float]], notices: list[str] | None
) -> None:
    """Every 304 of the batch in one transaction; if that fails, each row on its own."""
    if not unchanged:
        return
    try:
        with rt.store.session() as session:
            sources.record_not_modified(
                session, [(one.src.ref.id, values) for one, values, _ in unchanged]
            )
    except Exception as exc:
        log.warning(
            "fetch batch: writing %d polls at once failed, one by one: %s", len(unchanged), exc
        )
        for one, values, interval in unchanged:
            try:
                with rt.store.session() as session:
                    sources.record_not_modified(session, [(one.src.ref.id, values)])
            except Exception as one_exc:
                polling.fail_alone(rt, one.src.ref.id, one_exc, one.started, notices)
                continue
            polling.count_success(one.src.ref, 0, True, interval)
        return
    for one, _, interval in unchanged:
        polling.count_success(one.src.ref, 0, True, interval)
