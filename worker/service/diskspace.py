"""A full disk: how newswatch knows one when it meets it, and how it waits it out.

A full disk is an outage, not a fault of the work in hand: every write on it fails,
whatever the row. So work that meets one is left for later and spends none of its
attempts (an item is never quarantined because the disk was full), one line says so,
and everything resumes by itself once space returns. See docs/operations.md.

- `is_disk_full(exc)`: the errors a full disk raises, through any wrapping:
  SQLite "database or disk is full" (SQLITE_FULL), PostgreSQL `disk_full` (SQLSTATE
  53100), ENOSPC / EDQUOT / EFBIG from the OS, and Redis refusing writes ("MISCONF").
- `full_paths(paths, min_free)`: which of some folders' filesystems has less than
  `min_free` bytes left. Cheap (one statvfs each): the tasks ask before they claim a
  row, so that a full disk does not burn an attempt per message.
- `DiskWatch`: the supervisor's view, with the span of each outage for the notice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from worker.bootstrap import Runtime
    from worker.settings import Settings

log = logging.getLogger(__name__)

# below this many free bytes a filesystem counts as full: SQLite needs room for a
# transaction's journal and pages, and a write that half succeeds helps nobody
DEFAULT_MIN_FREE = 8 * 1024 * 1024


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on `path`'s filesystem; None if the
    path (or its nearest existing parent) cannot be examined."""
    path = Path(path)
    for candidate in (path, *path.parents):
        try:
            st = os.statvfs(candidate)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        return st.f_bavail * st.f_frsize
    return None


def full_paths(paths: Iterable[Path], min_free: int = DEFAULT_MIN_FREE) -> list[Path]:
    """The paths whose filesystem has less than `min_free` bytes left."""
    return [p for p in paths if (free := free_bytes(p)) is not None and free < min_free]


class SpaceCheck:
    """`full_paths` for a worker process, asked before each unit of work: at most one
    statvfs per path every `interval` seconds, and one log line per outage."""

    def __init__(self, paths: Sequence[Path], min_free: int, interval: float = 1.0):
        self.paths, self.min_free, self.interval = tuple(paths), min_free, interval
        self._checked = float("-inf")
        self._full: list[Path] = []
        self._lock = threading.Lock()

    def full(self) -> list[Path]:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.interval:
                was = bool(self._full)
                self._full, self._checked = full_paths(self.paths, self.min_free), now
                if self._full and not was:
                    log.error(
                        "disk full at %s: work waits (rows stay pending, no attempt is "
                        "spent) until space returns",
                        ", ".join(map(str, self._full)),
                    )
                elif was and not self._full:
                    log.warning(
                        "disk space back at %s: work resumes", ", ".join(map(str, self.paths))
                    )
            return self._full


@dataclass
class Outage:
    path: Path
    since: datetime
    until: datetime | None = None


class DiskWatch:
    """The supervisor's watch on its data folder (and database folder): logs when a
    filesystem fills and when it has room again, and keeps each outage's span until the
    notice about it has been written (which, on SQLite, must wait for the space)."""

    def __init__(self, paths: Sequence[Path], min_free: int = DEFAULT_MIN_FREE):
        by_device: dict[int, Path] = {}
        for p in paths:  # one line per filesystem, not per folder on it
            try:
                by_device.setdefault(os.stat(_existing(p)).st_dev, Path(p))
            except OSError:
                by_device.setdefault(hash(str(p)), Path(p))
        self.paths = list(by_device.values())
        self.min_free = min_free
        self.open: dict[Path, Outage] = {}
        self.ended: list[Outage] = []  # outages over, whose notice is still to be written

    def check(self, now: datetime) -> None:
        full = set(full_paths(self.paths, self.min_free))
        for path in self.paths:
            if path in full and path not in self.open:
                self.open[path] = Outage(path, now)
                log.error(
                    "newswatch run: disk full at %s (%s bytes free, fewer than %s): writes "
                    "there fail; work waits and resumes by itself when space is freed",
                    path,
                    free_bytes(path),
                    self.min_free,
                )
            elif path not in full and path in self.open:
                outage = self.open.pop(path)
                outage.until = now
                self.ended.append(outage)
                log.warning(
                    "newswatch run: disk space back at %s (%s bytes free), full since %s",
                    path,
                    free_bytes(path),
                    outage.since.isoformat(timespec="seconds"),
                )


