"""What a worker does before it takes work, whichever command started it: `newswatch
worker` (worker/cli/service.py) or Celery's own `celery -A worker worker`
(worker/celery.py). The app's signal receivers (worker/app.py) call these, so the two
entry points refuse the same bad config with the same words and migrate the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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
