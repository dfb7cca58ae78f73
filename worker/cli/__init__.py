"""The `newswatch` command: `main` builds the settings once, from the environment it is
given and the command's flags, and hands them to the command (worker/cli/parser.py
names them all). Nothing here writes `os.environ`."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from worker.cli.context import Context
from worker.cli.parser import build_parser
from worker.settings import Settings, SettingsError

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command; `env` is its environment (this process's when None), read only."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # a worker may start again with the same arguments (cli/service.py)
    env = os.environ if env is None else env
    # every thread of a threads pool may hold a database connection at once
    threads = args.concurrency if getattr(args, "pool", None) == "threads" else 0
    try:
        settings = Settings.from_env(
            env, config=args.config, db_pool_size=max(5, threads) if threads else None
        )
    except SettingsError as exc:
        print(f"newswatch: {exc}", file=sys.stderr)
        return 2
    ctx = Context(env, settings)
    try:
        return int(args.func(args, ctx) or 0)
    finally:
        ctx.close_store()
