"""The command line: one `add_*` per group of commands, each naming its handler."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from worker.cli import checks, service, starter, status, web
from worker.cli.matches import add_matches
from worker.core.states import DeliveryState

DELIVERY_STATES = tuple(s.value for s in DeliveryState)

DESCRIPTION = """\
newswatch polls news feeds and pages, matches their articles against watchlists of
names and keywords, and sends alerts by email, webhook or file.

Start with `newswatch init` (a starter config), check it with `newswatch check-config`,
try a page or feed with `newswatch match`, run the service with `newswatch run`, and see
what it did with `newswatch status`."""

EPILOG = """\
Global options (--config) may come before or after the command. Settings come from the
environment: NEWSWATCH_CONFIG, NEWSWATCH_DATA_DIR, DATABASE_URL, REDIS_URL (see
docs/operations.md). Output cut short by its reader (`newswatch status | head`) ends
quietly with exit status 141 (128 + SIGPIPE)."""

CONFIG_HELP = (
    "config file or folder (default: $NEWSWATCH_CONFIG, else ./config/newswatch.yaml, "
    "else ~/.config/newswatch/newswatch.yaml)"
)

_Add = Callable[[str, Callable[..., int], str], argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newswatch",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--config", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[..., int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _add_config(p)
        p.set_defaults(func=func)
        return p

    _add_service(add)
    _add_checks(add)
    _add_views(add)
    add_matches(add)
    _add_admin(add)
    web.add_web(add)
    _add_rules_and_db(sub)
    return parser


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked: importlib.metadata (and the email package it
    loads) would otherwise stay in every `newswatch` process, the supervisor of `run`
    included (docs/load.md, "Memory at idle")."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **_: Any):
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show program's version number and exit",
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("newswatch")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _add_config(p: argparse.ArgumentParser, help: str = CONFIG_HELP) -> None:
    """`--config` after the command as well as before it: SUPPRESS, so that a command
    that is not given one keeps the one given before the command (argparse copies a
    subcommand's defaults over the main parser's)."""
    p.add_argument("--config", default=argparse.SUPPRESS, help=help)


def _add_service(add: _Add) -> None:
    p = add(
        "init",
        starter.cmd_init,
        "write a starter config and make a data folder (refuses to overwrite a config)",
    )
    p.add_argument(
        "dir",
        nargs="?",
        help="folder for config/newswatch.yaml and data/ (default: the per-user config, "
        "~/.config/newswatch, and data folder, ~/.local/share/newswatch)",
    )
    p = add(
        "run",
        service.cmd_run,
        "beat and workers together (embedded Redis + SQLite unless configured)",
    )
    p.add_argument(
        "--concurrency", type=int, default=2, help="processes parsing and matching (default 2)"
    )
    p.add_argument(
        "--fetch-concurrency",
        type=int,
        default=16,
        help="threads fetching and delivering (default 16)",
    )
    p.add_argument("--hostname", help="Celery node name suffix (default newswatch-run-PID@%%h)")
    p = add("worker", service.cmd_worker, "a worker only (production: REDIS_URL and DATABASE_URL)")
    p.add_argument(
        "--pool",
        choices=("prefork", "threads"),
        default="prefork",
        help="prefork (default): processes, for parse and rules; threads: for "
        "the network-bound fetch and alerts queues",
    )
    p.add_argument(
        "--concurrency", type=int, default=2, help="pool processes or threads (default 2)"
    )
    p.add_argument("--queues", help="comma-separated queues (default: all)")
    p.add_argument("--hostname", default=f"newswatch-worker-{os.getpid()}@%h")
    # used by `run` for its two workers; not for operators
    p.add_argument("--beat", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip-checks", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    # any other flag goes to Celery's worker as it is (`celery worker --help`)
    p.set_defaults(passes_through=True)
    p.epilog = (
        "Other flags are Celery's own and are passed to its worker unchanged, e.g. "
        "-E, --max-tasks-per-child N, --autoscale MAX,MIN (see `celery worker --help`); "
        "`--` ends newswatch's flags."
    )
    add(
        "beat",
        service.cmd_beat,
        "the scheduler only (run exactly one per deployment; a second is harmless)",
    )


def _add_checks(add: _Add) -> None:
    """check-config, health, metrics (and match)."""
    p = add(
        "check-config",
        checks.cmd_check_config,
        "validate the config file; exit 1 listing problems",
    )
    p.add_argument(
        "--connect", action="store_true", help="also try each SMTP server and webhook host"
    )
    p.add_argument("--connect-timeout", type=float, default=5.0, help="seconds per try (5)")
    p.add_argument(
        "--offline",
        action="store_true",
        help="do not resolve the sources' host names (checked for private addresses)",
    )
    p = add(
        "health",
        checks.cmd_health,
        "liveness: a canary task through every queue; exit 0 if back",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    p.add_argument(
        "--queues",
        metavar="Q1,Q2",
        help="the canary goes through these queues only, in this order (a worker's own "
        "healthcheck); default: every queue",
    )
    p.add_argument(
        "--beat",
        action="store_true",
        help="instead: exit 0 if beat's scheduler ticked within --max-age seconds",
    )
    p.add_argument(
        "--max-age", type=float, default=120.0, help="with --beat: seconds (default 120)"
    )
    p = add("metrics", status.cmd_metrics, "serve Prometheus metrics at /metrics")
    p.add_argument("--port", type=int, default=9464)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    _add_match(add)


def _add_match(add: _Add) -> None:
    p = add(
        "match",
        checks.cmd_match,
        "parse one page or feed and show articles and watchlist hits",
    )
    p.add_argument("input", nargs="?", default="-", help="file path, http(s) URL, or - for stdin")
    p.add_argument("--explain", action="store_true", help="show near misses and why")
    p.add_argument(
        "--source",
        metavar="NAME",
        help="fetch this configured source now and show what the service would do "
        "(nothing stored or sent)",
    )
    p.add_argument("--limit", type=int, help="with --source: only the first N items")
    p.add_argument(
        "--watchlist",
        action="append",
        metavar="NAME",
        help="explain this watchlist whether or not a term was found (repeatable)",
    )
    p.add_argument("--all-watchlists", action="store_true", help="explain every watchlist")
    form = p.add_mutually_exclusive_group()
    form.add_argument(
        "--text", action="store_true", help="text for a reader (the default on a terminal)"
    )
    form.add_argument(
        "--json", action="store_true", help="JSON (the default when stdout is not a terminal)"
    )


def _add_views(add: _Add) -> None:
    p = add(
        "status",
        status.cmd_status,
        "sources, items by outcome, and counts of items, articles, matches, deliveries",
    )
    p.add_argument("--json", action="store_true")
    p = add("why", status.cmd_why, "what happened to one item (or the items of a URL), and why")
    p.add_argument("item", help="an item id, or a URL (as in the feed, or canonical)")
    p.add_argument("--json", action="store_true")


def _add_admin(add: _Add) -> None:
    p = add(
        "deliveries",
        _admin("cmd_deliveries"),
        "list deliveries; `deliveries retry ID` sends one again",
    )
    p.add_argument("--dead", action="store_true", help="only dead deliveries")
    p.add_argument(
        "--state",
        action="append",
        choices=DELIVERY_STATES,
        help=f"only this state (repeatable): {', '.join(DELIVERY_STATES)}",
    )
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(action="list")
    dsub = p.add_subparsers(dest="action")
    retry = dsub.add_parser("retry", help="put a dead/failed delivery (or digest) back to pending")
    retry.add_argument("id", help="delivery id or digest batch id, or a unique prefix of one")
    p = add("endpoints", _admin("cmd_endpoints"), "webhook endpoints switched off by 410 Gone")
    p.set_defaults(action="list")
    esub = p.add_subparsers(dest="action")
    enable = esub.add_parser("enable", help="switch a channel's webhook endpoint on again")
    enable.add_argument("channel")
    p = add("sources", _admin("cmd_sources"), "sources disabled after permanent errors")
    p.set_defaults(action="list")
    ssub = p.add_subparsers(dest="action")
    enable = ssub.add_parser("enable", help="poll a source disabled after permanent errors again")
    enable.add_argument("name")


def _add_rules_and_db(sub: Any) -> None:
    rules = sub.add_parser("rules", help="watchlist rules")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    test = rsub.add_parser(
        "test",
        help="replay stored articles against a (changed) config; sends and writes nothing",
        description="replay stored articles against a (changed) config; sends and writes nothing",
    )
    _add_config(test, "the config to try (default: the running one)")
    test.add_argument("--since", default="7d", help="articles stored within this (default 7d)")
    test.add_argument("--json", action="store_true")
    test.set_defaults(func=checks.cmd_rules_test)
    db = sub.add_parser("db", help="database schema")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations")
    _add_config(up)
    up.set_defaults(func=_admin("cmd_db_upgrade"))


def _admin(name: str) -> Callable[..., int]:
    """The command `name` of cli/admin.py, imported when it runs: admin loads the store
    (SQLAlchemy and the models), which `newswatch run`'s supervisor has no use for and
    would keep for its whole life (docs/load.md, "Memory at idle")."""

    def command(args: argparse.Namespace, ctx: Any) -> int:
        from worker.cli import admin

        return int(getattr(admin, name)(args, ctx) or 0)

    command.__name__ = command.__qualname__ = name
    return command
