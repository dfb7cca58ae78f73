"""Beat's schedule file is kept in plain files (dbm.dumb), never in Python 3.13's default
SQLite dbm, which failed with "locking protocol" in the beat process and stopped beat."""

from __future__ import annotations

import time
from pathlib import Path

from celery import Celery

from worker.service.beat_alive import HeartbeatScheduler


def test_the_schedule_survives_a_reopen_in_plain_files(tmp_path: Path) -> None:
    name = str(tmp_path / "celerybeat-schedule")
    store = HeartbeatScheduler.persistence.open(name, writeback=True)
    store["entries"] = {"dispatch-due-sources": 1}
    store.sync()
    store.close()
    again = HeartbeatScheduler.persistence.open(name, writeback=True)
    assert again["entries"] == {"dispatch-due-sources": 1}
    again.close()
    # dbm.dumb's .dat/.dir pair; a SQLite (or gdbm) store would be one file of this name
    assert (tmp_path / "celerybeat-schedule.dat").exists()
    assert not (tmp_path / "celerybeat-schedule").exists()
    for path in tmp_path.iterdir():
        assert not path.read_bytes().startswith(b"SQLite format 3"), path


def test_beat_sleeps_until_an_entry_is_due_instead_of_spinning(tmp_path: Path) -> None:
    """Beat's loop, as celery.beat.Service runs it, over a 0.25 s entry: each pass either
    sends the entry or sleeps until it is due. Celery's own early wake-up (a negative
    drift) made the last 10 ms before each run a busy loop of ticks."""
    app = Celery("beat-test", broker="memory://", set_as_current=False)
    app.conf.beat_schedule = {"often": {"task": "beat-test.noop", "schedule": 0.25}}
    scheduler = HeartbeatScheduler(
        app=app, schedule_filename=str(tmp_path / "celerybeat-schedule"), lazy=False
    )
    sent: list[str] = []
    scheduler.apply_entry = lambda entry, producer=None: sent.append(entry.name)
    ticks, end = 0, time.monotonic() + 1.5
    while time.monotonic() < end:
        interval = scheduler.tick()
        ticks += 1
        if interval and interval > 0:
            time.sleep(interval)
    scheduler.close()
    assert len(sent) >= 3, sent  # ~6 runs of the entry in 1.5 s
    # a pass to send, one to find the next run time, a spare for an early wake-up
    assert ticks <= 3 * len(sent) + 3, (ticks, len(sent))
