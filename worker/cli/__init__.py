"""The `newswatch` command: `main` builds the settings once, from the environment it is
given and the command's flags, and hands them to the command (worker/cli/parser.py
names them all). Nothing here writes `os.environ`.

Output cut short by its reader (`newswatch status | head`) is not an error of ours:
`main` stops quietly, with no traceback, and exits 141 (128 + SIGPIPE), the status a
shell reports for `yes | head` under `set -o pipefail`, so a script can still tell that
the command did not finish writing."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from worker.cli.context import Context
from worker.cli.parser import build_parser
from worker.settings import Settings, SettingsError

__all__ = ["BROKEN_PIPE_EXIT", "build_parser", "main"]

BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE: what a shell shows for a writer its reader left


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command; `env` is its environment (this process's when None), read only."""
    try:
        code = _run(argv, env)
        sys.stdout.flush()  # inside the try: a reader gone before the last flush too
        return code
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE_EXIT


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's own flush at exit does not
    fail on the closed pipe again (the recipe of the `signal` module's documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (an in-process caller's capture)
        pass


def _run(argv: Sequence[str] | None, env: Mapping[str, str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `newswatch worker` passes the flags it does not know on to Celery's worker
    # (--max-tasks-per-child, --autoscale, -E, ...); any other command refuses them
    args, extra = parser.parse_known_args(argv)
    extra = extra[1:] if extra[:1] == ["--"] else extra
    if extra and not getattr(args, "passes_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.celery_args = extra
    args.argv = argv  # a worker may start again with the same arguments (cli/service.py)
    env = os.environ if env is None else env
    try:
        settings = Settings.from_env(env, config=args.config)
    except SettingsError as exc:
        print(f"newswatch: {exc}", file=sys.stderr)
        return 2
    ctx = Context(env, settings)
    try:
        return int(args.func(args, ctx) or 0)
    finally:
        ctx.close_store()
