"""The `newswatch` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.config import ConfigError, load_config
from worker.settings import Settings, SettingsError

if TYPE_CHECKING:
    from worker.store.db import Store

log = logging.getLogger("newswatch")


def _setup_logging(level: str, fmt: str = "text") -> None:
    from worker.service.observability import setup_logging

    setup_logging(level, fmt)  # text, or one JSON object per line (NEWSWATCH_LOG_FORMAT=json)


def _settings(args: argparse.Namespace) -> Settings:
    # Children (the Celery pool, beat) read the same environment, so flags go there.
    if getattr(args, "config", None):
        os.environ["NEWSWATCH_CONFIG"] = str(Path(args.config).absolute())
    return Settings.from_env()


def _open_store(args: argparse.Namespace) -> tuple[Settings, Store]:
    """Settings and the database (migrated), for the commands that read or fix rows."""
    from worker.store.db import Store

    settings = _settings(args)
    _require_database(settings)
    store = Store(settings.database_url)
    store.upgrade()
    return settings, store


def _paths(settings: Settings) -> str:
    """Where this command looks: printed at start and by `status`, so that a command run
    from the wrong folder shows it at once."""
    text = (
        f"config {settings.config_path}, database {_redact(settings.database_url)}, "
        f"data folder {settings.data_dir}"
    )
    return text + _defaulted_note(settings)


def _defaulted_note(settings: Settings) -> str:
    if not settings.defaulted:
        return ""
    names = " and ".join(settings.defaulted)
    return f" ({names}: the default, relative to the current folder {Path.cwd()})"


def _require_database(settings: Settings) -> None:
    """A read command must not create an empty SQLite database where there was none (and
    then report "no sources"): it names the path it looked at and exits 1."""
    path = settings.sqlite_path
    if path is None or path.exists():
        return
    print(f"newswatch: no database at {path}{_defaulted_note(settings)}", file=sys.stderr)
    print(
        "  run this from the folder where `newswatch run` runs, or set NEWSWATCH_DATA_DIR "
        "(or DATABASE_URL) to its data folder",
        file=sys.stderr,
    )
    raise SystemExit(1)


def _check_config_or_exit(settings: Settings) -> None:
    from worker.config.reload import compile_config

    try:
        compile_config(settings.config_path)
    except ConfigError as exc:
        print(f"newswatch: config {settings.config_path} is not valid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        if "config" in settings.defaulted:
            print(
                f"  (the default config path, relative to the current folder {Path.cwd()}; "
                "pass --config or set NEWSWATCH_CONFIG)",
                file=sys.stderr,
            )
        raise SystemExit(1) from None


def _exit_without_broker(command: str) -> None:
    """A worker or beat with no broker setting would retry a socket that nobody serves,
    forever: only `newswatch run` starts the embedded Redis."""
    print(
        f"newswatch {command}: no broker. Set REDIS_URL (e.g. redis://127.0.0.1:6379/0) to "
        "the Redis your workers and beat share, or use `newswatch run`, which starts an "
        "embedded Redis for a single machine",
        file=sys.stderr,
    )
    raise SystemExit(2)


def _prepare(settings: Settings) -> None:
    from worker.store.db import Store

    _check_config_or_exit(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    store.upgrade()
    store.dispose()


def _celery_worker(settings: Settings, args: argparse.Namespace, *, beat: bool) -> None:
    from worker.service.observability import enable_multiprocess

    if args.pool == "threads" and "NEWSWATCH_DB_POOL_SIZE" not in os.environ:
        # every thread may hold a database connection at once; set before the app is built
        os.environ["NEWSWATCH_DB_POOL_SIZE"] = str(max(5, args.concurrency))
    enable_multiprocess(settings.data_dir)  # before prometheus_client is imported anywhere
    from worker.app import QUEUES, app

    if settings.log_format == "json":
        from worker.service.observability import patch_celery_say_for_json

        patch_celery_say_for_json()
    if args.pool == "threads":
        # Celery enforces no time limits in a threads pool (it cannot kill a thread), so the
        # bounds are our own: every request has the fetcher's total deadline, SMTP its timeout
        log.info("threads pool: Celery time limits do not apply; requests end at fetch.deadline")

    argv = [
        *(["--quiet"] if settings.log_format == "json" else []),  # the banner is not JSON
        "worker",
        f"--loglevel={settings.log_level}",
        f"--pool={args.pool}",
        f"--concurrency={args.concurrency}",
        f"--queues={args.queues or ','.join(QUEUES)}",
        f"--hostname={args.hostname}",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv += ["--beat", f"--schedule={settings.data_dir / 'celerybeat-schedule'}"]
    app.worker_main(argv=argv)


# `newswatch run`: fetching and delivering wait on the network, parsing and matching use
# the CPU, so each gets the pool that suits it (docs/load.md)
RUN_IO_QUEUES = "fetch,alerts"
RUN_CPU_QUEUES = "control,parse,rules"


def cmd_run(args: argparse.Namespace) -> int:
    """Beat and two workers in one process tree, on the embedded defaults unless told
    otherwise: a threads pool for fetch and alerts, a prefork pool for the rest."""
    from worker.service.supervisor import AlreadyRunning, InstanceLock

    settings = _settings(args)
    _setup_logging(settings.log_level, settings.log_format)
    _check_config_or_exit(settings)  # before anything is created in a wrong folder
    # one `run` per data folder, held until this process ends (however it ends)
    lock = InstanceLock(settings.data_dir / "newswatch.lock")
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        print(
            f"newswatch run is already running here (pid {exc.pid or 'unknown'}, "
            f"data folder {settings.data_dir})",
            file=sys.stderr,
        )
        return 1
    try:
        return _run_locked(args, settings)
    finally:
        lock.release()


def _run_locked(args: argparse.Namespace, settings: Settings) -> int:
    _prepare(settings)
    _warn_unreachable(settings)
    embedded = None
    if settings.embedded_broker:
        from worker.service.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis(settings.data_dir)  # may stop a stale one: we hold the lock
        os.environ["NEWSWATCH_BROKER_URL"] = embedded.start()
        settings = Settings.from_env()
    log.info("newswatch run: %s, broker %s", _paths(settings), _redact(settings.broker_url or ""))
    from worker.service.supervisor import Supervisor

    name = args.hostname or f"newswatch-run-{os.getpid()}@%h"
    common = ["worker", "--skip-checks", f"--supervisor-pid={os.getpid()}"]
    children = {
        "io": [*common, "--pool=threads", f"--concurrency={args.fetch_concurrency}",
               f"--queues={RUN_IO_QUEUES}", f"--hostname=io.{name}"],
        "cpu": [*common, "--pool=prefork", f"--concurrency={args.concurrency}",
                f"--queues={RUN_CPU_QUEUES}", f"--hostname=cpu.{name}", "--beat"],
    }  # fmt: skip
    commands = {
        kind: [sys.executable, "-m", "worker.cli", *argv] for kind, argv in children.items()
    }
    from worker.service.diskspace import DiskNotices, DiskWatch

    db = settings.sqlite_path
    watch = DiskWatch([settings.data_dir, *([db.parent] if db else [])], settings.min_free_bytes)
    try:
        return Supervisor(commands, on_tick=DiskNotices(settings, watch)).run()
    finally:
        if embedded is not None:
            embedded.stop()


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.embedded_broker:
        _exit_without_broker("worker")
    _setup_logging(settings.log_level, settings.log_format)
    if args.supervisor_pid:  # started by `run`: end with it, even if it is SIGKILLed
        import signal

        from worker.service.supervisor import ensure_dies_with_parent

        ensure_dies_with_parent(signal.SIGTERM, args.supervisor_pid)
    if not args.skip_checks:  # `run` did them once for both of its workers
        log.info("newswatch worker: %s", _paths(settings))
        _prepare(settings)
        _warn_unreachable(settings)
    _celery_worker(settings, args, beat=args.beat)
    return 0


def cmd_beat(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.embedded_broker:
        _exit_without_broker("beat")
    _setup_logging(settings.log_level, settings.log_format)
    log.info("newswatch beat: %s", _paths(settings))
    _prepare(settings)
    from worker.app import app

    app.Beat(
        loglevel=settings.log_level,
        schedule=str(settings.data_dir / f"celerybeat-schedule-{os.getpid()}"),
        quiet=settings.log_format == "json",  # the banner is not JSON
    ).run()
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from worker.config.reload import compile_config

    settings = _settings(args)
    try:
        active = compile_config(settings.config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    cfg = active.loaded.config
    if args.connect:
        from worker.service.probes import reachability_problems

        problems = reachability_problems(cfg, timeout=args.connect_timeout)
        for problem in problems:
            print(f"{settings.config_path}: {problem}")
        if problems:
            return 1
    print(
        f"{settings.config_path}: ok (version {active.version}): {len(cfg.sources)} sources, "
        f"{len(cfg.watchlists)} watchlists, {len(cfg.channels)} channels"
    )
    return 0


def _warn_unreachable(settings: Settings) -> None:
    """At start-up, name every SMTP server and webhook host that does not answer. A warning,
    not a refusal: a mail server that is down now may be up by the first alert."""
    from worker.config.reload import compile_config
    from worker.service.probes import reachability_problems

    for problem in reachability_problems(compile_config(settings.config_path).loaded.config):
        log.warning("config %s: %s", settings.config_path, problem)


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when a canary task makes it through every queue within the timeout."""
    from worker.service.health import check

    settings = _settings(args)
    _setup_logging("WARNING")
    result = check(settings, args.timeout)
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def cmd_metrics(args: argparse.Namespace) -> int:
    """Serve Prometheus metrics on http://HOST:PORT/metrics."""
    from worker.service.observability import serve_metrics

    settings = _settings(args)
    _setup_logging(settings.log_level, settings.log_format)
    serve_metrics(settings, args.host, args.port)
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    """Parse one page or feed (file, URL or stdin) and print articles and watchlist hits."""
    from worker.cli.views import match_input

    settings = _settings(args)
    _setup_logging("WARNING")
    from worker.config.reload import compile_config

    try:
        active = compile_config(settings.config_path, watching=False)  # only its watchlists
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    result = match_input(active, args.input, explain=args.explain)
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2, default=str)
    print()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from worker.cli.views import status_report

    settings, store = _open_store(args)
    report = status_report(store)
    report["paths"] = {
        "config": str(settings.config_path),
        "database": _redact(settings.database_url),
        "data_folder": str(settings.data_dir),
    }
    from worker.alerts.outbox import STATES

    # every delivery state shows, zero or not: "0 dead" is an answer too
    report["deliveries"] = {state: 0 for state in STATES} | report["deliveries"]
    from worker.service.retention import format_storage, storage_report

    report["storage"] = storage_report(store)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
    else:
        print(_paths(settings))
        print(_format_status(report))
        print(format_storage(report["storage"]))
    return 0


