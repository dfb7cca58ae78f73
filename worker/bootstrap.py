"""The composition root: what one worker process needs, built once and passed down.

Nothing is created at import time. A `Runtime` is built lazily in each
process (after Celery forks its pool) and holds the store, the live config,
the HTTP fetcher and the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from worker.config.reload import LiveConfig
from worker.settings import Settings
from worker.store.db import Store

if TYPE_CHECKING:
    from worker.sources.fetcher import Fetcher


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    config: LiveConfig
    clock: Callable[[], datetime] = _utcnow
    synced_version: str | None = None  # config version last synced into the source table
    _fetcher: Fetcher | None = field(default=None, repr=False)
    _fetch_spec: object = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            store=Store(settings.database_url, settings.db_pool_size),
            config=LiveConfig(settings.config_path, settings.config_check_seconds),
        )

    def now(self) -> datetime:
        return self.clock()

    def fetcher(self) -> Fetcher:
        """The HTTP client for the current config's fetch settings (rebuilt if they change)."""
        from worker.config.to_sources import fetch_options
        from worker.sources.fetcher import Fetcher

        spec = self.config.current().loaded.config.fetch
        with self._lock:
            if self._fetcher is None or spec != self._fetch_spec:
                # the old one is not closed here: in a threads pool other tasks may still be
                # in a request with it; its pooled connections close when it is collected
                self._fetcher = Fetcher(fetch_options(spec), min_interval=spec.min_interval)
                self._fetch_spec = spec
            return self._fetcher

    @staticmethod
    def decode_html(body: bytes, content_type: str | None) -> str:
        from worker.core.encoding import decode_html

        return decode_html(body, content_type)

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
        self.store.dispose()
