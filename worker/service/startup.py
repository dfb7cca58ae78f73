"""What a worker does before it takes work, whichever command started it: `newswatch
worker` (worker/cli/service.py) or Celery's own `celery -A worker worker`
(worker/celery.py). The app's signal receivers (worker/app.py) call these, so the two
entry points refuse the same bad config with the same words and migrate the same way.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.config import ConfigError
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.bootstrap.config_in_force import ActiveConfig

log = logging.getLogger("newswatch")


def config_or_exit(settings: Settings, compile: Callable[[], ActiveConfig]) -> ActiveConfig:
    """The compiled config, or exit 1 listing its problems (and, when no config was found
    anywhere, saying to run `newswatch init`)."""
    try:
        return compile()
    except ConfigError as exc:
        print(f"newswatch: config {settings.config_path} is not valid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        if missing := settings.missing_config():
            print(f"  {missing}", file=sys.stderr)
        if "config" in settings.defaulted:
            print(
                f"  (the default config path, relative to the current folder {Path.cwd()}; "
                "pass --config or set NEWSWATCH_CONFIG)",
                file=sys.stderr,
            )
        raise SystemExit(1) from None


def exit_without_broker(command: str) -> None:
    """A worker or beat with no broker setting would retry a socket that nobody serves,
    forever: only `newswatch run` starts the embedded Redis."""
    print(
        f"{command}: no broker. Set REDIS_URL (e.g. redis://127.0.0.1:6379/0) to "
        "the Redis your workers and beat share, or use `newswatch run`, which starts an "
        "embedded Redis for a single machine",
        file=sys.stderr,
    )
    raise SystemExit(2)


def migrate(settings: Settings) -> None:
    """The data folder and a migrated database, before the pool starts."""
    from worker.store.db import Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    try:
        store.upgrade()
    finally:
        store.dispose()  # the pool's processes open their own


def warn_unreachable(settings: Settings, active: ActiveConfig) -> None:
    """Name every SMTP server and webhook host that does not answer. A warning, not a
    refusal: a mail server that is down now may be up by the first alert."""
    from worker.config.checks import address_problems, config_warnings
    from worker.service.probes import reachability_problems

    loaded = active.loaded
    for warning in config_warnings(loaded) + address_problems(loaded):
        log.warning("config: %s", warning)  # each names its file and line
    for problem in reachability_problems(loaded.config):
        log.warning("config %s: %s", settings.config_path, problem)


def prepare_worker(
    settings: Settings, options: Mapping[str, Any], *, checks: bool, command: str
) -> Settings:
    """Everything a worker sets up before its pool starts, from Celery's `celeryd_init`
    (worker/app.py), so that `celery -A worker worker` and `newswatch worker` are the
    same worker. `options` are the worker's own (pool, concurrency); returns the settings
    sized for them. `checks` is False under `newswatch run`, which checked once for both
    of its workers."""
    if settings.embedded_broker:
        exit_without_broker(command)
    count_metrics_into(settings)
    from worker.service.observability import json_stdout, setup_logging

    setup_logging(settings.log_level, settings.log_format)  # text, or JSON lines
    if settings.log_format == "json":
        json_stdout()
    threads = _threads(options)
    if threads:
        # Celery enforces no time limits in a threads pool (it cannot kill a thread), so the
        # bounds are our own: every request has the fetcher's total deadline, SMTP its timeout
        log.info("threads pool: Celery time limits do not apply; requests end at fetch.deadline")
        settings = settings.sized_for_threads(threads)
    if checks:
        from worker.bootstrap.config_in_force import compile_config

        log.info("%s: %s", command, paths(settings))
        active = config_or_exit(settings, lambda: compile_config(settings.config_path))
        migrate(settings)
        warn_unreachable(settings, active)
    return settings


def count_metrics_into(settings: Settings) -> None:
    """prometheus_client takes its multiprocess folder from the environment only, at its
    first count, so a worker started without one (by hand; `run` gives its workers theirs)
    replaces itself, same pid and command line, with an environment that has it, instead
    of writing os.environ. Before anything else starts: no thread, no connection yet."""
    from worker.service.supervisor import child_environment
    from worker.tracking.metrics import multiprocess_dir, multiprocess_folder

    if multiprocess_folder(os.environ) is not None:
        return
    env = child_environment(os.environ, metrics_dir=multiprocess_dir(settings.data_dir))
    multiprocess_folder(env)  # creates it
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def _threads(options: Mapping[str, Any]) -> int:
    """The threads of a threads pool (0 for any other pool): each may hold a database
    connection at once."""
    pool = options.get("pool") or options.get("pool_cls") or ""
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    if name not in ("threads", "celery.concurrency.thread"):
        return 0
    concurrency = options.get("concurrency")
    return int(str(concurrency)) if str(concurrency or "").isdigit() else os.cpu_count() or 1


def paths(settings: Settings) -> str:
    """Where this command looks: printed at start and by `status`, so that a command run
    from the wrong folder shows it at once."""
    text = (
        f"config {settings.config_path}, database {redact(settings.database_url)}, "
        f"data folder {settings.data_dir}"
    )
    return text + defaulted_note(settings)


def defaulted_note(settings: Settings) -> str:
    if not settings.defaulted:
        return ""
    names = " and ".join(settings.defaulted)
    return f" ({names}: the default, relative to the current folder {Path.cwd()})"


def redact(url: str) -> str:
    """Never print a password from a URL."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)  # redis://:PASSWORD@ too