def _when(at: datetime | str | None) -> str:
    """A stored time as one column ("2026-12-06 21:05:03 UTC"); `format(datetime, "<25")`
    would give the spec to strftime and print "<25"."""
    if at is None:
        return "never"
    if isinstance(at, str):
        return at
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _format_status(report: dict[str, Any]) -> str:
    lines = ["sources:"]
    for s in report["sources"]:
        state = (
            "ok" if not s["last_error"] else f"ERROR ({s['last_error_kind']}): {s['last_error']}"
        )
        if not s["enabled"]:
            state = "disabled"
        lines.append(
            f"  {s['name']:<24} last fetch {_when(s['last_fetch_at']):<25} "
            f"items {s['items_seen']:<6} failures {s['consecutive_failures']:<3} {state}"
        )
    lines += _format_watchdog(report)
    outcomes = ", ".join(f"{k} {v}" for k, v in report["outcomes"].items())
    lines.append(f"item outcomes: {outcomes}")
    for key in ("items", "articles", "matches", "deliveries"):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report[key].items())) or "none"
        lines.append(f"{key}: {counts}")
    return "\n".join(lines)


def _format_watchdog(report: dict[str, Any]) -> list[str]:
    """Feed gaps, open watchdog incidents and the heartbeat (docs/operations.md)."""
    lines = []
    gaps = report.get("gaps") or []
    if gaps:
        lines.append("gaps (possible missed items):")
        for g in gaps:
            lines.append(
                f"  {g['source']:<24} {g['detected_at']:%Y-%m-%d %H:%M} UTC  {g['detail']}"
            )
    else:
        lines.append("gaps: none")
    wd = report.get("watchdog") or {}
    for inc in wd.get("incidents", []):
        since = inc["since"]
        lines.append(
            f"WATCHDOG {inc['condition']} since {since:%Y-%m-%d %H:%M} UTC: {inc['detail']}"
        )
    if not wd.get("incidents"):
        lines.append("watchdog: no condition holds")
    waiting = wd.get("oldest_waiting_seconds") or {}
    shown = ", ".join(f"{k} {v}s" for k, v in waiting.items() if v is not None) or "nothing waits"
    lines.append(f"oldest waiting work: {shown}")
    hb = wd.get("heartbeat")
    if hb is not None:
        last = hb["last_ping"]
        when = f"{last:%Y-%m-%d %H:%M:%S} UTC" if last else "never"
        lines.append(f"heartbeat: last ping {when}; {hb['last'] or ''}".rstrip("; "))
    return lines


