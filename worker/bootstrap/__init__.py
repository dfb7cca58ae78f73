"""The composition root: settings -> app -> runtime, each built once per process.

An entry point (the CLI's `main`, or `worker/celery.py` for the `celery` command)
builds the `Settings` from its environment and flags, then the Celery app from them
(`worker.app.create_app`), which carries a `ProcessRuntime`. The `Runtime` itself (the
store, the live config, the HTTP fetcher and the clock) is built on first use in the
process that runs tasks, after Celery forks its pool, and passed down to every use
case. Importing this module builds nothing.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker.bootstrap.config_in_force import LiveConfig
from worker.config.to_sources import fetch_options
from worker.core.encoding import decode_html
from worker.http.fetcher import Fetcher
from worker.settings import Settings
from worker.store.db import Store


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    config: LiveConfig
    clock: Callable[[], datetime] = _utcnow
    synced_version: str | None = None  # config version last synced into the source table
    # the database disk's free-space check of this process (worker/tasks.py), made on first use
    # (a diskspace.SpaceCheck; not imported here, diskspace builds Runtimes itself)
    space_check: Any = field(default=None, repr=False)
    # the Redis where fetchers share per-host limits and robots.txt (the broker's), or None
    politeness_url: str | None = None
    _fetcher: Fetcher | None = field(default=None, repr=False)
    _fetch_spec: object = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, settings: Settings, politeness_url: str | None = None) -> Runtime:
        return cls(
            settings=settings,
            # a worker's polls, parses and matches are redone if a database crash undoes
            # them; its sends wait for the flush (Store.durable_session)
            store=Store(settings.database_url, settings.db_pool_size, redoable_commits=True),
            config=LiveConfig(settings.config_path, settings.config_check_seconds),
            politeness_url=politeness_url,
        )

    def now(self) -> datetime:
        return self.clock()

    def fetcher(self) -> Fetcher:
        """The HTTP client for the current config's fetch settings (rebuilt if they change)."""
        spec = self.config.current().loaded.config.fetch
        with self._lock:
            if self._fetcher is None or spec != self._fetch_spec:
                # the old one is not closed here: in a threads pool other tasks may still be
                # in a request with it; its pooled connections close when it is collected
                self._fetcher = Fetcher(
                    fetch_options(spec),
                    min_interval=spec.min_interval,
                    shared_url=self.politeness_url,
                )
                self._fetch_spec = spec
            return self._fetcher

    @staticmethod
    def decode_html(body: bytes, content_type: str | None) -> str:
        return decode_html(body, content_type)

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
        self.store.dispose()


class ProcessRuntime:
    """This process's one `Runtime`, built on first use from `settings`.

    A threads-pool worker runs many tasks in one process: they share one Runtime (one
    engine, one fetcher whose per-host politeness only works if it is shared) rather than
    race to build several. A forked child (a prefork pool child, the embedded beat)
    starts without one and builds its own: connections and pools must never cross a fork.
    """

    def __init__(self, settings: Settings, build: Callable[[Settings], Runtime] = Runtime.build):
        self.settings = settings
        self._build = build
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()
        # a weak reference: the fork hook must not keep every app of a test run alive
        os.register_at_fork(after_in_child=functools.partial(_forget, weakref.ref(self)))

    def get(self) -> Runtime:
        rt = self._runtime
        if rt is None:
            with self._lock:
                if self._runtime is None:
                    self._runtime = self._build(self.settings)
                rt = self._runtime
        return rt

    def reset(self) -> None:
        self._runtime = None
        # after a fork the lock may have been copied held by a thread that no longer exists
        self._lock = threading.Lock()


def _forget(ref: weakref.ref[ProcessRuntime]) -> None:
    slot = ref()
    if slot is not None:
        slot.reset()
