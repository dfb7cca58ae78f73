"""Beat's schedule file is kept in plain files (dbm.dumb), never in Python 3.13's default
SQLite dbm, which failed with "locking protocol" in the beat process and stopped beat."""

from __future__ import annotations

from pathlib import Path

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
