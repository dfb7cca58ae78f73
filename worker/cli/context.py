"""What every command shares: its environment, the settings built once from it and the
command's flags, and the store and the compiled config, each made once when first used.

Commands import what they use inside their functions: `newswatch check-config` should
not pay for importing Celery, SQLAlchemy and the fetcher.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from worker.service.startup import defaulted_note, paths, redact
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.bootstrap.config_in_force import ActiveConfig
    from worker.store.db import Store

__all__ = ["Context", "defaulted_note", "log", "paths", "redact", "require_database"]

log = logging.getLogger("newswatch")


@dataclass
class Context:
    env: Mapping[str, str]  # the environment the command was started with (not written)
    settings: Settings
    _store: Store | None = field(default=None, repr=False)
    _active: dict[bool, ActiveConfig] = field(default_factory=dict, repr=False)

    def store(self) -> Store:
        """The database, connected on first use (not migrated: see `migrated_store`)."""
        from worker.store.db import Store

        if self._store is None:
            self._store = Store(self.settings.database_url)
        return self._store

    def migrated_store(self) -> Store:
        """The existing database, migrated, for the commands that read or fix rows."""
        require_database(self.settings)
        store = self.store()
        store.upgrade()
        return store

    def compiled(self, *, watching: bool = True) -> ActiveConfig:
        """The config, loaded and compiled once; raises ConfigError. `watching=False` for
        the tools that only use its watchlists (reload.compile_config)."""
        from worker.bootstrap.config_in_force import compile_config

        if watching not in self._active:
            self._active[watching] = compile_config(self.settings.config_path, watching=watching)
        return self._active[watching]

    def check_config_or_exit(self) -> ActiveConfig:
        """The compiled config, or exit 1 listing its problems."""
        from worker.service.startup import config_or_exit

        return config_or_exit(self.settings, self.compiled)

    def close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.dispose()


def setup_logging(level: str, fmt: str = "text") -> None:
    from worker.service.observability import setup_logging as setup

    setup(level, fmt)  # text, or one JSON object per line (NEWSWATCH_LOG_FORMAT=json)


def require_database(settings: Settings) -> None:
    """A read command must not create an empty SQLite database where there was none (and
    then report "no sources"): it names the path it looked at and exits 1."""
    path = settings.sqlite_path
    if path is None or path.exists():
        return
    print(f"newswatch: no database at {path}{defaulted_note(settings)}", file=sys.stderr)
    print(
        "  run this from the folder where `newswatch run` runs, or set NEWSWATCH_DATA_DIR "
        "(or DATABASE_URL) to its data folder",
        file=sys.stderr,
    )
    raise SystemExit(1)