def cmd_why(args: argparse.Namespace) -> int:
    """What happened to one item (or every item of a URL), and why."""
    from worker.cli.views import why_report

    _, store = _open_store(args)  # no config needed: this works on the rows alone
    try:
        report = why_report(store, args.item)
    finally:
        store.dispose()
    if args.json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2, default=str)
        print()
    else:
        print(_format_why(report))
    if not report["items"]:
        print(f"newswatch: no item with id or URL {args.item!r}", file=sys.stderr)
        return 1
    return 0


def _format_why(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for it in report["items"]:
        lines.append(f"item {it['id']} from source {it['source']} ({it['source_url']})")
        lines.append(f"  entry key: {it['entry_key']}")
        if it["url"] and it["url"] != it["entry_key"]:
            lines.append(f"  url:       {it['url']}")
        lines.append(f"  state:     {it['state']} after {it['attempts']} attempt(s)")
        lines.append(f"  OUTCOME:   {it['outcome']}: {it['outcome_detail'] or ''}")
        if it["error"]:
            lines.append(f"  error:     ({it['error_kind'] or '?'}) {it['error']}")
        art = it["article"]
        if art is not None:
            lines.append(f"  article {art['id']} ({art['role']}): {art['title'][:100]}")
            lines.append(f"    {art['canonical_url']}")
            if art.get("text_pruned"):
                lines.append(f"    text pruned on {art['text_pruned']} (retention)")
            rules = f"    rules: {art['rules_state']} after {art['attempts']} attempt(s)"
            if art["error"]:
                rules += f"; error ({art['error_kind'] or '?'}): {art['error']}"
            lines.append(rules)
            story = it["story"]
            others = [a["id"] for a in story["articles"] if a["id"] != art["id"]]
            lines.append(
                f"  story {story['id']} (first article {story['first_article']}), "
                f"other articles: {', '.join(map(str, others)) or 'none'}"
            )
            if story["near_duplicate"]:
                evidence = ", ".join(f"{k} {v}" for k, v in story["near_duplicate"].items())
                lines.append(f"    near-duplicate evidence: {evidence}")
        for mt in it["matches"]:
            line = f"  watchlist {mt['watchlist']}: {mt['state']}"
            if mt["first_alert"]:
                fa = mt["first_alert"]
                line += f" (story alerted by article {fa['article_id']}, match {fa['match_id']})"
            lines.append(line)
            for d in mt["deliveries"]:
                text = (
                    f"    -> {d['channel']}: {d['state']} ({d['kind']}, {d['route']}), "
                    f"{d['attempts']} attempt(s)"
                )
                if d["last_error"] and d["state"] != "sent":
                    text += f", last error: {d['last_error'][:200]}"
                lines.append(text)
        lines.append("")
    return "\n".join(lines).rstrip()


def cmd_endpoints(args: argparse.Namespace) -> int:
    """List webhook endpoints switched off by a 410, or switch a channel's one on again."""
    from worker.alerts import outbox

    settings, store = _open_store(args)
    if args.action == "enable":
        config = load_config(settings.config_path).config
        channel = next((c for c in config.channels if c.name == args.channel), None)
        if channel is None or channel.webhook is None:
            print(f"newswatch: no webhook channel named {args.channel!r}", file=sys.stderr)
            return 1
        if not outbox.enable_endpoint(store, channel.webhook):
            print(f"channel {args.channel}: its endpoint is not disabled")
            return 0
        print(f"channel {args.channel}: endpoint enabled; `newswatch deliveries retry ID` resends")
        return 0
    rows = outbox.disabled_endpoints(store)
    for r in rows:
        print(f"{r['channel']:<24} disabled {r['disabled_at']:%Y-%m-%d %H:%M} UTC: {r['reason']}")
    if not rows:
        print("no disabled endpoints")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    """List sources disabled after permanent errors, or poll one of them again."""
    from datetime import UTC, datetime

    from worker.sources import polling

    settings, store = _open_store(args)
    if args.action == "enable":
        config = load_config(settings.config_path).config
        spec = next((s for s in config.sources if s.name == args.name), None)
        with store.session() as session:
            enabled = polling.enable_source(session, args.name, spec, datetime.now(UTC))
        if not enabled:
            print(f"source {args.name}: not disabled by newswatch (see `newswatch status`)")
            return 0
        if spec is None or not spec.enabled:
            print(f"source {args.name}: record cleared; the config does not enable it")
            return 0
        print(f"source {args.name}: enabled; polled again from now")
        return 0
    with store.session() as session:
        rows = [(r.name, r.url, r.disabled_reason) for r in polling.disabled_sources(session)]
    for name, url, reason in rows:
        print(f"{name:<24} {url}\n    {reason}")
    if not rows:
        print("no disabled sources")
    return 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    """List deliveries (newest first), or put a dead/failed one back to pending."""
    from datetime import UTC, datetime

    from worker.alerts import outbox

    _, store = _open_store(args)  # no config needed: this works on the rows alone
    try:
        if args.action == "retry":
            result = outbox.retry(store, args.id, datetime.now(UTC))
            if result is None:
                print(f"newswatch: nothing dead or failed with id {args.id!r}", file=sys.stderr)
                return 1
            print(f"{result.kind} {result.id}: {result.previous_state} -> queued again")
            return 0
        states = ("dead",) if args.dead else tuple(args.state or ())
        rows = outbox.list_deliveries(store, states=states, limit=args.limit)
    finally:
        store.dispose()
    if args.json:
        json.dump(rows, sys.stdout, indent=2, default=str)
        print()
        return 0
    for r in rows:
        what = r["title"] or ""
        print(
            f"{r['id']}  {r['state']:<8} {r['kind']:<6} {r['channel']:<16} "
            f"{r['watchlist'] or '-':<16} attempts {r['attempts']:<2} {what[:60]}"
        )
        if r["last_error"] and r["state"] != "sent":
            print(f"    last error: {r['last_error'][:200]}")
    if not rows:
        print("no deliveries")
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    """What a config would have alerted on over stored history, against what did match."""
    from datetime import UTC, datetime

    from worker.config.reload import compile_config
    from worker.matching.dry_run import parse_since, replay
    from worker.store.db import Store

    settings = _settings(args)
    _setup_logging("WARNING")
    try:
        since = parse_since(args.since, datetime.now(UTC))
    except ValueError as exc:
        print(f"newswatch: --since: {exc}", file=sys.stderr)
        return 2
    try:
        active = compile_config(settings.config_path, watching=False)  # only its watchlists
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    _require_database(settings)
    store = Store(settings.database_url)
    try:
        report = replay(store, active.matcher, since)
    finally:
        store.dispose()
    if args.json:
        json.dump(report.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print(report.to_text())
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from worker.store.db import Store

    settings = _settings(args)
    Store(settings.database_url).upgrade()
    print(f"database at {_redact(settings.database_url)} is up to date")
    return 0


def _redact(url: str) -> str:
    """Never print a password from a URL."""
    import re

    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)  # redis://:PASSWORD@ too


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newswatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(
            "--config",
            help="config file or folder (default: $NEWSWATCH_CONFIG or config/newswatch.yaml)",
        )
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "beat and workers together (embedded Redis + SQLite unless configured)")
    p.add_argument(
        "--concurrency", type=int, default=2, help="processes parsing and matching (default 2)"
    )
    p.add_argument(
        "--fetch-concurrency", type=int, default=16,
        help="threads fetching and delivering (default 16)",
    )  # fmt: skip
    p.add_argument("--hostname", help="Celery node name suffix (default newswatch-run-PID@%%h)")
    p = add("worker", cmd_worker, "a worker only (production: REDIS_URL and DATABASE_URL)")
    p.add_argument("--pool", choices=("prefork", "threads"), default="prefork",
                   help="prefork (default): processes, for parse and rules; threads: for "
                   "the network-bound fetch and alerts queues")  # fmt: skip
    p.add_argument(
        "--concurrency", type=int, default=2, help="pool processes or threads (default 2)"
    )
    p.add_argument("--queues", help="comma-separated queues (default: all)")
    p.add_argument("--hostname", default=f"newswatch-worker-{os.getpid()}@%h")
    # used by `run` for its two workers; not for operators
    p.add_argument("--beat", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip-checks", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    add(
        "beat",
        cmd_beat,
        "the scheduler only (run exactly one per deployment; a second is harmless)",
    )
    p = add("check-config", cmd_check_config, "validate the config file; exit 1 listing problems")
    p.add_argument(
        "--connect", action="store_true", help="also try each SMTP server and webhook host"
    )
    p.add_argument("--connect-timeout", type=float, default=5.0, help="seconds per try (5)")
    p = add("health", cmd_health, "liveness: a canary task through every queue; exit 0 if back")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    p = add("metrics", cmd_metrics, "serve Prometheus metrics at /metrics")
    p.add_argument("--port", type=int, default=9464)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p = add("match", cmd_match, "parse one page or feed and show articles and watchlist hits")
    p.add_argument("input", nargs="?", default="-", help="file path, http(s) URL, or - for stdin")
    p.add_argument("--explain", action="store_true", help="show near misses and why")
    p = add(
        "status", cmd_status,
        "sources, items by outcome, and counts of items, articles, matches, deliveries",
    )  # fmt: skip
    p.add_argument("--json", action="store_true")
    p = add("why", cmd_why, "what happened to one item (or the items of a URL), and why")
    p.add_argument("item", help="an item id, or a URL (as in the feed, or canonical)")
    p.add_argument("--json", action="store_true")
    p = add("deliveries", cmd_deliveries, "list deliveries; `deliveries retry ID` sends one again")
    p.add_argument("--dead", action="store_true", help="only dead deliveries")
    p.add_argument("--state", action="append", help="only this state (repeatable)")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(action="list")
    dsub = p.add_subparsers(dest="action")
    retry = dsub.add_parser("retry", help="put a dead/failed delivery (or digest) back to pending")
    retry.add_argument("id", help="delivery id (or digest batch id)")
    p = add("endpoints", cmd_endpoints, "webhook endpoints switched off by 410 Gone")
    p.set_defaults(action="list")
    esub = p.add_subparsers(dest="action")
    enable = esub.add_parser("enable", help="switch a channel's webhook endpoint on again")
    enable.add_argument("channel")
    p = add("sources", cmd_sources, "sources disabled after permanent errors")
    p.set_defaults(action="list")
    ssub = p.add_subparsers(dest="action")
    enable = ssub.add_parser("enable", help="poll a source disabled after permanent errors again")
    enable.add_argument("name")
    rules = sub.add_parser("rules", help="watchlist rules")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    test = rsub.add_parser(
        "test",
        help="replay stored articles against a (changed) config; sends and writes nothing",
        description="replay stored articles against a (changed) config; sends and writes nothing",
    )
    test.add_argument("--config", help="the config to try (default: the running one)")
    test.add_argument("--since", default="7d", help="articles stored within this (default 7d)")
    test.add_argument("--json", action="store_true")
    test.set_defaults(func=cmd_rules_test)
    db = sub.add_parser("db", help="database schema")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations")
    up.add_argument("--config")
    up.set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"newswatch: {exc}", file=sys.stderr)
        return 2
