"""The commands that check without changing anything: `check-config`, `health`, `match`,
`rules test`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from worker.cli.context import Context, require_database, setup_logging
from worker.config import ConfigError

if TYPE_CHECKING:
    from worker.bootstrap.config_in_force import ActiveConfig


def cmd_check_config(args: argparse.Namespace, ctx: Context) -> int:
    settings = ctx.settings
    try:
        active = ctx.compiled()
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        if missing := settings.missing_config():
            print(missing)
        return 1
    from worker.config.checks import (
        address_problems,
        config_warnings,
        resolved_address_problems,
    )

    cfg = active.loaded.config
    addresses = address_problems(active.loaded)
    warnings = config_warnings(active.loaded)  # applied as written: not fatal
    if not args.offline:  # host names: a private answer is refused as a literal one is
        by_name, unresolved = resolved_address_problems(active.loaded)
        addresses += by_name
        warnings += unresolved
    for warning in warnings:
        print(warning)
    if addresses:
        for problem in addresses:
            print(problem)
        return 1
    if args.connect:
        from worker.service.probes import reachability_problems

        problems = reachability_problems(cfg, timeout=args.connect_timeout)
        for reason in problems:
            print(f"{settings.config_path}: {reason}")
        if problems:
            return 1
    print(
        f"{settings.config_path}: ok (version {active.version}): {len(cfg.sources)} sources, "
        f"{len(cfg.watchlists)} watchlists, {len(cfg.channels)} channels"
    )
    return 0


def cmd_health(args: argparse.Namespace, ctx: Context) -> int:
    """Exit 0 when a canary task makes it through every queue (or --queues) within the
    timeout; with --beat, when beat ticked within --max-age seconds."""
    from worker.app import create_app
    from worker.service.health import QUEUES, beat_alive, check

    setup_logging("WARNING")
    if args.beat:
        result = beat_alive(ctx.settings, args.max_age)
        print(result.message, file=sys.stdout if result.ok else sys.stderr)
        return 0 if result.ok else 1
    route = [q.strip() for q in (args.queues or ",".join(QUEUES)).split(",") if q.strip()]
    unknown = [q for q in route if q not in QUEUES]
    if unknown or not route:
        what = f"unknown queue {', '.join(unknown)}" if unknown else "no queue"
        print(
            f"newswatch health: --queues {args.queues!r}: {what}; "
            f"the queues are {', '.join(QUEUES)}",
            file=sys.stderr,
        )
        return 2
    result = check(create_app(ctx.settings), ctx.settings, args.timeout, route)
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def cmd_match(args: argparse.Namespace, ctx: Context) -> int:
    """Parse one page or feed (file, URL or stdin), or fetch one configured source, and
    print articles and watchlist hits; an input that cannot be read is one line on
    stderr and exit 1."""
    from worker.cli.match_text import to_text
    from worker.cli.preview import configured_source, mark_story_duplicates, preview_source
    from worker.cli.views import InputProblem, match_input

    setup_logging("WARNING")
    active = _watchlists(ctx)
    if active is None:
        return 1
    wanted = _explained(args, active.matcher.watchlists)
    if isinstance(wanted, int):
        return wanted
    # a configured source's URL goes the service's way (its full_text, its follow:)
    source = args.source or configured_source(active, args.input)
    try:
        if source:
            result = preview_source(
                active, source, explain=args.explain, watchlists=wanted, limit=args.limit
            )
        else:
            result = match_input(active, args.input, explain=args.explain, watchlists=wanted)
    except InputProblem as exc:
        print(f"newswatch: match: {exc}", file=sys.stderr)
        return 1
    mark_story_duplicates(result["articles"])
    # as `status` and `matches`, text for a reader; JSON, unless asked for text, for a
    # program reading a pipe (what `match` always printed before it had a text view)
    if args.text or (not args.json and sys.stdout.isatty()):
        print(to_text(result))
    else:
        json.dump(result, sys.stdout, ensure_ascii=False, indent=2, default=str)
        print()
    return 0


def _explained(args: argparse.Namespace, names: tuple[str, ...]) -> list[str] | int | None:
    """The watchlists `--explain` must cover whether a term was found or not (None: those
    with a term found); 2 with one line naming the valid ones for an unknown name."""
    if args.all_watchlists:
        return list(names)
    if not args.watchlist:
        return None
    unknown = [w for w in args.watchlist if w not in names]
    if unknown:
        print(
            f"newswatch: match: no watchlist {', '.join(map(repr, unknown))} "
            f"(watchlists: {', '.join(names) or 'none'})",
            file=sys.stderr,
        )
        return 2
    return list(args.watchlist)


def cmd_rules_test(args: argparse.Namespace, ctx: Context) -> int:
    """What a config would have alerted on over stored history, against what did match."""
    from worker.matching.dry_run import parse_since, replay

    setup_logging("WARNING")
    try:
        since = parse_since(args.since, datetime.now(UTC))
    except ValueError as exc:
        print(f"newswatch: --since: {exc}", file=sys.stderr)
        return 2
    active = _watchlists(ctx)
    if active is None:
        return 1
    require_database(ctx.settings)
    report = replay(ctx.store(), active.matcher, since)
    if args.json:
        json.dump(report.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print(report.to_text())
    return 0


def _watchlists(ctx: Context) -> ActiveConfig | None:
    """The config compiled for its watchlists only; None, each problem printed, if invalid."""
    try:
        return ctx.compiled(watching=False)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None