def _existing(path: Path) -> Path:
    for candidate in (Path(path), *Path(path).parents):
        if candidate.exists():
            return candidate
    return Path("/")


class DiskNotices:
    """The supervisor's periodic check: `DiskWatch` plus `disk_full` notices.

    A notice is a database row. While the outage lasts, one saying "disk full at PATH"
    is written if the database lets it (PostgreSQL elsewhere; SQLite sometimes, into
    room its write-ahead log already has). Once space returns, one naming the outage's
    span is written in any case: on SQLite that is often the first that can be. Each is
    keyed by path and start, so each is raised once. Until it is written, an ended
    outage is kept here (a restart of `run` in between loses it; the log lines stay).
    `send` sends the notices' deliveries on their way (worker.app.enqueue)."""

    def __init__(
        self, settings: Settings, watch: DiskWatch, send: Callable[[list[str]], None]
    ) -> None:
        self.settings, self.watch, self.send = settings, watch, send
        self._rt: Runtime | None = None
        self._noticed: set[tuple[Path, datetime]] = set()  # outages whose start is told

    def __call__(self) -> None:
        from datetime import UTC

        self.watch.check(datetime.now(UTC))
        for outage in list(self.watch.open.values()):
            if (outage.path, outage.since) not in self._noticed and self._raise(outage):
                self._noticed.add((outage.path, outage.since))
        for outage in list(self.watch.ended):
            if self._raise(outage):
                self.watch.ended.remove(outage)
                self._noticed.discard((outage.path, outage.since))

    def _raise(self, outage: Outage) -> bool:
        from worker.bootstrap import Runtime
        from worker.tracking.notices import raise_notice

        since = outage.since.isoformat(timespec="seconds")
        limit = f"less than {self.watch.min_free} bytes free"
        if outage.until is None:
            key = f"disk_full:{outage.path}:{since}"
            title = f"disk full at {outage.path}"
            body = (
                f"The filesystem of {outage.path} has had {limit} since {since}. Sources "
                "are not polled and queued work waits; nothing accepted is lost. newswatch "
                "resumes by itself when space is freed."
            )
        else:
            key = f"disk_full:{outage.path}:{since}:over"
            secs = (outage.until - outage.since).total_seconds()
            took = f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min"
            title = f"disk was full at {outage.path} for {took}"
            body = (
                f"The filesystem of {outage.path} had {limit} from {since} to "
                f"{outage.until.isoformat(timespec='seconds')}. Meanwhile no source was "
                "polled and queued work waited; nothing accepted before was lost, and it "
                "went on once space returned. Items that left a feed's window during the "
                "outage may have been missed."
            )
        try:
            if self._rt is None:
                self._rt = Runtime.build(self.settings)
            with self._rt.store.session() as session:
                row = raise_notice(self._rt, session, key, "disk_full", title, body, self._rt.now())
        except Exception as exc:  # on a full disk this is expected: tried again next time
            log.debug("disk_full notice not written yet: %s", exc)
            return False
        if row is not None:
            self.send([row])  # else the sweep sends it
        return True


class DiskCollector:
    """Scrape-time gauges for the data folder's and the SQLite database's filesystems:
    free bytes, and 1 while below `min_free` (what the workers wait on). Computed when
    scraped, so a full disk, on which the workers cannot write their counters, still
    shows."""

    def __init__(self, settings: Settings):
        db = settings.sqlite_path
        self.paths = [settings.data_dir, *([db.parent] if db else [])]
        self.min_free = settings.min_free_bytes

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        free = GaugeMetricFamily(
            "newswatch_disk_free_bytes",
            "Free bytes on the data/database filesystem",
            labels=["path"],
        )
        full = GaugeMetricFamily(
            "newswatch_disk_full",
            "1 while the filesystem has less than NEWSWATCH_MIN_FREE_MB free (work waits)",
            labels=["path"],
        )
        for path in dict.fromkeys(self.paths):
            n = free_bytes(path)
            if n is not None:
                free.add_metric([str(path)], n)
                full.add_metric([str(path)], float(n < self.min_free))
        return [free, full]
