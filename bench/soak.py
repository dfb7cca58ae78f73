"""Soak: months of unattended running, in two parts, since no one run can do both honestly.

    .venv/bin/python bench/soak.py part-a --sources 4 --days 180           # ~5-10 min
    .venv/bin/python bench/soak.py part-b --sources 300 --interval 20 --duration 240
    .venv/bin/python bench/soak.py part-a --database postgres --sources 2 --days 120

Part A, months in minutes: the database over time, and exactly once.
    The real pipeline step functions (worker/sources/polling.py dispatch_due,
    fetch_source; worker/articles/parsing.py parse_item; worker/matching/applying.py
    apply_rules; worker/alerts/sending.py deliver; worker/service/outbox.py tick;
    worker/service/sweep.py sweep;
    worker/service/retention.py prune) under a controlled clock, in process, against a real
    HTTP server on 127.0.0.1 whose feeds are stamped by that clock, a real webhook receiver
    and a file channel,
    on SQLite (or PostgreSQL: a throwaway database on the local server). A FIFO queue
    stands in for Redis: each step's returned ids are its messages, run in order.

    - Load (docs/load.md): source i publishes an item every `--item-every` (4 x the
      5-minute poll interval: 72 a day), phases spread; 10% carry the watched word.
      Item text is a title and a ~400-character summary (a summary feed; bench/storage.py
      measures a full-content one), words unique to the item so no two merge as one story.
    - Coarse steps: the clock moves `--step-hours` (6 h) at a time, and every due source
      is polled once per step; its feed lists everything published in the last
      `--feed-steps` steps (3), so one failed step is read again at the next. What is
      kept: every item arrives, is stored, parsed, matched and alerted at the item rate;
      retention works in days (its shortest period is 3 days) and pruning runs every
      step, so a 6-hour step changes neither the rows kept nor when they go. What is not
      simulated: 71 of 72 polls a source makes per step (in reality 304s or repeats of
      the same entries: they write no row), and the time of day inside a step.
    - Scale: the database size is linear in items, and items in sources x days, so a few
      sources at the real item rate stand for many (bytes per source are measured and
      multiplied out). The real pipeline does ~50-100 items a second on this shared
      machine: 180 days of 4 sources (52,000 items) take minutes; 50 sources would take
      hours, so the source count, not the item rate, is scaled down.
    - Retention: `article_text` and `attempts` at their defaults (30 d); `deliveries` and
      `entries` shortened to 90 d (defaults 365 d / 400 d) so the database reaches its
      steady state inside 180 days and is seen to level off. The default steady state
      is extrapolated from two measured costs: bytes per item while its text is kept
      (measured before `article_text` first passes) and after (solved from the steady
      state), times items per day x (30 d, 370 d).
    - Events, at fixed fractions of the run (so a short run has them too): restarts (a
      fresh Runtime over the same database: 20%, 60%, 80%); a source added (25%); a
      disk-full episode (30%, one step, in the growth phase: at the steady state pruning
      frees the pages new rows need); a killed worker (35%: an item and a delivery
      claimed by a worker that dies, their leases lapse, the sweep takes them back); a
      Redis restart (40%: halfway through a step the queue is emptied; only the sweep
      finds the lost work); a watchlist changed (50%: a second keyword); a source
      removed (70%).
    - Disk full: `--disk-full tmpfs` puts the SQLite file on a tmpfs of its own (root
      only: mount) and fills it with a file for the episode, so SQLite itself reports
      SQLITE_FULL wherever it first needs a page; `inject` (PostgreSQL, or no mount)
      makes every writing statement raise the driver's own disk-full error
      (sqlite3.OperationalError "database or disk is full" / psycopg DiskFull) at the
      DB layer for the step. `auto` takes tmpfs when it can. A task that raises is
      counted, as Celery would log it, and its message is gone: the sweep recovers.
    - The check, at the end: every item a source published while it was in the config,
      and that matched a watchlist in force when it was fetched, reached each channel
      (an immediate webhook, a daily file digest) under exactly one delivery id; none
      that should not. A repeat of the same delivery id (an attempt that sent and died
      before recording it: at-least-once, dropped by id by the receiver) is counted apart.

Part B, real processes for real minutes: memory.
    `newswatch worker` processes in the layout `newswatch run` uses (a threads worker for
    fetch and alerts, a prefork worker for control, parse and rules) and beat, with
    bench/load.py's machinery (feed server, private redis-server, database). RSS of every
    worker process is sampled every `--sample-every` seconds with psutil, and a
    least-squares slope (MB/hour) fitted after `--warmup` seconds, per process and per
    worker tree. Minutes cannot show months, only that nothing grows per item handled.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import load as loadbench  # noqa: E402
from bench.storage import WORDS  # noqa: E402
from tests.helpers.httpserver import RecordedRequest, serve  # noqa: E402
from tests.helpers.pipeline import Clock  # noqa: E402
from tests.helpers.servers import throwaway_database  # noqa: E402
from tests.helpers.webhook_receiver import WebhookReceiver  # noqa: E402

DAY = 86400
WORD, WORD2 = "Zephyr", "Quokka"  # watched from the start; added to the watchlist at 50%
QUOKKA_PERCENT = 5.0
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# when things happen, as fractions of the run
RESTARTS = (0.2, 0.6, 0.8)
DISK_FULL, KILLED_WORKER, REDIS_RESTART = 0.3, 0.35, 0.4
WATCHLIST_EDIT, ADD_SOURCE, REMOVE_SOURCE = 0.5, 0.55, 0.7  # the source added is the one removed


@dataclass
class Options:
    sources: int = 4
    days: int = 180
    step_hours: float = 6.0
    poll: int = 300  # every source's `every:` (seconds)
    item_every: float = 0.0  # default 4 x poll
    hit_percent: float = 10.0
    feed_steps: int = 2  # a feed lists what was published in the last N steps
    article_text: str = "30d"
    attempts: str = "30d"
    deliveries: str = "90d"
    entries: str = "90d"
    report_every: float = 10.0  # days
    database: str = "sqlite"  # or postgres
    disk_full: str = "auto"  # tmpfs | inject | none
    tmpfs_size: str = "2g"
    postgres: str = PG_ADMIN  # admin URL: a throwaway database is made there
    workdir: Path | None = None
    out: Callable[[str], None] = print


# --- the simulated sources ----------------------------------------------------------------


@dataclass
class SourceLife:
    index: int
    start: float  # epoch seconds: publishes from here
    end: float | None = None  # removed from the config at (its last poll was then)


class Feeds:
    """Feeds on a real HTTP server, generated from the simulated clock: source i's item k
    is out at Plan.published(i, k) (bench/load.py's plan), if inside the source's life."""

    def __init__(self, site: Any, clock: Clock, opts: Options, t0: float) -> None:
        self.site, self.clock = site, clock
        self.item_every = opts.item_every or 4 * opts.poll
        self.plan = loadbench.Plan(t0=t0, item_every=self.item_every, hit_percent=opts.hit_percent)
        self.window = opts.feed_steps * opts.step_hours * 3600
        self.lives: dict[int, SourceLife] = {}

    def add(self, i: int, start: float) -> None:
        self.lives[i] = SourceLife(i, start)
        self.site.routes[f"/feed/{i}.xml"] = lambda request, i=i: self._answer(i, request)

    def url(self, i: int) -> str:
        return self.site.url(f"/feed/{i}.xml", host=f"s{i}.load.localhost")

    def link(self, i: int, k: int) -> str:
        return self.site.url(f"/item/{i}/{k}", host=f"s{i}.load.localhost")

    def items(self, i: int, since: float, until: float) -> list[int]:
        """Item numbers of source i published in (since, until], in its life."""
        life = self.lives[i]
        since = max(since, life.start - 1e-6)
        until = min(until, life.end) if life.end is not None else until
        first = max(0, self.plan.latest(i, since) + 1)
        return [k for k in range(first, self.plan.latest(i, until) + 1)]

    def quokka(self, i: int, k: int) -> bool:
        digest = hashlib.blake2b(f"q{i}/{k}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") % 10000 < QUOKKA_PERCENT * 100

    def entry(self, i: int, k: int) -> str:
        rng = random.Random(i * 1_000_003 + k)
        words = [rng.choice(WORDS) for _ in range(48)]
        for j in range(0, 48, 4):  # words of its own: each item a story of its own
            words[j] = f"u{i}x{k}y{j}"
        topic = f"{WORD} sighting" if self.plan.hits(i, k) else "Weather update"
        if self.quokka(i, k):
            topic += f" near {WORD2}"
        published = datetime.fromtimestamp(self.plan.published(i, k), self.clock.now.tzinfo)
        link = self.link(i, k)
        return (
            f"<item><title>{topic} {i}-{k}</title><link>{link}</link><guid>{link}</guid>"
            f"<pubDate>{published:%a, %d %b %Y %H:%M:%S +0000}</pubDate>"
            f"<description>{topic} report: {' '.join(words)}.</description></item>"
        )

    def _answer(self, i: int, _request: RecordedRequest) -> tuple[int, dict[str, str], str]:
        now = self.clock.now.timestamp()
        entries = "".join(self.entry(i, k) for k in reversed(self.items(i, now - self.window, now)))
        body = (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>source '
            f"{i}</title>{entries}</channel></rss>"
        )
        return 200, {"Content-Type": "application/rss+xml"}, body


# --- disk full ------------------------------------------------------------------------------


class DiskFull:
    """A full disk for a span: `tmpfs` fills the tmpfs the SQLite file is on; `inject`
    makes every writing statement raise the driver's disk-full error."""

    WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)

    def __init__(self, mode: str, mount: Path | None) -> None:
        self.mode, self.mount = mode, mount
        self.active = False
        self.injected = 0
        self._filler = mount / "filler" if mount else None
        self._engines: set[int] = set()

    def watch(self, engine: Any, postgres: bool) -> None:
        """Hook a (new) engine: at a restart the runtime builds another."""
        if self.mode != "inject" or id(engine) in self._engines:
            return
        from sqlalchemy import event

        self._engines.add(id(engine))

        def full(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
            if self.active and self.WRITES.match(statement):
                self.injected += 1
                if postgres:
                    import psycopg

                    raise psycopg.errors.DiskFull("could not extend file: No space left on device")
                import sqlite3

                raise sqlite3.OperationalError("database or disk is full")

        event.listen(engine, "before_cursor_execute", full)

    def start(self) -> None:
        self.active = True
        if self.mode == "tmpfs" and self._filler is not None and self.mount is not None:
            st = os.statvfs(self.mount)
            with open(self._filler, "wb") as fh:
                os.posix_fallocate(fh.fileno(), 0, st.f_bavail * st.f_frsize)

    def stop(self) -> None:
        self.active = False
        if self._filler is not None:
            self._filler.unlink(missing_ok=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs of its own at `path` (True), or False if it cannot be mounted here."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Snapshot:
    day: float
    file_bytes: int  # the database file (SQLite) or pg_database_size
    used_bytes: int  # pages in use (SQLite: page_count - freelist)
    free_bytes: int
    wal_bytes: int
    rows: dict[str, int]


@dataclass
class Result:
    options: dict[str, Any]
    disk_full_mode: str = ""
    snapshots: list[Snapshot] = field(default_factory=list)
    items_published: int = 0
    expected_alerts: int = 0
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    failures_in_episode: int = 0  # tasks that raised while the disk was full
    injected: int = 0
    unexpected_errors: list[str] = field(default_factory=list)
    lost_messages: int = 0  # queue entries dropped by the "Redis restart"
    killed: list[str] = field(default_factory=list)  # rows a killed worker held
    swept: dict[str, int] = field(default_factory=dict)
    active_sources: int = 0
    text_bytes_per_item: float = 0.0
    stub_bytes_per_item: float = 0.0
    wall_seconds: float = 0.0

    @property
    def exactly_once(self) -> bool:
        return all(
            c["missing"] == 0 and c["extra"] == 0 and c["twice"] == 0
            for c in self.channels.values()
        ) and bool(self.channels)


def config_text(
    opts: Options, feeds: Feeds, hook_url: str, sources: list[int], words: list[str]
) -> str:
    lines = ["sources:"]
    lines += [f"  - {{name: s{i}, feed: '{feeds.url(i)}', every: {opts.poll}s}}" for i in sources]
    keywords = ", ".join(words)
    lines += [
        "watchlists:",
        f"  - {{name: watch, keywords: [{keywords}], notify: [hook, archive]}}",
        "  - {name: quiet, keywords: [obsidian lighthouse], notify: [hook]}",
        "channels:",
        f"  - {{name: hook, webhook: '{hook_url}'}}",
        "  - {name: archive, file: alerts.jsonl, digest: daily}",
        "fetch:",
        "  allow_networks: ['.load.localhost', '127.0.0.0/8']",
        "  deadline: 30",
        "retention:",
        f"  article_text: {opts.article_text}",
        f"  attempts: {opts.attempts}",
        f"  deliveries: {opts.deliveries}",
        f"  entries: {opts.entries}",
    ]
    return "\n".join(lines) + "\n"


def build_runtime(work: Path, db_url: str, clock: Clock) -> Any:
    from worker.bootstrap import Runtime
    from worker.bootstrap.config_in_force import LiveConfig
    from worker.config.to_sources import fetch_options
    from worker.http.fetcher import Fetcher
    from worker.settings import Settings
    from worker.store.db import Store

    class SimRuntime(Runtime):
        """The per-host pause between two requests (0.2 s of wall time) only costs wall
        time under a simulated clock, where a step's requests come back to back: 0."""

        def fetcher(self) -> Fetcher:
            spec = self.config.current().loaded.config.fetch
            if self._fetcher is None or spec != self._fetch_spec:
                self._fetcher, self._fetch_spec = (
                    Fetcher(fetch_options(spec), min_interval=0.0),
                    spec,
                )
            return self._fetcher

    settings = Settings.from_env(
        {
            "DATABASE_URL": db_url,
            "NEWSWATCH_DATA_DIR": str(work / "data"),
            "NEWSWATCH_CONFIG": str(work / "soak.yaml"),
            "NEWSWATCH_SCHEDULE_JITTER": "0",  # exact schedules under the controlled clock
        }
    )
    store = Store(settings.database_url)
    store.upgrade()
    config = LiveConfig(work / "soak.yaml", 0.0)
    return SimRuntime(settings=settings, store=store, config=config, clock=clock)


class Transport:
    """What Redis is to the workers: messages (task, id) run in order, follow-ups
    appended. A task that raises is logged and its message gone, as in Celery."""

    def __init__(self, result: Result, disk: DiskFull) -> None:
        self.queue: deque[tuple[str, Any]] = deque()
        self.result, self.disk = result, disk
        self.sent: list[str] = []
        self.kill: set[str] = set()  # the next message of these tasks meets a dying worker
        self.killed: list[str] = []

    def put(self, task: str, ids: Any) -> None:
        self.queue.extend((task, i) for i in ids)

    def run(self, rt: Any, lose_after: int | None = None) -> None:
        from worker.alerts import sending
        from worker.articles import parsing
        from worker.matching import applying
        from worker.sources import polling

        done = 0
        while self.queue:
            if lose_after is not None and done >= lose_after:
                self.result.lost_messages += len(self.queue)
                self.queue.clear()  # Redis restarted without persistence
                return
            task, row_id = self.queue.popleft()
            done += 1
            if task in self.kill:
                self.kill.discard(task)
                self._die_holding(rt, task, row_id)
                continue
            notices: list[str] = []
            try:
                if task == "fetch":
                    self.put("parse", polling.fetch_source(rt, row_id, notices))
                elif task == "parse":
                    article = parsing.parse_item(rt, row_id, notices)
                    self.put("rules", [article] if article is not None else [])
                elif task == "rules":
                    self.put("deliver", applying.apply_rules(rt, row_id))
                elif task == "deliver" and sending.deliver(rt, row_id, notices):
                    self.sent.append(row_id)
            except Exception as exc:  # what the Celery task would have logged
                self.failed(f"{task}({row_id})", exc)
            self.put("deliver", notices)

    def _die_holding(self, rt: Any, task: str, row_id: Any) -> None:
        """A worker took the message, claimed the row (as the task does first) and was
        killed: the message is acked and gone, the lease holds until it lapses."""
        from worker.store import models as m
        from worker.store.db import claim

        model, state = {
            "parse": (m.Item, m.Item.state == "pending"),
            "deliver": (m.Delivery, m.Delivery.state.in_(("pending", "failed"))),
        }[task]
        with rt.store.session() as session:
            if claim(session, model, row_id, rt.now(), rt.settings.lease_seconds, state):
                self.killed.append(f"{task}({row_id})")

    def failed(self, what: str, exc: BaseException) -> None:
        if self.disk.active:
            self.result.failures_in_episode += 1
        else:
            self.result.unexpected_errors.append(f"{what}: {type(exc).__name__}: {exc}"[:300])


def snapshot(rt: Any, day: float, db_path: Path | None) -> Snapshot:
    from worker.service import retention

    report = retention.storage_report(rt.store)
    db = report["database"]
    rows = {k: v["rows"] for k, v in report["rows"].items()}
    if db["backend"] == "sqlite":
        assert db_path is not None
        free = db["free_bytes"]
        return Snapshot(day, db_path.stat().st_size, db["bytes"] - free, free, db["wal_bytes"],
                        rows)  # fmt: skip
    return Snapshot(day, db["bytes"], db["bytes"], 0, 0, rows)


def print_snapshot(out: Callable[[str], None], s: Snapshot, header: bool = False) -> None:
    if header:
        out("| day | file MiB | used MiB | free MiB | WAL MiB | items | articles | text kept "
            "| bands | matches | deliveries | attempts | digests |")  # fmt: skip
        out("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    r = s.rows
    out(
        f"| {s.day:.0f} | {_mib(s.file_bytes)} | {_mib(s.used_bytes)} | {_mib(s.free_bytes)} "
        f"| {_mib(s.wal_bytes)} | {r['items']:,} | {r['articles']:,} | {r['article_text']:,} "
        f"| {r['fingerprint_bands']:,} | {r['matches']:,} | {r['deliveries']:,} "
        f"| {r['attempts']:,} | {r['digest_batches']:,} |"
    )


def _days(spec: str) -> float:
    from worker.config import parse_interval

    return parse_interval(spec) / DAY


def _mib(n: float) -> str:
    return f"{n / 1048576:.1f}"


def part_a(opts: Options) -> Result:
    """The simulated months (see the module docstring)."""
    from worker.config import parse_interval
    from worker.service import outbox, retention
    from worker.service.sweep import sweep
    from worker.sources import polling

    started = time.monotonic()
    result = Result(options={k: v for k, v in vars(opts).items() if k not in ("out", "workdir")})
    out = opts.out
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="nw-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    step = opts.step_hours * 3600
    steps = round(opts.days * DAY / step)
    at = lambda frac: max(1, round(frac * steps))  # noqa: E731
    with contextlib.ExitStack() as stack:
        site = stack.enter_context(serve())
        hook = stack.enter_context(WebhookReceiver())
        mode, mount, db_path = opts.disk_full, None, None
        if opts.database == "postgres":
            db_url = stack.enter_context(throwaway_database(opts.postgres, prefix="nw_soak"))
            mode = "inject" if mode in ("auto", "tmpfs") else mode
        else:
            if mode in ("auto", "tmpfs"):
                mounted = stack.enter_context(tmpfs(work / "disk", opts.tmpfs_size))
                if mounted:
                    mode, mount = "tmpfs", work / "disk"
                elif mode == "tmpfs":
                    raise RuntimeError("cannot mount a tmpfs here (root needed)")
                else:
                    mode = "inject"
            db_path = (mount or work) / "soak.db"
            db_url = f"sqlite:///{db_path}"
        result.disk_full_mode = mode
        disk = DiskFull(mode, mount)
        clock = Clock()
        t0 = clock.now.timestamp()
        feeds = Feeds(site, clock, opts, t0)
        active = list(range(opts.sources))
        for i in active:
            feeds.add(i, t0)
        words = [WORD]
        watch_from = {WORD: t0, WORD2: math.inf}
        cfg = work / "soak.yaml"
        cfg.write_text(config_text(opts, feeds, hook.url, active, words))
        rt = build_runtime(work, db_url, clock)
        disk.watch(rt.store.engine, rt.store.is_postgres)
        transport = Transport(result, disk)
        result.swept = {"items": 0, "articles": 0, "deliveries": 0}
        text_cut = parse_interval(opts.article_text) / DAY
        text_measure: tuple[int, int] | None = None  # (used bytes, articles) before text goes
        next_report = 0.0
        out(f"part A: {opts.sources} sources, {opts.days} days in {steps} steps of "
            f"{opts.step_hours:g} h, {opts.database}, disk full: {mode}, work {work}")  # fmt: skip
        for s in range(steps + 1):
            if s:
                clock.advance(step)
            day = s * step / DAY
            now = clock.now.timestamp()
            events = []
            # -- the events of this step
            if s in {at(f) for f in RESTARTS}:
                rt.close()
                rt = build_runtime(work, db_url, clock)
                disk.watch(rt.store.engine, rt.store.is_postgres)
                events.append("restart")
            edit = False
            if s == at(ADD_SOURCE):
                new = max(feeds.lives) + 1
                feeds.add(new, now)
                active.append(new)
                edit = True
                events.append(f"source s{new} added")
            if s == at(WATCHLIST_EDIT):
                words.append(WORD2)
                watch_from[WORD2] = now - step  # items published after the last poll
                edit = True
                events.append(f"watchlist: keyword {WORD2} added")
            if s == at(REMOVE_SOURCE):
                gone = active.pop()
                feeds.lives[gone].end = now - step  # its last poll was the previous step
                edit = True
                events.append(f"source s{gone} removed")
            if edit:
                cfg.write_text(config_text(opts, feeds, hook.url, active, words))
            if s == at(DISK_FULL):
                disk.start()
                events.append(f"disk full ({mode})")
            # -- beat: sweep (every minute in reality), due sources, digests and notices
            found = _guarded(transport, "sweep", sweep, rt)
            if found is not None:
                transport.put("parse", found.items)
                transport.put("rules", found.articles)
                transport.put("deliver", found.deliveries)
                for kind in result.swept:
                    result.swept[kind] += len(getattr(found, kind))
            due = _guarded(transport, "dispatch", polling.dispatch_due, rt)
            transport.put("fetch", due or [])
            lose_after = None
            if s == at(REDIS_RESTART):
                lose_after = max(1, len(transport.queue) * 3)  # mid-step: fetched, not all parsed
                events.append("redis restart (queued messages lost)")
            if s == at(KILLED_WORKER):
                transport.kill = {"parse", "deliver"}
                events.append("a worker is killed holding an item, another holding a delivery")
            transport.run(rt, lose_after)
            transport.put("deliver", _guarded(transport, "tick", outbox.tick, rt) or [])
            transport.run(rt)
            _guarded(transport, "prune", retention.prune, rt)
            if s == at(DISK_FULL):
                disk.stop()  # one step of a full disk, then space is freed
                events.append("disk space freed")
            for e in events:
                out(f"  day {day:6.2f}: {e}")
            if text_measure is None and day >= text_cut - opts.step_hours / 24 - 1e-9:
                snap = snapshot(rt, day, db_path)
                text_measure = (snap.used_bytes, snap.rows["articles"])
            if day + 1e-9 >= next_report or s == steps:
                snap = snapshot(rt, day, db_path)
                result.snapshots.append(snap)
                print_snapshot(out, snap, header=next_report == 0.0)
                next_report += opts.report_every
            site.requests.clear()
        # -- settle: the last digest and any retry still due, then the check
        for _ in range(3):
            clock.advance(DAY)
            found = sweep(rt)
            transport.put("parse", found.items)
            transport.put("rules", found.articles)
            transport.put("deliver", found.deliveries)
            transport.put("deliver", outbox.tick(rt))
            transport.run(rt)
        result.injected = disk.injected
        result.killed = transport.killed
        result.active_sources = len(active)
        _check(result, feeds, hook, work / "data" / "alerts.jsonl", t0, now, watch_from)
        _per_item_costs(result, text_measure, opts)
        rt.close()
    result.wall_seconds = time.monotonic() - started
    if opts.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _guarded(transport: Transport, what: str, fn: Callable[[Any], Any], rt: Any) -> Any:
    try:
        return fn(rt)
    except Exception as exc:  # a periodic task that raised: logged, the next run goes on
        transport.failed(what, exc)
        return None


ITEM = re.compile(r"/item/(\d+)/(\d+)")


def _alerts(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if payload.get("type") == "newswatch.digest":
        yield from payload.get("alerts", [])
    elif payload.get("type") == "newswatch.match":
        yield payload


def _check(
    result: Result,
    feeds: Feeds,
    hook: WebhookReceiver,
    archive: Path,
    t0: float,
    last_poll: float,
    watch_from: dict[str, float],
) -> None:
    """Every published item that matched alerted once per channel, under one delivery id."""
    expected: set[tuple[int, int]] = set()
    published = 0
    for i in feeds.lives:
        for k in feeds.items(i, t0 - 1, last_poll):
            published += 1
            at = feeds.plan.published(i, k)
            if feeds.plan.hits(i, k) or (feeds.quokka(i, k) and at > watch_from[WORD2]):
                expected.add((i, k))
    result.items_published, result.expected_alerts = published, len(expected)
    payloads = {
        "hook (webhook, immediate)": [json.loads(r.body) for r in hook.requests],
        "archive (file, daily digest)": [
            json.loads(line) for line in archive.read_text().splitlines() if line.strip()
        ]
        if archive.exists()
        else [],
    }
    for name, bodies in payloads.items():
        ids: dict[tuple[int, int], set[str]] = {}
        raw = 0
        for body in bodies:
            for alert in _alerts(body):
                match = ITEM.search(alert["article"]["url"])
                if match is None or alert.get("watchlist") != "watch":
                    continue
                raw += 1
                key = (int(match.group(1)), int(match.group(2)))
                ids.setdefault(key, set()).add(alert["id"])
        result.channels[name] = {
            "alerts": len(ids),
            "missing": len(expected - ids.keys()),
            "extra": len(ids.keys() - expected),
            "twice": sum(1 for v in ids.values() if len(v) > 1),
            "repeats_same_id": raw - sum(len(v) for v in ids.values()),
        }


def _per_item_costs(result: Result, text_measure: tuple[int, int] | None, opts: Options) -> None:
    """Bytes per article (every kind of row included) while its text is kept, and after:
    the latter solved from the final state (n_text x text + n_stub x stub = used), both
    over the empty schema. On PostgreSQL pg_database_size also counts space not yet
    reused (dead rows before autovacuum), so there these are rough."""
    if text_measure is None or not result.snapshots:
        return
    used, articles = text_measure
    empty = result.snapshots[0].used_bytes  # the empty schema, at step 0
    text = (used - empty) / max(articles, 1)
    last = result.snapshots[-1]
    n_text = last.rows["article_text"]
    n_stub = last.rows["articles"] - n_text
    result.text_bytes_per_item = text
    result.stub_bytes_per_item = (last.used_bytes - empty - n_text * text) / max(n_stub, 1)


def summarise_a(result: Result, opts: Options) -> list[str]:
    lines = []
    lines.append(f"items published {result.items_published:,}, matching {result.expected_alerts:,}")
    for name, c in result.channels.items():
        lines.append(
            f"  {name}: {c['alerts']:,} alerted, missing {c['missing']}, unexpected "
            f"{c['extra']}, under two ids {c['twice']}, same id repeated {c['repeats_same_id']}"
        )
    lines.append(f"exactly once per channel: {'yes' if result.exactly_once else 'NO'}")
    lines.append(
        f"disk full ({result.disk_full_mode}): {result.failures_in_episode} task(s) failed in "
        f"the episode{f', {result.injected} statement(s) refused' if result.injected else ''}; "
        f"redis restart: {result.lost_messages} message(s) lost; killed worker held "
        f"{', '.join(result.killed) or 'nothing'}; swept back: {result.swept}"
    )
    lines.append(f"unexpected errors outside the episode: {len(result.unexpected_errors)}")
    lines += [f"  {e}" for e in result.unexpected_errors[:10]]
    if result.snapshots:
        last = result.snapshots[-1]
        lines.append(f"database at day {last.day:.0f}: {_mib(last.used_bytes)} MiB in use")
        later = [x for x in result.snapshots if x.day >= last.day - opts.days * 0.25]
        if len(later) > 1:
            growth = last.used_bytes / max(later[0].used_bytes, 1) - 1
            span = last.day - later[0].day
            lines.append(f"  over the last {span:.0f} days: {100 * growth:+.1f}%")
    if result.stub_bytes_per_item:
        per_day = DAY / (opts.item_every or 4 * opts.poll)
        text_b, stub_b = result.text_bytes_per_item, result.stub_bytes_per_item
        lines.append(
            f"per item, every kind of row included: {text_b:,.0f} B while its text is kept, "
            f"{stub_b:,.0f} B after; {per_day:.0f} items a source a day"
        )
        for label, text_days, entry_days in (
            (f"this run's retention ({opts.article_text} text, {opts.entries} entries)",
             _days(opts.article_text), _days(opts.entries)),
            ("the defaults (30 d text, 400 d entries)", 30.0, 400.0),
        ):  # fmt: skip
            per_source = per_day * (text_days * text_b + (entry_days - text_days) * stub_b)
            lines.append(
                f"steady state at {label}: {per_source / 2**20:,.1f} MiB per source, "
                f"{per_source * 10_000 / 2**30:,.0f} GiB per 10,000 sources"
            )
    lines.append(f"wall time {result.wall_seconds:.0f} s")
    return lines


# --- part B: real processes, RSS -----------------------------------------------------------


def slope_mb_per_hour(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, bytes), in MB per hour."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return None
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var * 3600 / 2**20


def window_slopes(samples: Path, after: float, before: float) -> list[str]:
    """One Markdown row per process: its RSS at both ends of [after, before] and the
    fitted slope, from the samples `part-b --samples` wrote."""
    series: dict[str, list[tuple[float, float]]] = {}
    for line in samples.read_text().splitlines():
        key, t, rss = json.loads(line)
        if after <= t <= before:
            series.setdefault(key, []).append((t, rss))
    rows = [
        "| process | samples | window s | RSS first / last MB | slope MB/h |",
        "|---|---|---|---|---|",
    ]
    for key, points in sorted(series.items()):
        if len(points) >= 3:
            rows.append(
                f"| {key} | {len(points)} | {points[0][0]:.0f}–{points[-1][0]:.0f} | "
                f"{points[0][1] / 2**20:.1f} / {points[-1][1] / 2**20:.1f} | "
                f"{slope_mb_per_hour(points) or 0.0:+.2f} |"
            )
    return rows


def part_b(args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    names = []
    for w in range(args.workers):
        names += [f"io{w} threads", f"cpu{w} prefork"]
    series: dict[str, list[tuple[float, float]]] = {}
    last = [0.0]
    t_start = [0.0]

    def sample(now: float, procs: list[Any]) -> None:
        if not t_start[0]:
            t_start[0] = now
        if now - last[0] < args.sample_every:
            return
        last[0] = now
        for name, proc in zip(names, procs, strict=True):
            try:
                parent = psutil.Process(proc.pid)
                children = [(f"child {c.pid}", c) for c in parent.children(recursive=True)]
                members = [("main", parent), *children]
            except psutil.Error:
                continue
            total = 0
            for label, p in members:
                with contextlib.suppress(psutil.Error):
                    rss = p.memory_info().rss
                    total += rss
                    series.setdefault(f"{name} {label}", []).append((now - t_start[0], rss))
            series.setdefault(f"{name} tree", []).append((now - t_start[0], total))
        if args.samples:  # written as they come, so a long run can be read while it runs
            with open(args.samples, "a") as out:
                for key, points in series.items():
                    if points[-1][0] == now - t_start[0]:
                        out.write(json.dumps([key, *points[-1]]) + "\n")

    load_args = loadbench.main_args(
        [
            "--sources", str(args.sources), "--interval", str(args.interval),
            "--duration", str(args.duration), "--workers", str(args.workers),
            "--layout", "split", "--fetch-concurrency", str(args.fetch_concurrency),
            "--concurrency", str(args.concurrency), "--database", args.database,
        ]
    )  # fmt: skip
    run = loadbench.run(load_args, args.workers, on_sample=sample)
    rows = []
    for key, points in series.items():
        after = [(t, r) for t, r in points if t >= args.warmup]
        if len(after) < 3:
            continue
        rows.append(
            {
                "process": key,
                "samples": len(after),
                "rss_start_mb": round(after[0][1] / 2**20, 1),
                "rss_end_mb": round(after[-1][1] / 2**20, 1),
                "slope_mb_per_hour": round(slope_mb_per_hour(after) or 0.0, 1),
            }
        )
    return {"load": run, "rss": rows}


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="part", required=True)
    a = sub.add_parser("part-a", help="simulated months: database size and exactly once")
    defaults = Options()
    for name in ("sources", "days", "poll", "feed_steps"):
        a.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("step_hours", "item_every", "hit_percent", "report_every"):
        a.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    for name in ("article_text", "attempts", "deliveries", "entries", "tmpfs_size"):
        a.add_argument(f"--{name.replace('_', '-')}", default=getattr(defaults, name))
    a.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    a.add_argument("--postgres", default=PG_ADMIN, help="admin URL for a throwaway database")
    a.add_argument("--disk-full", choices=("auto", "tmpfs", "inject", "none"), default="auto")
    a.add_argument("--workdir", type=Path, default=None, help="kept afterwards if given")
    b = sub.add_parser("part-b", help="real worker processes: RSS slope")
    b.add_argument("--sources", type=int, default=300)
    b.add_argument("--interval", type=float, default=20)
    b.add_argument("--duration", type=float, default=240)
    b.add_argument("--warmup", type=float, default=60, help="seconds left out of the fit")
    b.add_argument("--sample-every", type=float, default=5)
    b.add_argument("--workers", type=int, default=1)
    b.add_argument("--fetch-concurrency", type=int, default=16)
    b.add_argument("--concurrency", type=int, default=2)
    b.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    b.add_argument("--samples", help="append every RSS sample to this file (JSON lines)")
    w = sub.add_parser("slopes", help="RSS slopes per process from a --samples file")
    w.add_argument("samples")
    w.add_argument("--after", type=float, default=0, help="seconds left out at the start")
    w.add_argument("--before", type=float, default=float("inf"), help="and after this")
    args = p.parse_args(argv)
    if args.part == "slopes":
        for line in window_slopes(Path(args.samples), args.after, args.before):
            print(line)
        return 0
    # worker log lines (errors expected in the disk-full episode included) go to a file
    log_file = Path(tempfile.gettempdir()) / f"nw-soak-{args.part}-{os.getpid()}.log"
    logging.basicConfig(filename=log_file, level=logging.WARNING)
    print(f"log: {log_file}")
    if args.part == "part-a":
        opts = Options(**{k: v for k, v in vars(args).items() if k != "part"})
        result = part_a(opts)
        for line in summarise_a(result, opts):
            print(line)
        return 0 if result.exactly_once and not result.unexpected_errors else 1
    out = part_b(args)
    run = out["load"]
    print(
        f"part B: {args.sources} sources every {args.interval:g} s, {args.duration:g} s, "
        f"{args.database}; {run.fetches_per_s} fetches/s, {run.alerts} alerts, kept up "
        f"{100 * run.kept_up:.0f}%"
    )
    print(f"| process | samples after {args.warmup:g} s | RSS first / last MB | slope MB/h |")
    print("|---|---|---|---|")
    for row in out["rss"]:
        print(
            f"| {row['process']} | {row['samples']} | {row['rss_start_mb']} / "
            f"{row['rss_end_mb']} | {row['slope_mb_per_hour']:+} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
