"""Driving the pipeline steps directly (no Celery) with a controlled clock."""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from worker.alerts import sending
from worker.articles import parsing
from worker.bootstrap import Runtime
from worker.bootstrap.config_in_force import LiveConfig
from worker.matching import applying
from worker.settings import Settings
from worker.sources import polling
from worker.store.db import Store


def rss(*items: tuple[str, str]) -> str:
    entries = "".join(
        f"<item><title>{t}</title><link>{u}</link><guid>{u}</guid><description>{t}</description></item>"
        for t, u in items
    )
    channel = f"<channel><title>T</title>{entries}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_runtime(tmp_path: Path, database_url: str, config_text: str, clock: Clock) -> Runtime:
    cfg = tmp_path / "newswatch.yaml"
    cfg.write_text(config_text)
    settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "NEWSWATCH_DATA_DIR": str(tmp_path / "data"),
            "NEWSWATCH_CONFIG": str(cfg),
            "NEWSWATCH_REQUEUE_AFTER_SECONDS": "60",
            "NEWSWATCH_DELIVERY_ATTEMPTS": "4",
            "NEWSWATCH_RETRY_BASE_SECONDS": "10",
            # exact schedules under the controlled clock (tests/integration/test_politeness.py
            # covers the jitter)
            "NEWSWATCH_SCHEDULE_JITTER": "0",
        }
    )
    start_from_template(settings.database_url)
    store = Store(settings.database_url, redoable_commits=True)  # as Runtime.build's
    store.upgrade()  # a no-op on a copy of the template: the migrations still decide
    return Runtime(settings=settings, store=store, config=LiveConfig(cfg, 0.0), clock=clock)


_template: Path | None = None


def start_from_template(database_url: str) -> None:
    """A new SQLite file starts as a copy of one migrated once per process: migrating
    from nothing took ~0.25 s a test, and hundreds of tests make a store. The copy is a
    page-for-page backup (its auto_vacuum and journal mode come with it); anything else
    (PostgreSQL, an existing file, memory) is left to `Store.upgrade` alone."""
    global _template
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or ":memory:" in database_url:
        return
    target = Path(database_url[len(prefix) :])
    if target.exists():
        return
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="nw-schema-"))
        atexit.register(shutil.rmtree, folder, True)
        store = Store(f"{prefix}{folder / 'template.db'}")
        store.upgrade()
        store.engine.dispose()  # closes every connection: the WAL is checkpointed away
        _template = folder / "template.db"
    with sqlite3.connect(_template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()


def run_all(rt: Runtime) -> list[str]:
    """One full pass: dispatch, fetch, parse, rules, deliver. Returns sent delivery ids."""
    sent = []
    for source_id in polling.dispatch_due(rt):
        for item_id in polling.fetch_source(rt, source_id):
            article_id = parsing.parse_item(rt, item_id)
            if article_id is None:
                continue
            for delivery_id in applying.apply_rules(rt, article_id):
                if sending.deliver(rt, delivery_id):
                    sent.append(delivery_id)
    return sent


def count(rt: Runtime, model, *where) -> int:
    with rt.store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0
